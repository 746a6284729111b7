/**
 * The CacheStore contract (store.ts), run against every implementation listed
 * in `implementations`. A new store adds one line there; the suite awaits
 * every call, so sync and async stores are tested alike.
 *
 * RedisStore runs against a real redis-server (test/helpers/redis.ts), each test
 * under a key prefix of its own. Two rules do not hold for it, by design (see
 * redis-store.ts): the byte bound and LRU order belong to Redis's maxmemory
 * policy, so the tests marked `bounded` run against the memory store only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../../test/helpers/redis.ts';
import { cacheKey, servicePrefix } from './key.ts';
import { MemoryStore } from './memory-store.ts';
import { RedisStore } from './redis-store.ts';
import { entryByteSize, type CacheEntry, type CacheStore } from './store.ts';

interface ContractOptions {
  maxSize: number;
  maxObjectSize: number;
  maxVariantsPerKey: number;
  now: () => number;
}

interface Implementation {
  name: string;
  /** Enforces maxSize with LRU eviction itself. */
  bounded: boolean;
  setup?: () => Promise<void>;
  teardown?: () => Promise<void>;
  create: (o: ContractOptions) => CacheStore | Promise<CacheStore>;
}

let redis: TestRedis | undefined;
let client: Redis | undefined;
let prefixes = 0;

const implementations: Implementation[] = [
  { name: 'MemoryStore', bounded: true, create: (o) => new MemoryStore(o) },
  {
    name: 'RedisStore',
    bounded: false,
    setup: async () => {
      redis = await startRedis();
      client = redis.client();
    },
    teardown: async () => {
      client?.disconnect();
      await redis?.stop();
    },
    create: (o) => new RedisStore({ redis: client!, keyPrefix: `contract${++prefixes}:`, maxObjectSize: o.maxObjectSize, maxVariantsPerKey: o.maxVariantsPerKey, now: o.now }),
  },
];

const T0 = Date.UTC(2024, 0, 1);
const KB = 1024;

function entry(key: string, bodyBytes: number, varyKey = '', varyNames: string[] = [], extra: Partial<CacheEntry> = {}): CacheEntry {
  return {
    key,
    status: 200,
    headers: ['Content-Type', 'text/plain', 'Cache-Control', 'max-age=60'],
    body: bodyBytes === 0 ? [] : [Buffer.alloc(bodyBytes, 0x61)],
    bodySize: bodyBytes,
    requestTime: T0,
    responseTime: T0,
    varyNames,
    varyKey,
    ...extra,
  };
}

const k = (service: string, path: string) => cacheKey(service, 'GET', { scheme: 'http', authority: 'example.com', target: path })!;

for (const impl of implementations) {
  describe(`CacheStore contract: ${impl.name}`, () => {
    if (impl.setup) before(impl.setup);
    if (impl.teardown) after(impl.teardown);
    const bounded = { skip: impl.bounded ? false : `${impl.name} leaves the byte bound and LRU order to its server` };
    let clock = T0;
    const make = (o: Partial<ContractOptions> = {}) =>
      impl.create({ maxSize: 1024 * KB, maxObjectSize: 64 * KB, maxVariantsPerKey: 4, now: () => clock, ...o });

    test('a stored entry is returned by get, and a missing key is undefined', async () => {
      const store = await make();
      const e = entry(k('svc', '/a'), 100);
      assert.equal(await store.put(e.key, e), true);
      const obj = await store.get(e.key);
      assert.equal(obj?.key, e.key);
      assert.deepEqual(obj?.variants, [e]);
      assert.equal(await store.get(k('svc', '/b')), undefined);
    });

    test('storing the same variant again replaces it', async () => {
      const store = await make();
      const key = k('svc', '/a');
      await store.put(key, entry(key, 10, 'v', ['accept'], { status: 200 }));
      await store.put(key, entry(key, 10, 'v', ['accept'], { status: 404 }));
      const obj = await store.get(key);
      assert.equal(obj?.variants.length, 1);
      assert.equal(obj?.variants[0]?.status, 404);
      assert.equal((await store.stats()).entries, 1);
    });

    test('several Vary variants are kept per URL, newest first', async () => {
      const store = await make();
      const key = k('svc', '/a');
      await store.put(key, entry(key, 10, 'accept-language=en', ['accept-language']));
      await store.put(key, entry(key, 10, 'accept-language=de', ['accept-language']));
      const obj = await store.get(key);
      assert.deepEqual(obj?.variants.map((v) => v.varyKey), ['accept-language=de', 'accept-language=en']);
      assert.equal((await store.stats()).entries, 2);
    });

    test('a response with a different Vary replaces all variants of the URL', async () => {
      const store = await make();
      const key = k('svc', '/a');
      await store.put(key, entry(key, 10, 'accept-language=en', ['accept-language']));
      await store.put(key, entry(key, 10, 'accept-language=de', ['accept-language']));
      await store.put(key, entry(key, 10, 'accept-encoding=gzip', ['accept-encoding']));
      const obj = await store.get(key);
      assert.deepEqual(obj?.variants.map((v) => v.varyKey), ['accept-encoding=gzip']);
      assert.equal((await store.stats()).entries, 1);
    });

    test('the number of variants per URL is bounded, the oldest one is evicted and counted', async () => {
      const store = await make({ maxVariantsPerKey: 3 });
      const key = k('svc', '/a');
      for (const lang of ['en', 'de', 'fr', 'it']) await store.put(key, entry(key, 10, `l=${lang}`, ['l']));
      const obj = await store.get(key);
      assert.deepEqual(obj?.variants.map((v) => v.varyKey), ['l=it', 'l=fr', 'l=de']);
      assert.equal((await store.stats()).evictions, 1);
    });

    test('an entry larger than the object limit is refused, and the variant it would replace is dropped', async () => {
      const store = await make({ maxObjectSize: 8 * KB });
      const key = k('svc', '/big');
      await store.put(key, entry(key, 100));
      assert.equal(await store.put(key, entry(key, 9 * KB)), false);
      assert.equal(await store.get(key), undefined);
      const stats = await store.stats();
      assert.equal(stats.entries, 0);
      assert.equal(stats.bytes, 0);
    });

    test('the byte bound is respected and evictions are counted', bounded, async () => {
      const maxSize = 64 * KB;
      const store = await make({ maxSize, maxObjectSize: 8 * KB });
      const one = entryByteSize(entry(k('svc', '/p00'), 4 * KB));
      for (let i = 0; i < 50; i++) {
        const key = k('svc', `/p${String(i).padStart(2, '0')}`);
        assert.equal(await store.put(key, entry(key, 4 * KB)), true);
        assert.ok((await store.stats()).bytes <= maxSize);
      }
      const stats = await store.stats();
      const fits = Math.floor(maxSize / one);
      assert.equal(stats.entries, fits);
      assert.equal(stats.keys, fits);
      assert.equal(stats.bytes, fits * one);
      assert.equal(stats.evictions, 50 - fits);
      assert.equal(await store.get(k('svc', '/p00')), undefined);
      assert.ok(await store.get(k('svc', '/p49')));
    });

    test('a recently read entry survives eviction (LRU)', bounded, async () => {
      const one = entryByteSize(entry(k('svc', '/p0'), 4 * KB));
      const store = await make({ maxSize: one * 3, maxObjectSize: 8 * KB });
      for (const p of ['/p0', '/p1', '/p2']) await store.put(k('svc', p), entry(k('svc', p), 4 * KB));
      await store.get(k('svc', '/p0'));
      await store.put(k('svc', '/p3'), entry(k('svc', '/p3'), 4 * KB));
      assert.ok(await store.get(k('svc', '/p0')));
      assert.equal(await store.get(k('svc', '/p1')), undefined);
    });

    test('purging a service removes only that service\'s entries', async () => {
      const store = await make();
      for (const svc of ['shop', 'shop-admin', 'blog']) {
        for (const p of ['/a', '/b']) await store.put(k(svc, p), entry(k(svc, p), 10));
      }
      assert.equal(await store.deleteByPrefix(servicePrefix('shop')), 2);
      assert.equal(await store.get(k('shop', '/a')), undefined);
      assert.ok(await store.get(k('shop-admin', '/a')));
      assert.ok(await store.get(k('blog', '/b')));
      assert.equal((await store.stats()).entries, 4);
    });

    test('delete removes every variant of a URL', async () => {
      const store = await make();
      const key = k('svc', '/a');
      await store.put(key, entry(key, 10, 'l=en', ['l']));
      await store.put(key, entry(key, 10, 'l=de', ['l']));
      assert.equal(await store.delete(key), true);
      assert.equal(await store.get(key), undefined);
      assert.equal(await store.delete(key), false);
      const stats = await store.stats();
      assert.equal(stats.entries, 0);
      assert.equal(stats.evictions, 0);
    });

    test('an entry past its expiresAt is never returned', async () => {
      clock = T0;
      const store = await make();
      const key = k('svc', '/a');
      await store.put(key, entry(key, 10, 'l=en', ['l'], { expiresAt: T0 + 1000 }));
      await store.put(key, entry(key, 10, 'l=de', ['l'], { expiresAt: T0 + 5000 }));
      assert.equal((await store.get(key))?.variants.length, 2);
      clock = T0 + 1000;
      assert.deepEqual((await store.get(key))?.variants.map((v) => v.varyKey), ['l=de']);
      clock = T0 + 5000;
      assert.equal(await store.get(key), undefined);
      assert.equal((await store.stats()).entries, 0);
      clock = T0;
    });

    test('objects handed out are not changed by later writes', async () => {
      const store = await make();
      const key = k('svc', '/a');
      await store.put(key, entry(key, 10, 'l=en', ['l']));
      const before = await store.get(key);
      await store.put(key, entry(key, 10, 'l=de', ['l']));
      assert.equal(before?.variants.length, 1);
    });
  });
}
