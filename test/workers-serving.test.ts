/**
 * `proxy.workers: 2`: a real `kubeproxy` process becomes a cluster primary with two worker
 * processes sharing the listener; the admin port, served by the primary, speaks for all of them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from './helpers/http.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { spawnProxy, type ChildProxy } from './helpers/child.ts';
import { scrape } from './helpers/metrics.ts';
import { clusterStatus } from './helpers/cluster.ts';
import { until } from './helpers/load.ts';

const ADMIN_TOKEN = 'workers-admin-token';
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
let origin: Origin;
let proxy: ChildProxy;

before(async () => {
  origin = await startOrigin((req, res) => {
    req.resume();
    // /cached/* may be stored by the proxy's cache; everything else may not.
    res.writeHead(200, { 'cache-control': req.url?.startsWith('/cached/') ? 'public, max-age=600' : 'no-store' });
    res.end(`answer for ${req.url}`);
  });
  proxy = await spawnProxy({
    workers: 2,
    admin: { address: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
});

after(async () => {
  await proxy?.cleanup();
  await origin?.close();
});

test('requests on new connections are served by both worker processes, and /metrics counts every one exactly once', async () => {
  const before = await clusterStatus(proxy.adminPort);
  assert.equal(before.mode, 'cluster');
  assert.equal(before.workers.length, 2);
  const pids = before.workers.map((w) => w.pid);
  assert.equal(new Set(pids).size, 2, 'two worker processes');
  assert.ok(!pids.includes(proxy.child.pid!), 'the primary serves no traffic itself');
  assert.deepEqual(before.workers.map((w) => w.state), ['ready', 'ready']);

  const n = 40;
  // Each request on its own connection: node:cluster hands out connections, not requests.
  for (let i = 0; i < n; i++) {
    const r = await request(proxy.port, { host: 'web.test', path: `/r${i}` });
    assert.equal(r.status, 200);
    assert.equal(r.text, `answer for /r${i}`);
  }
  const after = await clusterStatus(proxy.adminPort);
  const served = after.workers.map((w) => w.requests ?? 0);
  assert.equal(after.requests, n, 'every request counted once in /status');
  assert.equal(served[0]! + served[1]!, n);
  assert.ok(served.every((c) => c > 0), `both workers served requests: ${served.join(' + ')}`);

  const m = await scrape(proxy.adminPort);
  assert.equal(m.status, 200);
  assert.match(m.contentType ?? '', /^text\/plain/);
  assert.equal(m.get('kubeproxy_requests_total', { service: 'web', method: 'GET', status_class: '2xx' }), n, 'the sum over both workers');
  assert.equal(m.get('kubeproxy_request_duration_seconds_count', { service: 'web', method: 'GET', status_class: '2xx' }), n);
  assert.equal(m.get('kubeproxy_instance_healthy', { service: 'web', upstream: `127.0.0.1:${origin.port}` }), 1, 'health is not summed');
  const utilisation = m.get('kubeproxy_event_loop_utilization');
  assert.ok(utilisation !== undefined && utilisation >= 0 && utilisation <= 1, `event-loop utilisation stays a share: ${utilisation}`);
  assert.equal(m.get('kubeproxy_config_reloads_total', { result: 'success' }), 0, 'reloads are counted once, by the primary');
  assert.ok((m.get('process_resident_memory_bytes') ?? 0) > 0);
});

test('the admin port answers for the cluster: liveness, readiness, unknown paths', async () => {
  assert.equal((await request(proxy.adminPort, { path: '/healthz' })).status, 200);
  const ready = await request(proxy.adminPort, { path: '/readyz' });
  assert.equal(ready.status, 200);
  assert.equal(ready.text, 'ready\n');
  const unknown = await request(proxy.adminPort, { path: '/nope' });
  assert.equal(unknown.status, 404);
  assert.match(unknown.text, /no admin endpoint \/nope/);
  const wrongMethod = await request(proxy.adminPort, { path: '/readyz', method: 'POST' });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.allow, 'GET');
});

test('a cache purge on the admin port empties the cache of every worker', async () => {
  // Each worker has its own cache: fill both (new connections alternate between workers).
  const entries = async () => (await clusterStatus(proxy.adminPort)).workers.map((w) => w.cache?.entries ?? 0);
  let sent = 0;
  await until(async () => {
    await request(proxy.port, { host: 'web.test', path: '/cached/page' });
    sent++;
    return (await entries()).every((e) => e === 1);
  }, 'both workers to store /cached/page');
  const fromOrigin = origin.requests.filter((r) => r.url === '/cached/page').length;
  assert.equal(fromOrigin, 2, `one miss per worker (${sent} requests sent)`);

  const denied = await request(proxy.adminPort, { method: 'POST', path: '/cache/purge?service=web' });
  assert.equal(denied.status, 401, 'no token, no purge');
  assert.deepEqual(await entries(), [1, 1]);

  const purge = await request(proxy.adminPort, { method: 'POST', path: `/cache/purge?url=${encodeURIComponent('http://web.test/cached/page')}`, headers: auth });
  assert.equal(purge.status, 200);
  const body = JSON.parse(purge.text) as { service: string; removed: number; workers: Array<{ removed: number }> };
  assert.equal(body.service, 'web');
  assert.equal(body.removed, 2, 'one entry removed from each worker');
  assert.deepEqual(body.workers.map((w) => w.removed), [1, 1]);
  assert.deepEqual(await entries(), [0, 0]);

  const bad = await request(proxy.adminPort, { method: 'POST', path: '/cache/purge?service=nope', headers: auth });
  assert.equal(bad.status, 404, 'the same answer from every worker is passed on as it is');
  assert.deepEqual(JSON.parse(bad.text), { error: 'no service named "nope" is configured' });
});
