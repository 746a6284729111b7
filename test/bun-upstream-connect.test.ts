/**
 * The HTTP/1.1 upstream client over Bun.connect (`KUBEPROXY_BUN_UPSTREAM=connect`,
 * src/upstream/bun-h1-client.ts): a real `kubeproxy` process on Bun with it, real origins, on every
 * leg (Bun is the optional dependency; without it these tests are skipped, saying why). What a
 * client sees must be what it sees through undici: bodies both ways, framing, failover, resets,
 * timeouts, back-pressure, connection reuse, and a malformed answer refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { noBun } from './helpers/bun.ts';
import { request } from './helpers/http.ts';
import { deadPort, startOrigin, type Origin } from './helpers/origin.ts';
import { spawnProxy, type ChildProxy, type ProxyBlock } from './helpers/child.ts';

const ON_CONNECT = { runtime: 'bun', env: { KUBEPROXY_BUN_UPSTREAM: 'connect' } } as const;

async function proxyFor(t: { after(fn: () => unknown): void }, services: ProxyBlock['services'], extra: Partial<ProxyBlock> = {}): Promise<ChildProxy> {
  const proxy = await spawnProxy({ services, ...extra }, ON_CONNECT);
  t.after(() => proxy.cleanup());
  return proxy;
}

async function originFor(t: { after(fn: () => unknown): void }, origin: Promise<Origin>): Promise<Origin> {
  const o = await origin;
  t.after(() => o.close());
  return o;
}

/** An origin on a raw socket writing `answer` to every request it reads. */
async function rawOrigin(t: { after(fn: () => unknown): void }, answer: string): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.once('data', () => s.end(answer));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as { port: number }).port;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('through the Bun.connect client a request reaches the instance with its method, target, fields and body, and answers come back whole', { skip: noBun, timeout: 60_000 }, async (t) => {
  const big = Buffer.alloc(1024 * 1024 + 17, 'q');
  const origin = await originFor(
    t,
    startOrigin((req, res) => {
      void buffer(req).then((body) => {
        if (req.url === '/big') {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(big.length) });
          return void res.end(big);
        }
        const { headers } = req;
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
        res.end(JSON.stringify({ method: req.method, url: req.url, size: body.length, sha: sha(body), te: headers['transfer-encoding'] ?? null, cl: headers['content-length'] ?? null, custom: headers['x-custom'] }));
      });
    }),
  );
  const proxy = await proxyFor(t, [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }]);

  const upload = Buffer.alloc(300_000, 'x');
  const r = await request(proxy.port, { method: 'PUT', host: 'web.test', path: '/a/b%20c?x=1&x=2', headers: { 'x-custom': 'yes', 'content-type': 'application/octet-stream' }, body: upload });
  assert.equal(r.status, 200);
  const seen = JSON.parse(r.text) as { method: string; url: string; size: number; sha: string; te: string | null; cl: string | null; custom: string };
  assert.deepEqual(seen, { method: 'PUT', url: '/a/b%20c?x=1&x=2', size: upload.length, sha: sha(upload), te: null, cl: String(upload.length), custom: 'yes' });
  assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2'], 'Set-Cookie lines stay apart');

  // A chunked upload goes on chunked, piece by piece.
  const pieces = [Buffer.alloc(70_000, 'a'), Buffer.alloc(1, 'b'), Buffer.alloc(33_333, 'c')];
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: '/up', headers: { host: 'web.test' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    let i = 0;
    const next = (): void => {
      if (i === pieces.length) return void req.end();
      req.write(pieces[i++]);
      setTimeout(next, 10);
    };
    next();
  });
  const all = Buffer.concat(pieces);
  assert.equal(chunked.status, 200);
  const up = JSON.parse(chunked.body) as { size: number; sha: string; te: string | null };
  assert.deepEqual([up.size, up.sha, up.te], [all.length, sha(all), 'chunked']);

  for (const method of ['GET', 'DELETE', 'OPTIONS', 'PATCH', 'POST']) {
    const m = await request(proxy.port, { method, host: 'web.test', path: `/m/${method}` });
    assert.equal(m.status, 200, method);
    const echoed = JSON.parse(m.text) as { method: string; url: string; size: number };
    assert.deepEqual([echoed.method, echoed.url, echoed.size], [method, `/m/${method}`, 0]);
  }

  const down = await request(proxy.port, { host: 'web.test', path: '/big' });
  assert.equal(down.status, 200);
  assert.equal(down.body.length, big.length);
  assert.equal(sha(down.body), sha(big));
});

test('through the Bun.connect client chunked answers arrive whole with their trailers, and HEAD, 204 and 304 carry no body on a reused connection', { skip: noBun, timeout: 60_000 }, async (t) => {
  const sockets = new Set<unknown>();
  const origin = await originFor(
    t,
    startOrigin((req, res) => {
      sockets.add(req.socket);
      req.resume();
      if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-sum' });
        let n = 0;
        const tick = (): void => {
          if (n++ < 5) {
            res.write(`part${n};`);
            return void setTimeout(tick, 5);
          }
          res.addTrailers({ 'x-sum': 'five' });
          res.end();
        };
        return tick();
      }
      if (req.url === '/head') {
        res.writeHead(200, { 'content-length': '1000', 'content-type': 'text/plain' });
        return void res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1000));
      }
      if (req.url === '/204') {
        res.writeHead(204);
        return void res.end();
      }
      if (req.url === '/304') {
        res.writeHead(304, { etag: '"v1"' });
        return void res.end();
      }
      res.end('after');
    }),
  );
  const proxy = await proxyFor(t, [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }]);

  const c = await new Promise<{ body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: '/chunked', headers: { host: 'web.test', te: 'trailers' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ body, trailers: res.trailers }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(c.body, 'part1;part2;part3;part4;part5;');
  assert.equal(c.trailers['x-sum'], 'five');

  const head = await request(proxy.port, { method: 'HEAD', host: 'web.test', path: '/head' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], '1000');
  assert.equal(head.body.length, 0);
  const noContent = await request(proxy.port, { host: 'web.test', path: '/204' });
  assert.equal(noContent.status, 204);
  assert.equal(noContent.body.length, 0);
  const notModified = await request(proxy.port, { host: 'web.test', path: '/304', headers: { 'if-none-match': '"v1"' } });
  assert.equal(notModified.status, 304);
  assert.equal(notModified.body.length, 0);
  // The bodiless answers left the upstream connection in step: the next answer is read right.
  const after = await request(proxy.port, { host: 'web.test', path: '/after' });
  assert.equal(after.text, 'after');
  const full = await request(proxy.port, { host: 'web.test', path: '/head' });
  assert.equal(full.body.length, 1000);
  assert.equal(sockets.size, 1, 'one upstream connection carried every request');
});

test('through the Bun.connect client 103 Early Hints reach the client before the answer, and an unasked 100 Continue is dropped', { skip: noBun, timeout: 60_000 }, async (t) => {
  const origin = await originFor(
    t,
    startOrigin((req, res) => {
      req.resume();
      res.writeContinue();
      res.writeEarlyHints({ link: '</a.css>; rel=preload' });
      setTimeout(() => res.end('final'), 20);
    }),
  );
  const proxy = await proxyFor(t, [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }]);
  const seen: string[] = [];
  const body = await new Promise<string>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: '/', headers: { host: 'web.test' } }, (res) => {
      seen.push(String(res.statusCode));
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
    });
    req.on('information', (info) => seen.push(`${info.statusCode} ${String(info.headers.link)}`));
    req.on('error', reject);
    req.end();
  });
  assert.deepEqual(seen, ['103 </a.css>; rel=preload', '200']);
  assert.equal(body, 'final');
});

test('through the Bun.connect client the origin sees fewer connections than requests (keep-alive), also for concurrent requests', { skip: noBun, timeout: 60_000 }, async (t) => {
  let connections = 0;
  const origin = await originFor(
    t,
    startOrigin((req, res) => {
      req.resume();
      res.end('ok');
    }),
  );
  origin.server.on('connection', () => connections++);
  const proxy = await proxyFor(t, [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }]);
  for (let i = 0; i < 20; i++) assert.equal((await request(proxy.port, { host: 'web.test', path: `/s${i}` })).text, 'ok');
  assert.equal(connections, 1, 'sequential requests share one connection');
  for (let round = 0; round < 5; round++) {
    const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => request(proxy.port, { host: 'web.test', path: `/c${round}-${i}` })));
    assert.ok(replies.every((r) => r.text === 'ok'));
  }
  assert.equal(origin.requests.length, 60);
  assert.ok(connections <= 9, `40 concurrent requests in rounds of 8 reused connections (${connections} opened)`);
});

test('through the Bun.connect client an origin announcing Keep-Alive: timeout=1 never gets a request on a connection it may be closing', { skip: noBun, timeout: 60_000 }, async (t) => {
  let connections = 0;
  const origin = await originFor(
    t,
    startOrigin((req, res) => {
      req.resume();
      res.end('ok');
    }),
  );
  // node:http says `Keep-Alive: timeout=1`: less undici's 2 s margin, nothing is left to idle on.
  origin.server.keepAliveTimeout = 1000;
  origin.server.on('connection', () => connections++);
  const proxy = await proxyFor(t, [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }]);
  for (let i = 0; i < 5; i++) assert.equal((await request(proxy.port, { method: 'POST', host: 'web.test', path: `/k${i}`, body: 'x' })).status, 200);
  assert.equal(connections, 5, 'each request on a connection of its own');
});

test('through the Bun.connect client a refused instance is retried on the other one, with no error for the client', { skip: noBun, timeout: 60_000 }, async (t) => {
  const dead = await deadPort();
  const origin = await originFor(
    t,
    startOrigin((req, res) => {
      req.resume();
      res.end('alive');
    }),
  );
  const proxy = await proxyFor(t, [{ name: 'web', domain: 'web.test', hosts: [{ port: dead }, { port: origin.port }] }]);
  for (let i = 0; i < 10; i++) {
    const r = await request(proxy.port, { method: 'POST', host: 'web.test', path: `/r${i}`, body: 'payload' });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'alive');
  }
});

test('through the Bun.connect client an instance resetting mid-answer cuts the client connection, and a slow instance gets a 504', { skip: noBun, timeout: 60_000 }, async (t) => {
  const broken = await originFor(
    t,
    startOrigin((req, res) => {
      req.resume();
      if (req.url === '/slow') {
        const timer = setTimeout(() => res.end('late'), 5000);
        return void res.on('close', () => clearTimeout(timer));
      }
      res.writeHead(200, { 'content-length': '100000' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 20);
    }),
  );
  const proxy = await proxyFor(t, [{ name: 'b', domain: 'b.test', hosts: [{ port: broken.port }], timeouts: { response: '300ms' } }]);
  await assert.rejects(request(proxy.port, { host: 'b.test', path: '/cut' }), 'the client sees the answer cut, never a complete one');
  const started = Date.now();
  const slow = await request(proxy.port, { host: 'b.test', path: '/slow' });
  assert.equal(slow.status, 504);
  assert.match(slow.text, /did not answer in time/);
  assert.ok(Date.now() - started < 4000, 'the response timeout, not the instance, ended it');
});

test('through the Bun.connect client an instance that stops sending its body is cut after the idle timeout', { skip: noBun, timeout: 60_000 }, async (t) => {
  const stalling = await originFor(
    t,
    startOrigin((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': '1000' });
      res.write('some');
    }),
  );
  const proxy = await proxyFor(t, [{ name: 's', domain: 's.test', hosts: [{ port: stalling.port }], timeouts: { idle: '300ms' } }]);
  const started = Date.now();
  await assert.rejects(request(proxy.port, { host: 's.test' }));
  assert.ok(Date.now() - started < 5000, `cut by the idle timeout (${Date.now() - started} ms)`);
});

test('through the Bun.connect client a reader that stops holds the instance back, then gets every byte of a 64 MiB chunked answer', { skip: noBun, timeout: 120_000 }, async (t) => {
  const size = 64 * 1024 * 1024;
  let sent = 0;
  const origin = await originFor(
    t,
    startOrigin((req, res) => {
      req.resume();
      // No Content-Length: the answer goes chunked, so the chunked path is the one held back.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 'z');
      // pipe() writes the next piece only once `res` drains: `sent` is what the instance let go.
      Readable.from(
        (function* () {
          for (; sent < size; sent += chunk.length) yield chunk;
        })(),
      ).pipe(res);
    }),
  );
  const proxy = await proxyFor(t, [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }]);
  let received = 0;
  let aheadWhilePaused = 0;
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: '/big', headers: { host: 'web.test' } }, (res) => {
      let stopped = false;
      res.on('data', (c: Buffer) => {
        received += c.length;
        hash.update(c);
        if (!stopped && received >= 4 * 1024 * 1024) {
          // The reader stops for a while: what the instance sent meanwhile is what the hops buffer.
          stopped = true;
          res.pause();
          setTimeout(() => {
            aheadWhilePaused = sent - received;
            res.resume();
          }, 1500);
        }
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(received, size);
  assert.equal(hash.digest('hex'), sha(Buffer.alloc(size, 'z')));
  assert.ok(aheadWhilePaused < 32 * 1024 * 1024, `the instance was held back while the reader stopped (${(aheadWhilePaused / 1048576).toFixed(1)} MiB ahead)`);
});

test('through the Bun.connect client a malformed answer is a 502: Content-Length with Transfer-Encoding, a bad status line, a bad Content-Length', { skip: noBun, timeout: 60_000 }, async (t) => {
  const smuggling = await rawOrigin(t, 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  const garbage = await rawOrigin(t, 'HTTP/1.1 2xx Fine\r\nContent-Length: 2\r\n\r\nok');
  const badLength = await rawOrigin(t, 'HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nok');
  const proxy = await proxyFor(t, [
    { name: 'a', domain: 'a.test', hosts: [{ port: smuggling }] },
    { name: 'b', domain: 'b.test', hosts: [{ port: garbage }] },
    { name: 'c', domain: 'c.test', hosts: [{ port: badLength }] },
  ]);
  for (const host of ['a.test', 'b.test', 'c.test']) {
    const r = await request(proxy.port, { host });
    assert.equal(r.status, 502, host);
    assert.match(r.text, /bad response from instance/, host);
    if (host === 'a.test') assert.match(r.text, /Content-Length with Transfer-Encoding/, 'the reason is named');
  }
});
