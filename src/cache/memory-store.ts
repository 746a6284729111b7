/**
 * In-process `CacheStore` (see store.ts for the contract) on `lru-cache`,
 * bounded in BYTES.
 *
 *   new MemoryStore({ maxSize?, maxObjectSize?, maxVariantsPerKey?, now? })
 *     maxSize            total accounted bytes, default 256 MiB
 *     maxObjectSize      largest single variant accepted, default 8 MiB (clamped to maxSize);
 *                        larger ones are refused (`put` → false)
 *     maxVariantsPerKey  Vary variants kept per URI, default 16; the least recently
 *                        stored one is evicted beyond that
 *     now                clock for `expiresAt`, default Date.now (inject in tests)
 *
 * Every method answers synchronously (no promise, no microtask on a hit).
 * Recency is per primary key: a `get` makes the whole URI most recently used.
 * When a key's variants together would exceed `maxSize`, its oldest variants
 * are evicted first, so one URI can never hold the store hostage.
 * `deleteByPrefix` walks all keys (O(keys)); purges are rare, lookups are not.
 */

import { LRUCache } from 'lru-cache';
import {
  entryByteSize,
  sameVaryNames,
  type CacheEntry,
  type CacheObject,
  type CacheStats,
  type CacheStore,
} from './store.ts';

export interface MemoryStoreOptions {
  /** Total accounted bytes. Default 256 MiB. */
  maxSize?: number | undefined;
  /** Largest variant accepted. Default 8 MiB. */
  maxObjectSize?: number | undefined;
  /** Variants kept per primary key. Default 16. */
  maxVariantsPerKey?: number | undefined;
  /** Clock (epoch ms) used for `expiresAt`. Default Date.now. */
  now?: (() => number) | undefined;
}

export const DEFAULT_MAX_SIZE = 256 * 1024 * 1024;
export const DEFAULT_MAX_OBJECT_SIZE = 8 * 1024 * 1024;
export const DEFAULT_MAX_VARIANTS_PER_KEY = 16;

export class MemoryStore implements CacheStore {
  readonly maxSize: number;
  readonly maxObjectSize: number;
  readonly maxVariantsPerKey: number;
  readonly #now: () => number;
  readonly #lru: LRUCache<string, CacheObject>;
  #entries = 0;
  #evictions = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.maxSize = positiveInt(options.maxSize, DEFAULT_MAX_SIZE, 'maxSize');
    this.maxObjectSize = Math.min(
      positiveInt(options.maxObjectSize, DEFAULT_MAX_OBJECT_SIZE, 'maxObjectSize'),
      this.maxSize,
    );
    this.maxVariantsPerKey = positiveInt(options.maxVariantsPerKey, DEFAULT_MAX_VARIANTS_PER_KEY, 'maxVariantsPerKey');
    this.#now = options.now ?? Date.now;
    this.#lru = new LRUCache<string, CacheObject>({
      maxSize: this.maxSize,
      sizeCalculation: (obj) => obj.size,
      dispose: (obj, _key, reason) => {
        this.#entries -= obj.variants.length;
        if (reason === 'evict') this.#evictions += obj.variants.length;
      },
    });
  }

  get(key: string): CacheObject | undefined {
    const obj = this.#lru.get(key);
    if (obj === undefined) return undefined;
    const now = this.#now();
    if (!anyExpired(obj.variants, now)) return obj;
    const live = obj.variants.filter((v) => !isExpired(v, now));
    if (live.length === 0) {
      this.#lru.delete(key);
      return undefined;
    }
    return this.#set(key, live);
  }

  put(key: string, entry: CacheEntry): boolean {
    if (entry.key !== key) throw new TypeError(`entry.key ${JSON.stringify(entry.key)} does not match key ${JSON.stringify(key)}`);
    const existing = this.#lru.peek(key);
    const now = this.#now();
    // Same Vary policy: keep the other live variants. Different policy: they are superseded.
    const others =
      existing !== undefined && sameVaryNames(existing.variants[0]!.varyNames, entry.varyNames)
        ? existing.variants.filter((v) => v.varyKey !== entry.varyKey && !isExpired(v, now))
        : [];
    if (entryByteSize(entry) > this.maxObjectSize) {
      // Refused; the variant it would have replaced is outdated either way.
      if (existing !== undefined && others.length !== existing.variants.length) {
        if (others.length === 0) this.#lru.delete(key);
        else this.#set(key, others);
      }
      return false;
    }
    const variants = [entry, ...others];
    let size = variants.reduce((sum, v) => sum + entryByteSize(v), 0);
    while (variants.length > this.maxVariantsPerKey || size > this.maxSize) {
      size -= entryByteSize(variants.pop()!);
      this.#evictions++;
    }
    this.#set(key, variants);
    return true;
  }

  delete(key: string): boolean {
    return this.#lru.delete(key);
  }

  deleteByPrefix(prefix: string): number {
    const doomed: string[] = [];
    for (const key of this.#lru.keys()) if (key.startsWith(prefix)) doomed.push(key);
    let removed = 0;
    for (const key of doomed) {
      removed += this.#lru.peek(key)?.variants.length ?? 0;
      this.#lru.delete(key);
    }
    return removed;
  }

  stats(): CacheStats {
    return {
      entries: this.#entries,
      keys: this.#lru.size,
      bytes: this.#lru.calculatedSize,
      evictions: this.#evictions,
    };
  }

  #set(key: string, variants: readonly CacheEntry[]): CacheObject {
    const obj: CacheObject = { key, variants, size: variants.reduce((sum, v) => sum + entryByteSize(v), 0) };
    this.#lru.set(key, obj);
    if (this.#lru.peek(key) === obj) this.#entries += variants.length;
    return obj;
  }
}

function isExpired(entry: CacheEntry, now: number): boolean {
  return entry.expiresAt !== undefined && entry.expiresAt <= now;
}

/** A loop, not `some` with a closure: this runs on every lookup. */
function anyExpired(variants: readonly CacheEntry[], now: number): boolean {
  for (let i = 0; i < variants.length; i++) if (isExpired(variants[i]!, now)) return true;
  return false;
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
