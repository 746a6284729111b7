/**
 * Graceful shutdown of a real `kubeproxy` process under load: SIGTERM fails readiness at once,
 * serving goes on (with `Connection: close`) for `shutdown.delay`, then in-flight requests drain
 * and the process exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from './helpers/http.ts';
import { startOrigin } from './helpers/origin.ts';
import { runLoad, statusCounts, until } from './helpers/load.ts';
import { spawnProxy } from './helpers/child.ts';

test('SIGTERM under load: readiness fails at once, every accepted request completes, the process exits 0', async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    const ms = req.url === '/long' ? 1500 : 50;
    setTimeout(() => res.end(`done ${req.url}`), ms);
  });
  t.after(() => origin.close());
  const proxy = await spawnProxy({
    shutdown: { delay: '700ms', drainTimeout: '10s' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => proxy.cleanup());

  let endpointRemoved = false;
  const load = runLoad(proxy.port, { total: 1_000_000, concurrency: 8, host: 'web.test', path: (i) => `/r${i}`, before: () => !endpointRemoved });
  await until(() => origin.requests.length >= 40, 'load to be under way');
  // A long request that is still in flight when the drain starts.
  const long = request(proxy.port, { host: 'web.test', path: '/long' });
  await until(() => origin.requests.some((r) => r.url === '/long'), 'the long request to reach the instance');

  proxy.child.kill('SIGTERM');
  await proxy.waitForLog((l) => l.msg === 'shutting down');
  const ready = await request(proxy.adminPort, { path: '/readyz' });
  assert.equal(ready.status, 503, 'readiness fails as soon as SIGTERM is handled');
  assert.equal(ready.text, 'draining\n');
  assert.equal((await request(proxy.adminPort, { path: '/healthz' })).status, 200, 'liveness still passes');

  // During the delay a new connection is still served, told to close.
  const during = await request(proxy.port, { host: 'web.test', path: '/during' });
  assert.equal(during.status, 200);
  assert.equal(during.headers.connection, 'close');

  // Kubernetes has removed the endpoint: no new requests from here on.
  endpointRemoved = true;
  const outcomes = await load;
  assert.deepEqual(statusCounts(outcomes), { 200: outcomes.length }, 'every request the proxy accepted completed');
  assert.ok(outcomes.some((o) => o.headers.connection === 'close'), 'keep-alive clients were told to close during the delay');
  const l = await long;
  assert.equal(l.status, 200);
  assert.equal(l.text, 'done /long', 'the request in flight across the drain completed');

  const exit = await proxy.exited;
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(proxy.logs.some((x) => x.msg === 'stopped'));
  await assert.rejects(request(proxy.port, { host: 'web.test' }), /ECONNREFUSED/, 'the listener is closed');
});
