/**
 * Upstream keep-alive: `timeouts.keepAlive` is the ceiling for an idle pooled connection, whatever
 * the origin's `Keep-Alive: timeout=` hint says. Observed from a real origin: when does its idle
 * socket see the proxy close it?
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from './helpers/http.ts';
import { startOrigin } from './helpers/origin.ts';
import { startProxy } from './helpers/proxy.ts';
import { until } from './helpers/load.ts';

test('the proxy closes an idle upstream connection after timeouts.keepAlive even when the origin hints a minute', async (t) => {
  let answeredAt = 0;
  let closedAt = 0;
  let sockets = 0;
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'keep-alive': 'timeout=60' });
    res.end('ok', () => (answeredAt = performance.now()));
  });
  // The origin itself would keep the connection for a minute: any close before that is the proxy's.
  origin.server.keepAliveTimeout = 60_000;
  origin.server.on('connection', (socket) => {
    sockets++;
    socket.on('close', () => (closedAt = performance.now()));
  });
  t.after(() => origin.close());
  const proxy = await startProxy({
    timeouts: { keepAlive: '1s' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => proxy.close());

  const r = await request(proxy.port, { host: 'web.test' });
  assert.equal(r.status, 200);
  await until(() => closedAt > 0, 'the idle upstream connection to be closed', 10_000);
  const idleMs = closedAt - answeredAt;
  assert.equal(sockets, 1);
  assert.ok(idleMs >= 800 && idleMs < 3_000, `closed after ${Math.round(idleMs)} ms idle (keepAlive 1s, origin hint 60s)`);
});

test('an idle upstream connection is reused within timeouts.keepAlive', async (t) => {
  let sockets = 0;
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'keep-alive': 'timeout=60' });
    res.end('ok');
  });
  origin.server.keepAliveTimeout = 60_000;
  origin.server.on('connection', () => sockets++);
  t.after(() => origin.close());
  const proxy = await startProxy({
    timeouts: { keepAlive: '5s' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => proxy.close());
  for (let i = 0; i < 3; i++) {
    assert.equal((await request(proxy.port, { host: 'web.test' })).status, 200);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(sockets, 1, 'one connection served all three requests');
});
