/** RedisStore details beyond the store contract (store.contract.test.ts), against a real redis-server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redisForTests } from '../../test/helpers/redis.ts';
import { CHUNK_BYTES, RedisStore, rechunk } from './redis-store.ts';
import type { CacheEntry } from './store.ts';

const r = redisForTests();
let n = 0;

function entry(key: string, body: Buffer[], extra: Partial<CacheEntry> = {}): CacheEntry {
  const bodySize = body.reduce((s, b) => s + b.length, 0);
  return { key, status: 200, headers: ['Cache-Control', 'max-age=60'], body, bodySize, requestTime: 1, responseTime: 2, varyNames: [], varyKey: '', ...extra };
}

const store = (extra: Partial<ConstructorParameters<typeof RedisStore>[0]> = {}) => new RedisStore({ redis: r.client, keyPrefix: `unit${++n}:`, ...extra });

test('bodies are cut into chunks of at most 64 KiB and come back byte for byte', async () => {
  const s = store();
  const body = [Buffer.alloc(100_000, 1), Buffer.alloc(50_000, 2), Buffer.alloc(10, 3)];
  await s.put('k', entry('k', body, { expiresAt: Date.now() + 60_000 }));
  const keys = await r.client.keys(`${s.keyPrefix}b:*`);
  assert.equal(keys.length, Math.ceil(150_010 / CHUNK_BYTES));
  for (const k of keys) {
    assert.ok((await r.client.strlen(k)) <= CHUNK_BYTES);
    const ttl = await r.client.pttl(k);
    assert.ok(ttl > 60_000 && ttl <= 120_000, `a chunk lives until the entry's deadline plus a margin (${ttl} ms)`);
  }
  const got = await s.get('k');
  assert.ok(Buffer.concat(got!.variants[0]!.body as Buffer[]).equals(Buffer.concat(body)));
});

test('rechunk keeps every byte in order', () => {
  const parts = rechunk([Buffer.from('abc'), Buffer.from('defgh'), Buffer.from('i')], 4);
  assert.deepEqual(parts.map(String), ['abcd', 'efgh', 'i']);
  assert.deepEqual(rechunk([], 4), []);
});

test('a variant with a chunk gone (evicted by Redis, a flush) is left out, never served cut', async () => {
  const s = store();
  await s.put('k', entry('k', [Buffer.alloc(CHUNK_BYTES * 2, 7)], { varyNames: ['l'], varyKey: 'l=en' }));
  await s.put('k', entry('k', [Buffer.from('small')], { varyNames: ['l'], varyKey: 'l=de' }));
  const [first] = await r.client.keys(`${s.keyPrefix}b:*:1`);
  await r.client.del(first!);
  const got = await s.get('k');
  assert.deepEqual(got?.variants.map((v) => v.varyKey), ['l=de']);
});

test('entries without a deadline, or a later one, live at most maxTtl in Redis', async () => {
  const s = store({ maxTtl: 10_000 });
  await s.put('k', entry('k', [Buffer.from('x')], { expiresAt: Date.now() + 3_600_000 }));
  const ttl = await r.client.pttl(`${s.keyPrefix}m:k`);
  assert.ok(ttl > 10_000 && ttl <= 70_000, `${ttl} ms`);
});

test('a service purge finds keys whose URLs hold glob characters, and nothing else', async () => {
  const s = store();
  for (const key of ['svc\u0000http://h/a*b', 'svc\u0000http://h/[x]?', 'svd\u0000http://h/a']) await s.put(key, entry(key, [Buffer.from('x')]));
  assert.equal(await s.deleteByPrefix('svc\u0000'), 2);
  assert.equal(await s.deleteByPrefix('s*'), 0, 'a prefix is literal');
  assert.equal((await s.stats()).keys, 1);
});
