/**
 * The admin listener as an operator and Kubernetes see it: liveness, readiness during a drain,
 * /metrics only on the admin port, /status with health, ejections and cache figures, health
 * checks and ejections in the metrics, reload counters of a real process on SIGHUP, and the
 * bearer token state-changing endpoints need.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { deadPort, startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { request } from './helpers/http.ts';
import { until } from './helpers/load.ts';
import { scrape } from './helpers/metrics.ts';
import { spawnProxy } from './helpers/child.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** An origin that answers `origin <path>` for every path, /metrics and /healthz included. */
function echoPathOrigin(): Promise<Origin> {
  return startOrigin((req, res) => {
    req.resume();
    const body = `origin ${req.url}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

describe('admin endpoints', () => {
  let origin: Origin;
  let proxy: TestProxy;
  let dead: number;
  before(async () => {
    origin = await echoPathOrigin();
    dead = await deadPort();
    proxy = await startProxy({
      services: [
        { name: 'app', domain: 'app.test', hosts: [{ port: origin.port }] },
        {
          name: 'pair',
          domain: 'pair.test',
          // The dead instance comes first in the rotation; one failure ejects it.
          hosts: [{ port: dead }, { port: origin.port }],
          outlierDetection: { consecutiveFailures: 1, baseEjectionTime: '1m' },
        },
        {
          name: 'checked',
          domain: 'checked.test',
          hosts: [{ port: origin.port }],
          healthCheck: { path: '/healthz', interval: '100ms', healthyThreshold: 1 },
        },
      ],
    });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  test('/healthz answers 200 and /readyz 200 while serving', async () => {
    const live = await request(proxy.adminPort, { path: '/healthz' });
    assert.equal(live.status, 200);
    assert.equal(live.text, 'ok\n');
    const ready = await request(proxy.adminPort, { path: '/readyz' });
    assert.equal(ready.status, 200);
  });

  test('/metrics and /healthz on the proxy port go to the routed service, never to the admin', async () => {
    for (const path of ['/metrics', '/healthz', '/status']) {
      const r = await request(proxy.port, { host: 'app.test', path });
      assert.equal(r.status, 200);
      assert.equal(r.text, `origin ${path}`);
    }
    const received = origin.requests.map((r) => r.url);
    assert.ok(received.includes('/metrics') && received.includes('/status'), received.join(' '));
    // Without a matching Host, /metrics on the proxy port is just an unrouted request.
    const unrouted = await request(proxy.port, { host: 'unknown.test', path: '/metrics' });
    assert.equal(unrouted.status, 421);
    assert.doesNotMatch(unrouted.text, /kubeproxy_/);
  });

  test('an ejected instance shows in /status and in the metrics', async () => {
    const r = await request(proxy.port, { host: 'pair.test', path: '/x' });
    assert.equal(r.status, 200, 'the connect failure was retried on the live instance');
    const status = await request(proxy.adminPort, { path: '/status' });
    assert.equal(status.status, 200);
    const body = JSON.parse(status.text) as {
      cache: { enabled: boolean; hitRatio: number | null; lookups: Record<string, number> };
      services: Array<{ name: string; instances: Array<{ id: string; ejected: boolean; ejections: number; lastEjectedAt: string | null }> }>;
    };
    const pair = body.services.find((s) => s.name === 'pair')!;
    const deadInstance = pair.instances.find((i) => i.id === `127.0.0.1:${dead}`)!;
    assert.equal(deadInstance.ejected, true);
    assert.equal(deadInstance.ejections, 1);
    assert.ok(deadInstance.lastEjectedAt !== null && !Number.isNaN(Date.parse(deadInstance.lastEjectedAt)));
    const live = pair.instances.find((i) => i.id === `127.0.0.1:${origin.port}`)!;
    assert.equal(live.ejections, 0);
    assert.equal(body.cache.enabled, true);
    assert.deepEqual(Object.keys(body.cache.lookups), ['hit', 'miss', 'stale', 'revalidated', 'bypass']);
    // The origin sends no freshness information: every lookup so far was a miss.
    assert.equal(body.cache.lookups.hit, 0);
    assert.ok(body.cache.hitRatio === 0 || body.cache.hitRatio === null, String(body.cache.hitRatio));

    const s = await scrape(proxy.adminPort);
    assert.equal(s.get('kubeproxy_ejections_total', { service: 'pair', upstream: `127.0.0.1:${dead}` }), 1);
    assert.equal(s.get('kubeproxy_instance_healthy', { service: 'pair', upstream: `127.0.0.1:${dead}` }), 0);
    assert.equal(s.get('kubeproxy_instance_healthy', { service: 'pair', upstream: `127.0.0.1:${origin.port}` }), 1);
  });

  test('active health checks are counted per instance and shown in /status', async () => {
    const upstream = `127.0.0.1:${origin.port}`;
    await until(async () => ((await scrape(proxy.adminPort)).get('kubeproxy_health_checks_total', { service: 'checked', upstream, result: 'success' }) ?? 0) >= 2, 'two successful probes');
    const s = await scrape(proxy.adminPort);
    assert.equal(s.get('kubeproxy_health_checks_total', { service: 'checked', upstream, result: 'failure' }), 0);
    const body = JSON.parse((await request(proxy.adminPort, { path: '/status' })).text) as {
      services: Array<{ name: string; instances: Array<{ lastProbe: { ok: boolean; status: number } | null }> }>;
    };
    const probe = body.services.find((x) => x.name === 'checked')!.instances[0]!.lastProbe;
    assert.equal(probe?.ok, true);
    assert.equal(probe?.status, 200);
  });

  test('HEAD /metrics has the headers and no body; an unknown admin path is a 404 naming the endpoints', async () => {
    const head = await request(proxy.adminPort, { path: '/metrics', method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    const missing = await request(proxy.adminPort, { path: '/nope' });
    assert.equal(missing.status, 404);
    assert.match(missing.text, /\/metrics/);
  });
});

test('/readyz turns 503 during the shutdown delay while requests still succeed', async (t) => {
  const origin = await echoPathOrigin();
  const proxy = await startProxy({
    shutdown: { delay: '1s', drainTimeout: '2s' },
    services: [{ name: 'drained', domain: 'app.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => origin.close());
  assert.equal((await request(proxy.adminPort, { path: '/readyz' })).status, 200);
  const stopped = proxy.close();
  const ready = await request(proxy.adminPort, { path: '/readyz' });
  assert.equal(ready.status, 503);
  assert.equal(ready.text, 'draining\n');
  // Still serving during the delay (Kubernetes is removing the endpoint), with Connection: close.
  const served = await request(proxy.port, { host: 'app.test', path: '/during-drain' });
  assert.equal(served.status, 200);
  assert.equal(served.headers.connection, 'close');
  assert.equal((await request(proxy.adminPort, { path: '/healthz' })).status, 200, 'liveness is unaffected');
  const s = await scrape(proxy.adminPort);
  assert.equal(s.get('kubeproxy_requests_total', { service: 'drained', method: 'GET', status_class: '2xx' }), 1);
  await stopped;
});

test('with proxy.metrics.enabled false, /metrics answers 404 and says why', async (t) => {
  const origin = await echoPathOrigin();
  const proxy = await startProxy({ metrics: { enabled: false }, services: [{ name: 'quiet', domain: 'quiet.test', hosts: [{ port: origin.port }] }] });
  t.after(async () => {
    await proxy.close();
    await origin.close();
  });
  assert.equal((await request(proxy.port, { host: 'quiet.test' })).status, 200);
  const r = await request(proxy.adminPort, { path: '/metrics' });
  assert.equal(r.status, 404);
  assert.match(r.text, /proxy\.metrics\.enabled/);
});

test('a real process counts reloads on SIGHUP: a refused file as a failure, a good one as a success', async (t) => {
  const origin = await echoPathOrigin();
  const block = { services: [{ name: 'app', domain: 'app.test', hosts: [{ port: origin.port }] }], watch: false };
  const child = await spawnProxy(block);
  t.after(async () => {
    await child.cleanup();
    await origin.close();
  });
  const reloads = async () => {
    const s = await scrape(child.adminPort);
    return [s.get('kubeproxy_config_reloads_total', { result: 'success' }), s.get('kubeproxy_config_reloads_total', { result: 'failure' })];
  };
  assert.deepEqual(await reloads(), [0, 0]);
  const before = (await scrape(child.adminPort)).get('kubeproxy_config_last_reload_success_timestamp_seconds')!;

  await child.writeConfig('proxy: { services: [] }\n');
  let from = child.logs.length;
  child.child.kill('SIGHUP');
  await child.waitForLog((l) => l.msg === 'config reload failed; keeping the running config', from);
  assert.deepEqual(await reloads(), [0, 1]);

  await child.writeConfig(block);
  from = child.logs.length;
  child.child.kill('SIGHUP');
  await child.waitForLog((l) => l.msg === 'config reloaded', from);
  assert.deepEqual(await reloads(), [1, 1]);
  const after = (await scrape(child.adminPort)).get('kubeproxy_config_last_reload_success_timestamp_seconds')!;
  assert.ok(after >= before, `${after} >= ${before}`);
});

describe('admin token', () => {
  test('cache purge needs the bearer token from tokenFile (401 otherwise, WWW-Authenticate: Bearer); a reload reads the file again; reads stay open', async (t) => {
    const origin = await echoPathOrigin();
    const dir = await mkdtemp(join(tmpdir(), 'kubeproxy-admin-token-'));
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'first-token\n');
    const block = {
      admin: { address: '127.0.0.1', port: 0, tokenFile },
      services: [{ name: 'app', domain: 'app.test', hosts: [{ port: origin.port }] }],
      watch: false,
    };
    const child = await spawnProxy(block);
    t.after(async () => {
      await child.cleanup();
      await origin.close();
      await rm(dir, { recursive: true, force: true });
    });
    const purge = (authorization?: string) =>
      request(child.adminPort, { method: 'POST', path: '/cache/purge?service=app', headers: authorization === undefined ? {} : { authorization } });

    const missing = await purge();
    assert.equal(missing.status, 401);
    assert.equal(missing.headers['www-authenticate'], 'Bearer realm="kubeproxy-admin"');
    assert.match(missing.text, /Authorization: Bearer <token>/);
    const wrong = await purge('Bearer first-tokeN');
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.headers['www-authenticate']), /error="invalid_token"/);
    assert.equal((await purge('Basic Zmlyc3QtdG9rZW4=')).status, 401, 'only the Bearer scheme');
    const ok = await purge('bearer first-token');
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(JSON.parse(ok.text), { service: 'app', removed: 0 });
    for (const path of ['/healthz', '/readyz', '/metrics', '/status']) {
      assert.equal((await request(child.adminPort, { path })).status, 200, `${path} needs no token`);
    }

    // A rotated Secret: the new token after a reload, the old one refused.
    await writeFile(tokenFile, 'second-token\n');
    const from = child.logs.length;
    child.child.kill('SIGHUP');
    await child.waitForLog((l) => l.msg === 'config reloaded', from);
    assert.equal((await purge('Bearer first-token')).status, 401);
    assert.equal((await purge('Bearer second-token')).status, 200);
  });

  test('with no token configured, cache purge answers 403 naming the key that enables it', async (t) => {
    const origin = await echoPathOrigin();
    const proxy = await startProxy({ admin: { address: '127.0.0.1', port: 0 }, services: [{ name: 'app', domain: 'app.test', hosts: [{ port: origin.port }] }] });
    t.after(async () => {
      await proxy.close();
      await origin.close();
    });
    const r = await request(proxy.adminPort, { method: 'POST', path: '/cache/purge?service=app', headers: { authorization: 'Bearer anything' } });
    assert.equal(r.status, 403);
    assert.match(JSON.parse(r.text).error, /set proxy\.admin\.token or proxy\.admin\.tokenFile/);
  });
});
