/**
 * Validation and stale serving (RFC 9111 §4.2.4, §4.3, §5.2; RFC 5861), end to end. Time passes
 * on the cache's virtual clock; origins date their answers with it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deadPort } from './helpers/origin.ts';
import { startProxy } from './helpers/proxy.ts';
import { request } from './helpers/http.ts';
import { until } from './helpers/load.ts';
import { cacheStatus, cachedService, keyOf, useClock, type TestClock } from './helpers/cache.ts';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { log, setLogger } from '../src/log.ts';

test('a 304 revalidation updates the stored headers, never Content-Length, and is served from the cache', async (t) => {
  const s = await cachedService(t, (req, res, clock) => {
    if (req.headers['if-none-match'] === '"v1"') {
      // A sloppy origin: new freshness, a new header, and a Content-Length that is not the body's
      // (0: undici 7 fails a 304 whose Content-Length is not 0).
      res.writeHead(304, { date: clock.httpDate(), etag: '"v1"', 'cache-control': 'max-age=300', 'x-version': '2', 'content-length': '0' });
      return res.end();
    }
    res.writeHead(200, { date: clock.httpDate(), etag: '"v1"', 'cache-control': 'max-age=60', 'x-version': '1', 'content-length': '5' });
    res.end('hello');
  });
  await s.get('/r');
  s.clock.advance(61_000);
  const r = await s.get('/r');
  assert.equal(s.origin.requests[1]!.headers['if-none-match'], '"v1"', 'revalidated with the stored ETag');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'hello');
  assert.equal(r.headers['content-length'], '5');
  assert.equal(r.headers['x-version'], '2');
  assert.equal(r.headers['cache-control'], 'max-age=300');
  assert.match(cacheStatus(r)!, /^kubeproxy; fwd=stale; fwd-status=304; ttl=(29\d|300); stored$/);
  s.clock.advance(200_000);
  const hit = await s.get('/r');
  assert.match(cacheStatus(hit)!, /^kubeproxy; hit; ttl=(9\d|100)$/, 'fresh for the 304\'s max-age');
  assert.equal(hit.headers['x-version'], '2');
  assert.equal(hit.headers['content-length'], '5');
  assert.equal(hit.text, 'hello');
  assert.equal(s.origin.requests.length, 2);
});

test('a 304 for another ETag than the stored one makes exactly one unconditional request, without an error logged', async (t) => {
  const s = await cachedService(t, (req, res, clock) => {
    const n = s.origin.requests.length;
    if (n === 1) {
      res.writeHead(200, { date: clock.httpDate(), etag: '"a"', 'cache-control': 'max-age=0, must-revalidate', 'content-length': '1' });
      return res.end('a');
    }
    if (req.headers['if-none-match'] !== undefined) {
      // RFC 9111 §4.3.4: this 304 selects no stored response (its ETag is not the entry's).
      res.writeHead(304, { date: clock.httpDate(), etag: '"b"', 'cache-control': 'max-age=0, must-revalidate' });
      return res.end();
    }
    res.writeHead(200, { date: clock.httpDate(), etag: '"b"', 'cache-control': 'max-age=0, must-revalidate', 'content-length': '1' });
    res.end('b');
  });
  // Installed after the proxy started: starting it sets the process log level (silent in tests).
  const saved = log;
  const lines: Array<{ level: number; msg: string }> = [];
  setLogger(pino({ level: 'warn' }, new Writable({ write: (c: Buffer, _e, done) => (lines.push(JSON.parse(c.toString())), done()) })));
  t.after(() => setLogger(saved));
  assert.equal((await s.get('/mismatch')).text, 'a');
  const r = await s.get('/mismatch');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'b');
  assert.equal(r.headers.etag, '"b"');
  assert.deepEqual(
    s.origin.requests.map((q) => q.headers['if-none-match'] ?? null),
    [null, '"a"', null],
    'the first fetch, the revalidation, and one unconditional request',
  );
  await new Promise((resolve) => setTimeout(resolve, 100)); // a redundant request would come after the answer
  assert.equal(s.origin.requests.length, 3);
  assert.deepEqual(lines.filter((l) => l.level >= 50).map((l) => l.msg), [], 'no error logged');
});

test('revalidation by Last-Modified sends If-Modified-Since', async (t) => {
  const lm = 'Mon, 01 Jan 2024 00:00:00 GMT';
  const s = await cachedService(t, (req, res, clock) => {
    if (req.headers['if-modified-since'] === lm) {
      res.writeHead(304, { date: clock.httpDate(), 'cache-control': 'max-age=60' });
      return res.end();
    }
    res.writeHead(200, { date: clock.httpDate(), 'last-modified': lm, 'cache-control': 'no-cache' });
    res.end('body');
  });
  await s.get('/lm');
  const r = await s.get('/lm');
  assert.equal(r.text, 'body');
  assert.match(cacheStatus(r)!, /^kubeproxy; fwd=stale; fwd-status=304;/, 'no-cache: every use is validated first');
  assert.equal(s.origin.requests.length, 2);
});

test('a full response to a revalidation replaces the entry', async (t) => {
  let version = 1;
  const s = await cachedService(t, (_req, res, clock) => {
    res.writeHead(200, { date: clock.httpDate(), etag: `"v${version}"`, 'cache-control': 'max-age=60' });
    res.end(`version ${version}`);
  });
  await s.get('/v');
  version = 2;
  s.clock.advance(61_000);
  const r = await s.get('/v');
  assert.equal(r.text, 'version 2');
  assert.equal(cacheStatus(r), 'kubeproxy; fwd=stale; stored');
  assert.equal((await s.get('/v')).text, 'version 2');
  assert.equal(s.origin.requests.length, 2);
});

test('must-revalidate: when the origin is down a stale entry is never served, the answer is 504', async (t) => {
  const s = await cachedService(t, (_req, res, clock) => {
    res.writeHead(200, { date: clock.httpDate(), etag: '"m"', 'cache-control': 'max-age=60, must-revalidate, stale-if-error=600' });
    res.end('secret');
  });
  await s.get('/m');
  s.clock.advance(61_000);
  await s.origin.close();
  const r = await s.get('/m');
  assert.equal(r.status, 504);
  assert.doesNotMatch(r.text, /secret/);
  assert.equal(cacheStatus(r), 'kubeproxy; fwd=stale; detail="must-revalidate"');
  assert.equal(r.headers['cache-control'], 'no-store');
});

test('only-if-cached answers 504 when nothing is stored, and never contacts the origin', async (t) => {
  const s = await cachedService(t, (_req, res, clock) => {
    res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60' });
    res.end('x');
  });
  const miss = await s.get('/o', { headers: { 'cache-control': 'only-if-cached' } });
  assert.equal(miss.status, 504);
  assert.equal(cacheStatus(miss), 'kubeproxy; detail="only-if-cached"');
  assert.equal(s.origin.requests.length, 0);
  await s.get('/o');
  const hit = await s.get('/o', { headers: { 'cache-control': 'only-if-cached' } });
  assert.equal(hit.status, 200);
  s.clock.advance(61_000);
  const stale = await s.get('/o', { headers: { 'cache-control': 'only-if-cached' } });
  assert.equal(stale.status, 504, 'a stale entry needs the origin: 504');
  assert.equal(s.origin.requests.length, 1);
});

test('stale-if-error: the stale entry is served when the instance answers 5xx', async (t) => {
  let failing = false;
  const s = await cachedService(
    t,
    (_req, res, clock) => {
      if (failing) {
        res.writeHead(500, { date: clock.httpDate(), 'content-type': 'text/plain' });
        return res.end('database down');
      }
      res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60, stale-if-error=300' });
      res.end('good');
    },
  );
  await s.get('/e');
  failing = true;
  s.clock.advance(90_000);
  const r = await s.get('/e');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'good');
  assert.match(cacheStatus(r)!, /^kubeproxy; fwd=stale; fwd-status=500; ttl=-3\d; detail="stale-if-error"$/);
  assert.ok(Number(r.headers.age) >= 90);
  s.clock.advance(300_000);
  const late = await s.get('/e');
  assert.equal(late.status, 500, 'beyond the stale-if-error window the error goes through');
  assert.equal(late.text, 'database down');
});

test('stale-if-error: the stale entry is served when no instance can be reached', async (t) => {
  const s = await cachedService(t, (_req, res, clock) => {
    res.writeHead(200, { date: clock.httpDate(), etag: '"x"', 'cache-control': 'max-age=60, stale-if-error=300' });
    res.end('good');
  });
  await s.get('/down');
  await s.origin.close();
  s.clock.advance(61_000);
  const r = await s.get('/down');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'good');
  assert.match(cacheStatus(r)!, /^kubeproxy; fwd=stale; ttl=-\d+; detail="stale-if-error"$/);
  const viaRequest = await s.get('/down', { headers: { 'cache-control': 'stale-if-error=10' } });
  assert.equal(viaRequest.status, 200);
});

test('with staleOnError 0 and no stale-if-error a failed revalidation passes the error on and keeps the entry', async (t) => {
  let failing = false;
  const s = await cachedService(
    t,
    (_req, res, clock) => {
      if (failing) {
        res.writeHead(503, { date: clock.httpDate() });
        return res.end('busy');
      }
      res.writeHead(200, { date: clock.httpDate(), etag: '"k"', 'cache-control': 'max-age=60' });
      res.end('good');
    },
    { cache: { staleOnError: '0' } },
  );
  await s.get('/k');
  failing = true;
  s.clock.advance(61_000);
  const r = await s.get('/k');
  assert.equal(r.status, 503);
  assert.equal(cacheStatus(r), 'kubeproxy; fwd=stale; detail="no-freshness-info"');
  failing = false;
  const again = await s.get('/k');
  assert.equal(again.text, 'good');
  assert.match(cacheStatus(again)!, /fwd-status=304|stored/);
});

test('stale-while-revalidate: stale is served at once and the entry is refreshed in the background once', async (t) => {
  let version = 1;
  let hold: (() => void) | undefined;
  const s = await cachedService(t, (_req, res, clock) => {
    const send = () => {
      res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60, stale-while-revalidate=600' });
      res.end(`version ${version}`);
    };
    if (version === 2) hold = send; // the refresh waits until the test lets it go
    else send();
  });
  await s.get('/swr');
  version = 2;
  s.clock.advance(120_000);
  const stale = await Promise.all(Array.from({ length: 5 }, () => s.get('/swr')));
  for (const r of stale) {
    assert.equal(r.text, 'version 1');
    assert.match(cacheStatus(r)!, /^kubeproxy; hit; ttl=-6\d; detail="stale-while-revalidate"$/);
  }
  await until(() => hold !== undefined, 'the background revalidation to reach the origin');
  assert.equal(s.origin.requests.length, 2, 'one background request for five stale hits');
  hold!();
  await until(async () => (await s.get('/swr')).text === 'version 2', 'the refreshed entry');
  const fresh = await s.get('/swr');
  assert.match(cacheStatus(fresh)!, /^kubeproxy; hit; ttl=/);
  assert.equal(s.origin.requests.length, 2);
});

test('a failing instance is never cached beyond its headers', async (t) => {
  // Instance A fails with 503 (no caching headers), instance B is healthy. Whatever A answers
  // reaches one client at most; nothing of it is stored.
  const failing: Server = createServer((_req, res) => {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('instance A is broken');
  });
  const healthy: Server = createServer((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end('from B');
  });
  for (const srv of [failing, healthy]) await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (failing.closeAllConnections(), failing.close(() => r()))));
  t.after(() => new Promise<void>((r) => (healthy.closeAllConnections(), healthy.close(() => r()))));
  const proxy = await startProxy({
    services: [
      {
        name: 'web',
        domain: 'web.test',
        hosts: [{ port: (failing.address() as AddressInfo).port }, { port: (healthy.address() as AddressInfo).port }],
        retries: { attempts: 0 },
        outlierDetection: { consecutiveFailures: 1000 },
      },
    ],
  });
  t.after(() => proxy.close());
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await request(proxy.port, { host: 'web.test', path: `/p${i}` });
    statuses.push(r.status);
    if (r.status === 503) {
      assert.equal(cacheStatus(r), 'kubeproxy; fwd=uri-miss; detail="no-freshness-info"');
      // The next request for the same URL goes upstream again (round robin: to B).
      const next = await request(proxy.port, { host: 'web.test', path: `/p${i}` });
      assert.equal(next.status, 200);
      assert.equal(next.text, 'from B');
    }
  }
  assert.ok(statuses.includes(503), 'A was asked');
  for (let i = 0; i < 4; i++) {
    const r = await request(proxy.port, { host: 'web.test', path: `/p${i}` });
    assert.equal(r.status, 200, `/p${i} is B's answer from the cache`);
  }
});

test('a 5xx is cached only for as long as its own headers say', async (t) => {
  let n = 0;
  const s = await cachedService(t, (_req, res, clock) => {
    n++;
    res.writeHead(503, { date: clock.httpDate(), 'cache-control': 'max-age=5' });
    res.end(`maintenance ${n}`);
  });
  await s.get('/maint');
  assert.equal((await s.get('/maint')).text, 'maintenance 1');
  s.clock.advance(6_000);
  assert.equal((await s.get('/maint')).text, 'maintenance 2');
});

test('errors the proxy generates (502/503/504) are never stored', async (t) => {
  const port = await deadPort();
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port }] }] });
  t.after(() => proxy.close());
  const clock: TestClock = useClock(proxy);
  const down = await request(proxy.port, { host: 'web.test', path: '/z' });
  assert.equal(down.status, 503);
  assert.equal(cacheStatus(down), 'kubeproxy; fwd=uri-miss');
  const origin = createServer((_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60' });
    res.end('up again');
  });
  await new Promise<void>((r) => origin.listen(port, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (origin.closeAllConnections(), origin.close(() => r()))));
  await until(async () => (await request(proxy.port, { host: 'web.test', path: '/z' })).status === 200, 'the instance to answer');
  const r = await request(proxy.port, { host: 'web.test', path: '/z' });
  assert.equal(r.text, 'up again');
  assert.equal(proxy.runtime.cache.flights.get(keyOf('web', 'web.test', '/z')), undefined);
});
