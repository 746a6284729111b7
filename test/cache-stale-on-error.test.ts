/**
 * Stale answers when the instances fail (RFC 9111 §4.2.4, proxy.cache.staleOnError), end to end:
 * two real instances of one service, both closed or both answering 503, and an entry past its
 * freshness. Time passes on the cache's virtual clock; origins date their answers with it.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request, type Reply } from './helpers/http.ts';
import { scrape } from './helpers/metrics.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { cacheStatus, useClock, type TestClock } from './helpers/cache.ts';

interface TwoInstances {
  origins: Origin[];
  proxy: TestProxy;
  clock: TestClock;
  get(path: string): Promise<Reply>;
  /** From now on both instances answer 503. */
  fail(): void;
}

/** Service `web` (web.test) on two instances that answer 200 with `cacheControl` until fail(). */
async function twoInstances(t: TestContext, cacheControl: string, cache: Record<string, unknown> = {}): Promise<TwoInstances> {
  let failing = false;
  let clock: TestClock | undefined;
  const handler = (_req: IncomingMessage, res: ServerResponse) => {
    if (failing) {
      res.writeHead(503, { date: clock!.httpDate(), 'content-type': 'text/plain' });
      return res.end('unavailable');
    }
    res.writeHead(200, { date: clock!.httpDate(), 'cache-control': cacheControl, 'content-type': 'text/plain' });
    res.end('good');
  };
  const origins = [await startOrigin(handler), await startOrigin(handler)];
  for (const o of origins) t.after(() => o.close());
  const proxy = await startProxy({
    cache,
    services: [{ name: 'web', domain: 'web.test', hosts: origins.map((o) => ({ port: o.port })) }],
  });
  t.after(() => proxy.close());
  clock = useClock(proxy);
  return {
    origins,
    proxy,
    clock,
    get: (path) => request(proxy.port, { host: 'web.test', path }),
    fail: () => (failing = true),
  };
}

const staleCount = async (proxy: TestProxy) =>
  (await scrape(proxy.adminPort)).get('kubeproxy_cache_requests_total', { service: 'web', result: 'stale' }) ?? 0;

test('every instance down: the stale copy is served, its Cache-Status says stale-on-error, and it counts as stale', async (t) => {
  const s = await twoInstances(t, 'max-age=60');
  assert.equal((await s.get('/p')).text, 'good');
  for (const o of s.origins) await o.close();
  s.clock.advance(120_000);
  const before = await staleCount(s.proxy);
  const r = await s.get('/p');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'good');
  assert.match(cacheStatus(r)!, /^kubeproxy; fwd=stale; ttl=-6\d; detail="stale-on-error"$/);
  assert.ok(Number(r.headers.age) >= 120);
  assert.equal(await staleCount(s.proxy), before + 1);
});

test('every instance answering 503: the stale copy is served with fwd-status=503', async (t) => {
  const s = await twoInstances(t, 'max-age=60');
  await s.get('/p');
  s.fail();
  s.clock.advance(120_000);
  const r = await s.get('/p');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'good');
  assert.match(cacheStatus(r)!, /^kubeproxy; fwd=stale; fwd-status=503; ttl=-6\d; detail="stale-on-error"$/);
  assert.ok(s.origins.every((o) => o.requests.length >= 1), 'both instances were asked');
});

test('must-revalidate: with every instance down or answering 503 the client gets the error, never the stale copy', async (t) => {
  const s = await twoInstances(t, 'max-age=60, must-revalidate');
  await s.get('/p');
  s.fail();
  s.clock.advance(120_000);
  const failed = await s.get('/p');
  assert.equal(failed.status, 503);
  assert.equal(failed.text, 'unavailable');
  for (const o of s.origins) await o.close();
  const down = await s.get('/p');
  assert.ok(down.status >= 502 && down.status <= 504, `an error, got ${down.status}`);
  assert.notEqual(down.text, 'good');
});

test('past proxy.cache.staleOnError the error goes through; stale-if-error replaces that limit', async (t) => {
  const s = await twoInstances(t, 'max-age=60', { staleOnError: '10m' });
  await s.get('/p');
  s.fail();
  s.clock.advance(60_000 + 9 * 60_000);
  assert.equal((await s.get('/p')).status, 200, 'within 10 minutes past freshness');
  s.clock.advance(2 * 60_000);
  const late = await s.get('/p');
  assert.equal(late.status, 503);
  assert.equal(late.text, 'unavailable');
  for (const o of s.origins) await o.close();
  const down = await s.get('/p');
  assert.ok(down.status >= 502 && down.status <= 504, `an error, got ${down.status}`);

  const longer = await twoInstances(t, 'max-age=60, stale-if-error=3600', { staleOnError: '10m' });
  await longer.get('/q');
  longer.fail();
  longer.clock.advance(30 * 60_000);
  const r = await longer.get('/q');
  assert.equal(r.status, 200);
  assert.match(cacheStatus(r)!, /detail="stale-if-error"$/);
});

test('staleOnError 0 turns it off: without stale-if-error the error goes through', async (t) => {
  const s = await twoInstances(t, 'max-age=60', { staleOnError: '0' });
  await s.get('/p');
  s.fail();
  s.clock.advance(61_000);
  assert.equal((await s.get('/p')).status, 503);
});
