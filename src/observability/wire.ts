/**
 * Connects the running proxy to its metrics and access log: subscribes to the end of every
 * request and attempt, to health checks, ejections and service discovery, serves GET /metrics
 * on the admin listener, and keeps the exported series in step with the configuration.
 *
 * Hot path: one call per finished request (`requestEnded`) and, only on failure, per attempt.
 * It looks up the service's metrics handle (a WeakMap by Service object), updates counters and
 * histograms, and hands the context to the access log, which returns at once when the line is
 * sampled out. No closure or object is created per request by this file.
 *
 * Gauges that mirror state are set at scrape time (`metrics.beforeScrape`), not maintained
 * per request: in-flight requests per service (attempts in flight plus requests waiting for a
 * connection slot), open client connections, pool use per instance (Instance.inflight),
 * instance health (healthy and not ejected), cache size. The same hook drops the series of
 * services and instances that left the configuration or service discovery, so a removed
 * instance disappears from the exposition at the next scrape at the latest.
 *
 * Error counting (kubeproxy_errors_total{cause}): an attempt that fails with an upstream cause
 * (connect, timeout, reset, upstream_protocol) is counted when it ends, retried or not; a
 * request is counted at its end for any other cause (no_healthy_instance, client_abort,
 * no_route, overload, drain_timeout: in flight when shutdown.drainTimeout ran out…), and for an upstream cause only when no attempt was made (a request
 * timing out while it waits for a connection). A request whose only instance refuses the
 * connection therefore counts one `connect` and one `no_healthy_instance` (the 503 it got).
 */
import type { Config } from '../config/schema.ts';
import type { RequestContext } from '../context.ts';
import { ProxyError, type ErrorCause } from '../errors.ts';
import type { CacheStats, MaybePromise } from '../cache/store.ts';
import type { ProbeResult } from '../health/active.ts';
import { log } from '../log.ts';
import {
  CACHE_RESULTS,
  UNROUTED_SERVICE,
  metrics as sharedMetrics,
  type CacheResult,
  type ProxyMetrics,
  type ServiceMetrics,
  type UpstreamMetrics,
} from '../metrics/metrics.ts';
import type { DnsDiscovery } from '../discovery/dns.ts';
import type { ActiveHealthChecker } from '../health/active.ts';
import type { OutlierDetector } from '../health/passive.ts';
import type { AdminRoute } from '../admin/server.ts';
import type { Snapshot } from '../snapshot.ts';
import type { Instance } from '../upstream/instance.ts';
import type { Service } from '../upstream/service.ts';
import { AccessLog } from './access-log.ts';

/** Causes an attempt to an instance reports (counted per attempt, see the header). */
const UPSTREAM_CAUSES: ReadonlySet<string> = new Set<ErrorCause>(['connect', 'timeout', 'reset', 'upstream_protocol']);

/** Status logged and counted for a client that left before any response: NGINX's 499. */
const CLIENT_CLOSED = 499;
/** Status logged and counted for a request the proxy cut when shutdown.drainTimeout ran out. */
const CUT_AT_SHUTDOWN = new ProxyError('drain_timeout', 'cut at shutdown').status;

/** Where cache size and evictions come from: the cache store's `stats()`. */
export type CacheStatsSource = () => MaybePromise<CacheStats | undefined>;

/** Per-instance facts for /status that the instance itself does not keep. */
interface InstanceRecord {
  ejections: number;
  lastEjectedAt: string | null;
  lastProbe: { ok: boolean; status: number; detail: string; at: string } | null;
}

export interface CacheStatus {
  entries: number | null;
  bytes: number | null;
  evictions: number | null;
  /** Lookups since start by result. */
  lookups: Record<CacheResult, number>;
  /** (hit + stale) / (hit + stale + revalidated + miss): answers served without the instance; null before any lookup. */
  hitRatio: number | null;
}

/** A client listener (server/listener.ts): its open connections and what it refused. */
interface ObservedListener {
  readonly name: 'http' | 'https';
  readonly connections: number;
  onRefused(fn: (refusal: ProxyError) => void): () => void;
  onConnectionRefused(fn: () => void): () => void;
}

/** What the observability wiring subscribes to and reads in the running proxy (Runtime). */
export interface ObservedProxy {
  readonly snapshot: Snapshot;
  readonly health: Pick<ActiveHealthChecker, 'addListener'>;
  readonly outliers: Pick<OutlierDetector<Instance>, 'addListener'>;
  readonly discovery: Pick<DnsDiscovery, 'onResolve'>;
  readonly listener: ObservedListener;
  /** The TLS port (proxy.tls), counted like the plain one. */
  readonly tls?: { readonly listener: ObservedListener } | undefined;
  onRequestEnd(fn: (ctx: RequestContext) => void): void;
  onAttemptEnd(fn: (instance: Instance, service: Service, status: number, failure: ProxyError | undefined) => void): void;
}

export class Observability {
  private metricsOn = false;
  private access: AccessLog | undefined;
  private closed = false;
  private readonly services = new WeakMap<Service, ServiceMetrics>();
  private readonly upstreams = new WeakMap<Instance, UpstreamMetrics>();
  private readonly records = new WeakMap<Instance, InstanceRecord>();
  private readonly unrouted: ServiceMetrics;
  private readonly unsubscribe: Array<() => void> = [];
  /**
   * Series this runtime exported: service name → upstream ids. Removals go through this (not
   * retainServices), so two runtimes in one process (tests) never drop each other's series.
   */
  private readonly exported = new Map<string, Set<string>>();
  /** Cache lookups since start, by CACHE_RESULTS index (for /status). */
  private readonly cacheLookups = CACHE_RESULTS.map(() => 0);
  private cacheSource: CacheStatsSource | undefined;
  private cacheStats: CacheStats | undefined;
  private exportedEvictions = 0;

  constructor(
    private readonly runtime: ObservedProxy,
    config: Config,
    readonly metrics: ProxyMetrics = sharedMetrics,
  ) {
    this.unrouted = metrics.service(UNROUTED_SERVICE);
    runtime.onRequestEnd(this.requestEnded);
    runtime.onAttemptEnd(this.attemptEnded);
    runtime.health.addListener({
      onProbe: (instance, service, result) => this.probed(instance, service, result),
      onChange: (instance, service, healthy) => {
        if (!healthy) this.ejected(instance, service);
      },
    });
    runtime.outliers.addListener({ onEject: (instance, service) => this.ejected(instance, service) });
    this.unsubscribe.push(
      runtime.discovery.onResolve((e) => {
        if (e.outcome === 'failure' && this.metricsOn) this.current(e.service)?.discoveryError();
      }),
      metrics.beforeScrape(() => this.collect()),
    );
    for (const l of runtime.tls === undefined ? [runtime.listener] : [runtime.listener, runtime.tls.listener]) {
      this.unsubscribe.push(
        l.onRefused(this.refused),
        l.onConnectionRefused(() => {
          if (this.metricsOn && !this.closed) metrics.connectionRefused(l.name);
        }),
      );
    }
    // The first config's series are made by the first scrape (collect), exported at 0 from then
    // on as before: made here, they would delay the first request (~0.15 s at 5,000 services).
    this.apply(config, false);
    metrics.configLoaded();
  }

  /** GET /metrics on the admin listener: the Prometheus text, or 404 when metrics are off. */
  readonly metricsRoute: AdminRoute = async (_req, res) => {
    if (!this.metricsOn) {
      const body = 'metrics are disabled (proxy.metrics.enabled: false)\n';
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    const body = await this.metrics.metricsText();
    res.writeHead(200, { 'content-type': this.metrics.contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  };

  /** A new config is in place (Runtime.reload): settings, series of services that left, counters. */
  reloaded(config: Config): void {
    this.apply(config);
    this.metrics.configReload(true);
  }

  /** A reload was refused (invalid file): the running config keeps serving. */
  reloadFailed(): void {
    this.metrics.configReload(false);
  }

  /**
   * Hook for the cache layer: the store's `stats()` (entries, bytes, evictions), read at every
   * scrape and by /status. Until it is set, cache size and evictions are not exported.
   */
  setCacheStats(source: CacheStatsSource | undefined): void {
    this.cacheSource = source;
  }

  /** Flushes the access log and detaches from the metrics (shutdown). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const fn of this.unsubscribe) fn();
    this.access?.flush();
    // The admin listener is closed: a later Runtime in this process starts its series from zero.
    for (const name of this.exported.keys()) this.metrics.removeService(name);
    this.exported.clear();
  }

  private apply(config: Config, sync = true): void {
    const { metrics: m, accessLog } = config.proxy;
    this.metricsOn = m.enabled;
    if (!accessLog.enabled) {
      this.access?.flush();
      this.access = undefined;
    } else {
      // The process log level was just set from this config (Runtime calls setLogLevel first).
      const settings = { sampling: accessLog.sampling, level: log.level };
      if (this.access === undefined) this.access = new AccessLog(settings);
      else this.access.configure(settings);
    }
    if (this.metricsOn && sync) this.syncSeries();
  }

  // ---- hot path -------------------------------------------------------------------------------

  private readonly requestEnded = (ctx: RequestContext): void => {
    if (this.closed) return;
    const now = ctx.end;
    const cause = ctx.errorCause;
    // Nothing was sent: the status is what the cut stands for, not the 200 node:http defaults to.
    const status = cause === undefined || ctx.res.headersSent ? ctx.status : cause === 'client_abort' ? CLIENT_CLOSED : cause === 'drain_timeout' ? CUT_AT_SHUTDOWN : ctx.status;
    if (this.metricsOn) this.record(ctx, status, now);
    const access = this.access;
    if (access !== undefined) access.write(ctx, status, now);
  };

  private record(ctx: RequestContext, status: number, now: number): void {
    const service = ctx.service;
    let m: ServiceMetrics | undefined;
    if (service === undefined) m = this.unrouted;
    else {
      m = this.services.get(service) ?? this.bind(service);
      if (m === undefined) return;
    }
    m.observeRequest(ctx.req.method ?? '', status, (now - ctx.start) / 1000);
    if (ctx.bytesIn > 0) m.addRequestBytes(ctx.bytesIn);
    if (ctx.bytesOut > 0) m.addResponseBytes(ctx.bytesOut);
    const attempts = ctx.attempts;
    if (attempts > 1) m.retry(attempts - 1);
    const cache = ctx.cacheResult;
    if (cache !== '') {
      m.cache(cache as CacheResult);
      const i = CACHE_RESULTS.indexOf(cache as CacheResult);
      if (i >= 0) this.cacheLookups[i]!++;
    }
    const cause = ctx.errorCause;
    if (cause !== undefined && (attempts === 0 || !UPSTREAM_CAUSES.has(cause))) m.error(cause);
    const instance = ctx.instance;
    const start = ctx.upstreamStart;
    if (instance !== undefined && start > 0 && ctx.upstreamHeaders >= start) {
      (this.upstreams.get(instance) ?? this.bindUpstream(m, instance)).observeResponseHeaders((ctx.upstreamHeaders - start) / 1000);
    }
  }

  private readonly attemptEnded = (_instance: Instance, service: Service, _status: number, failure: ProxyError | undefined): void => {
    if (failure === undefined || !this.metricsOn || this.closed || !UPSTREAM_CAUSES.has(failure.kind)) return;
    (this.services.get(service) ?? this.bind(service))?.error(failure.kind);
  };

  // ---- handles ----------------------------------------------------------------------------------

  /**
   * The handle of a service of the current snapshot. A Service of an older snapshot that is not
   * bound yet gets none: it may have left the config, and its series must not come back.
   */
  private bind(service: Service): ServiceMetrics | undefined {
    if (this.runtime.snapshot.services.get(service.name) !== service) return undefined;
    const m = this.metrics.service(service.name);
    this.services.set(service, m);
    if (!this.exported.has(service.name)) this.exported.set(service.name, new Set());
    return m;
  }

  private bindUpstream(m: ServiceMetrics, instance: Instance): UpstreamMetrics {
    const u = m.upstream(instance.id);
    this.upstreams.set(instance, u);
    this.exported.get(m.service)?.add(instance.id);
    return u;
  }

  /** Metrics handle of the current snapshot's service `name`, if it still exists. */
  private current(name: string): ServiceMetrics | undefined {
    const service = this.runtime.snapshot.services.get(name);
    return service === undefined ? undefined : (this.services.get(service) ?? this.bind(service));
  }

  private upstreamOf(instance: Instance, serviceName: string): UpstreamMetrics | undefined {
    const u = this.upstreams.get(instance);
    if (u !== undefined) return u;
    const m = this.current(serviceName);
    return m === undefined ? undefined : this.bindUpstream(m, instance);
  }

  /**
   * Binds the current snapshot's services and instances, sets the gauges read from state, and
   * drops the series of services and instances no longer configured (reload, discovery).
   */
  private syncSeries(): void {
    const snapshot = this.runtime.snapshot;
    for (const service of snapshot.services.values()) {
      // Re-bound when the cached handle was removed meanwhile (by another runtime's close).
      let m = this.services.get(service);
      if (m === undefined || m !== this.metrics.service(service.name)) m = this.bind(service)!;
      m.setInflight(service.active + service.state.pending.size);
      const ids = new Set<string>();
      for (const instance of service.instances) {
        ids.add(instance.id);
        let u = this.upstreams.get(instance);
        if (u === undefined || u !== m.upstream(instance.id)) u = this.bindUpstream(m, instance);
        u.setInflight(instance.inflight);
        u.setHealthy(instance.healthy && !instance.ejected);
      }
      const exported = this.exported.get(service.name)!;
      for (const id of exported) {
        if (ids.has(id)) continue;
        m.removeUpstream(id);
        exported.delete(id);
      }
    }
    for (const name of this.exported.keys()) {
      if (snapshot.services.has(name)) continue;
      this.metrics.removeService(name);
      this.exported.delete(name);
    }
  }

  // ---- events -----------------------------------------------------------------------------------

  private probed(instance: Instance, service: string, result: ProbeResult): void {
    const record = this.recordOf(instance);
    record.lastProbe = { ok: result.ok, status: result.status, detail: result.detail, at: new Date().toISOString() };
    if (this.metricsOn && !this.closed) this.upstreamOf(instance, service)?.healthCheck(result.ok);
  }

  /** Out of rotation: failed active checks, or ejected by outlier detection. */
  private ejected(instance: Instance, service: string): void {
    const record = this.recordOf(instance);
    record.ejections++;
    record.lastEjectedAt = new Date().toISOString();
    if (this.metricsOn && !this.closed) this.upstreamOf(instance, service)?.ejected();
  }

  private recordOf(instance: Instance): InstanceRecord {
    let r = this.records.get(instance);
    if (r === undefined) {
      r = { ejections: 0, lastEjectedAt: null, lastProbe: null };
      this.records.set(instance, r);
    }
    return r;
  }

  /**
   * Requests a listener (plain or TLS) refused never reach the pipeline (server/listener.ts: malformed,
   * headers too large or too slow, HTTP/0.9, HTTP/1.0 with Transfer-Encoding, 505, CONNECT).
   * They are counted under `_unrouted`, by the kind they were answered with.
   */
  private readonly refused = (refusal: ProxyError): void => {
    if (this.metricsOn && !this.closed) this.unrouted.error(refusal.kind);
  };

  // ---- scrape time ------------------------------------------------------------------------------

  private async collect(): Promise<void> {
    if (this.closed || !this.metricsOn) return;
    this.metrics.setOpenConnections(this.runtime.listener.connections + (this.runtime.tls?.listener.connections ?? 0));
    this.syncSeries();
    const source = this.cacheSource;
    if (source === undefined) return;
    try {
      const stats = await source();
      if (stats !== undefined) this.applyCacheStats(stats);
    } catch (err) {
      // A shared store that does not answer must not break the scrape.
      log.debug({ err: (err as Error).message }, 'cache stats unavailable for metrics');
    }
  }

  private applyCacheStats(stats: CacheStats): void {
    this.cacheStats = stats;
    this.metrics.setCacheSize(stats.bytes, stats.entries);
    const delta = stats.evictions - this.exportedEvictions;
    if (delta > 0) this.metrics.cacheEvicted(delta);
    // A smaller count means a new store: start counting from it.
    this.exportedEvictions = stats.evictions;
  }

  // ---- /status ----------------------------------------------------------------------------------

  /** Cache part of /status: size (from the last stats read), lookups since start and hit ratio. */
  cacheStatus(): CacheStatus {
    const source = this.cacheSource;
    if (source !== undefined) {
      try {
        const v = source();
        if (v instanceof Promise) v.then((s) => s !== undefined && this.applyCacheStats(s), () => {});
        else if (v !== undefined) this.applyCacheStats(v);
      } catch {
        // Keep the last known figures.
      }
    }
    const lookups = Object.fromEntries(CACHE_RESULTS.map((r, i) => [r, this.cacheLookups[i]!])) as Record<CacheResult, number>;
    const served = lookups.hit + lookups.stale;
    const total = served + lookups.revalidated + lookups.miss;
    const s = this.cacheStats;
    return {
      entries: s?.entries ?? null,
      bytes: s?.bytes ?? null,
      evictions: s?.evictions ?? null,
      lookups,
      hitRatio: total === 0 ? null : Math.round((served / total) * 10_000) / 10_000,
    };
  }

  /** Per-instance part of /status: ejections since start, the last one, the last probe. */
  instanceStatus(instance: Instance): InstanceRecord {
    return this.records.get(instance) ?? { ejections: 0, lastEjectedAt: null, lastProbe: null };
  }
}
