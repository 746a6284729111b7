/**
 * Request collapsing (RFC 9111 §4): concurrent misses for one key make one upstream request;
 * the others wait for it and are served from its result, or go upstream themselves when it
 * could not be stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { until } from './helpers/load.ts';
import { cacheStatus, cachedService, keyOf, waitersOf } from './helpers/cache.ts';

test('collapsing: 10 concurrent misses for one URL make exactly 1 upstream request', async (t) => {
  const held: ServerResponse[] = [];
  const s = await cachedService(t, (_req, res) => void held.push(res));
  const replies = Array.from({ length: 10 }, () => s.get('/popular'));
  await waitersOf(s.proxy, keyOf('web', 'web.test', '/popular'), 9);
  assert.equal(s.origin.requests.length, 1);
  held[0]!.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
  held[0]!.end('the one answer');
  const all = await Promise.all(replies);
  assert.equal(s.origin.requests.length, 1, 'the origin saw one request');
  for (const r of all) {
    assert.equal(r.status, 200);
    assert.equal(r.text, 'the one answer');
  }
  const statuses = all.map((r) => cacheStatus(r));
  assert.equal(statuses.filter((v) => v === 'kubeproxy; fwd=uri-miss; stored').length, 1);
  assert.equal(statuses.filter((v) => /^kubeproxy; fwd=uri-miss; ttl=(5\d|60); collapsed$/.test(v!)).length, 9, statuses.join(' | '));
});

test('collapsed requests go upstream themselves when the answer may not be stored', async (t) => {
  const held: ServerResponse[] = [];
  const s = await cachedService(t, (_req, res) => {
    held.push(res);
    if (held.length > 1) {
      res.writeHead(200, { 'cache-control': 'private' });
      res.end(`personal #${held.length}`);
    }
  });
  const replies = Array.from({ length: 4 }, () => s.get('/mine'));
  await waitersOf(s.proxy, keyOf('web', 'web.test', '/mine'), 3);
  held[0]!.writeHead(200, { 'cache-control': 'private' });
  held[0]!.end('personal #1');
  const all = await Promise.all(replies);
  assert.equal(s.origin.requests.length, 4, 'each waiting request got its own answer');
  assert.deepEqual(new Set(all.map((r) => r.text)).size, 4);
  // The key is now known not to be storable: the next burst is not serialised behind one request.
  assert.ok(s.proxy.runtime.cache.isUncollapsible(keyOf('web', 'web.test', '/mine')));
  const burst = await Promise.all(Array.from({ length: 3 }, () => s.get('/mine')));
  assert.ok(burst.every((r) => r.status === 200));
  assert.equal(s.proxy.runtime.cache.flights.size, 0);
});

test('collapsed requests wait at most collapseTimeout, then go upstream themselves', async (t) => {
  const held: ServerResponse[] = [];
  const s = await cachedService(
    t,
    (_req, res) => {
      held.push(res);
      if (held.length > 1) {
        res.writeHead(200, { 'cache-control': 'max-age=60' });
        res.end('second');
      }
    },
    { cache: { collapseTimeout: '150ms' } },
  );
  const first = s.get('/slow');
  await until(() => held.length === 1, 'the first request at the origin');
  const second = await s.get('/slow');
  assert.equal(second.text, 'second', 'did not wait for the stuck first request');
  assert.equal(cacheStatus(second), 'kubeproxy; fwd=uri-miss; stored');
  held[0]!.writeHead(200, { 'cache-control': 'max-age=60' });
  held[0]!.end('first');
  assert.equal((await first).text, 'first');
});

test('a waiting request whose client leaves is dropped, the others are still served', async (t) => {
  const held: ServerResponse[] = [];
  const s = await cachedService(t, (_req, res) => void held.push(res));
  const key = keyOf('web', 'web.test', '/leave');
  const stay = s.get('/leave');
  await until(() => held.length === 1, 'the leader at the origin');
  const leaving = s.get('/leave', { timeoutMs: 100 }).catch((err: Error) => err);
  const waiting = s.get('/leave');
  assert.ok((await leaving) instanceof Error);
  await waitersOf(s.proxy, key, 1);
  held[0]!.writeHead(200, { 'cache-control': 'max-age=60' });
  held[0]!.end('kept');
  assert.equal((await stay).text, 'kept');
  assert.equal((await waiting).text, 'kept');
  assert.equal(s.origin.requests.length, 1);
});

test('concurrent revalidations of one stale entry make one conditional request', async (t) => {
  const held: ServerResponse[] = [];
  const s = await cachedService(t, (req, res, clock) => {
    if (req.headers['if-none-match'] === '"r"') return void held.push(res);
    res.writeHead(200, { date: clock.httpDate(), etag: '"r"', 'cache-control': 'max-age=10' });
    res.end('body');
  });
  await s.get('/rv');
  s.clock.advance(11_000);
  const replies = Array.from({ length: 5 }, () => s.get('/rv'));
  await waitersOf(s.proxy, keyOf('web', 'web.test', '/rv'), 4);
  held[0]!.writeHead(304, { date: s.clock.httpDate(), etag: '"r"', 'cache-control': 'max-age=10' });
  held[0]!.end();
  const all = await Promise.all(replies);
  assert.ok(all.every((r) => r.status === 200 && r.text === 'body'));
  assert.equal(s.origin.requests.length, 2);
  assert.equal(all.filter((r) => cacheStatus(r)!.includes('fwd-status=304')).length, 1);
  assert.equal(all.filter((r) => cacheStatus(r)!.endsWith('collapsed')).length, 4);
});
