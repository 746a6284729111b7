/**
 * The storage interface of the HTTP cache. Storage is deliberately dumb: it
 * keeps what it is given and hands it back; every HTTP decision lives in
 * policy.ts. A shared store (Redis, ...) is added later as one file
 * implementing `CacheStore`, and is checked by `store.contract.test.ts`.
 *
 * Data model: one `CacheObject` per primary key (key.ts: service + method
 * class + URI) holding up to N `CacheEntry` variants, the responses stored for
 * that URI under different Vary selections (RFC 9111 §4.1):
 *
 *   CacheObject { key, variants: CacheEntry[] (most recently stored first), size }
 *   CacheEntry  { key, status, headers (raw), body (Buffer chunks), bodySize,
 *                 requestTime, responseTime (epoch ms, for RFC 9111 §4.2.3),
 *                 varyNames (lower-case, sorted), varyKey, expiresAt? }
 *
 * Rules every implementation follows (the contract test checks them):
 *  - `put(key, entry)` stores `entry` as a variant of `key`, replacing the
 *    variant with the same `varyKey`. All variants of a key share one Vary
 *    policy: when `entry.varyNames` differ from the stored variants', those
 *    are dropped (the resource changed its Vary; old variants could otherwise
 *    match requests the new policy distinguishes). Returns false, storing
 *    nothing, when the entry is larger than the store's object limit; the
 *    variant it would have replaced is then deleted, as it is superseded.
 *  - `get(key)` returns the object (variants newest first) or undefined.
 *    Variants whose `expiresAt` has passed are never returned.
 *  - `delete(key)` drops all variants of a key; `deleteByPrefix(prefix)` drops
 *    every key starting with `prefix` (key.ts `servicePrefix(service)` purges
 *    a service) and returns the number of variants removed.
 *  - `stats()` → { entries (variants), keys, bytes, evictions }. `evictions`
 *    counts variants removed to make room (size or per-key variant bound),
 *    never explicit deletes or expiry.
 *  - Objects handed out are immutable: callers never mutate them, and a store
 *    never mutates an object it has returned (it replaces it).
 *
 * Sync-or-promise: every method returns `T | Promise<T>` (`MaybePromise`).
 * The memory store answers synchronously, so a cache hit costs no microtask;
 * a network store returns promises. Callers branch with `isPromise(v)` (or
 * simply `await`, accepting the microtask).
 */

/** A value now, or later. */
export type MaybePromise<T> = T | Promise<T>;

export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

/** One stored response (one Vary variant of a URI). */
export interface CacheEntry {
  /** Primary key (key.ts) this variant belongs to. */
  readonly key: string;
  readonly status: number;
  /** Raw response headers as stored (policy.ts `storableHeaders` already applied). */
  readonly headers: readonly string[];
  /** The complete response body, as received (content-coded bytes, no transfer coding). */
  readonly body: readonly Buffer[];
  /** Sum of the body chunks' lengths. */
  readonly bodySize: number;
  /** Clock when the request that produced (or last revalidated) this response was sent, epoch ms. */
  readonly requestTime: number;
  /** Clock when that response was received, epoch ms. */
  readonly responseTime: number;
  /** Lower-case, sorted field names of the response's Vary (policy.ts / directives.ts `parseVary`). */
  readonly varyNames: readonly string[];
  /** policy.ts `varyKey(varyNames, originalRequestHeaders)`: the selecting request header values. */
  readonly varyKey: string;
  /** Epoch ms after which the store may drop this variant (policy.ts `storageDeadline`); absent = LRU decides. */
  readonly expiresAt?: number | undefined;
}

/** Everything stored under one primary key. */
export interface CacheObject {
  readonly key: string;
  /** Newest first. Never empty. */
  readonly variants: readonly CacheEntry[];
  /** Accounted bytes (sum of `entryByteSize` over the variants). */
  readonly size: number;
}

export interface CacheStats {
  /** Stored variants. */
  readonly entries: number;
  /** Primary keys. */
  readonly keys: number;
  /** Accounted bytes (bodies + headers + per-entry overhead). */
  readonly bytes: number;
  /** Variants evicted to make room since the store was created. */
  readonly evictions: number;
}

export interface CacheStore {
  get(key: string): MaybePromise<CacheObject | undefined>;
  put(key: string, entry: CacheEntry): MaybePromise<boolean>;
  delete(key: string): MaybePromise<boolean>;
  deleteByPrefix(prefix: string): MaybePromise<number>;
  stats(): MaybePromise<CacheStats>;
}

/** Fixed accounting overhead of one variant (object, arrays, key strings). */
export const ENTRY_OVERHEAD_BYTES = 512;

/** The bytes a variant is accounted for: body + header text + key material + overhead. */
export function entryByteSize(entry: CacheEntry): number {
  let size = ENTRY_OVERHEAD_BYTES + entry.key.length + entry.varyKey.length;
  for (const chunk of entry.body) size += chunk.length;
  for (const h of entry.headers) size += h.length;
  for (const n of entry.varyNames) size += n.length;
  return size;
}

/** Whether two Vary name lists (lower-case, sorted) are the same policy. */
export function sameVaryNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
