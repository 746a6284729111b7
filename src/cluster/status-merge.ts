/**
 * One view of the services, instances and cache out of each worker's /status (the cluster
 * primary's GET /status, which the status page draws). Every worker runs its own pools, health
 * checks, outlier detection and cache, so:
 *   - counts add up (in-flight, retries, budget refusals, ejections, cache entries and bytes);
 *   - last-minute windows add up bucket by bucket, and the rates and quantiles are taken from
 *     the sum (observability/window.ts), never averaged;
 *   - an instance's state is the worst any worker sees (one worker that ejected it has it out
 *     of rotation for a share of the traffic), with the latest ejection end, error and probe;
 *   - purges are fanned out to every worker, so each counts the same purge: the most any
 *     worker counted is the number of purges;
 *   - the shared cache tier (each worker has its own connection and breaker): its counts add
 *     up, its breaker state is the worst any worker has, `connected` only when all are.
 * Services and instances keep the order of the first worker that reports them.
 */
import { mergeCounts, summarize, type WindowCounts } from '../observability/window.ts';

/** The worst first, as admin/status.ts names them. */
const STATE_ORDER = ['draining', 'leaving', 'ejected', 'unhealthy', 'healthy'];

type Json = Record<string, unknown>;

interface MergedInstance extends Json {
  id: string;
}

interface MergedService extends Json {
  name: string;
  windows: WindowCounts[];
  instances: Map<string, MergedInstance>;
}

export interface MergedStatus {
  services: Json[];
  cache: Json | undefined;
}

/** Merges the `services` and `cache` of the workers' /status answers (answers without them are skipped). */
export function mergeWorkerStatus(workers: readonly unknown[]): MergedStatus {
  const services = new Map<string, MergedService>();
  const caches: Json[] = [];
  for (const w of workers) {
    if (!isObject(w)) continue;
    if (isObject(w.cache)) caches.push(w.cache);
    if (!Array.isArray(w.services)) continue;
    for (const s of w.services) {
      if (!isObject(s) || typeof s.name !== 'string') continue;
      let merged = services.get(s.name);
      if (merged === undefined) {
        merged = { ...s, name: s.name, windows: [], instances: new Map(), inflight: 0, active: 0, retryBudget: { granted: 0, refused: 0 } };
        services.set(s.name, merged);
      }
      addService(merged, s);
    }
  }
  const allWindows: WindowCounts[] = [];
  const out = [...services.values()].map(({ windows, instances, ...s }) => {
    const window = mergeCounts(windows);
    allWindows.push(window);
    return { ...s, window, lastMinute: summarize(window), instances: [...instances.values()] };
  });
  return { services: out, cache: caches.length === 0 ? undefined : mergeCache(caches, mergeCounts(allWindows)) };
}

function addService(merged: MergedService, s: Json): void {
  merged.inflight = num(merged.inflight) + num(s.inflight);
  merged.active = num(merged.active) + num(s.active);
  const budget = merged.retryBudget as { granted: number; refused: number };
  if (isObject(s.retryBudget)) {
    budget.granted += num(s.retryBudget.granted);
    budget.refused += num(s.retryBudget.refused);
  }
  if (isObject(s.window)) merged.windows.push(s.window as unknown as WindowCounts);
  if (!Array.isArray(s.instances)) return;
  for (const i of s.instances) {
    if (!isObject(i) || typeof i.id !== 'string') continue;
    const seen = merged.instances.get(i.id);
    if (seen === undefined) merged.instances.set(i.id, { ...i, id: i.id });
    else merged.instances.set(i.id, mergeInstance(seen, i));
  }
}

function mergeInstance(a: MergedInstance, b: Json): MergedInstance {
  const worse = rank(b.state) < rank(a.state) ? b.state : a.state;
  return {
    ...a,
    state: worse,
    healthy: a.healthy === true && b.healthy === true,
    ejected: a.ejected === true || b.ejected === true,
    available: a.available === true && b.available === true,
    inflight: num(a.inflight) + num(b.inflight),
    ejections: num(a.ejections) + num(b.ejections),
    ejection: latest(a.ejection, b.ejection, 'until'),
    lastError: latest(a.lastError, b.lastError, 'at'),
    lastProbe: latest(a.lastProbe, b.lastProbe, 'at'),
    lastEjectedAt: later(a.lastEjectedAt, b.lastEjectedAt),
  };
}

function mergeCache(caches: readonly Json[], window: WindowCounts): Json {
  const lookups: Record<string, number> = {};
  for (const c of caches) {
    if (!isObject(c.lookups)) continue;
    for (const [k, v] of Object.entries(c.lookups)) lookups[k] = (lookups[k] ?? 0) + num(v);
  }
  const served = (lookups.hit ?? 0) + (lookups.stale ?? 0);
  const total = served + (lookups.revalidated ?? 0) + (lookups.miss ?? 0);
  return {
    enabled: caches.some((c) => c.enabled === true),
    entries: sumOrNull(caches, 'entries'),
    bytes: sumOrNull(caches, 'bytes'),
    evictions: sumOrNull(caches, 'evictions'),
    lookups,
    hitRatio: total === 0 ? null : Math.round((served / total) * 10_000) / 10_000,
    purges: Math.max(0, ...caches.map((c) => num(c.purges))),
    lastMinute: { lookups: window.cacheLookups, served: window.cacheServed, hitRatio: summarize(window).cacheHitRatio },
    ...mergeShared(caches.map((c) => c.shared).filter(isObject)),
  };
}

const BREAKER_ORDER = ['open', 'half-open', 'closed'];

function mergeShared(shared: readonly Json[]): { shared?: Json } {
  if (shared.length === 0) return {};
  const sum = (field: string): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const s of shared) if (isObject(s[field])) for (const [k, v] of Object.entries(s[field])) out[k] = (out[k] ?? 0) + num(v);
    return out;
  };
  const breakers = shared.map((s) => (isObject(s.breaker) ? s.breaker : {}));
  const worst = breakers.reduce((w, b) => (BREAKER_ORDER.indexOf(String(b.state)) < BREAKER_ORDER.indexOf(String(w.state)) ? b : w));
  return {
    shared: {
      ...shared[0],
      connected: shared.every((s) => s.connected === true),
      breaker: { ...worst, opened: breakers.reduce((n, b) => n + num(b.opened), 0) },
      lookups: sum('lookups'),
      writes: sum('writes'),
      invalidations: sum('invalidations'),
      lastError: shared.map((s) => s.lastError).reduce((a, b) => latest(a, b, 'at'), null),
    },
  };
}

function rank(state: unknown): number {
  const i = STATE_ORDER.indexOf(String(state));
  return i < 0 ? STATE_ORDER.length : i;
}

/** Of two records (or nulls), the one whose `field` (an ISO time, null = open-ended) is later. */
function latest(a: unknown, b: unknown, field: string): unknown {
  if (!isObject(a)) return isObject(b) ? b : null;
  if (!isObject(b)) return a;
  if (a[field] === null) return a;
  if (b[field] === null) return b;
  return String(b[field]) > String(a[field]) ? b : a;
}

function later(a: unknown, b: unknown): unknown {
  if (typeof a !== 'string') return b ?? null;
  if (typeof b !== 'string') return a;
  return b > a ? b : a;
}

function sumOrNull(caches: readonly Json[], key: string): number | null {
  let sum: number | null = null;
  for (const c of caches) if (typeof c[key] === 'number') sum = (sum ?? 0) + (c[key] as number);
  return sum;
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : 0;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
