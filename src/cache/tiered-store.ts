/**
 * Two tiers as one `CacheStore`: this process's memory first, then a shared store (Redis,
 * redis-store.ts) that every replica and worker reads and writes.
 *
 *   get     memory (synchronous, as without a shared tier); on a miss the shared tier, waited
 *           for at most `timeoutMs`: a shared hit fills memory, an error or a timeout is a miss.
 *   put     memory at once (its answer is the result); the shared write runs in the background
 *           and never delays a response, then the other processes are told to drop their copy.
 *   delete  both, then the others are told (invalidation-bus.ts).
 *
 * The shared tier can never fail or stall a request: every shared call is bounded by the
 * timeout or runs in the background, nothing rejects to the caller, and the breaker
 * (shared-breaker.ts) skips the tier altogether after repeated failures, trying it again after
 * its cool-down. Writes in flight are capped (MAX_PENDING_WRITES) so a slow Redis cannot pile
 * up bodies in memory. Deletes that could not reach Redis (an unsafe method, a purge while it
 * was down) are remembered, up to MAX_MISSED_DELETES, and replayed once it answers again;
 * beyond that the whole prefix is dropped then, as a stale answer is worse than a miss.
 */
import { log } from '../log.ts';
import { withTimeout } from '../timeout.ts';
import type { InvalidationBus } from './invalidation-bus.ts';
import type { MemoryStore } from './memory-store.ts';
import type { SharedBreaker } from './shared-breaker.ts';
import type { CacheEntry, CacheObject, CacheStats, CacheStore, MaybePromise } from './store.ts';

export type SharedLookup = 'hit' | 'miss' | 'error' | 'timeout' | 'skipped';
export type SharedWrite = 'ok' | 'error' | 'timeout' | 'skipped';

/** Where the tier's events go (metrics.ts counters). */
export interface SharedTierEvents {
  lookup(result: SharedLookup): void;
  write(result: SharedWrite): void;
  invalidation(direction: 'sent' | 'received'): void;
}

export interface TieredStoreOptions {
  readonly memory: MemoryStore;
  readonly shared: CacheStore;
  readonly breaker: SharedBreaker;
  /** Longest wait for the shared tier on a lookup (and a purge's delete: at least 1 s). */
  readonly timeoutMs: number;
  readonly bus?: InvalidationBus | undefined;
  readonly events?: SharedTierEvents | undefined;
  /**
   * False until the shared tier was first reached: until then it is skipped without counting
   * against the breaker, so that the requests of a fresh start do not open it. Default: always true.
   */
  readonly started?: (() => boolean) | undefined;
}

/** Shared writes in flight at most; more are skipped (counted). */
export const MAX_PENDING_WRITES = 256;
/** Deletes remembered while the shared tier is unreachable. */
export const MAX_MISSED_DELETES = 10_000;
/** A background write or a delete is given this much longer than a lookup before it counts as a timeout. */
const WRITE_TIMEOUT_FACTOR = 20;
const MIN_PURGE_TIMEOUT_MS = 1_000;

/** A timed-out or failed shared call. */
class SharedTierError extends Error {
  constructor(
    message: string,
    readonly timedOut: boolean,
  ) {
    super(message);
  }
}

export interface SharedTierCounts {
  lookups: Record<SharedLookup, number>;
  writes: Record<SharedWrite, number>;
  invalidations: { sent: number; received: number };
}

export class TieredStore implements CacheStore {
  readonly memory: MemoryStore;
  readonly shared: CacheStore;
  readonly breaker: SharedBreaker;
  readonly counts: SharedTierCounts = {
    lookups: { hit: 0, miss: 0, error: 0, timeout: 0, skipped: 0 },
    writes: { ok: 0, error: 0, timeout: 0, skipped: 0 },
    invalidations: { sent: 0, received: 0 },
  };
  lastError: { at: string; message: string } | null = null;
  readonly #timeoutMs: number;
  readonly #bus: InvalidationBus | undefined;
  readonly #events: SharedTierEvents | undefined;
  readonly #started: () => boolean;
  #pendingWrites = 0;
  /** Bumped by every invalidation received: a shared read that straddles one does not fill memory. */
  #epoch = 0;
  readonly #missedKeys = new Set<string>();
  readonly #missedPrefixes = new Set<string>();
  #missedOverflow = false;
  #replaying = false;

  constructor(options: TieredStoreOptions) {
    this.memory = options.memory;
    this.shared = options.shared;
    this.breaker = options.breaker;
    this.#timeoutMs = options.timeoutMs;
    this.#bus = options.bus;
    this.#events = options.events;
    this.#started = options.started ?? (() => true);
  }

  get(key: string): CacheObject | undefined | Promise<CacheObject | undefined> {
    const local = this.memory.get(key);
    if (local !== undefined) return local;
    if (!this.#started() || !this.breaker.allow()) {
      this.#lookup('skipped');
      return undefined;
    }
    const epoch = this.#epoch;
    return this.#bounded(() => this.shared.get(key), this.#timeoutMs).then(
      (obj) => {
        this.#succeeded();
        this.#lookup(obj === undefined ? 'miss' : 'hit');
        if (obj === undefined || epoch !== this.#epoch || this.memory.get(key) !== undefined) return obj;
        // Oldest first, so that memory holds them newest first as the shared tier does.
        for (let i = obj.variants.length - 1; i >= 0; i--) this.memory.put(key, obj.variants[i]!);
        return obj;
      },
      (err: unknown) => {
        this.#failed(err);
        this.#lookup(err instanceof SharedTierError && err.timedOut ? 'timeout' : 'error');
        return undefined;
      },
    );
  }

  put(key: string, entry: CacheEntry): boolean {
    const stored = this.memory.put(key, entry);
    if (!this.#started() || this.#pendingWrites >= MAX_PENDING_WRITES || !this.breaker.allow()) {
      this.#write('skipped');
      return stored;
    }
    this.#pendingWrites++;
    this.#bounded(() => this.shared.put(key, entry), this.#timeoutMs * WRITE_TIMEOUT_FACTOR)
      .then(
        () => {
          this.#succeeded();
          this.#write('ok');
          // Others drop what they hold for this key: the next lookup there reads this entry.
          this.#publish(() => this.#bus?.publishKey(key));
        },
        (err: unknown) => {
          this.#failed(err);
          this.#write(err instanceof SharedTierError && err.timedOut ? 'timeout' : 'error');
        },
      )
      .finally(() => this.#pendingWrites--);
    return stored;
  }

  /** Never rejects: an invalidation that could not reach the shared tier is replayed later. */
  async delete(key: string): Promise<boolean> {
    const local = this.memory.delete(key);
    try {
      return (await this.deleteShared(key)) || local;
    } catch {
      return local;
    }
  }

  /**
   * Removes `key` from both tiers and tells the others; resolves with whether the shared tier
   * held it, rejects when the shared tier did not answer (the delete is then replayed later).
   */
  async deleteShared(key: string): Promise<boolean> {
    this.memory.delete(key);
    try {
      const removed = await this.#bounded(() => this.shared.delete(key), Math.max(MIN_PURGE_TIMEOUT_MS, this.#timeoutMs * WRITE_TIMEOUT_FACTOR));
      this.#succeeded();
      this.#publish(() => this.#bus?.publishKey(key));
      return removed;
    } catch (err) {
      this.#failed(err);
      this.#remember(this.#missedKeys, key);
      throw err;
    }
  }

  /** Rejects when the shared tier did not answer (memory is cleared; the delete is replayed later). */
  async deleteByPrefix(prefix: string): Promise<number> {
    const local = this.memory.deleteByPrefix(prefix);
    try {
      const removed = await this.#bounded(() => this.shared.deleteByPrefix(prefix), Math.max(10 * MIN_PURGE_TIMEOUT_MS, this.#timeoutMs * WRITE_TIMEOUT_FACTOR));
      this.#succeeded();
      this.#publish(() => this.#bus?.publishPrefix(prefix));
      return Math.max(local, removed);
    } catch (err) {
      this.#failed(err);
      this.#remember(this.#missedPrefixes, prefix);
      throw err;
    }
  }

  /** This process's memory tier (the shared tier's figures are in `sharedStats`). */
  stats(): CacheStats {
    return this.memory.stats();
  }

  /** The shared tier's own figures (one round trip). */
  sharedStats(): Promise<CacheStats> {
    return this.#bounded(() => this.shared.stats(), Math.max(MIN_PURGE_TIMEOUT_MS, this.#timeoutMs));
  }

  // ---- the invalidation bus's handlers ---------------------------------------------------------

  dropKey(key: string): void {
    this.#epoch++;
    this.counts.invalidations.received++;
    this.#events?.invalidation('received');
    this.memory.delete(key);
  }

  dropPrefix(prefix: string): void {
    this.#epoch++;
    this.counts.invalidations.received++;
    this.#events?.invalidation('received');
    this.memory.deleteByPrefix(prefix);
  }

  /** Messages may have been missed: every memory copy may be outdated. */
  dropAll(): void {
    this.#epoch++;
    const dropped = this.memory.deleteByPrefix('');
    if (dropped > 0) log.info({ dropped }, 'shared cache: invalidations may have been missed; memory tier cleared');
  }

  // ---- helpers -----------------------------------------------------------------------------------

  #bounded<T>(call: () => MaybePromise<T>, ms: number): Promise<T> {
    let work: Promise<T>;
    try {
      work = Promise.resolve(call());
    } catch (err) {
      work = Promise.reject(err as Error);
    }
    const answered = work.catch((err: unknown) => {
      throw err instanceof Error ? err : new SharedTierError(String(err), false);
    });
    return withTimeout(answered, ms, () => new SharedTierError(`no answer from the shared cache within ${ms} ms`, true));
  }

  #succeeded(): void {
    if (this.breaker.success() || (!this.#replaying && (this.#missedKeys.size > 0 || this.#missedPrefixes.size > 0 || this.#missedOverflow))) {
      void this.#replay();
    }
  }

  #failed(err: unknown): void {
    this.breaker.failure();
    this.lastError = { at: new Date().toISOString(), message: (err as Error).message ?? String(err) };
  }

  #remember(set: Set<string>, value: string): void {
    if (this.#missedKeys.size + this.#missedPrefixes.size >= MAX_MISSED_DELETES) this.#missedOverflow = true;
    else set.add(value);
  }

  /** Deletes that could not reach the shared tier, now that it answers. */
  async #replay(): Promise<void> {
    if (this.#replaying) return;
    this.#replaying = true;
    try {
      const prefixes = this.#missedOverflow ? [''] : [...this.#missedPrefixes];
      const keys = this.#missedOverflow ? [] : [...this.#missedKeys];
      this.#missedOverflow = false;
      this.#missedPrefixes.clear();
      this.#missedKeys.clear();
      if (prefixes.length + keys.length > 0) log.info({ keys: keys.length, prefixes: prefixes.length }, 'shared cache: replaying deletes made while it was unreachable');
      for (const p of prefixes) await this.deleteByPrefix(p).catch(() => {});
      for (const k of keys) await this.deleteShared(k).catch(() => {});
    } finally {
      this.#replaying = false;
    }
  }

  #publish(send: () => Promise<void> | undefined): void {
    const sent = send();
    if (sent === undefined) return;
    this.counts.invalidations.sent++;
    this.#events?.invalidation('sent');
    sent.catch((err: unknown) => log.debug({ err: (err as Error).message }, 'shared cache: publishing an invalidation failed'));
  }

  #lookup(result: SharedLookup): void {
    this.counts.lookups[result]++;
    this.#events?.lookup(result);
  }

  #write(result: SharedWrite): void {
    this.counts.writes[result]++;
    this.#events?.write(result);
  }
}
