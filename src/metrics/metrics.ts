/**
 * Every Prometheus metric KubeProxy exports is declared in this file, and
 * only here: the rest of the proxy imports the handles below and never
 * touches prom-client directly.
 *
 * Conventions
 * - Base units (seconds, bytes), `_total` suffix on counters.
 * - Label values are bounded: service name, upstream `address:port`, a method
 *   class, a status class, a cache result or an error cause. Never a raw URL,
 *   path or Host header.
 * - The upstream endpoint label is called `upstream`, not `instance`:
 *   Prometheus attaches its own target label `instance` to every scraped
 *   series, and an exposed `instance` label would be renamed to
 *   `exported_instance` (honor_labels: false) or would overwrite the target
 *   label and make the series of two proxy replicas collide
 *   (honor_labels: true).
 *
 * Hot path
 * `metrics.service(name)` returns a handle that is created once per service
 * and holds its series as cells (CounterCell, HistogramCell below): recording
 * a request is an array lookup plus additions, with no label object and no
 * label hashing. prom-client's own children hash and validate their labels on
 * every call (`bench/metric-cells.ts` compares the two); the cells are read by
 * the registry only when it is scraped.
 * Gauges that mirror state (in-flight, connections, pool use, health, cache
 * size) are set at scrape time by `beforeScrape` hooks (observability/wire.ts)
 * rather than incremented per request.
 *
 * Series lifecycle
 * When a service or an upstream leaves the configuration, call
 * `metrics.removeService()` / `handle.removeUpstream()` (or the `retain*`
 * variants with the set that is still configured) so its series are dropped
 * from the exposition instead of growing forever. A handle that was removed
 * is detached: further updates through it are discarded (they no longer reach
 * the registry), so always get handles from `metrics.service()` /
 * `handle.upstream()` after a reload.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Aggregator, Metric, MetricObjectWithValues, MetricType, MetricValueWithName } from 'prom-client';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { EventLoopUtilization } from 'node:perf_hooks';

// ---------------------------------------------------------------------------
// Bounded label values
// ---------------------------------------------------------------------------

export const METHOD_CLASSES = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'other'] as const;
export type MethodClass = (typeof METHOD_CLASSES)[number];

export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

export const ERROR_CAUSES = [
  // upstream failures
  'connect',
  'timeout',
  'reset',
  'upstream_protocol',
  'no_healthy_instance',
  // client side
  'client_abort',
  'bad_request',
  'method_not_allowed',
  'body_too_large',
  'headers_too_large',
  'request_timeout',
  'http_version',
  // what the front in use does not serve (Upgrade on the Bun.serve front)
  'not_implemented',
  'no_route',
  // an upgrade refused while the proxy drains at shutdown
  'draining',
  // in flight when shutdown.drainTimeout ran out, cut by the proxy
  'drain_timeout',
  // rejected by limits
  'overload',
  // only-if-cached request that the cache could not serve
  'not_cached',
  // a plugin hook threw, rejected or timed out
  'plugin_error',
] as const;
export type ErrorCause = (typeof ERROR_CAUSES)[number];

export const CACHE_RESULTS = ['hit', 'miss', 'stale', 'revalidated', 'bypass'] as const;
export type CacheResult = (typeof CACHE_RESULTS)[number];

/**
 * `service` label value for events that happen before a request is routed to
 * a service (no route, malformed request, connection-level overload).
 */
export const UNROUTED_SERVICE = '_unrouted';

/** Request latency buckets, in seconds (0.5 ms .. 30 s). */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

const OTHER_METHOD_INDEX = 7;

function methodIndex(method: string): number {
  // Node gives upper-case methods for every standard verb; anything else
  // (lower-case, WebDAV, garbage) is "other". A switch: no lookups on an
  // object prototype ("constructor") and no allocation.
  switch (method) {
    case 'GET':
      return 0;
    case 'HEAD':
      return 1;
    case 'POST':
      return 2;
    case 'PUT':
      return 3;
    case 'DELETE':
      return 4;
    case 'PATCH':
      return 5;
    case 'OPTIONS':
      return 6;
    default:
      return OTHER_METHOD_INDEX;
  }
}

/** Durations must be finite and >= 0: a NaN would poison the histogram sum. */
function seconds(value: number): number {
  return value >= 0 && value !== Infinity ? value : 0;
}

function statusIndex(status: number): number {
  // 100..599 map to 1xx..5xx. Anything outside (0 when no response could be
  // sent, or a bogus code) is counted as a server-side failure.
  if (status >= 100 && status < 600) return ((status / 100) | 0) - 1;
  return 4;
}

/** Maps an HTTP method to its bounded `method` label value. */
export function methodClass(method: string): MethodClass {
  return METHOD_CLASSES[methodIndex(method)]!;
}

/** Maps an HTTP status code to its `status_class` label value. */
export function statusClass(status: number): StatusClass {
  return STATUS_CLASSES[statusIndex(status)]!;
}

const ERROR_CAUSE_INDEX = new Map<string, number>(ERROR_CAUSES.map((c, i) => [c, i]));
const CACHE_RESULT_INDEX = new Map<string, number>(CACHE_RESULTS.map((c, i) => [c, i]));

// ---------------------------------------------------------------------------
// Public handle types
// ---------------------------------------------------------------------------

/** Per-upstream (address:port) handle of one service. */
export interface UpstreamMetrics {
  readonly service: string;
  readonly address: string;
  /** A request was dispatched to this upstream (pool use +1). */
  dispatched(): void;
  /** The upstream exchange ended, successfully or not (pool use -1). */
  released(): void;
  /**
   * Sets pool use to a value read from state. The runtime does this at scrape
   * time (from Instance.inflight) instead of dispatched()/released() per request.
   */
  setInflight(requests: number): void;
  /** Time from dispatch to upstream response headers, in seconds. */
  observeResponseHeaders(seconds: number): void;
  /** One active health-check probe finished. */
  healthCheck(success: boolean): void;
  /** Current health state (kubeproxy_instance_healthy 1/0). */
  setHealthy(healthy: boolean): void;
  /** The upstream was ejected (outlier detection or failed health checks). */
  ejected(): void;
}

/** Per-service handle; created once per service, cheap to call. */
export interface ServiceMetrics {
  readonly service: string;
  /** A request for this service started (in-flight +1). */
  requestStarted(): void;
  /**
   * A request for this service ended (in-flight -1): counts it and observes
   * its whole duration. `status` is the status sent to the client (0 when none
   * could be sent; counted as 5xx).
   */
  requestFinished(method: string, status: number, durationSeconds: number): void;
  /**
   * Sets the in-flight gauge to a value read from state. The runtime does this
   * at scrape time instead of requestStarted()/requestFinished() per request.
   */
  setInflight(requests: number): void;
  /** Counts a request without touching the in-flight gauge. */
  observeRequest(method: string, status: number, durationSeconds: number): void;
  /** Request body bytes received from the client. */
  addRequestBytes(bytes: number): void;
  /** Response body bytes sent to the client. */
  addResponseBytes(bytes: number): void;
  error(cause: ErrorCause): void;
  /** `count` upstream attempts were retries (default 1). */
  retry(count?: number): void;
  /** One cache lookup; '' (cache not involved) is a no-op. */
  cache(result: CacheResult | ''): void;
  discoveryError(): void;
  /** Handle of one upstream of this service; cached. */
  upstream(address: string): UpstreamMetrics;
  /** Drops every series of one upstream of this service. */
  removeUpstream(address: string): void;
  /** Drops the series of every upstream of this service not in `addresses`. */
  retainUpstreams(addresses: Iterable<string>): void;
}

export interface ProxyMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  /** Handle of one service; created on first use and cached. */
  service(name: string): ServiceMetrics;
  /** Drops every series of a service (and of its upstreams). */
  removeService(name: string): void;
  /** Drops the series of every service not in `names` (UNROUTED_SERVICE is always kept). */
  retainServices(names: Iterable<string>): void;
  /** Counts an error that happened before routing (service="_unrouted"). */
  unroutedError(cause: ErrorCause): void;
  connectionOpened(): void;
  connectionClosed(): void;
  /** Sets the open-connections gauge to a value read from state (scrape time). */
  setOpenConnections(count: number): void;
  setCacheSize(bytes: number, entries: number): void;
  cacheEvicted(count?: number): void;
  /** One configuration reload attempt; `at` defaults to now. */
  configReload(success: boolean, at?: Date): void;
  /** The initial configuration was loaded: sets the last-success timestamp, counts no reload. */
  configLoaded(at?: Date): void;
  /** A plugin's hook threw, rejected or timed out (`plugin` is its configured name, `hook` e.g. onRequest). */
  pluginError(plugin: string, hook: string): void;
  /** A client's TLS handshake failed; `reason` is one of a bounded set (server/tls.ts). */
  tlsHandshakeError(reason: string): void;
  /** A client connection closed at accept, client.maxConnections reached; `listener`: http (plain port) or https (TLS port). */
  connectionRefused(listener: 'http' | 'https'): void;
  /** An HTTP/2 session was cut off for abuse; `reason` is rapid_reset or flood (server/h2-front.ts). */
  http2SessionCut(reason: string): void;
  /** The shared cache tier (cache/tiered-store.ts): one lookup, one background write, one invalidation message. */
  sharedCacheLookup(result: 'hit' | 'miss' | 'error' | 'timeout' | 'skipped'): void;
  sharedCacheWrite(result: 'ok' | 'error' | 'timeout' | 'skipped'): void;
  sharedCacheInvalidation(direction: 'sent' | 'received'): void;
  /** The shared tier's breaker: 1 closed (in use), 0 open or probing; undefined: no shared tier (series removed). */
  setSharedCacheUp(up: boolean | undefined): void;
  /**
   * Runs `fn` at the start of every `metricsText()`, before the exposition is
   * built: gauges read from state (in-flight, connections, pool use, health,
   * cache size) are set here, so the request path does not maintain them.
   * Returns a function that removes the hook.
   */
  beforeScrape(fn: () => void | Promise<void>): () => void;
  /** Text exposition of the registry. */
  metricsText(): Promise<string>;
  /**
   * The registry as prom-client JSON, after the same hooks as `metricsText()`: what a cluster
   * worker sends its primary, which merges the workers' with `AggregatorRegistry.aggregate()`
   * (each metric by its `aggregator`, sum unless declared otherwise).
   */
  metricsJSON(): Promise<MetricsJSON>;
  /** Stops the event-loop delay monitor (tests, shutdown). */
  close(): void;
}

/** `registry.getMetricsAsJSON()`: one entry per metric, with its samples and its cluster `aggregator`. */
export type MetricsJSON = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export interface CreateMetricsOptions {
  /** Register prom-client's default process/Node.js metrics. Default true. */
  defaultMetrics?: boolean;
  /** Sample the event loop (lag and utilisation gauges). Default true. */
  eventLoop?: boolean;
  /** Event-loop delay sampling resolution in ms. Default 10. */
  eventLoopResolutionMs?: number;
}

/** What a metric exposes: used by tests that validate dashboards and rules. */
export interface MetricDescription {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  help: string;
  labelNames: string[];
  /** Sample names with their label names (histograms: _bucket has `le`). */
  series: { name: string; labelNames: string[] }[];
}

// ---------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------

type Labels = Record<string, string>;
/**
 * A sample in prom-client's public shape. `sharedLabels` (the same frozen object
 * for every sample of a series) is a hint prom-client's text exposition reads to
 * format those labels once per series instead of once per sample: its own
 * histograms emit it. Where it is not read, `labels` alone is complete.
 */
type Sample = MetricValueWithName<string> & { sharedLabels?: Readonly<Labels> };

/**
 * One counter series, incremented by a plain addition. prom-client's own children
 * (`counter.labels(...).inc()`) validate and hash the label object on every call
 * (`bench/metric-cells.ts` measures both).
 */
class CounterCell {
  value = 0;
  constructor(readonly labels: Readonly<Labels>) {}
  inc(amount = 1): void {
    if (amount >= 0 && amount !== Infinity) this.value += amount;
  }
}

/** One gauge series, set (or moved) from the state it mirrors. */
class GaugeCell {
  value = 0;
  constructor(readonly labels: Readonly<Labels>) {}
}

/**
 * The counters of one group of series that differ only in their last label (a service's errors by
 * cause, its cache lookups by result, an upstream's probes by result): one object per group
 * instead of one per series, since each group is exported at 0 from the start and a config of
 * thousands of services would otherwise hold ~30 objects per service that most never touch.
 */
class CounterRowCell {
  // A plain array: a Float64Array of 2 to 30 values costs ~250 bytes more (its ArrayBuffer).
  readonly values: number[];
  constructor(
    readonly labels: Readonly<Labels>,
    size: number,
  ) {
    this.values = new Array<number>(size).fill(0);
  }
  inc(i: number, amount = 1): void {
    if (amount >= 0 && amount !== Infinity) this.values[i]! += amount;
  }
}

/** One histogram series: per-bucket counts (not cumulative until exported), sum and count. */
class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  #bucketLabels: readonly Readonly<Record<string, string | number>>[] | undefined;
  constructor(
    readonly labels: Readonly<Labels>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }
  /** The labels of each `_bucket` sample, `+Inf` last; made at the first scrape that shows this series. */
  get bucketLabels(): readonly Readonly<Record<string, string | number>>[] {
    // `le` first, where prom-client's own histograms print it.
    this.#bucketLabels ??= [...this.bounds, '+Inf'].map((le) => Object.freeze({ le, ...this.labels }));
    return this.#bucketLabels;
  }
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

interface CellFamilyConfig {
  name: string;
  help: string;
  labelNames: readonly string[];
  registers: readonly Registry[];
  /** How cluster mode combines the workers' series (sum unless said otherwise). */
  aggregator?: Aggregator;
}

/**
 * A counter or histogram whose series live in cells that the request path
 * updates with plain arithmetic; the registry reads them only when scraped.
 *
 * It is a collector, not a prom-client metric class: an object with a name,
 * help, type and `get()` returning the public `MetricObjectWithValues` shape,
 * registered with `registerMetric()`. `registry.metrics()` and
 * `getMetricsAsJSON()` render it through `get()`, as they render the metrics
 * prom-client's own `AggregatorRegistry.aggregate()` registers. prom-client has
 * no public way to set a histogram's buckets, and its children's per-call label
 * handling is what the cells avoid, so no prom-client method is overridden here.
 */
abstract class CellFamily<C extends { readonly labels: Readonly<Labels> }> {
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator: Aggregator;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly #cells = new Map<string, C>();

  constructor(config: CellFamilyConfig) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    this.aggregator = config.aggregator ?? 'sum';
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric);
  }

  protected abstract create(labels: Readonly<Labels>): C;
  /** Appends the samples of one cell, or none while it has nothing to show. */
  protected abstract samples(cell: C, out: Sample[]): void;

  #key(labels: Labels): string {
    // Label values are service names, addresses and fixed words: no NUL in them.
    return this.labelNames.map((n) => labels[n] ?? '').join('\u0000');
  }

  /** The cell of `labels`, created on first use (with a copy of the labels). */
  cell(labels: Labels): C {
    const key = this.#key(labels);
    let cell = this.#cells.get(key);
    // A frozen copy: the exported samples share it (no copy per scrape). Copied with
    // Object.assign, not a spread: V8 (Node 20) gives every frozen spread copy a hidden class of
    // its own (~140 bytes more per series; Object.assign copies share one).
    if (cell === undefined) this.#cells.set(key, (cell = this.create(Object.freeze(Object.assign({}, labels)))));
    return cell;
  }

  /** Removes one series. */
  drop(labels: Labels): void {
    this.#cells.delete(this.#key(labels));
  }

  /** `registry.resetMetrics()` calls this. */
  reset(): void {
    this.#cells.clear();
  }

  async get(): Promise<Omit<MetricObjectWithValues<Sample>, 'collect'>> {
    const values: Sample[] = [];
    for (const cell of this.#cells.values()) this.samples(cell, values);
    return { name: this.name, help: this.help, type: this.type as unknown as MetricType, aggregator: this.aggregator, values };
  }
}

/** Counter series are exported from their cell's creation, like a prom-client child after `inc(0)`. */
class CellCounter extends CellFamily<CounterCell> {
  readonly type = 'counter';
  protected create(labels: Readonly<Labels>): CounterCell {
    return new CounterCell(labels);
  }
  protected samples(cell: CounterCell, out: Sample[]): void {
    out.push({ value: cell.value, labels: cell.labels, sharedLabels: cell.labels });
  }
}

/** Gauge series are exported from their cell's creation. */
class CellGauge extends CellFamily<GaugeCell> {
  readonly type = 'gauge';
  protected create(labels: Readonly<Labels>): GaugeCell {
    return new GaugeCell(labels);
  }
  protected samples(cell: GaugeCell, out: Sample[]): void {
    out.push({ value: cell.value, labels: cell.labels, sharedLabels: cell.labels });
  }
}

/**
 * Counters kept in rows (CounterRowCell): a cell is got with every label but the last one, and
 * exports one series per value of the last label (`columns`), in that order, from its creation.
 */
class CellCounterRow extends CellFamily<CounterRowCell> {
  readonly type = 'counter';
  readonly #column: string;
  readonly #columns: readonly string[];
  constructor(config: CellFamilyConfig & { columns: readonly string[] }) {
    super(config);
    this.#column = config.labelNames[config.labelNames.length - 1]!;
    this.#columns = config.columns;
  }
  protected create(labels: Readonly<Labels>): CounterRowCell {
    return new CounterRowCell(labels, this.#columns.length);
  }
  protected samples(cell: CounterRowCell, out: Sample[]): void {
    // The labels are made per scrape: kept, they would cost what the row saves.
    for (let i = 0; i < this.#columns.length; i++) {
      const labels = { ...cell.labels, [this.#column]: this.#columns[i]! };
      out.push({ value: cell.values[i]!, labels, sharedLabels: labels });
    }
  }
}

/** Histogram series are exported once they have an observation, like a prom-client child. */
class CellHistogram extends CellFamily<HistogramCell> {
  readonly type = 'histogram';
  readonly #bounds: readonly number[];
  constructor(config: CellFamilyConfig & { buckets: readonly number[] }) {
    super(config);
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
  }
  protected create(labels: Readonly<Labels>): HistogramCell {
    return new HistogramCell(labels, this.#bounds);
  }
  protected samples(cell: HistogramCell, out: Sample[]): void {
    if (cell.count === 0) return;
    const bucket = `${this.name}_bucket`;
    const le = cell.bucketLabels;
    let acc = 0;
    for (let i = 0; i < this.#bounds.length; i++) {
      acc += cell.counts[i]!;
      out.push({ metricName: bucket, value: acc, labels: le[i]!, sharedLabels: cell.labels });
    }
    const shared = cell.labels;
    out.push(
      { metricName: bucket, value: cell.count, labels: le[this.#bounds.length]!, sharedLabels: shared },
      { metricName: `${this.name}_sum`, value: cell.sum, labels: shared, sharedLabels: shared },
      { metricName: `${this.name}_count`, value: cell.count, labels: shared, sharedLabels: shared },
    );
  }
}

type Family = ReturnType<typeof declareFamily>;

/** `result` of kubeproxy_health_checks_total, in export order. */
const PROBE_RESULTS = ['success', 'failure'] as const;

function declareFamily(registry: Registry) {
  const registers = [registry];
  return {
    requests: new CellCounter({
      name: 'kubeproxy_requests_total',
      help: 'Client requests handled, by service, method class and response status class.',
      labelNames: ['service', 'method', 'status_class'] as const,
      registers,
    }),
    requestDuration: new CellHistogram({
      name: 'kubeproxy_request_duration_seconds',
      help: 'Whole client request duration, from request received to response finished, in seconds.',
      labelNames: ['service', 'method', 'status_class'] as const,
      buckets: [...LATENCY_BUCKETS],
      registers,
    }),
    upstreamDuration: new CellHistogram({
      name: 'kubeproxy_upstream_duration_seconds',
      help: 'Time from dispatch to an upstream until its response headers arrive, in seconds.',
      labelNames: ['service', 'upstream'] as const,
      buckets: [...LATENCY_BUCKETS],
      registers,
    }),
    requestBytes: new CellCounter({
      name: 'kubeproxy_request_bytes_total',
      help: 'Request body bytes received from clients.',
      labelNames: ['service'] as const,
      registers,
    }),
    responseBytes: new CellCounter({
      name: 'kubeproxy_response_bytes_total',
      help: 'Response body bytes sent to clients.',
      labelNames: ['service'] as const,
      registers,
    }),
    errors: new CellCounterRow({
      columns: ERROR_CAUSES,
      name: 'kubeproxy_errors_total',
      help: 'Errors by cause (ERROR_CAUSES, the kinds of ProxyError): every failed upstream attempt (connect, timeout, reset, upstream_protocol), and every request the proxy failed or rejected for a cause no attempt reported.',
      labelNames: ['service', 'cause'] as const,
      registers,
    }),
    retries: new CellCounter({
      name: 'kubeproxy_retries_total',
      help: 'Upstream attempts retried.',
      labelNames: ['service'] as const,
      registers,
    }),
    inflight: new CellGauge({
      name: 'kubeproxy_inflight_requests',
      help: 'Client requests currently being handled.',
      labelNames: ['service'] as const,
      registers,
    }),
    openConnections: new Gauge({
      name: 'kubeproxy_open_connections',
      help: 'Open client connections.',
      registers,
    }),
    upstreamInflight: new CellGauge({
      name: 'kubeproxy_upstream_inflight',
      help: 'Requests currently dispatched to an upstream (connection pool use).',
      labelNames: ['service', 'upstream'] as const,
      registers,
    }),
    cacheRequests: new CellCounterRow({
      columns: CACHE_RESULTS,
      name: 'kubeproxy_cache_requests_total',
      help: 'Cache lookups by result (hit, miss, stale, revalidated, bypass).',
      labelNames: ['service', 'result'] as const,
      registers,
    }),
    cacheBytes: new Gauge({
      name: 'kubeproxy_cache_bytes',
      help: 'Bytes currently stored in the response cache.',
      registers,
    }),
    cacheEntries: new Gauge({
      name: 'kubeproxy_cache_entries',
      help: 'Entries currently stored in the response cache.',
      registers,
    }),
    cacheEvictions: new Counter({
      name: 'kubeproxy_cache_evictions_total',
      help: 'Cache entries evicted to make room.',
      registers,
    }),
    healthChecks: new CellCounterRow({
      columns: PROBE_RESULTS,
      name: 'kubeproxy_health_checks_total',
      help: 'Active health-check probes by result (success, failure).',
      labelNames: ['service', 'upstream', 'result'] as const,
      registers,
    }),
    instanceHealthy: new CellGauge({
      name: 'kubeproxy_instance_healthy',
      help: 'Whether an upstream is currently considered healthy (1) or not (0).',
      labelNames: ['service', 'upstream'] as const,
      // Cluster mode (proxy.workers > 1): each worker checks on its own; 1 only when every worker routes to it.
      aggregator: 'min',
      registers,
    }),
    ejections: new CellCounter({
      name: 'kubeproxy_ejections_total',
      help: 'Upstreams ejected from load balancing.',
      labelNames: ['service', 'upstream'] as const,
      registers,
    }),
    configReloads: new Counter({
      name: 'kubeproxy_config_reloads_total',
      help: 'Configuration reload attempts by result (success, failure).',
      labelNames: ['result'] as const,
      registers,
    }),
    configLastSuccess: new Gauge({
      name: 'kubeproxy_config_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful configuration (re)load.',
      registers,
    }),
    pluginErrors: new Counter({
      name: 'kubeproxy_plugin_errors_total',
      help: 'Plugin hooks that threw, rejected or timed out, by plugin name and hook.',
      labelNames: ['plugin', 'hook'] as const,
      registers,
    }),
    http2SessionsCut: new Counter({
      name: 'kubeproxy_http2_sessions_cut_total',
      help: 'HTTP/2 client sessions the proxy cut off, by reason: rapid_reset (CVE-2023-44487), flood (SETTINGS, PING, invalid frames, refused streams).',
      labelNames: ['reason'] as const,
      registers,
    }),
    tlsHandshakeErrors: new Counter({
      name: 'kubeproxy_tls_handshake_errors_total',
      help: 'TLS handshakes with clients that failed, by reason (server/tls.ts TLS_FAILURE_REASONS).',
      labelNames: ['reason'] as const,
      registers,
    }),
    connectionsRefused: new Counter({
      name: 'kubeproxy_connections_refused_total',
      help: 'Client connections closed as soon as accepted because proxy.client.maxConnections was reached, by listener (http: the plain port, https: the TLS port).',
      labelNames: ['listener'] as const,
      registers,
    }),
    discoveryErrors: new CellCounter({
      name: 'kubeproxy_discovery_errors_total',
      help: 'Service discovery (endpoint resolution) failures.',
      labelNames: ['service'] as const,
      registers,
    }),
    // The shared cache tier (proxy.cache.shared): exported only once a tier is configured.
    sharedCacheLookups: new Counter({
      name: 'kubeproxy_cache_shared_lookups_total',
      help: 'Lookups in the shared cache tier after a memory miss, by result (hit, miss, error, timeout, skipped: breaker open).',
      labelNames: ['result'] as const,
      registers,
    }),
    sharedCacheWrites: new Counter({
      name: 'kubeproxy_cache_shared_writes_total',
      help: 'Background writes to the shared cache tier, by result (ok, error, timeout, skipped: breaker open or too many in flight).',
      labelNames: ['result'] as const,
      registers,
    }),
    sharedCacheInvalidations: new Counter({
      name: 'kubeproxy_cache_shared_invalidations_total',
      help: 'Invalidation messages between proxy processes, by direction (sent, received).',
      labelNames: ['direction'] as const,
      registers,
    }),
    sharedCacheUp: new Gauge({
      name: 'kubeproxy_cache_shared_up',
      help: 'Whether the shared cache tier is in use (1) or skipped by its circuit breaker (0), by store (redis).',
      labelNames: ['store'] as const,
      // Cluster mode: 0 when any worker skips it.
      aggregator: 'min',
      registers,
    }),
  };
}

function declareEventLoop(registry: Registry, resolutionMs: number): () => void {
  const delay = monitorEventLoopDelay({ resolution: resolutionMs });
  delay.enable();
  const resolutionNs = resolutionMs * 1e6;
  let lastElu: EventLoopUtilization = performance.eventLoopUtilization();

  new Gauge({
    name: 'kubeproxy_event_loop_lag_seconds',
    help: 'Worst event-loop delay observed since the previous scrape, in seconds.',
    registers: [registry],
    // Cluster mode: the worst worker, not a sum of lags.
    aggregator: 'max',
    collect() {
      // The histogram records the full timer period; the lag is what exceeds it.
      const worst = delay.count > 0 ? Math.max(0, delay.max - resolutionNs) / 1e9 : 0;
      delay.reset();
      this.set(worst);
    },
  });
  new Gauge({
    name: 'kubeproxy_event_loop_utilization',
    help: 'Share of time the event loop was busy since the previous scrape (0-1).',
    registers: [registry],
    // Cluster mode: the mean over workers, so it stays within 0-1.
    aggregator: 'average',
    collect() {
      const now = performance.eventLoopUtilization();
      const delta = performance.eventLoopUtilization(now, lastElu);
      lastElu = now;
      this.set(Number.isFinite(delta.utilization) ? delta.utilization : 0);
    },
  });
  return () => delay.disable();
}

class UpstreamHandle implements UpstreamMetrics {
  /** False once removed: a detached handle must not re-create its series. */
  #live = true;
  readonly #f: Family;
  readonly #inflight: GaugeCell;
  readonly #checks: CounterRowCell;
  readonly #ejections: CounterCell;
  // Made on first use: a histogram series is exported once it has an observation, and health
  // stays absent until known, so an upstream that never gets traffic holds neither.
  #duration: HistogramCell | undefined;
  #healthy: GaugeCell | undefined;

  constructor(
    f: Family,
    readonly service: string,
    readonly address: string,
  ) {
    this.#f = f;
    const labels = { service, upstream: address };
    // Counters and the pool gauge are exported at 0 from the start, so that rate() and
    // increase() see the first event.
    this.#inflight = f.upstreamInflight.cell(labels);
    this.#checks = f.healthChecks.cell(labels);
    this.#ejections = f.ejections.cell(labels);
  }

  dispatched(): void {
    if (this.#live) this.#inflight.value++;
  }
  released(): void {
    if (this.#live) this.#inflight.value--;
  }
  setInflight(requests: number): void {
    if (this.#live) this.#inflight.value = requests;
  }
  observeResponseHeaders(value: number): void {
    if (!this.#live) return;
    this.#duration ??= this.#f.upstreamDuration.cell({ service: this.service, upstream: this.address });
    this.#duration.observe(seconds(value));
  }
  healthCheck(success: boolean): void {
    if (this.#live) this.#checks.inc(success ? 0 : 1);
  }
  setHealthy(healthy: boolean): void {
    if (!this.#live) return;
    this.#healthy ??= this.#f.instanceHealthy.cell({ service: this.service, upstream: this.address });
    this.#healthy.value = healthy ? 1 : 0;
  }
  ejected(): void {
    if (this.#live) this.#ejections.inc();
  }

  /** Removes every series of this upstream and detaches the handle. */
  detach(f: Family): void {
    this.#live = false;
    const { service, address } = this;
    const labels = { service, upstream: address };
    f.upstreamInflight.drop(labels);
    f.upstreamDuration.drop(labels);
    f.healthChecks.drop(labels);
    f.instanceHealthy.drop(labels);
    f.ejections.drop(labels);
  }
}

const REQUEST_SLOTS = METHOD_CLASSES.length * STATUS_CLASSES.length;

class ServiceHandle implements ServiceMetrics {
  /** False once removed: a detached handle must not re-create its series. */
  #live = true;
  readonly #f: Family;
  readonly #inflight: GaugeCell;
  readonly #requestBytes: CounterCell;
  readonly #responseBytes: CounterCell;
  readonly #retries: CounterCell;
  readonly #discoveryErrors: CounterCell;
  readonly #errors: CounterRowCell;
  readonly #cache: CounterRowCell;
  // Request counter / histogram series by method*5+status, created lazily so
  // that only combinations that happen are exported (40 per service at most).
  // Both arrays are made by the first request: a service that gets none holds neither.
  #requests: (CounterCell | undefined)[] | undefined;
  #durations: (HistogramCell | undefined)[] | undefined;
  readonly #upstreams = new Map<string, UpstreamHandle>();

  constructor(
    f: Family,
    readonly service: string,
  ) {
    this.#f = f;
    const labels = { service };
    // Fixed, small sets, exported at 0 up front (a cell exists from its
    // creation) so that rate() sees the first event.
    this.#inflight = f.inflight.cell(labels);
    this.#requestBytes = f.requestBytes.cell(labels);
    this.#responseBytes = f.responseBytes.cell(labels);
    this.#retries = f.retries.cell(labels);
    this.#discoveryErrors = f.discoveryErrors.cell(labels);
    this.#errors = f.errors.cell(labels);
    this.#cache = f.cacheRequests.cell(labels);
  }

  requestStarted(): void {
    if (this.#live) this.#inflight.value++;
  }

  setInflight(requests: number): void {
    if (this.#live) this.#inflight.value = requests;
  }

  requestFinished(method: string, status: number, durationSeconds: number): void {
    if (!this.#live) return;
    this.#inflight.value--;
    this.observeRequest(method, status, durationSeconds);
  }

  observeRequest(method: string, status: number, durationSeconds: number): void {
    if (!this.#live) return;
    const m = methodIndex(method);
    const s = statusIndex(status);
    const slot = m * STATUS_CLASSES.length + s;
    const requests = (this.#requests ??= new Array<CounterCell | undefined>(REQUEST_SLOTS));
    const durations = (this.#durations ??= new Array<HistogramCell | undefined>(REQUEST_SLOTS));
    let counter = requests[slot];
    let histogram = durations[slot];
    if (counter === undefined || histogram === undefined) {
      const labels = { service: this.service, method: METHOD_CLASSES[m]!, status_class: STATUS_CLASSES[s]! };
      counter = requests[slot] = this.#f.requests.cell(labels);
      histogram = durations[slot] = this.#f.requestDuration.cell(labels);
    }
    counter.inc();
    histogram.observe(seconds(durationSeconds));
  }

  addRequestBytes(bytes: number): void {
    if (this.#live && bytes > 0 && bytes !== Infinity) this.#requestBytes.inc(bytes);
  }
  addResponseBytes(bytes: number): void {
    if (this.#live && bytes > 0 && bytes !== Infinity) this.#responseBytes.inc(bytes);
  }
  error(cause: ErrorCause): void {
    const i = ERROR_CAUSE_INDEX.get(cause);
    if (this.#live && i !== undefined) this.#errors.inc(i);
  }
  retry(count = 1): void {
    if (this.#live && count > 0) this.#retries.inc(count);
  }
  cache(result: CacheResult | ''): void {
    const i = CACHE_RESULT_INDEX.get(result);
    if (this.#live && i !== undefined) this.#cache.inc(i);
  }
  discoveryError(): void {
    if (this.#live) this.#discoveryErrors.inc();
  }

  upstream(address: string): UpstreamMetrics {
    let handle = this.#upstreams.get(address);
    if (handle === undefined) {
      handle = new UpstreamHandle(this.#f, this.service, address);
      // A detached service hands out detached upstreams.
      if (this.#live) this.#upstreams.set(address, handle);
      else handle.detach(this.#f);
    }
    return handle;
  }

  removeUpstream(address: string): void {
    const handle = this.#upstreams.get(address);
    if (handle === undefined) return;
    this.#upstreams.delete(address);
    handle.detach(this.#f);
  }

  retainUpstreams(addresses: Iterable<string>): void {
    const keep = new Set(addresses);
    for (const address of [...this.#upstreams.keys()]) {
      if (!keep.has(address)) this.removeUpstream(address);
    }
  }

  /** Removes every series of this service (and its upstreams) and detaches the handle. */
  detach(): void {
    this.#live = false;
    const f = this.#f;
    const service = this.service;
    for (const address of [...this.#upstreams.keys()]) this.removeUpstream(address);
    for (let slot = 0; slot < REQUEST_SLOTS; slot++) {
      if (this.#requests?.[slot] === undefined) continue;
      const labels = {
        service,
        method: METHOD_CLASSES[(slot / STATUS_CLASSES.length) | 0]!,
        status_class: STATUS_CLASSES[slot % STATUS_CLASSES.length]!,
      };
      f.requests.drop(labels);
      f.requestDuration.drop(labels);
    }
    const labels = { service };
    f.inflight.drop(labels);
    f.requestBytes.drop(labels);
    f.responseBytes.drop(labels);
    f.retries.drop(labels);
    f.discoveryErrors.drop(labels);
    f.errors.drop(labels);
    f.cacheRequests.drop(labels);
  }
}

/**
 * Creates a metrics set with its own registry. The proxy uses the shared
 * `metrics` instance below; tests may create isolated ones.
 */
export function createMetrics(options: CreateMetricsOptions = {}): ProxyMetrics {
  const registry = new Registry();
  const f = declareFamily(registry);
  const stopEventLoop =
    options.eventLoop === false ? () => {} : declareEventLoop(registry, options.eventLoopResolutionMs ?? 10);
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  const services = new Map<string, ServiceHandle>();
  const scrapeHooks: Array<() => void | Promise<void>> = [];
  const connections = f.openConnections;
  const reloadOk = f.configReloads.labels({ result: 'success' });
  const reloadFail = f.configReloads.labels({ result: 'failure' });
  reloadOk.inc(0);
  reloadFail.inc(0);

  const service = (name: string): ServiceHandle => {
    let handle = services.get(name);
    if (handle === undefined) {
      handle = new ServiceHandle(f, name);
      services.set(name, handle);
    }
    return handle;
  };

  const removeService = (name: string): void => {
    const handle = services.get(name);
    if (handle === undefined) return;
    services.delete(name);
    handle.detach();
  };

  return {
    registry,
    contentType: registry.contentType,
    service,
    removeService,
    retainServices(names: Iterable<string>): void {
      const keep = new Set(names);
      keep.add(UNROUTED_SERVICE);
      for (const name of [...services.keys()]) {
        if (!keep.has(name)) removeService(name);
      }
    },
    unroutedError(cause: ErrorCause): void {
      service(UNROUTED_SERVICE).error(cause);
    },
    connectionOpened(): void {
      connections.inc();
    },
    connectionClosed(): void {
      connections.dec();
    },
    setOpenConnections(count: number): void {
      connections.set(count);
    },
    setCacheSize(bytes: number, entries: number): void {
      f.cacheBytes.set(bytes);
      f.cacheEntries.set(entries);
    },
    cacheEvicted(count = 1): void {
      if (count > 0) f.cacheEvictions.inc(count);
    },
    configReload(success: boolean, at: Date = new Date()): void {
      if (success) {
        reloadOk.inc();
        f.configLastSuccess.set(at.getTime() / 1000);
      } else {
        reloadFail.inc();
      }
    },
    configLoaded(at: Date = new Date()): void {
      f.configLastSuccess.set(at.getTime() / 1000);
    },
    pluginError(plugin: string, hook: string): void {
      f.pluginErrors.inc({ plugin, hook });
    },
    tlsHandshakeError(reason: string): void {
      f.tlsHandshakeErrors.inc({ reason });
    },
    connectionRefused(listener: 'http' | 'https'): void {
      f.connectionsRefused.inc({ listener });
    },
    http2SessionCut(reason: string): void {
      f.http2SessionsCut.inc({ reason });
    },
    sharedCacheLookup(result): void {
      f.sharedCacheLookups.inc({ result });
    },
    sharedCacheWrite(result): void {
      f.sharedCacheWrites.inc({ result });
    },
    sharedCacheInvalidation(direction): void {
      f.sharedCacheInvalidations.inc({ direction });
    },
    setSharedCacheUp(up: boolean | undefined): void {
      if (up === undefined) f.sharedCacheUp.remove({ store: 'redis' });
      else f.sharedCacheUp.set({ store: 'redis' }, up ? 1 : 0);
    },
    beforeScrape(fn: () => void | Promise<void>): () => void {
      scrapeHooks.push(fn);
      return () => {
        const i = scrapeHooks.indexOf(fn);
        if (i >= 0) scrapeHooks.splice(i, 1);
      };
    },
    async metricsText(): Promise<string> {
      for (const fn of [...scrapeHooks]) await fn();
      return registry.metrics();
    },
    async metricsJSON(): Promise<MetricsJSON> {
      for (const fn of [...scrapeHooks]) await fn();
      return registry.getMetricsAsJSON();
    },
    close(): void {
      stopEventLoop();
    },
  };
}

/**
 * Describes every metric of a registry: names, types, label names and the
 * sample names they expose (`_bucket`/`_sum`/`_count` for histograms).
 */
export async function describeMetrics(registry: Registry): Promise<MetricDescription[]> {
  const json = await registry.getMetricsAsJSON();
  return json.map((m) => {
    const declared = (registry.getSingleMetric(m.name) as unknown as { labelNames?: readonly string[] } | undefined)
      ?.labelNames;
    const seen = new Set<string>(declared ?? []);
    for (const v of m.values) for (const k of Object.keys(v.labels)) if (k !== 'le' && k !== 'quantile') seen.add(k);
    const labelNames = [...seen].sort();
    const type = String(m.type) as MetricDescription['type'];
    let series: MetricDescription['series'];
    if (type === 'histogram') {
      series = [
        { name: `${m.name}_bucket`, labelNames: [...labelNames, 'le'] },
        { name: `${m.name}_sum`, labelNames },
        { name: `${m.name}_count`, labelNames },
      ];
    } else if (type === 'summary') {
      series = [
        { name: m.name, labelNames: [...labelNames, 'quantile'] },
        { name: `${m.name}_sum`, labelNames },
        { name: `${m.name}_count`, labelNames },
      ];
    } else {
      series = [{ name: m.name, labelNames }];
    }
    return { name: m.name, type, help: m.help, labelNames, series };
  });
}

// ---------------------------------------------------------------------------
// The proxy's shared instance
// ---------------------------------------------------------------------------

/** The metrics of this process; the request path uses this. */
export const metrics: ProxyMetrics = createMetrics();

/** The dedicated registry every KubeProxy metric is registered with. */
export const registry: Registry = metrics.registry;

/** Content-Type header value for `metricsText()`. */
export const METRICS_CONTENT_TYPE: string = metrics.contentType;

/** Text exposition of the process registry (body of GET /metrics). */
export function metricsText(): Promise<string> {
  return metrics.metricsText();
}
