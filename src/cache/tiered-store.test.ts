import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from './memory-store.ts';
import { SharedBreaker } from './shared-breaker.ts';
import type { CacheEntry, CacheObject, CacheStats, CacheStore } from './store.ts';
import { TieredStore } from './tiered-store.ts';

function entry(key: string, varyKey = '', body = 'body'): CacheEntry {
  return { key, status: 200, headers: ['Cache-Control', 'max-age=60'], body: [Buffer.from(body)], bodySize: body.length, requestTime: 0, responseTime: 0, varyNames: varyKey === '' ? [] : ['l'], varyKey };
}

/** A shared store in memory whose answers can be delayed or made to fail. */
class SlowStore implements CacheStore {
  readonly inner = new MemoryStore();
  delayMs = 0;
  fail = false;
  calls = 0;
  async #answer<T>(v: () => T): Promise<T> {
    this.calls++;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.fail) throw new Error('connection refused');
    return v();
  }
  get(key: string): Promise<CacheObject | undefined> {
    return this.#answer(() => this.inner.get(key));
  }
  put(key: string, e: CacheEntry): Promise<boolean> {
    return this.#answer(() => this.inner.put(key, e));
  }
  delete(key: string): Promise<boolean> {
    return this.#answer(() => this.inner.delete(key));
  }
  deleteByPrefix(prefix: string): Promise<number> {
    return this.#answer(() => this.inner.deleteByPrefix(prefix));
  }
  stats(): Promise<CacheStats> {
    return this.#answer(() => this.inner.stats());
  }
}

function tiered(timeoutMs = 30, failures = 2, started?: () => boolean) {
  const shared = new SlowStore();
  const memory = new MemoryStore();
  const store = new TieredStore({ memory, shared, breaker: new SharedBreaker({ failures, cooldownMs: 60_000 }), timeoutMs, started });
  return { shared, memory, store };
}

const settle = () => new Promise((r) => setTimeout(r, 5));

test('a memory hit answers synchronously, without asking the shared tier', () => {
  const { shared, store } = tiered();
  store.memory.put('k', entry('k'));
  const got = store.get('k');
  assert.ok(got !== undefined && !(got instanceof Promise));
  assert.equal(shared.calls, 0);
});

test('a shared hit fills memory, newest variant first', async () => {
  const { shared, memory, store } = tiered();
  shared.inner.put('k', entry('k', 'l=en'));
  shared.inner.put('k', entry('k', 'l=de'));
  const got = await store.get('k');
  assert.deepEqual(got?.variants.map((v) => v.varyKey), ['l=de', 'l=en']);
  assert.deepEqual(memory.get('k')?.variants.map((v) => v.varyKey), ['l=de', 'l=en']);
  assert.equal(store.counts.lookups.hit, 1);
});

test('a put is stored in memory at once and written to the shared tier in the background', async () => {
  const { shared, memory, store } = tiered();
  shared.delayMs = 20;
  assert.equal(store.put('k', entry('k')), true, 'the answer does not wait for the shared tier');
  assert.ok(memory.get('k'));
  assert.equal(shared.inner.get('k'), undefined);
  await new Promise((r) => setTimeout(r, 40));
  assert.ok(shared.inner.get('k'));
  assert.equal(store.counts.writes.ok, 1);
});

test('a shared tier slower than the timeout is a miss after the timeout, and then skipped', async () => {
  const { shared, store } = tiered(30, 2);
  shared.delayMs = 500;
  for (let i = 0; i < 2; i++) {
    const started = performance.now();
    assert.equal(await store.get(`k${i}`), undefined);
    assert.ok(performance.now() - started < 400, 'bounded by the timeout');
  }
  assert.equal(store.counts.lookups.timeout, 2);
  assert.equal(store.breaker.state, 'open');
  assert.equal(store.get('k3'), undefined, 'skipped: answered at once, not even a promise');
  assert.equal(store.counts.lookups.skipped, 1);
});

test('errors never reach the caller; failed deletes are replayed once the tier answers again', async () => {
  const { shared, store } = tiered(30, 100);
  shared.inner.put('k', entry('k'));
  store.memory.put('k', entry('k'));
  shared.fail = true;
  assert.equal(await store.get('other'), undefined);
  assert.equal(await store.delete('k'), true, 'memory had it');
  assert.equal(store.memory.get('k'), undefined);
  assert.ok(shared.inner.get('k'), 'the shared tier could not be reached');
  await assert.rejects(store.deleteByPrefix('x'), /connection refused/, 'a purge says so');
  shared.fail = false;
  assert.equal(await store.get('other'), undefined);
  await settle();
  assert.equal(shared.inner.get('k'), undefined, 'the missed delete was replayed');
});

test('an invalidation from another process drops the memory copy; a read that straddles one does not fill memory', async () => {
  const { shared, memory, store } = tiered(200);
  store.memory.put('k', entry('k'));
  store.dropKey('k');
  assert.equal(memory.get('k'), undefined);
  shared.inner.put('j', entry('j'));
  shared.delayMs = 20;
  const reading = store.get('j');
  store.dropPrefix('j');
  assert.ok(await reading);
  assert.equal(memory.get('j'), undefined);
  assert.equal(store.counts.invalidations.received, 2);
});

test('before the first connection the shared tier is skipped without opening the breaker', async () => {
  let started = false;
  const { shared, store } = tiered(30, 1, () => started);
  shared.inner.put('k', entry('k'));
  for (let i = 0; i < 3; i++) assert.equal(store.get('k'), undefined);
  store.put('j', entry('j'));
  assert.equal(shared.calls, 0);
  assert.equal(store.breaker.state, 'closed');
  assert.equal(store.counts.lookups.skipped, 3);
  started = true;
  assert.ok(await store.get('k'));
});
