/**
 * Builds the two-tier store of `proxy.cache.shared.redis` (tiered-store.ts) for one process:
 * two connections of its own (commands, and the invalidation subscriber), the Redis store, the
 * breaker and the bus, with the tier's events counted in metrics.ts. With `workers: N` every
 * worker builds its own, so each has its own connections. `close()` ends both connections.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.ts';
import { metrics } from '../metrics/metrics.ts';
import { InvalidationBus } from './invalidation-bus.ts';
import type { MemoryStore } from './memory-store.ts';
import { closeRedisClient, createRedisClient } from './redis-client.ts';
import { RedisStore } from './redis-store.ts';
import { SharedBreaker } from './shared-breaker.ts';
import type { CacheStats } from './store.ts';
import { TieredStore } from './tiered-store.ts';

export type SharedConfig = NonNullable<Config['proxy']['cache']['shared']>;

export interface SharedTier {
  readonly store: TieredStore;
  /** What /status shows of the tier. */
  status(): SharedTierStatus;
  close(): void;
}

export interface SharedTierStatus {
  store: 'redis';
  /** host:port/db, never the password. */
  server: string;
  keyPrefix: string;
  /** The connection for commands is up. */
  connected: boolean;
  breaker: ReturnType<SharedBreaker['snapshot']>;
  lookups: TieredStore['counts']['lookups'];
  writes: TieredStore['counts']['writes'];
  invalidations: TieredStore['counts']['invalidations'];
  lastError: TieredStore['lastError'];
  /** What Redis holds under the prefix (redis-store.ts stats), as last read, and when; null before the first read. */
  stored: (CacheStats & { at: string }) | null;
}

/** /status reads Redis's figures in the background, at most this often. */
const STATS_EVERY_MS = 5_000;

/** What identifies a tier: a reload that changes any of it opens a new one. */
export function sharedSignature(shared: SharedConfig | undefined, maxObjectSize: number): string {
  return shared === undefined ? '' : JSON.stringify([shared.redis, maxObjectSize]);
}

export function openSharedTier(shared: SharedConfig, memory: MemoryStore, now: () => number): SharedTier {
  const r = shared.redis;
  const name = `kubeproxy-${process.pid}`;
  const redis: Redis = createRedisClient(r.url, { name });
  let started = false;
  redis.once('ready', () => {
    started = true;
  });
  const subscriber: Redis = createRedisClient(r.url, { name: `${name}-sub`, queueWhileDown: true });
  const breaker = new SharedBreaker({
    failures: r.breaker.failures,
    cooldownMs: r.breaker.cooldown,
    onChange: (state) => metrics.setSharedCacheUp(state === 'closed'),
  });
  metrics.setSharedCacheUp(true);
  let store: TieredStore | undefined = undefined;
  const bus = new InvalidationBus(redis, subscriber, r.keyPrefix, {
    onKey: (key) => store?.dropKey(key),
    onPrefix: (prefix) => store?.dropPrefix(prefix),
    onGap: () => store?.dropAll(),
  });
  store = new TieredStore({
    memory,
    shared: new RedisStore({ redis, keyPrefix: r.keyPrefix, maxObjectSize: memory.maxObjectSize, maxTtl: r.maxTtl, now }),
    breaker,
    timeoutMs: r.timeout,
    started: () => started,
    bus,
    events: {
      lookup: (result) => metrics.sharedCacheLookup(result),
      write: (result) => metrics.sharedCacheWrite(result),
      invalidation: (direction) => metrics.sharedCacheInvalidation(direction),
    },
  });
  const tiered = store;
  const server = redactedServer(r.url);
  let stored: SharedTierStatus['stored'] = null;
  let statsAt = 0;
  const refreshStats = (): void => {
    if (Date.now() - statsAt < STATS_EVERY_MS || redis.status !== 'ready') return;
    statsAt = Date.now();
    tiered.sharedStats().then(
      (s) => (stored = { ...s, at: new Date().toISOString() }),
      () => {},
    );
  };
  return {
    store: tiered,
    status: () => {
      refreshStats();
      return {
        store: 'redis',
        server,
        keyPrefix: r.keyPrefix,
        connected: redis.status === 'ready',
        breaker: breaker.snapshot(),
        lookups: { ...tiered.counts.lookups },
        writes: { ...tiered.counts.writes },
        invalidations: { ...tiered.counts.invalidations },
        lastError: tiered.lastError,
        stored,
      };
    },
    close: () => {
      bus.close();
      closeRedisClient(subscriber);
      closeRedisClient(redis);
      metrics.setSharedCacheUp(undefined);
    },
  };
}

/** `rediss://host:6380/2` of a URL, without user and password. */
export function redactedServer(url: string): string {
  const u = new URL(url);
  const db = u.pathname.length > 1 ? u.pathname : '';
  return `${u.protocol}//${u.host}${db}`;
}
