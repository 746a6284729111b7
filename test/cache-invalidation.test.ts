/**
 * Invalidation after unsafe methods (RFC 9111 §4.4) and the admin purge endpoints.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startOrigin } from './helpers/origin.ts';
import { startProxy } from './helpers/proxy.ts';
import { request } from './helpers/http.ts';
import { adminPost, cacheStatus, cachedService, type TestClock } from './helpers/cache.ts';

/** GETs are cacheable for a minute; other methods answer with the status and locations asked for in x-status / x-location / x-content-location. */
function resourceOrigin() {
  let n = 0;
  return (req: IncomingMessage, res: ServerResponse, clock: TestClock) => {
    req.resume();
    req.on('end', () => {
      n++;
      if (req.method === 'GET') {
        res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60', vary: 'Accept' });
        return res.end(`${req.url} v${n}`);
      }
      const headers: Record<string, string> = {};
      const location = req.headers['x-location'];
      const contentLocation = req.headers['x-content-location'];
      if (typeof location === 'string') headers.location = location;
      if (typeof contentLocation === 'string') headers['content-location'] = contentLocation;
      res.writeHead(Number(req.headers['x-status'] ?? 200), headers);
      res.end('done');
    });
  };
}

async function cached(s: { get: (p: string, o?: object) => Promise<{ rawHeaders: string[] }> }, path: string, accept = 'text/html'): Promise<boolean> {
  const r = await s.get(path, { headers: { accept } });
  return /; hit;/.test(cacheStatus(r as never) ?? '');
}

test('invalidation after POST: the next GET goes to the origin', async (t) => {
  const s = await cachedService(t, resourceOrigin());
  await s.get('/items/1');
  assert.ok(await cachedAfterFirst(s, '/items/1'));
  const post = await s.get('/items/1', { method: 'POST', body: 'x' });
  assert.equal(post.status, 200);
  assert.equal(cacheStatus(post), 'kubeproxy; fwd=method');
  const after = await s.get('/items/1');
  assert.equal(cacheStatus(after), 'kubeproxy; fwd=uri-miss; stored');
  assert.equal(s.hits('/items/1'), 3);
});

/** The second GET of `path` is a hit. */
async function cachedAfterFirst(s: { get: (p: string) => Promise<{ rawHeaders: string[] }> }, path: string): Promise<boolean> {
  return /; hit;/.test(cacheStatus((await s.get(path)) as never) ?? '');
}

test('PUT, DELETE and PATCH invalidate every variant of the target', async (t) => {
  const s = await cachedService(t, resourceOrigin());
  for (const method of ['PUT', 'DELETE', 'PATCH']) {
    await s.get('/doc', { headers: { accept: 'text/html' } });
    await s.get('/doc', { headers: { accept: 'application/json' } });
    assert.ok(await cached(s, '/doc', 'text/html'));
    assert.ok(await cached(s, '/doc', 'application/json'));
    await s.get('/doc', { method, body: 'x' });
    assert.equal(await cached(s, '/doc', 'text/html'), false, `${method}: html variant gone`);
    assert.equal(await cached(s, '/doc', 'application/json'), false, `${method}: json variant gone`);
  }
});

test('same-origin Location and Content-Location are invalidated too, other origins are not', async (t) => {
  const s = await cachedService(t, resourceOrigin());
  for (const p of ['/items/7', '/items/8', '/list']) await s.get(p);
  await s.get('/items', {
    method: 'POST',
    body: 'new',
    headers: { 'x-status': '201', 'x-location': '/items/7', 'x-content-location': 'http://web.test/list' },
  });
  assert.equal(await cachedAfterFirst(s, '/items/7'), false, 'Location invalidated');
  assert.equal(await cachedAfterFirst(s, '/list'), false, 'Content-Location invalidated');
  assert.equal(await cachedAfterFirst(s, '/items/8'), true, 'untouched');
  await s.get('/other', { method: 'POST', body: 'x', headers: { 'x-location': 'http://elsewhere.test/items/8' } });
  assert.equal(await cachedAfterFirst(s, '/items/8'), true, 'another origin is never invalidated');
});

test('an error answer to an unsafe method invalidates nothing', async (t) => {
  const s = await cachedService(t, resourceOrigin());
  await s.get('/keep');
  await s.get('/keep', { method: 'POST', body: 'x', headers: { 'x-status': '500' } });
  await s.get('/keep', { method: 'DELETE', headers: { 'x-status': '404' } });
  assert.ok(await cachedAfterFirst(s, '/keep'));
});

test('purge by URL removes all variants of that URL and nothing else', async (t) => {
  const s = await cachedService(t, resourceOrigin());
  await s.get('/p?a=1', { headers: { accept: 'text/html' } });
  await s.get('/p?a=1', { headers: { accept: 'application/json' } });
  await s.get('/p?a=2');
  const r = await adminPost(s.proxy, `/cache/purge?url=${encodeURIComponent('http://web.test/p?a=1')}`);
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text), { service: 'web', url: 'http://web.test/p?a=1', removed: 2 });
  assert.equal(await cached(s, '/p?a=1', 'text/html'), false);
  assert.equal(await cached(s, '/p?a=1', 'application/json'), false);
  assert.equal(await cachedAfterFirst(s, '/p?a=2'), true);
  const again = await adminPost(s.proxy, `/cache/purge?url=${encodeURIComponent('http://web.test/nothing')}`);
  assert.equal(JSON.parse(again.text).removed, 0);
});

test('purge by service removes every entry of that service only', async (t) => {
  let n = 0;
  const origin = await startOrigin((_req, res) => {
    n++;
    res.writeHead(200, { 'cache-control': 'public, max-age=60' });
    res.end(String(n));
  });
  t.after(() => origin.close());
  const proxy = await startProxy({
    services: [
      { name: 'one', domain: 'one.test', hosts: [{ port: origin.port }] },
      { name: 'two', domain: 'two.test', hosts: [{ port: origin.port }] },
    ],
  });
  t.after(() => proxy.close());
  for (const host of ['one.test', 'two.test']) for (const path of ['/a', '/b', '/c']) await request(proxy.port, { host, path });
  const r = await adminPost(proxy, '/cache/purge?service=one');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text), { service: 'one', removed: 3 });
  const one = await request(proxy.port, { host: 'one.test', path: '/a' });
  const two = await request(proxy.port, { host: 'two.test', path: '/a' });
  assert.equal(cacheStatus(one), 'kubeproxy; fwd=uri-miss; stored');
  assert.match(cacheStatus(two)!, /; hit;/);
});

test('purge answers 400 with a clear message on bad input, 404 for unknown services and hosts', async (t) => {
  const s = await cachedService(t, resourceOrigin());
  const cases: Array<[string, number, RegExp]> = [
    ['/cache/purge', 400, /exactly one of url=<absolute URL> or service=<name>/],
    ['/cache/purge?url=http%3A%2F%2Fweb.test%2F&service=web', 400, /exactly one/],
    ['/cache/purge?url=%2Frelative', 400, /absolute http:\/\/ or https:\/\/ URL/],
    ['/cache/purge?url=ftp%3A%2F%2Fweb.test%2F', 400, /absolute/],
    ['/cache/purge?url=http://web.test/a?x=1&y=2', 400, /unknown parameter "y".*percent-encode/],
    ['/cache/purge?service=', 400, /service is empty/],
    ['/cache/purge?url=http%3A%2F%2Fbad%20host%2F', 400, /invalid host/],
    ['/cache/purge?service=nope', 404, /no service named "nope"/],
    ['/cache/purge?url=http%3A%2F%2Fnobody.test%2Fx', 404, /no service is configured for host "nobody.test"/],
  ];
  for (const [path, status, message] of cases) {
    const r = await adminPost(s.proxy, path);
    assert.equal(r.status, status, path);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.match(JSON.parse(r.text).error, message, path);
  }
  const get = await request(s.proxy.adminPort, { path: '/cache/purge?service=web', host: '127.0.0.1' });
  assert.equal(get.status, 405);
  assert.equal(get.headers.allow, 'POST');
});
