import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MAX_OBJECT_SIZE, DEFAULT_MAX_SIZE, DEFAULT_MAX_VARIANTS_PER_KEY, MemoryStore } from './memory-store.ts';
import { entryByteSize, isPromise, type CacheEntry } from './store.ts';

const entry = (key: string, bytes: number, varyKey = ''): CacheEntry => ({
  key,
  status: 200,
  headers: [],
  body: [Buffer.alloc(bytes)],
  bodySize: bytes,
  requestTime: 0,
  responseTime: 0,
  varyNames: varyKey === '' ? [] : ['l'],
  varyKey,
});

test('the memory store defaults to 256 MiB, 8 MiB objects and 16 variants per URL', () => {
  const store = new MemoryStore();
  assert.equal(store.maxSize, DEFAULT_MAX_SIZE);
  assert.equal(DEFAULT_MAX_SIZE, 256 * 1024 * 1024);
  assert.equal(store.maxObjectSize, DEFAULT_MAX_OBJECT_SIZE);
  assert.equal(DEFAULT_MAX_OBJECT_SIZE, 8 * 1024 * 1024);
  assert.equal(store.maxVariantsPerKey, DEFAULT_MAX_VARIANTS_PER_KEY);
  assert.equal(DEFAULT_MAX_VARIANTS_PER_KEY, 16);
});

test('a cache hit on the memory store answers synchronously (no promise)', () => {
  const store = new MemoryStore();
  const put = store.put('k', entry('k', 1));
  const got = store.get('k');
  assert.equal(isPromise(put), false);
  assert.equal(isPromise(got), false);
  assert.equal(got?.variants.length, 1);
});

test('the object limit never exceeds the total size', () => {
  const store = new MemoryStore({ maxSize: 4096, maxObjectSize: 1 << 20 });
  assert.equal(store.maxObjectSize, 4096);
});

test('invalid limits are rejected', () => {
  assert.throws(() => new MemoryStore({ maxSize: 0 }), RangeError);
  assert.throws(() => new MemoryStore({ maxVariantsPerKey: 1.5 }), RangeError);
});

test('one URL\'s variants never outgrow the store: its oldest variants are evicted first', () => {
  const one = entryByteSize(entry('k', 1000, 'l=a'));
  const store = new MemoryStore({ maxSize: one * 2, maxObjectSize: one });
  store.put('k', entry('k', 1000, 'l=a'));
  store.put('k', entry('k', 1000, 'l=b'));
  store.put('k', entry('k', 1000, 'l=c'));
  assert.deepEqual(store.get('k')?.variants.map((v) => v.varyKey), ['l=c', 'l=b']);
  assert.equal(store.stats().evictions, 1);
  assert.equal(store.stats().bytes, one * 2);
});

test('an entry stored under another key is a programming error', () => {
  const store = new MemoryStore();
  assert.throws(() => store.put('a', entry('b', 1)), TypeError);
});
