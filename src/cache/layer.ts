/**
 * The cache layer: what outlives requests between the RFC 9111 decisions (policy.ts), the
 * storage (store.ts) and the pipeline. One `CacheLayer` per Runtime, holding the store, the
 * policy options, the flights of request collapsing and the purge operations; one `CacheFlow`
 * (flow.ts, the per-request state machine: bypass, hit, stale, miss, collapsed, revalidating,
 * revalidated, unavailable) per request that reaches it.
 *
 * The seam with the pipeline: the lookup phase (lookup.ts) answers what to do, and the forward
 * phase hands the final answer of the instance to the flow (interceptor.ts: the store phase).
 * The cache never calls the pipeline. Background revalidations (stale-while-revalidate) have no
 * client and run on BackgroundExchange (background.ts), a small exchange on forward() that holds
 * an instance slot like any request (upstream/slot.ts).
 *
 * A reload keeps the store unless maxSize, maxObjectSize or the shared tier's settings changed
 * (then it starts empty) or the cache was turned off (memory freed); entries of services removed
 * or opted out (`cache: false`) are purged at once.
 *
 * With `proxy.cache.shared` the store is a TieredStore (tiered-store.ts): this memory first, then
 * Redis, shared by every replica and worker (shared-tier.ts opens it; `close()` ends it).
 */
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/schema.ts';
import type { RequestContext } from '../context.ts';
import { log } from '../log.ts';
import type { UpstreamRequest } from '../upstream/client.ts';
import { balancerKey } from '../upstream/hash-key.ts';
import type { Service } from '../upstream/service.ts';
import type { AttemptObserver } from '../upstream/slot.ts';
import { BackgroundExchange } from './background.ts';
import { Collapser } from './collapse.ts';
import { removeHeaders } from './headers.ts';
import { cacheKey, normalizeAuthority, servicePrefix, splitAbsoluteTarget } from './key.ts';
import { MemoryStore } from './memory-store.ts';
import { openSharedTier, sharedSignature, type SharedTier, type SharedTierStatus } from './shared-tier.ts';
import { conditionalRequestHeaders, type PolicyOptions } from './policy.ts';
import { BackgroundRefresh } from './revalidate.ts';
import { TieredStore } from './tiered-store.ts';
import { ZeroTtlCheck } from './zero-ttl.ts';
import { isPromise, type CacheEntry, type CacheStats, type CacheStore, type MaybePromise } from './store.ts';

export type CacheConfig = Config['proxy']['cache'];

/** What the layer needs of the running proxy (Runtime). */
export interface CacheHost extends AttemptObserver {
  readonly draining: boolean;
}

/** How long a key whose answer could not be stored skips collapsing. */
export const UNCOLLAPSIBLE_MS = 30_000;

// ---------------------------------------------------------------------------
// The layer
// ---------------------------------------------------------------------------

export class CacheLayer {
  /** undefined while the cache is off (proxy.cache.enabled false, or a size of 0). */
  store: CacheStore | undefined;
  policy: PolicyOptions = {};
  maxObjectSize = 0;
  /** The uncacheable-answer fast path for this policy and maxObjectSize (zero-ttl.ts). */
  zeroTtl = new ZeroTtlCheck(undefined, 0);
  /** ms; 0 turns collapsing off. */
  collapseTimeout = 0;
  readonly flights = new Collapser();
  /** The cache's clock (epoch ms). Tests replace it to let time pass without waiting. */
  now: () => number = Date.now;
  /**
   * Keys whose last answer could not be stored, with the cache-clock time their mark ends: end
   * times read against `now` rather than lru-cache's TTL, so the mark of a busy uncacheable URL
   * is renewed once half its window has passed instead of on every answer (a set with TTL
   * bookkeeping per request), and tests can move the cache clock.
   */
  private readonly uncollapsible = new LRUCache<string, number>({ max: 10_000 });
  private storeLimits = '';
  private cachedServices = new Set<string>();
  /** Evictions of stores replaced by a reload, so `stats().evictions` never goes back. */
  private evictionsBefore = 0;
  /** The shared tier while proxy.cache.shared is set (and the cache on). */
  private shared: SharedTier | undefined;

  constructor(
    readonly host: CacheHost,
    config: CacheConfig,
    services: Iterable<Service>,
  ) {
    this.reload(config, services);
  }

  /** Applies a new config: see the header for what survives. */
  reload(config: CacheConfig, services: Iterable<Service>): void {
    this.policy = {
      targetedFields: config.targetedFields,
      maxHeuristicLifetime: Math.floor(config.heuristicMax / 1000),
      staleOnError: Math.floor(config.staleOnError / 1000),
    };
    this.maxObjectSize = Math.min(config.maxObjectSize, config.maxSize);
    this.zeroTtl = new ZeroTtlCheck(config.targetedFields, this.maxObjectSize);
    this.collapseTimeout = config.collapseTimeout;
    const usable = config.enabled && config.maxSize > 0 && config.maxObjectSize > 0;
    const limits = usable ? `${config.maxSize}/${config.maxObjectSize}/${sharedSignature(config.shared, this.maxObjectSize)}` : '';
    if (limits !== this.storeLimits || (usable && this.store === undefined)) {
      if (this.store !== undefined) {
        const old = this.store.stats();
        if (!isPromise(old)) this.evictionsBefore += old.evictions;
      }
      this.shared?.close();
      this.shared = undefined;
      const memory = usable ? new MemoryStore({ maxSize: config.maxSize, maxObjectSize: config.maxObjectSize, now: () => this.now() }) : undefined;
      if (memory !== undefined && config.shared !== undefined) this.shared = openSharedTier(config.shared, memory, () => this.now());
      this.store = this.shared?.store ?? memory;
      this.storeLimits = limits;
    }
    const cached = new Set<string>();
    for (const s of services) if (s.cacheEnabled) cached.add(s.name);
    if (this.store !== undefined) {
      for (const name of this.cachedServices) {
        if (cached.has(name)) continue;
        this.purgeService(name).catch((err: unknown) => log.warn({ err, service: name }, 'cache: purging a service that left the cache failed'));
      }
    }
    this.cachedServices = cached;
  }

  /** Starts the one background revalidation of `key`, unless a fetch for it is in the air. */
  refreshInBackground(key: string, entry: CacheEntry, ctx: RequestContext, service: Service, upstream: UpstreamRequest, store: CacheStore): void {
    if (this.flights.get(key) !== undefined) return;
    const flight = this.flights.lead(key);
    const base = removeHeaders(upstream.headers, ['if-none-match', 'if-modified-since']);
    const request: UpstreamRequest = { method: 'GET', path: upstream.path, headers: conditionalRequestHeaders(base, entry), body: null };
    const sink = new BackgroundRefresh({
      store,
      key,
      entry,
      requestHeaders: ctx.requestHeaders,
      requestTime: this.now(),
      policy: this.policy,
      maxObjectSize: this.maxObjectSize,
      now: this.now,
      flight,
    });
    new BackgroundExchange(this.host, service, request, sink, balancerKey(service.hashKey, ctx.clientIp, ctx.path, ctx.req)).start();
  }

  isUncollapsible(key: string): boolean {
    if (this.uncollapsible.size === 0) return false;
    const until = this.uncollapsible.get(key);
    return until !== undefined && until > this.now();
  }

  /** Kept whatever collapseTimeout is: flow.ts also reads it to send a Range request's own Range upstream. */
  markUncollapsible(key: string): void {
    const now = this.now();
    const until = this.uncollapsible.get(key);
    if (until === undefined || until - now < UNCOLLAPSIBLE_MS / 2) this.uncollapsible.set(key, now + UNCOLLAPSIBLE_MS);
  }

  clearUncollapsible(key: string): void {
    if (this.uncollapsible.size > 0) this.uncollapsible.delete(key);
  }

  /** Size, entries and evictions of the store (zeros while the cache is off). */
  stats(): MaybePromise<CacheStats> {
    const store = this.store;
    const before = this.evictionsBefore;
    if (store === undefined) return { entries: 0, keys: 0, bytes: 0, evictions: before };
    const s = store.stats();
    const add = (v: CacheStats): CacheStats => (before === 0 ? v : { ...v, evictions: v.evictions + before });
    return isPromise(s) ? s.then(add) : add(s);
  }

  /** The shared tier's state for /status; undefined without one. */
  sharedStatus(): SharedTierStatus | undefined {
    return this.shared?.status();
  }

  /** Ends the shared tier's connections (shutdown). */
  close(): void {
    this.shared?.close();
    this.shared = undefined;
  }

  /**
   * Removes every entry of `service`; returns the number of variants removed. With a shared tier,
   * rejects when Redis did not answer (this process's memory is purged all the same).
   */
  async purgeService(service: string): Promise<number> {
    const store = this.store;
    if (store === undefined) return 0;
    return store.deleteByPrefix(servicePrefix(service));
  }

  /**
   * Removes every variant stored for `url` (absolute http(s) URL, path and query as the clients
   * send them) under `service`, for both schemes: whether a request counted as https depends on
   * the X-Forwarded-Proto of a trusted peer, which a purge cannot know. With a shared tier,
   * rejects when Redis did not answer.
   */
  async purgeUrl(service: string, url: string): Promise<number> {
    const store = this.store;
    const parts = splitAbsoluteTarget(url);
    if (store === undefined || parts === undefined) return 0;
    // Default port dropped for the URL's own scheme first: https://h:443/ is http://h/ behind TLS termination.
    const authority = normalizeAuthority(parts.authority, parts.scheme);
    if (authority === undefined) return 0;
    let removed = 0;
    for (const scheme of ['http', 'https'] as const) {
      const key = cacheKey(service, 'GET', { scheme, authority, target: parts.pathAndQuery });
      if (key === undefined) continue;
      const obj = await store.get(key);
      if (obj !== undefined) removed += obj.variants.length;
      // The tiered store's own delete never fails a request; a purge must say when Redis did not answer.
      if (store instanceof TieredStore) await store.deleteShared(key);
      else await store.delete(key);
    }
    return removed;
  }
}
