/**
 * The shared cache tier (proxy.cache.shared.redis, issue 15): two real `kubeproxy` processes and
 * one origin, with a real redis-server. What one process stores is a hit for the other; Vary
 * variants, revalidation and invalidations (unsafe methods, purges) reach both; Redis killed or
 * frozen under load never fails a request, and is used again once back; `workers: 2` share it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Redis } from 'ioredis';
import { cacheStatus, keyOf } from './helpers/cache.ts';
import { spawnProxy, type ChildProxy, type ProxyBlock } from './helpers/child.ts';
import { request, type Reply } from './helpers/http.ts';
import { until } from './helpers/load.ts';
import { scrape } from './helpers/metrics.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startRedis, type TestRedis } from './helpers/redis.ts';

const TOKEN = 'shared-cache-token';
const PREFIX = 'e2e:';
const BIG = 300 * 1024;

let redis: TestRedis;
let client: Redis;
let origin: Origin;
let a: ChildProxy;
let b: ChildProxy;
/** Origin requests by path. */
const hits = new Map<string, number>();
/** The If-None-Match of each origin request, by path. */
const conditionals = new Map<string, string[]>();

function handler(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  const path = req.url ?? '/';
  const n = (hits.get(path) ?? 0) + 1;
  hits.set(path, n);
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) conditionals.set(path, [...(conditionals.get(path) ?? []), String(inm)]);
  if (req.method !== 'GET') {
    res.writeHead(204);
    return void res.end();
  }
  if (path.startsWith('/vary')) {
    res.writeHead(200, { 'cache-control': 'public, max-age=600', vary: 'accept-language' });
    return void res.end(`${path} in ${req.headers['accept-language'] ?? 'none'}`);
  }
  if (path.startsWith('/big')) {
    res.writeHead(200, { 'cache-control': 'public, max-age=600', 'content-length': BIG });
    return void res.end(Buffer.alloc(BIG, 0x62));
  }
  if (path.startsWith('/etag')) {
    // Stored, but stale at once: every lookup revalidates.
    if (inm === '"v1"') {
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'public, max-age=0' });
      return void res.end();
    }
    res.writeHead(200, { etag: '"v1"', 'cache-control': 'public, max-age=0' });
    return void res.end(`${path} v1`);
  }
  res.writeHead(200, { 'cache-control': 'public, max-age=600' });
  res.end(`${path} #${n}`);
}

function config(extra: Partial<ProxyBlock> = {}): ProxyBlock {
  return {
    admin: { address: '127.0.0.1', port: 0, token: TOKEN },
    cache: { shared: { redis: { url: redis.url, keyPrefix: PREFIX, timeout: '1s', breaker: { failures: 3, cooldown: '300ms' } } } },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }],
    ...extra,
  };
}

const get = (p: ChildProxy, path: string, headers: Record<string, string> = {}): Promise<Reply> =>
  request(p.port, { host: 'web.test', path, headers });

/** Resolves once the shared tier holds `path` (the background write landed). */
const inRedis = (path: string): Promise<void> =>
  until(async () => (await client.exists(`${PREFIX}m:${keyOf('web', 'web.test', path)}`)) === 1, `${path} in redis`);

async function sharedStatus(p: ChildProxy): Promise<Record<string, any>> {
  const r = await request(p.adminPort, { path: '/status' });
  return (JSON.parse(r.text) as { cache: { shared: Record<string, any> } }).cache.shared;
}

before(async () => {
  redis = await startRedis();
  client = redis.client();
  origin = await startOrigin(handler);
  [a, b] = await Promise.all([spawnProxy(config()), spawnProxy(config())]);
  // The connection is made in the background after the start (lookups before it are misses).
  await until(async () => (await sharedStatus(a)).connected && (await sharedStatus(b)).connected, 'both processes connected to Redis');
});

after(async () => {
  await Promise.all([a?.cleanup(), b?.cleanup()]);
  client?.disconnect();
  await origin?.close();
  await redis?.stop();
});

test('a response stored by one proxy process is a hit in the other: one origin request', async () => {
  const first = await get(a, '/obj/1');
  assert.equal(first.status, 200);
  assert.match(cacheStatus(first)!, /fwd=uri-miss; stored/);
  await inRedis('/obj/1');
  // A's write is followed by a message telling B to drop any copy it has (it has none).
  await until(async () => (await sharedStatus(b)).invalidations.received >= 1, 'B told of A\'s write');
  const second = await get(b, '/obj/1');
  assert.equal(second.status, 200);
  assert.equal(second.text, '/obj/1 #1', JSON.stringify([cacheStatus(second), await sharedStatus(b)]));
  assert.match(cacheStatus(second)!, /^kubeproxy; hit/);
  assert.equal(hits.get('/obj/1'), 1);
  // Now in B's memory too: the next one does not ask Redis.
  const before = (await sharedStatus(b)).lookups.hit as number;
  assert.match(cacheStatus(await get(b, '/obj/1'))!, /^kubeproxy; hit/);
  assert.equal((await sharedStatus(b)).lookups.hit, before);
  // /status also says what Redis holds (read in the background, at most every 5 s).
  await until(async () => ((await sharedStatus(a)).stored?.entries ?? 0) >= 1, 'the stored figures in /status');
});

test('a body larger than one chunk is shared whole, in 64 KiB pieces', async () => {
  assert.equal((await get(a, '/big')).body.length, BIG);
  await inRedis('/big');
  const r = await get(b, '/big');
  assert.match(cacheStatus(r)!, /^kubeproxy; hit/, JSON.stringify(await sharedStatus(b)));
  assert.ok(r.body.equals(Buffer.alloc(BIG, 0x62)));
  assert.equal(hits.get('/big'), 1);
  const chunks = await client.keys(`${PREFIX}b:*`);
  assert.ok(chunks.length >= Math.ceil(BIG / 65536), `${chunks.length} chunk keys`);
  for (const k of chunks) assert.ok((await client.strlen(k)) <= 65536);
});

test('Vary variants stored by either process are served by both', async () => {
  const en = { 'accept-language': 'en' };
  const de = { 'accept-language': 'de' };
  const receivedByB = (await sharedStatus(b)).invalidations.received as number;
  assert.match(cacheStatus(await get(a, '/vary', en))!, /fwd=uri-miss; stored/);
  await inRedis('/vary');
  // A's write reaches B as an invalidation too; once it has, B's next lookup reads Redis without
  // that message landing in the middle of it (which would leave B's memory without A's variant).
  await until(async () => (await sharedStatus(b)).invalidations.received > receivedByB, 'B told of A\'s write');
  const received = (await sharedStatus(a)).invalidations.received as number;
  assert.match(cacheStatus(await get(b, '/vary', de))!, /fwd=vary-miss; stored/);
  // B's write tells A to drop its copy (one variant): A then reads both from Redis.
  await until(async () => (await sharedStatus(a)).invalidations.received > received, 'A told of B\'s write');
  let r = await get(a, '/vary', de);
  assert.equal(r.text, '/vary in de');
  assert.match(cacheStatus(r)!, /^kubeproxy; hit/);
  r = await get(b, '/vary', en);
  assert.equal(r.text, '/vary in en');
  assert.match(cacheStatus(r)!, /^kubeproxy; hit/);
  assert.equal(hits.get('/vary'), 2, 'one origin request per variant');
});

test('a stale entry stored by one process is revalidated by the other with its validator (304)', async () => {
  await get(a, '/etag');
  await inRedis('/etag');
  const r = await get(b, '/etag');
  assert.equal(r.status, 200);
  assert.equal(r.text, '/etag v1');
  assert.match(cacheStatus(r)!, /fwd=stale; fwd-status=304/);
  assert.deepEqual(conditionals.get('/etag'), ['"v1"']);
});

test('an unsafe method on one process invalidates the entry in the other\'s memory', async () => {
  await get(a, '/obj/post');
  await inRedis('/obj/post');
  assert.match(cacheStatus(await get(b, '/obj/post'))!, /^kubeproxy; hit/);
  const post = await request(a.port, { method: 'POST', host: 'web.test', path: '/obj/post', body: 'x' });
  assert.equal(post.status, 204);
  await until(async () => (await client.exists(`${PREFIX}m:${keyOf('web', 'web.test', '/obj/post')}`)) === 0, 'the shared entry deleted');
  // B dropped its memory copy on A's message: its next lookup goes to the origin.
  await until(async () => /fwd=uri-miss/.test(cacheStatus(await get(b, '/obj/post'))!), 'B forwarding after the invalidation', 5_000);
  assert.equal(hits.get('/obj/post'), 3, 'GET, POST, then one GET after the invalidation');
});

test('a purge on one process\'s admin port removes the entry from the other\'s memory', async () => {
  await get(a, '/obj/purge');
  await inRedis('/obj/purge');
  assert.match(cacheStatus(await get(b, '/obj/purge'))!, /^kubeproxy; hit/);
  const purge = await request(a.adminPort, {
    method: 'POST',
    path: `/cache/purge?url=${encodeURIComponent('http://web.test/obj/purge')}`,
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(purge.status, 200, purge.text);
  assert.equal(JSON.parse(purge.text).removed, 1);
  await until(async () => /fwd=uri-miss/.test(cacheStatus(await get(b, '/obj/purge'))!), 'B forwarding after the purge', 5_000);
  assert.equal(hits.get('/obj/purge'), 2);
});

test('a flushed Redis (data and scripts) is a cold cache, never an error', async () => {
  await get(a, '/obj/flush');
  await inRedis('/obj/flush');
  await client.flushall();
  await client.script('FLUSH');
  const r = await get(b, '/obj/flush');
  assert.equal(r.status, 200);
  assert.match(cacheStatus(r)!, /fwd=uri-miss; stored/, 'B never had it, and Redis lost it');
  await inRedis('/obj/flush');
  await get(a, '/obj/other-after-flush');
  await inRedis('/obj/other-after-flush');
  assert.equal((await sharedStatus(b)).lookups.error, 0);
});

/** `total` GETs of paths never asked before (each a memory miss, so a shared lookup), `concurrency` at a time, alternating A and B. */
async function load(total: number, concurrency: number, tag: string, during?: (done: number) => Promise<void> | void): Promise<{ statuses: number[]; ms: number[] }> {
  const statuses: number[] = [];
  const ms: number[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      await during?.(i);
      const started = performance.now();
      try {
        statuses.push((await get(i % 2 === 0 ? a : b, `/${tag}/${i}`)).status);
      } catch {
        statuses.push(0);
      }
      ms.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { statuses, ms };
}

const failed = (statuses: number[]): number => statuses.filter((s) => s !== 200).length;

/** p50 / p99 / max of the latencies, for the test's diagnostics. */
function spread(ms: number[]): string {
  const s = [...ms].sort((x, y) => x - y);
  const at = (p: number) => Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]!);
  return `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${Math.round(s[s.length - 1]!)} ms over ${s.length} requests`;
}

test('Redis that stops answering costs each lookup at most the timeout, then the breaker skips it: no request fails', async (t) => {
  let paused = false;
  const r = await load(160, 4, 'frozen', (i) => {
    if (i === 20 && !paused) {
      paused = true;
      redis.pause();
    }
  });
  try {
    assert.equal(failed(r.statuses), 0);
    t.diagnostic(`Redis frozen: ${spread(r.ms)}`);
    // The timeout here is 1 s (this machine may be loaded): a request waits for it once at most,
    // plus a wide margin, still far below a hang.
    const worst = Math.max(...r.ms);
    assert.ok(worst < 4_000, `slowest request ${Math.round(worst)} ms`);
    const s = await sharedStatus(a);
    assert.ok(s.lookups.timeout >= 1, JSON.stringify(s.lookups));
    assert.ok(s.lookups.skipped > 0, `the breaker skipped Redis: ${JSON.stringify(s.lookups)}`);
    assert.ok(s.breaker.opened >= 1);
  } finally {
    redis.resume();
  }
});

test('Redis killed under load: no request fails, the errors are counted, and it is used again once back', async (t) => {
  let killed: Promise<void> | undefined;
  const r = await load(200, 8, 'killed', (i) => {
    if (i === 50) killed ??= redis.kill();
  });
  await killed;
  assert.equal(failed(r.statuses), 0, `statuses: ${JSON.stringify(r.statuses.filter((s) => s !== 200))}`);
  t.diagnostic(`Redis killed: ${spread(r.ms)}`);
  const worst = Math.max(...r.ms);
  assert.ok(worst < 4_000, `slowest request ${Math.round(worst)} ms`);
  const down = await sharedStatus(b);
  assert.notEqual(down.breaker.state, 'closed');
  assert.equal(down.connected, false);
  assert.ok(down.lastError !== null);
  const m = await scrape(a.adminPort);
  assert.ok((m.get('kubeproxy_cache_shared_lookups_total', { result: 'error' }) ?? 0) + (m.get('kubeproxy_cache_shared_lookups_total', { result: 'timeout' }) ?? 0) > 0);
  assert.equal(m.get('kubeproxy_cache_shared_up', { store: 'redis' }), 0);

  // Back (empty, as after a restart without persistence): the next probe after the cool-down closes the breaker.
  await redis.start();
  let n = 0;
  await until(
    async () => {
      await Promise.all([get(a, `/probe/${n++}`), get(b, `/probe/${n++}`)]);
      const [sa, sb] = await Promise.all([sharedStatus(a), sharedStatus(b)]);
      return sa.breaker.state === 'closed' && sb.breaker.state === 'closed';
    },
    'both processes using Redis again',
    20_000,
    100,
  );
  await get(a, '/obj/back');
  await inRedis('/obj/back');
  assert.match(cacheStatus(await get(b, '/obj/back'))!, /^kubeproxy; hit/);
  assert.equal(hits.get('/obj/back'), 1);
  assert.equal((await scrape(a.adminPort)).get('kubeproxy_cache_shared_up', { store: 'redis' }), 1);
});

test('workers: 2 share the tier: one origin request whichever worker a connection lands on', async () => {
  const w = await spawnProxy(config({ workers: 2 }));
  try {
    await until(async () => {
      const s = JSON.parse((await request(w.adminPort, { path: '/status' })).text) as { cache?: { shared?: { connected: boolean } } };
      return s.cache?.shared?.connected === true;
    }, 'both workers connected to Redis');
    const first = await get(w, '/obj/workers');
    assert.match(cacheStatus(first)!, /fwd=uri-miss; stored/);
    await inRedis('/obj/workers');
    await until(async () => {
      const s = JSON.parse((await request(w.adminPort, { path: '/status' })).text) as { cache: { shared: { invalidations: { received: number } } } };
      return s.cache.shared.invalidations.received >= 1;
    }, 'the other worker told of the write');
    for (let i = 0; i < 8; i++) {
      const r = await get(w, '/obj/workers'); // a new connection each time: node:cluster spreads them
      assert.equal(r.text, '/obj/workers #1');
      assert.match(cacheStatus(r)!, /^kubeproxy; hit/);
    }
    assert.equal(hits.get('/obj/workers'), 1);
    type Shared = { lookups: { hit: number }; breaker: { state: string } };
    const status = JSON.parse((await request(w.adminPort, { path: '/status' })).text) as { cache: { shared: Shared }; workers: Array<{ requests: number; cache: { shared: Shared } }> };
    assert.ok(status.workers.every((x) => x.requests > 0), `both workers served: ${status.workers.map((x) => x.requests).join(' + ')}`);
    const readers = status.workers.filter((x) => x.cache.shared.lookups.hit > 0);
    assert.equal(readers.length, 1, 'the worker that did not store it read it from Redis once');
    // The primary's /status adds the workers' shared-tier figures up.
    assert.equal(status.cache.shared.lookups.hit, 1);
    assert.equal(status.cache.shared.breaker.state, 'closed');
  } finally {
    await w.cleanup();
  }
});
