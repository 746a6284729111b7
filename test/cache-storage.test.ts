/**
 * What the shared cache stores and how it keys it (RFC 9111 §2, §3, §4.1), end to end: real
 * origins emitting exact headers, a real proxy, a virtual clock instead of sleeps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startOrigin } from './helpers/origin.ts';
import { startProxy } from './helpers/proxy.ts';
import { request } from './helpers/http.ts';
import { cacheStatus, cachedService, type TestClock } from './helpers/cache.ts';

/** An origin answering every request with `headers` and a body naming the URL and a counter. */
function fixed(headers: Record<string, string | string[]>) {
  let n = 0;
  return (req: IncomingMessage, res: ServerResponse, clock: TestClock) => {
    n++;
    res.writeHead(200, { date: clock.httpDate(), 'content-type': 'text/plain', ...headers });
    res.end(`${req.url} #${n}`);
  };
}

test('two query strings never share a cache entry', async (t) => {
  const s = await cachedService(t, fixed({ 'cache-control': 'public, max-age=60' }));
  const paths = ['/a?x=1', '/a?x=2', '/a?x=1&y=2', '/a?y=2&x=1', '/a', '/a?', '/A?x=1', '/a?x=%31'];
  const first = new Map<string, string>();
  for (const p of paths) first.set(p, (await s.get(p)).text);
  for (const p of paths) {
    const r = await s.get(p);
    assert.equal(r.text, first.get(p), `${p} answered from its own entry`);
    assert.match(cacheStatus(r)!, /^kubeproxy; hit/, p);
    assert.ok(r.text.startsWith(`${p} #`), `${p} got the body of ${r.text}`);
  }
  for (const p of paths) assert.equal(s.hits(p), 1, `${p} fetched once`);
});

test('the host is part of the key: two services never read each other\'s entries', async (t) => {
  let n = 0;
  const origin = await startOrigin((req, res) => {
    n++;
    res.writeHead(200, { 'cache-control': 'public, max-age=60' });
    res.end(`${req.headers.host} ${n}`);
  });
  t.after(() => origin.close());
  const proxy = await startProxy({
    services: [
      { name: 'one', domain: 'one.test', hosts: [{ port: origin.port }] },
      { name: 'two', domain: 'two.test', hosts: [{ port: origin.port }] },
    ],
  });
  t.after(() => proxy.close());
  const a = await request(proxy.port, { host: 'one.test', path: '/same' });
  const b = await request(proxy.port, { host: 'two.test', path: '/same' });
  assert.notEqual(a.text, b.text);
  assert.equal((await request(proxy.port, { host: 'one.test', path: '/same' })).text, a.text);
  assert.equal((await request(proxy.port, { host: 'ONE.test:80', path: '/same' })).text, a.text, 'host case and default port are normalised');
  assert.equal((await request(proxy.port, { host: 'two.test', path: '/same' })).text, b.text);
  assert.equal(n, 2);
});

test('Vary: two variants are stored side by side and each request gets its own', async (t) => {
  const s = await cachedService(t, (req, res, clock) => {
    const lang = req.headers['accept-language'] ?? 'none';
    res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60', vary: 'Accept-Language', 'content-language': lang });
    res.end(`text in ${lang}`);
  });
  const en = await s.get('/doc', { headers: { 'accept-language': 'en' } });
  const fr = await s.get('/doc', { headers: { 'accept-language': 'fr' } });
  assert.equal(cacheStatus(en), 'kubeproxy; fwd=uri-miss; stored');
  assert.equal(cacheStatus(fr), 'kubeproxy; fwd=vary-miss; stored');
  for (let i = 0; i < 2; i++) {
    const e = await s.get('/doc', { headers: { 'accept-language': 'en' } });
    const f = await s.get('/doc', { headers: { 'accept-language': 'fr' } });
    assert.equal(e.text, 'text in en');
    assert.equal(f.text, 'text in fr');
    assert.match(cacheStatus(e)!, /; hit;/);
    assert.match(cacheStatus(f)!, /; hit;/);
  }
  const none = await s.get('/doc');
  assert.equal(none.text, 'text in none', 'a request without the header is a third variant');
  assert.equal(s.origin.requests.length, 3);
});

test('Vary: Accept-Language spelled differently with the same preferences shares one variant', async (t) => {
  const s = await cachedService(t, (req, res, clock) => {
    res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60', vary: 'Accept-Language' });
    res.end(`for ${req.headers['accept-language']}`);
  });
  const first = await s.get('/lang', { headers: { 'accept-language': 'en-US, fr' } });
  const second = await s.get('/lang', { headers: { 'accept-language': 'fr,en-us' } });
  assert.equal(cacheStatus(first), 'kubeproxy; fwd=uri-miss; stored');
  assert.match(cacheStatus(second)!, /^kubeproxy; hit;/);
  assert.equal(second.text, 'for en-US, fr');
  assert.equal(s.origin.requests.length, 1);
  // Other weights are another preference (RFC 9110 §12.5.4): another variant.
  const weighted = await s.get('/lang', { headers: { 'accept-language': 'fr, en-US;q=0.5' } });
  assert.equal(cacheStatus(weighted), 'kubeproxy; fwd=vary-miss; stored');
  assert.equal(s.origin.requests.length, 2);
});

test('Vary: * is never stored', async (t) => {
  const s = await cachedService(t, fixed({ 'cache-control': 'public, max-age=60', vary: '*' }));
  const a = await s.get('/star');
  const b = await s.get('/star');
  assert.notEqual(a.text, b.text);
  assert.equal(cacheStatus(b), 'kubeproxy; fwd=uri-miss; detail="vary-star"');
});

test('HEAD is answered from a stored GET', async (t) => {
  const s = await cachedService(t, fixed({ 'cache-control': 'max-age=60', etag: '"h"' }));
  const get = await s.get('/h');
  const head = await s.get('/h', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.equal(head.headers['content-length'], String(get.body.length));
  assert.equal(head.headers.etag, '"h"');
  assert.match(cacheStatus(head)!, /^kubeproxy; hit; ttl=\d+$/);
  assert.equal(s.hits('/h'), 1);
});

test('a HEAD miss is forwarded as a HEAD and not stored', async (t) => {
  const s = await cachedService(t, fixed({ 'cache-control': 'max-age=60' }));
  const head = await s.get('/h2', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(s.origin.requests[0]!.method, 'HEAD');
  assert.equal(cacheStatus(head), 'kubeproxy; fwd=uri-miss; detail="method"');
  const get = await s.get('/h2');
  assert.equal(cacheStatus(get), 'kubeproxy; fwd=uri-miss; stored');
});

test('a conditional request is answered 304 from a fresh entry when its validator matches', async (t) => {
  const s = await cachedService(t, fixed({ 'cache-control': 'max-age=60', etag: '"v7"', 'last-modified': 'Tue, 01 Jan 2030 00:00:00 GMT' }));
  await s.get('/c');
  const match = await s.get('/c', { headers: { 'if-none-match': 'W/"v7", "other"' } });
  assert.equal(match.status, 304);
  assert.equal(match.body.length, 0);
  assert.equal(match.headers.etag, '"v7"');
  assert.ok(match.headers.age !== undefined, '304 from cache carries Age');
  assert.match(cacheStatus(match)!, /^kubeproxy; hit; ttl=/);
  const other = await s.get('/c', { headers: { 'if-none-match': '"v6"' } });
  assert.equal(other.status, 200);
  const since = await s.get('/c', { headers: { 'if-modified-since': 'Tue, 01 Jan 2030 00:00:00 GMT' } });
  assert.equal(since.status, 304);
  assert.equal(s.hits('/c'), 1);
});

test('a conditional miss fetches the full response to store it and answers the client 304', async (t) => {
  const s = await cachedService(t, fixed({ 'cache-control': 'max-age=60', etag: '"e1"' }));
  const r = await s.get('/cm', { headers: { 'if-none-match': '"e1"' } });
  assert.equal(r.status, 304);
  assert.equal(s.origin.requests[0]!.headers['if-none-match'], undefined, 'the client validator is not forwarded on a miss');
  assert.equal(cacheStatus(r), 'kubeproxy; fwd=uri-miss; fwd-status=200; stored');
  const full = await s.get('/cm');
  assert.equal(full.status, 200);
  assert.match(full.text, /^\/cm #1$/);
  assert.match(cacheStatus(full)!, /; hit;/);
});

test('Authorization: a response is not stored unless public, s-maxage or must-revalidate allows it', async (t) => {
  const cases: Array<[string, boolean]> = [
    ['max-age=60', false],
    ['public, max-age=60', true],
    ['s-maxage=60', true],
    ['max-age=60, must-revalidate', true],
  ];
  const s = await cachedService(t, (req, res, clock) => {
    const cc = decodeURIComponent(req.url!.slice(req.url!.indexOf('?') + 1));
    res.writeHead(200, { date: clock.httpDate(), 'cache-control': cc });
    res.end(`for ${req.headers.authorization}`);
  });
  for (const [cc, stored] of cases) {
    const path = `/auth?${encodeURIComponent(cc)}`;
    const first = await s.get(path, { headers: { authorization: 'Bearer alice' } });
    assert.equal(cacheStatus(first), stored ? 'kubeproxy; fwd=uri-miss; stored' : 'kubeproxy; fwd=uri-miss; detail="authorization"', cc);
    await s.get(path, { headers: { authorization: 'Bearer alice' } });
    assert.equal(s.hits(path), stored ? 1 : 2, cc);
  }
});

test('private is never stored by the shared cache', async (t) => {
  const s = await cachedService(t, fixed({ 'cache-control': 'private, max-age=600' }));
  const a = await s.get('/me');
  const b = await s.get('/me');
  assert.notEqual(a.text, b.text);
  assert.equal(cacheStatus(b), 'kubeproxy; fwd=uri-miss; detail="private"');
  assert.equal(s.hits('/me'), 2);
});

test('no-store (response or request) is never stored', async (t) => {
  const s = await cachedService(t, (req, res, clock) => {
    res.writeHead(200, { date: clock.httpDate(), 'cache-control': req.url === '/ns' ? 'no-store, max-age=60' : 'max-age=60' });
    res.end('x');
  });
  await s.get('/ns');
  assert.equal(cacheStatus(await s.get('/ns')), 'kubeproxy; fwd=uri-miss; detail="no-store"');
  const r = await s.get('/rq', { headers: { 'cache-control': 'no-store' } });
  assert.equal(cacheStatus(r), 'kubeproxy; fwd=uri-miss; detail="request-no-store"');
  assert.equal(cacheStatus(await s.get('/rq')), 'kubeproxy; fwd=uri-miss; stored');
});

test('Set-Cookie is never handed to another client', async (t) => {
  const s = await cachedService(t, (req, res, clock) => {
    const cc = req.url === '/cookie-public' ? 'public, max-age=60' : 'max-age=60';
    res.writeHead(200, { date: clock.httpDate(), 'cache-control': cc, 'set-cookie': 'session=alice' });
    res.end('x');
  });
  await s.get('/cookie');
  assert.equal(cacheStatus(await s.get('/cookie')), 'kubeproxy; fwd=uri-miss; detail="set-cookie"');
  const first = await s.get('/cookie-public');
  assert.equal(first.headers['set-cookie']?.[0], 'session=alice', 'the client that caused the fetch gets its cookie');
  const hit = await s.get('/cookie-public');
  assert.match(cacheStatus(hit)!, /; hit;/);
  assert.equal(hit.headers['set-cookie'], undefined, 'a hit never carries the stored Set-Cookie');
});

test('Age is present on every cached response and grows; Date is the origin\'s', async (t) => {
  const s = await cachedService(t, fixed({ 'cache-control': 'max-age=600' }));
  const miss = await s.get('/age');
  const date = miss.headers.date;
  const first = await s.get('/age');
  assert.ok(Number(first.headers.age) <= 2, `Age ${first.headers.age} right after storing`);
  s.clock.advance(10_000);
  const later = await s.get('/age');
  const a1 = Number(later.headers.age);
  assert.ok(a1 >= 10 && a1 < 15, `Age ${a1} after 10 s`);
  s.clock.advance(5_000);
  const a2 = Number((await s.get('/age')).headers.age);
  assert.ok(a2 >= 15 && a2 > a1, `Age ${a2} after 15 s`);
  assert.equal(later.headers.date, date, 'Date is preserved');
  assert.match(cacheStatus(later)!, /^kubeproxy; hit; ttl=5(8|9)\d$/);
});

test('Cache-Status says what the cache did, after any member from the origin side', async (t) => {
  const s = await cachedService(t, (req, res, clock) => {
    const headers: Record<string, string> = { date: clock.httpDate(), 'cache-status': 'OriginCache; hit' };
    if (req.url === '/cs') headers['cache-control'] = 'max-age=100';
    res.writeHead(req.url === '/boom' ? 500 : 200, headers);
    res.end('x');
  });
  const miss = await s.get('/cs');
  assert.equal(miss.headers['cache-status'], 'OriginCache; hit, kubeproxy; fwd=uri-miss; stored');
  const hit = await s.get('/cs');
  assert.match(hit.headers['cache-status'] as string, /^OriginCache; hit, kubeproxy; hit; ttl=(9\d|100)$/);
  assert.equal(cacheStatus(await s.get('/plain')), 'kubeproxy; fwd=uri-miss; detail="zero-ttl"');
  assert.equal(cacheStatus(await s.get('/boom')), 'kubeproxy; fwd=uri-miss; detail="no-freshness-info"');
  assert.equal(cacheStatus(await s.get('/cs', { headers: { 'cache-control': 'no-cache' } })), 'kubeproxy; fwd=request; stored');
  assert.match(cacheStatus(await s.get('/cs', { headers: { range: 'bytes=0-0' } }))!, /^kubeproxy; hit; ttl=\d+$/, 'a range is cut from the stored response');
  assert.equal(cacheStatus(await s.get('/cs', { method: 'POST', body: 'x' })), 'kubeproxy; fwd=method');
});

test('a service with cache: false, or proxy.cache.enabled: false, is never cached', async (t) => {
  const opted = await cachedService(t, fixed({ 'cache-control': 'public, max-age=60' }), { service: { cache: false } });
  await opted.get('/x');
  const r = await opted.get('/x');
  assert.equal(r.headers['cache-status'], undefined);
  assert.equal(opted.hits('/x'), 2);
  const off = await cachedService(t, fixed({ 'cache-control': 'public, max-age=60' }), { cache: { enabled: false } });
  await off.get('/x');
  const r2 = await off.get('/x');
  assert.equal(r2.headers['cache-status'], undefined);
  assert.equal(off.hits('/x'), 2);
});

test('a reload keeps the entries; one that opts a service out drops its entries', async (t) => {
  const s = await cachedService(t, fixed({ 'cache-control': 'public, max-age=600' }));
  await s.get('/keep');
  const config = s.proxy.runtime.snapshot.config;
  s.proxy.runtime.reload(config);
  assert.match(cacheStatus(await s.get('/keep'))!, /; hit;/, 'still cached after a reload');
  const optOut = { ...config, proxy: { ...config.proxy, services: config.proxy.services.map((x) => ({ ...x, cache: false })) } };
  s.proxy.runtime.reload(optOut);
  assert.equal((await s.proxy.runtime.cache.stats()).entries, 0);
  s.proxy.runtime.reload(config);
  assert.equal(cacheStatus(await s.get('/keep')), 'kubeproxy; fwd=uri-miss; stored');
});

test('an entry is fresh for its max-age, then stale; without validators (and staleOnError 0) it is then dropped', async (t) => {
  // staleOnError keeps a stale entry without validators to answer when the instances fail (cache-stale-on-error.test.ts).
  const s = await cachedService(
    t,
    (req, res, clock) => {
      const headers: Record<string, string> = { date: clock.httpDate(), 'cache-control': 'max-age=30' };
      if (req.url === '/etag') headers.etag = '"1"';
      res.writeHead(200, headers);
      res.end('x');
    },
    { cache: { staleOnError: '0' } },
  );
  await s.get('/plain');
  await s.get('/etag');
  s.clock.advance(25_000);
  assert.match(cacheStatus(await s.get('/plain'))!, /^kubeproxy; hit; ttl=[1-5]$/);
  s.clock.advance(6_000);
  assert.equal(cacheStatus(await s.get('/plain')), 'kubeproxy; fwd=uri-miss; stored', 'nothing to revalidate with: dropped');
  assert.equal(cacheStatus(await s.get('/etag')), 'kubeproxy; fwd=stale; stored', 'an entry with an ETag is revalidated');
  assert.equal(s.origin.requests.at(-1)!.headers['if-none-match'], '"1"');
});
