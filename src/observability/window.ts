/**
 * The last minute of one service's requests, for the status page: a ring of 60 one-second
 * buckets, each with counts (requests, errors, retries, cache lookups and hits) and a latency
 * histogram of fixed bounds. Recording a request is O(1) and allocates nothing: it finds the
 * bucket of the current second (clearing it first when it still holds a second a minute old)
 * and increments slots of preallocated typed arrays. Quantiles come from the summed bucket
 * counts, never from stored samples, so two workers' windows merge by adding their counts.
 */

/** Upper bounds of the latency buckets, in milliseconds; a last bucket takes everything above. */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10_000, 30_000,
];
const BUCKETS = LATENCY_BOUNDS_MS.length + 1;
const SECONDS = 60;

/** Per-second counters, in this order in each bucket. */
const REQUESTS = 0;
const ERRORS = 1;
const RETRIES = 2;
const LOOKUPS = 3;
const SERVED = 4;
const FIELDS = 5;

/**
 * A request's cache outcome as the window counts it: no lookup (cache off, bypassed), looked up
 * but answered by the instance (miss, revalidated), or answered from the cache (hit, stale).
 */
export const CACHE_NONE = 0;
export const CACHE_FORWARDED = 1;
export const CACHE_SERVED = 2;
export type CacheOutcome = typeof CACHE_NONE | typeof CACHE_FORWARDED | typeof CACHE_SERVED;

/** The window's sums, as /status carries them (and the cluster primary adds them up). */
export interface WindowCounts {
  /** Seconds the sums cover: 60, or fewer while the window is younger than a minute. */
  seconds: number;
  requests: number;
  errors: number;
  retries: number;
  cacheLookups: number;
  cacheServed: number;
  /** Requests per latency bucket (LATENCY_BOUNDS_MS, then one above the last bound). */
  latency: number[];
}

/** What the page shows of a window. */
export interface WindowSummary {
  requestsPerSecond: number;
  /** Errors / requests; null without requests. */
  errorRatio: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  retries: number;
  /** Served from the cache / cache lookups; null without lookups. */
  cacheHitRatio: number | null;
}

export class RequestWindow {
  /** The second (since the epoch) each bucket holds; -1 = empty. */
  private readonly stamps = new Float64Array(SECONDS).fill(-1);
  private readonly counts = new Uint32Array(SECONDS * FIELDS);
  private readonly latency = new Uint32Array(SECONDS * BUCKETS);
  private readonly bornAt: number;

  constructor(nowMs: number = Date.now()) {
    this.bornAt = Math.floor(nowMs / 1000);
  }

  /** One finished request: O(1), no allocation. */
  record(nowMs: number, durationMs: number, error: boolean, retries: number, cache: CacheOutcome): void {
    const second = Math.floor(nowMs / 1000);
    const slot = second % SECONDS;
    if (this.stamps[slot] !== second) this.reset(slot, second);
    const c = slot * FIELDS;
    const counts = this.counts;
    counts[c + REQUESTS]!++;
    if (error) counts[c + ERRORS]!++;
    if (retries > 0) counts[c + RETRIES]! += retries;
    if (cache !== CACHE_NONE) {
      counts[c + LOOKUPS]!++;
      if (cache === CACHE_SERVED) counts[c + SERVED]!++;
    }
    let b = 0;
    while (b < BUCKETS - 1 && durationMs > LATENCY_BOUNDS_MS[b]!) b++;
    this.latency[slot * BUCKETS + b]!++;
  }

  /** The sums over the last 60 seconds (the current one included). */
  sums(nowMs: number = Date.now()): WindowCounts {
    const second = Math.floor(nowMs / 1000);
    const out: WindowCounts = {
      seconds: Math.max(1, Math.min(SECONDS, second - this.bornAt + 1)),
      requests: 0,
      errors: 0,
      retries: 0,
      cacheLookups: 0,
      cacheServed: 0,
      latency: new Array<number>(BUCKETS).fill(0),
    };
    for (let slot = 0; slot < SECONDS; slot++) {
      const stamp = this.stamps[slot]!;
      if (stamp < 0 || stamp > second || second - stamp >= SECONDS) continue;
      const c = slot * FIELDS;
      out.requests += this.counts[c + REQUESTS]!;
      out.errors += this.counts[c + ERRORS]!;
      out.retries += this.counts[c + RETRIES]!;
      out.cacheLookups += this.counts[c + LOOKUPS]!;
      out.cacheServed += this.counts[c + SERVED]!;
      for (let b = 0; b < BUCKETS; b++) out.latency[b]! += this.latency[slot * BUCKETS + b]!;
    }
    return out;
  }

  private reset(slot: number, second: number): void {
    this.stamps[slot] = second;
    for (let i = slot * FIELDS, end = i + FIELDS; i < end; i++) this.counts[i] = 0;
    for (let i = slot * BUCKETS, end = i + BUCKETS; i < end; i++) this.latency[i] = 0;
  }
}

/** Empty sums (a service without a window yet). */
export function emptyCounts(): WindowCounts {
  return { seconds: 1, requests: 0, errors: 0, retries: 0, cacheLookups: 0, cacheServed: 0, latency: new Array<number>(BUCKETS).fill(0) };
}

/** Adds windows of the same minute (one per cluster worker, or per service for the cache). */
export function mergeCounts(all: readonly WindowCounts[]): WindowCounts {
  const out = emptyCounts();
  for (const w of all) {
    out.seconds = Math.max(out.seconds, w.seconds);
    out.requests += w.requests;
    out.errors += w.errors;
    out.retries += w.retries;
    out.cacheLookups += w.cacheLookups;
    out.cacheServed += w.cacheServed;
    for (let b = 0; b < BUCKETS && b < w.latency.length; b++) out.latency[b]! += w.latency[b]!;
  }
  return out;
}

export function summarize(w: WindowCounts): WindowSummary {
  return {
    requestsPerSecond: round(w.requests / w.seconds, 100),
    errorRatio: w.requests === 0 ? null : round(w.errors / w.requests, 10_000),
    p50Ms: quantile(w.latency, 0.5),
    p99Ms: quantile(w.latency, 0.99),
    retries: w.retries,
    cacheHitRatio: w.cacheLookups === 0 ? null : round(w.cacheServed / w.cacheLookups, 10_000),
  };
}

/**
 * The q-quantile of a latency histogram, interpolated linearly inside the bucket that holds it
 * (Prometheus' histogram_quantile does the same); the last, open bucket answers its lower bound.
 */
export function quantile(latency: readonly number[], q: number): number | null {
  let total = 0;
  for (const n of latency) total += n;
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let b = 0; b < latency.length; b++) {
    const n = latency[b]!;
    if (n > 0 && seen + n >= rank) {
      const lower = b === 0 ? 0 : LATENCY_BOUNDS_MS[b - 1]!;
      if (b >= LATENCY_BOUNDS_MS.length) return lower;
      const upper = LATENCY_BOUNDS_MS[b]!;
      return round(lower + ((upper - lower) * (rank - seen)) / n, 100);
    }
    seen += n;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!;
}

function round(v: number, scale: number): number {
  return Math.round(v * scale) / scale;
}
