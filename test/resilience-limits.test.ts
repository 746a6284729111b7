/**
 * Limits end to end: slow clients, oversized headers and bodies, per-instance connection limits
 * with a bounded pending queue, and the whole-request timeout. Other clients keep being served.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { rawRequest, request } from './helpers/http.ts';
import { namedOrigin, startOrigin } from './helpers/origin.ts';
import { startProxy } from './helpers/proxy.ts';
import { runLoad, statusCounts } from './helpers/load.ts';

/** A client that sends `head` then one more byte every `everyMs`; resolves with what it received when closed. */
function trickle(port: number, head: string, drip: string, everyMs: number): { done: Promise<string>; socket: Socket } {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  socket.write(head);
  const timer = setInterval(() => {
    if (socket.writable) socket.write(drip);
  }, everyMs);
  const done = new Promise<string>((resolve) =>
    socket.once('close', () => {
      clearInterval(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    }),
  );
  return { done, socket };
}

test('slow clients (slowloris headers and bodies) get 408 and are cut off while other clients are served', async (t) => {
  const origin = await namedOrigin('ok');
  t.after(() => origin.close());
  const proxy = await startProxy({
    client: { headerTimeout: '1s', requestTimeout: '2s' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => proxy.close());

  const slowHeaders = Array.from({ length: 20 }, (_, i) => trickle(proxy.port, `GET /slow/${i} HTTP/1.1\r\nHost: web.test\r\n`, 'X-Pad: a\r\n', 100));
  const slowBodies = Array.from({ length: 5 }, (_, i) =>
    trickle(proxy.port, `POST /upload/${i} HTTP/1.1\r\nHost: web.test\r\nContent-Length: 100000\r\n\r\n`, 'x', 100),
  );
  const sockets = [...slowHeaders, ...slowBodies].map((s) => s.socket);
  t.after(() => sockets.forEach((s) => s.destroy()));

  const outcomes = await runLoad(proxy.port, { total: 150, concurrency: 5, host: 'web.test' });
  assert.deepEqual(statusCounts(outcomes), { 200: 150 }, 'other clients were served meanwhile');

  for (const s of slowHeaders) assert.match(await s.done, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  for (const s of slowBodies) assert.match(await s.done, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.equal(origin.requests.filter((r) => r.url?.startsWith('/slow')).length, 0, 'incomplete heads never reached the instance');
});

test('request headers over the limit get 431, and the connection is closed', async (t) => {
  const origin = await namedOrigin('ok');
  t.after(() => origin.close());
  const proxy = await startProxy({
    client: { maxHeaderSize: '8KiB' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => proxy.close());
  const reply = await rawRequest(proxy.port, `GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`);
  assert.match(reply, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  assert.match(reply, /connection: close/i);
  assert.equal(origin.requests.length, 0);
  assert.equal((await request(proxy.port, { host: 'web.test', headers: { 'x-small': 'a'.repeat(1000) } })).status, 200);
});

test('a Content-Length over the limit gets 413 before any instance sees the request', async (t) => {
  const origin = await namedOrigin('ok');
  t.after(() => origin.close());
  const proxy = await startProxy({
    client: { maxBodySize: '1KiB' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => proxy.close());
  const r = await request(proxy.port, { host: 'web.test', method: 'POST', body: 'x'.repeat(2000) });
  assert.equal(r.status, 413);
  assert.match(r.text, /over the limit of 1024/);
  assert.equal(origin.requests.length, 0);
});

test('a chunked body over the limit gets 413, its upstream request is aborted, and the next request is clean', async (t) => {
  let aborted = 0;
  const bodies: string[] = [];
  const origin = await startOrigin((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('aborted', () => aborted++);
    req.on('error', () => {});
    req.on('end', () => {
      bodies.push(body);
      res.end(`got ${body.length} bytes`);
    });
  });
  t.after(() => origin.close());
  const proxy = await startProxy({
    client: { maxBodySize: '1KiB' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
  });
  t.after(() => proxy.close());

  // Under the limit: streamed through whole.
  const small = await rawRequest(proxy.port, 'POST /small HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n200\r\n' + 'a'.repeat(512) + '\r\n0\r\n\r\n');
  assert.match(small, /^HTTP\/1\.1 200 /);
  assert.match(small, /got 512 bytes/);

  // Over the limit: 512-byte chunks sent one at a time, the 3rd passes 1 KiB.
  const socket = connect(proxy.port, '127.0.0.1');
  const got: Buffer[] = [];
  socket.on('data', (c: Buffer) => got.push(c));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write('POST /big HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n');
  for (let i = 0; i < 4 && !socket.destroyed; i++) {
    socket.write(`200\r\n${'b'.repeat(512)}\r\n`);
    await new Promise((r) => setTimeout(r, 30));
  }
  await closed;
  const reply = Buffer.concat(got).toString('latin1');
  assert.match(reply, /^HTTP\/1\.1 413 Payload Too Large\r\n/);
  assert.match(reply, /request body is over the limit of 1024 bytes/);
  assert.match(reply, /connection: close/i);

  // The aborted upload never completed at the instance, and the next request arrives well-formed.
  const next = await request(proxy.port, { host: 'web.test', method: 'POST', path: '/after', body: 'hello' });
  assert.equal(next.status, 200);
  assert.equal(next.text, 'got 5 bytes');
  assert.deepEqual(bodies, ['a'.repeat(512), 'hello'], 'the instance completed exactly the two good requests');
  assert.equal(aborted, 1, 'the instance saw the oversized upload cut off');
  assert.deepEqual(
    origin.requests.map((r) => r.url),
    ['/small', '/big', '/after'],
  );
});

test('beyond maxConnections and maxPending, requests get a fast 503 with Retry-After; the queued ones are served', async (t) => {
  let open = 0;
  let maxOpen = 0;
  const held: ServerResponse[] = [];
  let release = false;
  const origin = await startOrigin((req, res) => {
    req.resume();
    open++;
    maxOpen = Math.max(maxOpen, open);
    res.on('close', () => open--);
    if (release) res.end('ok');
    else held.push(res);
  });
  t.after(() => origin.close());
  const proxy = await startProxy({
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }], limits: { maxConnections: 2, maxPending: 3 }, timeouts: { connect: '10s' } }],
  });
  t.after(() => proxy.close());

  const all = Array.from({ length: 10 }, (_, i) => request(proxy.port, { host: 'web.test', path: `/r${i}` }));
  // 2 in flight + 3 waiting: the other 5 are answered at once, while nothing was released yet.
  const rejected = await Promise.race([Promise.all(all.slice(5)), new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
  assert.ok(rejected !== null, 'the excess requests were answered without waiting for the instance');
  for (const r of rejected) {
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.match(r.text, /at its limit of 2 connections and 3 requests are already waiting/);
  }
  assert.equal(held.length, 2);
  release = true;
  for (const res of held.splice(0)) res.end('ok');
  const served = await Promise.all(all.slice(0, 5));
  assert.deepEqual(served.map((r) => r.status), [200, 200, 200, 200, 200]);
  assert.ok(maxOpen <= 2, `the instance never had more than 2 requests at once (saw ${maxOpen})`);
});

test('a request waiting longer than the connect timeout for a free connection gets 503', async (t) => {
  const held: ServerResponse[] = [];
  const origin = await startOrigin((req, res) => {
    req.resume();
    held.push(res);
  });
  t.after(() => {
    for (const res of held) res.end();
    return origin.close();
  });
  const proxy = await startProxy({
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }], limits: { maxConnections: 1 }, timeouts: { connect: '300ms' } }],
  });
  t.after(() => proxy.close());
  const first = request(proxy.port, { host: 'web.test', path: '/first' });
  const waiting = await request(proxy.port, { host: 'web.test', path: '/second' });
  assert.equal(waiting.status, 503);
  assert.match(waiting.text, /no connection to service "web" became free within 300 ms/);
  for (const res of held) res.end('done');
  assert.equal((await first).status, 200);
});

test('timeouts.request bounds the whole exchange: a slow instance gets the client a 504', async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    const timer = setTimeout(() => res.end('late'), 5000);
    res.on('close', () => clearTimeout(timer));
  });
  t.after(() => origin.close());
  const proxy = await startProxy({
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }], timeouts: { request: '300ms' } }],
  });
  t.after(() => proxy.close());
  const r = await request(proxy.port, { host: 'web.test' });
  assert.equal(r.status, 504);
  assert.match(r.text, /took longer than 300 ms/);
});
