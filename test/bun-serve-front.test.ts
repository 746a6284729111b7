/**
 * The Bun.serve front (`KUBEPROXY_BUN_FRONT=serve`, src/server/bun-front.ts): a real `kubeproxy`
 * process on Bun with that front, real origins, on every leg (Bun is the optional dependency;
 * without it these tests are skipped, saying why). What differs from the node:http front is
 * asserted too, so a Bun release that changes it shows up here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { noBun } from './helpers/bun.ts';
import { request, rawRequest } from './helpers/http.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { runLoad, statusCounts, until } from './helpers/load.ts';
import { spawnProxy, type ChildProxy, type ProxyBlock } from './helpers/child.ts';

const ON_SERVE = { runtime: 'bun', env: { KUBEPROXY_BUN_FRONT: 'serve' } } as const;

async function serveFront(t: { after(fn: () => unknown): void }, origin: Origin, extra: Partial<ProxyBlock> = {}): Promise<ChildProxy> {
  const proxy = await spawnProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }], ...extra }, ON_SERVE);
  t.after(() => proxy.cleanup());
  return proxy;
}

/** An origin echoing what it got: method, target, the body's size and hash. */
function echoOrigin(): Promise<Origin> {
  return startOrigin((req, res) => {
    const hash = createHash('sha256');
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, size, sha: hash.digest('hex'), headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
      res.end(body);
    });
  });
}

test('on the Bun.serve front a request reaches the instance with its method, target, fields and body, and the answer comes back whole', { skip: noBun, timeout: 60_000 }, async (t) => {
  const origin = await echoOrigin();
  t.after(() => origin.close());
  const proxy = await serveFront(t, origin);
  assert.equal(proxy.logs.find((l) => l.msg === 'kubeproxy starting')?.runtime, 'bun');

  const body = Buffer.alloc(300_000, 'x');
  const r = await request(proxy.port, { method: 'PUT', host: 'web.test', path: '/a/b%20c?x=1&x=2', headers: { 'x-custom': 'yes', 'content-type': 'application/octet-stream' }, body });
  assert.equal(r.status, 200);
  const seen = JSON.parse(r.text) as { method: string; url: string; size: number; sha: string; headers: Record<string, string> };
  assert.equal(seen.method, 'PUT');
  assert.equal(seen.url, '/a/b%20c?x=1&x=2');
  assert.equal(seen.size, body.length);
  assert.equal(seen.sha, createHash('sha256').update(body).digest('hex'));
  assert.equal(seen.headers['x-custom'], 'yes');
  assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'the client address comes from Bun.serve');
  assert.equal(seen.headers.via, '1.1 kubeproxy');
  assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2'], 'Set-Cookie lines stay apart');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{36}$/);

  const head = await request(proxy.port, { method: 'HEAD', host: 'web.test', path: '/h' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
});

test('on the Bun.serve front a cache hit is served without the instance, and an untyped body gets no Content-Type', { skip: noBun, timeout: 60_000 }, async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-length': '5' });
    res.end('hello');
  });
  t.after(() => origin.close());
  const proxy = await serveFront(t, origin);
  const first = await request(proxy.port, { host: 'web.test', path: '/c' });
  const second = await request(proxy.port, { host: 'web.test', path: '/c' });
  assert.equal(first.text, 'hello');
  assert.equal(second.text, 'hello');
  assert.match(String(second.headers['cache-status']), /hit/);
  assert.equal(origin.requests.length, 1);
  assert.equal(second.headers['content-type'], undefined, 'the proxy does not invent a Content-Type (Bun would say application/octet-stream)');
  assert.equal(second.headers.age !== undefined, true);
});

test('on the Bun.serve front a slow client gets every byte of a large answer (back-pressure)', { skip: noBun, timeout: 90_000 }, async (t) => {
  const size = 64 * 1024 * 1024;
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    const chunk = Buffer.alloc(64 * 1024, 'z');
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  t.after(() => origin.close());
  const proxy = await serveFront(t, origin);
  let received = 0;
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: '/big', headers: { host: 'web.test' } }, (res) => {
      res.on('data', (c: Buffer) => {
        received += c.length;
        // Read slowly at first: the proxy must hold back the instance, not buffer its answer.
        if (received < 8 * 1024 * 1024) {
          res.pause();
          setTimeout(() => res.resume(), 2);
        }
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(received, size);
});

test('on the Bun.serve front Upgrade gets 501 naming the node:http front, CONNECT 405, an unknown host 421', { skip: noBun, timeout: 60_000 }, async (t) => {
  const origin = await echoOrigin();
  t.after(() => origin.close());
  const proxy = await serveFront(t, origin);
  const up = await request(proxy.port, { host: 'web.test', headers: { connection: 'upgrade', upgrade: 'websocket' } });
  assert.equal(up.status, 501);
  assert.match(up.text, /KUBEPROXY_BUN_FRONT=node/);
  assert.equal(up.headers.connection, 'close');
  const connect = await rawRequest(proxy.port, 'CONNECT web.test:443 HTTP/1.1\r\nHost: web.test:443\r\n\r\n');
  assert.match(connect, /^HTTP\/1\.1 405 /);
  const unknown = await request(proxy.port, { host: 'nope.test' });
  assert.equal(unknown.status, 421);
  assert.equal(origin.requests.length, 0, 'none of them reached the instance');
});

test('on the Bun.serve front the path is what Bun\'s URL parser makes of it: dot segments resolved (as Envoy\'s normalize_path)', { skip: noBun, timeout: 60_000 }, async (t) => {
  const origin = await echoOrigin();
  t.after(() => origin.close());
  const proxy = await serveFront(t, origin);
  const raw = await rawRequest(proxy.port, 'GET /a/./b/../c/%2e%2e/d?q=/../x HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n');
  assert.match(raw, /"url":"\/a\/d\?q=\/\.\.\/x"/, "the query is left as it is");
});

test('on the Bun.serve front SIGTERM under load: every accepted request completes and the process exits 0', { skip: noBun, timeout: 90_000 }, async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    setTimeout(() => res.end(`done ${req.url}`), req.url === '/long' ? 1500 : 30);
  });
  t.after(() => origin.close());
  const proxy = await serveFront(t, origin, { shutdown: { delay: '500ms', drainTimeout: '10s' } });
  let stop = false;
  const load = runLoad(proxy.port, { total: 1_000_000, concurrency: 8, host: 'web.test', path: (i) => `/r${i}`, before: () => !stop });
  await until(() => origin.requests.length >= 40, 'load to be under way');
  const long = request(proxy.port, { host: 'web.test', path: '/long' });
  await until(() => origin.requests.some((r) => r.url === '/long'), 'the long request to reach the instance');
  proxy.child.kill('SIGTERM');
  await proxy.waitForLog((l) => l.msg === 'shutting down');
  const during = await request(proxy.port, { host: 'web.test', path: '/during' });
  assert.equal(during.status, 200);
  assert.equal(during.headers.connection, 'close', 'told to close during the shutdown delay, once');
  stop = true;
  const outcomes = await load;
  assert.deepEqual(statusCounts(outcomes), { 200: outcomes.length });
  assert.equal((await long).text, 'done /long');
  assert.deepEqual(await proxy.exited, { code: 0, signal: null });
});

test('on the Bun.serve front workers: 2 share the port (SO_REUSEPORT) and both serve', { skip: noBun, timeout: 90_000 }, async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.end('ok');
  });
  t.after(() => origin.close());
  const proxy = await serveFront(t, origin, { workers: 2 });
  // A new connection per request: the kernel picks a worker per connection.
  for (let i = 0; i < 40; i++) {
    const r = await request(proxy.port, { host: 'web.test', path: `/w${i}` });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'ok');
  }
  const status = (await request(proxy.adminPort, { path: '/status' })).text;
  const workers = (JSON.parse(status) as { workers?: Array<{ requests?: number }> }).workers ?? [];
  assert.equal(workers.length, 2);
  assert.ok(workers.every((w) => (w.requests ?? 0) > 0), `each worker served requests: ${JSON.stringify(workers.map((w) => w.requests))}`);
  proxy.child.kill('SIGTERM');
  assert.deepEqual(await proxy.exited, { code: 0, signal: null });
});
