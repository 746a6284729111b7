/**
 * Start, crash and shutdown of a `proxy.workers: 2` proxy: a drain across the workers under load,
 * a killed worker replaced, signals reaching a worker directly, a worker that cannot start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from './helpers/http.ts';
import { startOrigin } from './helpers/origin.ts';
import { runLoad, statusCounts, until } from './helpers/load.ts';
import { configText, spawnProxy } from './helpers/child.ts';
import { clusterStatus, workerPids } from './helpers/cluster.ts';
import { scrape } from './helpers/metrics.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('SIGTERM under load: readiness fails at once, every request accepted by either worker completes, the process exits 0', async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    setTimeout(() => res.end(`done ${req.url}`), req.url === '/long' ? 1500 : 30);
  });
  t.after(() => origin.close());
  const proxy = await spawnProxy({
    workers: 2,
    shutdown: { delay: '700ms', drainTimeout: '10s' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => proxy.cleanup());

  let endpointRemoved = false;
  // 8 keep-alive connections, spread over both workers.
  const load = runLoad(proxy.port, { total: 1_000_000, concurrency: 8, host: 'web.test', path: (i) => `/r${i}`, before: () => !endpointRemoved });
  await until(async () => (await clusterStatus(proxy.adminPort)).workers.every((w) => (w.requests ?? 0) >= 5), 'both workers to be under load');
  // Requests in flight across the drain, on new connections (one per worker, round-robin).
  const long = [request(proxy.port, { host: 'web.test', path: '/long' }), request(proxy.port, { host: 'web.test', path: '/long' })];
  await until(() => origin.requests.filter((r) => r.url === '/long').length === 2, 'the long requests to reach the instance');

  const from = proxy.logs.length;
  proxy.child.kill('SIGTERM');
  await proxy.waitForLog((l) => l.msg === 'shutting down' && l.worker === undefined, from);
  const ready = await request(proxy.adminPort, { path: '/readyz' });
  assert.equal(ready.status, 503, 'readiness fails as soon as the primary handles SIGTERM');
  assert.equal(ready.text, 'draining\n');
  assert.equal((await request(proxy.adminPort, { path: '/healthz' })).status, 200, 'liveness still passes');
  const during = await request(proxy.port, { host: 'web.test', path: '/during' });
  assert.equal(during.status, 200, 'a new connection is still served during shutdown.delay');
  assert.equal(during.headers.connection, 'close');

  endpointRemoved = true;
  const outcomes = await load;
  assert.deepEqual(statusCounts(outcomes), { 200: outcomes.length }, 'every request the workers accepted completed');
  for (const r of await Promise.all(long)) {
    assert.equal(r.status, 200);
    assert.equal(r.text, 'done /long');
  }
  assert.deepEqual(await proxy.exited, { code: 0, signal: null });
  const drains = proxy.logs.slice(from).filter((l) => l.msg === 'shutting down' && l.worker !== undefined).map((l) => l.worker);
  assert.equal(drains.length, 2, 'each worker drained once');
  assert.equal(new Set(drains).size, 2);
  assert.ok(proxy.logs.some((l) => l.msg === 'stopped' && l.worker === undefined), 'the primary logged its stop');
  await assert.rejects(request(proxy.port, { host: 'web.test' }), /ECONNREFUSED/, 'the shared listener is closed');
});

test('a worker that is killed is replaced, readiness comes back, and the request count does not go back', async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.end('ok');
  });
  t.after(() => origin.close());
  const proxy = await spawnProxy({ workers: 2, services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] });
  t.after(() => proxy.cleanup());
  const [victim, survivor] = await workerPids(proxy.adminPort);
  const counted = async () =>
    (await scrape(proxy.adminPort)).get('kubeproxy_requests_total', { service: 'web', method: 'GET', status_class: '2xx' });
  for (let i = 0; i < 10; i++) assert.equal((await request(proxy.port, { host: 'web.test' })).status, 200);
  assert.equal(await counted(), 10);

  const from = proxy.logs.length;
  process.kill(victim!, 'SIGKILL');
  const exited = await proxy.waitForLog((l) => l.msg === 'worker exited unexpectedly; restarting it', from);
  assert.equal(exited.signal, 'SIGKILL');
  assert.equal(exited.workerPid, victim);
  // The other worker takes every new connection meanwhile.
  for (let i = 0; i < 6; i++) assert.equal((await request(proxy.port, { host: 'web.test' })).status, 200);

  await proxy.waitForLog((l) => l.msg === 'worker replaced', from);
  const ready = await request(proxy.adminPort, { path: '/readyz' });
  assert.equal(ready.status, 200, ready.text);
  const status = await clusterStatus(proxy.adminPort);
  assert.deepEqual(status.workers.map((w) => w.state), ['ready', 'ready']);
  assert.equal(status.workers[0]!.restarts, 1);
  assert.ok(![victim, survivor].includes(status.workers[0]!.pid!), 'a new process in the slot');
  assert.equal(status.workers[1]!.pid, survivor, 'the other worker was left alone');
  for (let i = 0; i < 6; i++) assert.equal((await request(proxy.port, { host: 'web.test' })).status, 200);
  assert.ok((await clusterStatus(proxy.adminPort)).workers[0]!.requests! > 0, 'the new worker takes connections');
  // What the killed worker counted up to the last scrape stays in the sum (no false counter reset).
  assert.equal(await counted(), 22);
});

test('SIGTERM reaching a worker as well as the primary (a signal to the process group) drains it once', async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.end('ok');
  });
  t.after(() => origin.close());
  const proxy = await spawnProxy({
    workers: 2,
    shutdown: { delay: '300ms' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => proxy.cleanup());
  const pids = await workerPids(proxy.adminPort);
  const from = proxy.logs.length;
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  proxy.child.kill('SIGTERM');
  assert.deepEqual(await proxy.exited, { code: 0, signal: null });
  const drains = proxy.logs.slice(from).filter((l) => l.msg === 'shutting down' && l.worker !== undefined);
  assert.equal(drains.length, 2, 'one drain per worker, not two');
  assert.ok(!proxy.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('restart')), 'no worker was restarted');
});

test('a worker that cannot bind the listen address makes the process exit 1 with the reason', async (t) => {
  const origin = await startOrigin((_req, res) => res.end('ok'));
  t.after(() => origin.close());
  const dir = await mkdtemp(join(tmpdir(), 'kubeproxy-workers-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.yaml');
  // The origin's port is taken.
  const text = configText({ workers: 2, services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] }).replace(
    '"port": 0',
    `"port": ${origin.port}`,
  );
  await writeFile(path, text);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--config', path], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 1);
  assert.match(stderr, /^kubeproxy: cannot start: address already in use/m);
});
