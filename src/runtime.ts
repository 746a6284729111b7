/**
 * The running proxy: the current config snapshot, the instance registry that outlives snapshots,
 * the client listener and the admin server; atomic reload and graceful shutdown.
 */
import type { Config } from './config/schema.ts';
import { loadConfigFile, ConfigError } from './config/load.ts';
import type { RequestContext } from './context.ts';
import type { ProxyError } from './errors.ts';
import { log, setLogLevel } from './log.ts';
import { Snapshot, serviceHosts } from './snapshot.ts';
import { AdminServer, type AdminHost } from './admin/server.ts';
import { proxyStatus } from './admin/status.ts';
import { CacheLayer } from './cache/layer.ts';
import { registerPurgeRoutes } from './cache/purge.ts';
import { DnsDiscovery } from './discovery/dns.ts';
import { KubernetesDiscovery } from './discovery/kubernetes.ts';
import { ActiveHealthChecker } from './health/active.ts';
import { OutlierDetector } from './health/passive.ts';
import { LiveStatus } from './observability/live-status.ts';
import { Observability } from './observability/wire.ts';
import { httpsRedirect } from './server/https-redirect.ts';
import type { ClientFront } from './server/client-front.ts';
import { plainFront } from './server/front.ts';
import { Pipeline, type PipelineHost } from './server/pipeline.ts';
import { TlsListener } from './server/tls.ts';
import { UpgradeHandler } from './server/upgrade.ts';
import { pluginBaseDir } from './plugins/load.ts';
import { loadPluginSet } from './plugins/set.ts';
import type { Instance } from './upstream/instance.ts';
import { InstanceRegistry, type HostSpec } from './upstream/registry.ts';
import type { Service } from './upstream/service.ts';

export interface RuntimeOptions {
  /** File to reload from on SIGHUP / change; undefined for a config given in memory (tests). */
  configPath?: string | undefined;
  /**
   * Set in a cluster worker (src/cluster/worker.ts), to its id: the admin routes are built but
   * not listened on (the primary serves the admin port and forwards to them), and the start is
   * logged as 'worker started'.
   */
  worker?: number | undefined;
  /**
   * Stops the proxy when aborted (the CLI's SIGTERM/SIGINT): during the start too, which then
   * stops waiting for service discovery and resolves with a runtime that does not serve.
   */
  signal?: AbortSignal | undefined;
  /** Where plugin paths of the config resolve from; default: the config file's directory, or the working directory. */
  pluginBaseDir?: string | undefined;
}

/**
 * Builds everything a config needs before any live state changes (validate-then-swap): services,
 * router, trusted proxies. An error here leaves the running proxy untouched. This is the one
 * place for async build steps (loading plugins): it may return a promise.
 */
export function buildSnapshot(config: Config, pluginDir: string = process.cwd()): Snapshot | Promise<Snapshot> {
  const loading = loadPluginSet(config, pluginDir);
  // No plugin configured: nothing to import, and the build stays synchronous.
  if (loading === undefined) return new Snapshot(config);
  return loading.then((plugins) => {
    try {
      return new Snapshot(config, plugins);
    } catch (err) {
      void plugins?.close();
      throw err;
    }
  });
}

/** The directory a runtime's plugin paths resolve from. */
function pluginDirOf(options: RuntimeOptions): string {
  return options.pluginBaseDir ?? pluginBaseDir(options.configPath);
}

export class Runtime implements PipelineHost, AdminHost {
  snapshot: Snapshot;
  draining = false;
  /** Requests in flight (all services). */
  inflight = 0;
  readonly registry = new InstanceRegistry();
  /** DNS service discovery; outlives snapshots like the registry, so a reload keeps discovered sets. */
  readonly discovery: DnsDiscovery;
  /** EndpointSlice discovery (discovery.kubernetes); outlives snapshots like `discovery`. */
  readonly kubernetes: KubernetesDiscovery;
  /** Active health checks (services with `healthCheck`); probers outlive snapshots with their instances. */
  readonly health: ActiveHealthChecker;
  /** Passive outlier detection, fed by every attempt's end. */
  readonly outliers: OutlierDetector<Instance>;
  readonly pipeline: Pipeline;
  readonly upgrades: UpgradeHandler;
  /** The plain HTTP port (node:http; Bun.serve on Bun with KUBEPROXY_BUN_FRONT=serve: server/front.ts). */
  readonly listener: ClientFront;
  /** The HTTPS listener (`proxy.tls`); its presence is read at start only. */
  readonly tls: TlsListener | undefined;
  readonly admin: AdminServer | undefined;
  /** The HTTP cache; outlives snapshots (a reload keeps the entries, see cache/layer.ts). */
  readonly cache: CacheLayer;
  /** Metrics, access log, GET /metrics; subscribes to the request and attempt ends. */
  readonly observability: Observability;
  /** The status page's figures: each service's last minute, instances' last errors, reloads. */
  readonly live: LiveStatus;
  readonly startedAt = Date.now();
  private stopping: Promise<void> | undefined;
  /** The start in progress (discovery, listen); a shutdown during it waits for it to give up. */
  private starting: Promise<void> | undefined;
  /** When in-flight requests are cut (shutdown: drain start + drainTimeout); 0 before. */
  private cutAt = 0;
  /** Reloads started; an async build that finishes after a newer reload began is dropped. */
  private reloads = 0;
  private readonly endListeners: Array<(ctx: RequestContext) => void> = [];
  private readonly attemptListeners: Array<(instance: Instance, service: Service, status: number, failure: ProxyError | undefined) => void> = [];

  private constructor(
    snapshot: Snapshot,
    readonly options: RuntimeOptions,
  ) {
    const config = snapshot.config;
    setLogLevel(config.proxy.log.level);
    this.discovery = new DnsDiscovery({ onChange: (service) => this.applyDiscovered(service) });
    this.discovery.configure(config.proxy);
    this.kubernetes = new KubernetesDiscovery({ onChange: (service) => this.applyDiscovered(service) });
    this.kubernetes.configure(config.proxy);
    this.snapshot = this.attach(snapshot);
    this.cache = new CacheLayer(this, config.proxy.cache, this.snapshot.services.values());
    this.outliers = new OutlierDetector<Instance>({
      onEject: (i, service, ms, n, reason) =>
        reason === 'unreachable'
          ? log.warn({ service, instance: i.id }, 'instance unreachable: out of rotation until it accepts a connection')
          : log.warn({ service, instance: i.id, ejectedForMs: ms, ejectionsInARow: n }, 'instance ejected'),
      onReadmit: (i, service) => log.info({ service, instance: i.id }, 'instance readmitted'),
    });
    this.onAttemptEnd((instance, service, status, failure) => this.outliers.record(instance, service, status, failure));
    this.health = new ActiveHealthChecker({
      onChange: (i, service, healthy, r) =>
        healthy ? log.info({ service, instance: i.id }, 'instance healthy') : log.warn({ service, instance: i.id, probe: r?.detail }, 'instance unhealthy'),
    });
    this.pipeline = new Pipeline(this);
    this.upgrades = new UpgradeHandler(this);
    const tls = config.proxy.tls;
    this.tls =
      tls === undefined
        ? undefined
        : new TlsListener(this.pipeline, this.upgrades, config.proxy.client, tls, {
            handshakeError: (reason) => this.observability.metrics.tlsHandshakeError(reason),
            sessionCut: (reason) => this.observability.metrics.http2SessionCut(reason),
          });
    const plain = tls?.redirectHttp === true ? httpsRedirect(() => this.tls!.address().port) : this.pipeline;
    this.listener = plainFront(plain, this.upgrades, config.proxy.client, options.worker !== undefined);
    this.admin = config.proxy.admin.enabled ? new AdminServer(this) : undefined;
    this.observability = new Observability(this, config);
    this.live = new LiveStatus(this);
    if (this.admin) {
      this.admin.route('GET /metrics', this.observability.metricsRoute);
      registerPurgeRoutes(this.admin, this);
    }
    this.observability.setCacheStats(() => this.cache.stats());
  }

  /**
   * Starts the proxy: one DNS resolution (so discovered services have instances from the first
   * request), then the listener and the admin port. An abort of `options.signal` at any moment
   * starts the shutdown; during the start, the start gives up and resolves with the stopped runtime.
   */
  static async start(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
    const rt = new Runtime(await buildSnapshot(config, pluginDirOf(options)), options);
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) void rt.shutdown();
      else signal.addEventListener('abort', () => void rt.shutdown(), { once: true });
    }
    rt.starting = rt.begin();
    await rt.starting;
    return rt;
  }

  private async begin(): Promise<void> {
    const { listen, admin, services, tls } = this.snapshot.config.proxy;
    await Promise.all([this.discovery.start(), this.kubernetes.start()]);
    if (this.draining) return;
    this.health.sync(this.snapshot.services.values());
    await this.listener.listen(listen.address, listen.port);
    if (this.tls !== undefined && tls !== undefined) await this.tls.listen(tls.listen.address, tls.listen.port);
    if (this.draining) return;
    if (this.options.worker !== undefined) {
      log.info({ listen: this.listener.address(), tls: this.tls?.address(), services: services.length }, 'worker started');
      return;
    }
    if (this.admin) await this.admin.listen(admin.address, admin.port);
    log.info({ listen: this.listener.address(), tls: this.tls?.address(), admin: this.admin?.address(), services: services.length }, 'kubeproxy started');
  }

  /** The token state-changing admin endpoints need (admin/auth.ts); config/load.ts reads tokenFile into it. */
  get adminToken(): string | undefined {
    return this.snapshot.config.proxy.admin.token;
  }

  /** GET /status (also asked by the cluster primary from each worker). */
  status(): unknown {
    return proxyStatus(this);
  }

  /** Ready to take traffic: config loaded, listener bound, not draining. */
  get ready(): boolean {
    return !this.draining && this.listener.listening && (this.tls === undefined || this.tls.listening);
  }

  // PipelineHost
  requestEnded(ctx: RequestContext): void {
    this.inflight--;
    // Cut by the drain deadline, not by the client: its own cause in the log and the metrics.
    if (this.cutAt > 0 && ctx.errorCause === 'client_abort' && Date.now() >= this.cutAt) {
      ctx.errorCause = 'drain_timeout';
      ctx.errorMessage = 'cut when shutdown.drainTimeout ran out';
    }
    for (const fn of this.endListeners) fn(ctx);
  }

  attemptEnded(instance: Instance, service: Service, status: number, failure: ProxyError | undefined): void {
    for (const fn of this.attemptListeners) fn(instance, service, status, failure);
  }

  onRequestEnd(fn: (ctx: RequestContext) => void): void {
    this.endListeners.push(fn);
  }

  onAttemptEnd(fn: (instance: Instance, service: Service, status: number, failure: ProxyError | undefined) => void): void {
    this.attemptListeners.push(fn);
  }

  /**
   * Swaps in a new config, validate-then-swap: the whole new snapshot is built first
   * (`buildSnapshot`, which may be async); an error there rejects and changes nothing. Only then
   * do discovery, instances and pools, the cache, health checks and the listener take the new
   * config, in one synchronous step. Requests already in flight keep the snapshot they started
   * with; instances that stay keep their state and pools. When the build is synchronous (no
   * async step configured) the swap is done when this returns.
   */
  reload(config: Config): Promise<void> {
    const generation = ++this.reloads;
    let built: Snapshot | Promise<Snapshot>;
    try {
      built = buildSnapshot(config, pluginDirOf(this.options));
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (!(built instanceof Promise)) {
      this.swap(built);
      return Promise.resolve();
    }
    return built.then((next) => {
      if (generation !== this.reloads || this.draining) {
        // Never goes live: its plugins release what they hold.
        void next.plugins?.close();
        if (generation !== this.reloads) log.info('config reload superseded by a newer one');
        return;
      }
      this.swap(next);
    });
  }

  /** The commit step of a reload: everything here applies a snapshot already built. */
  private swap(next: Snapshot): void {
    const config = next.config;
    const listenChanged =
      config.proxy.listen.port !== this.snapshot.config.proxy.listen.port || config.proxy.listen.address !== this.snapshot.config.proxy.listen.address;
    if (listenChanged) log.warn('proxy.listen changed: a restart is needed to move the listener; the old address keeps serving');
    this.discovery.configure(config.proxy);
    this.kubernetes.configure(config.proxy);
    const replaced = this.snapshot.plugins;
    this.snapshot = this.attach(next);
    // Requests in flight may still run hooks of the replaced plugins; close() tells them no new request will.
    if (replaced !== undefined && replaced !== next.plugins) void replaced.close();
    this.cache.reload(config.proxy.cache, next.services.values());
    this.registry.sweep(config.proxy.shutdown.drainTimeout);
    this.health.sync(next.services.values());
    this.listener.applyClientConfig(config.proxy.client);
    if (config.proxy.tls !== undefined) this.tls?.configure(config.proxy.client, config.proxy.tls);
    if ((config.proxy.tls === undefined) !== (this.tls === undefined)) log.warn('proxy.tls added or removed: a restart is needed to start or stop the TLS listener');
    setLogLevel(config.proxy.log.level);
    this.observability.reloaded(config);
    this.live.config.reloaded();
    log.info({ services: config.proxy.services.length }, 'config reloaded');
  }

  /** Gives the snapshot's services their instances from the registry (kept ones keep their state and pools). */
  private attach(snapshot: Snapshot): Snapshot {
    this.registry.begin();
    snapshot.attach(this.registry, (service) => this.discovered(service));
    return snapshot;
  }

  /**
   * Service discovery found a new address set for `name`: the service's instances become its
   * static hosts plus the discovered ones. Pods that stay keep their Instance (health, pool);
   * pods that left take no new requests and close once their in-flight ones finish.
   */
  /** Instances found by DNS or EndpointSlice discovery (a service has one or the other). */
  private discovered(name: string): HostSpec[] {
    return [...this.discovery.hosts(name), ...this.kubernetes.hosts(name)];
  }

  private applyDiscovered(name: string): void {
    const service = this.snapshot.services.get(name);
    if (service === undefined) return;
    const hosts = serviceHosts(service.config.hosts, this.discovered(name));
    const { instances } = this.registry.replace(service, hosts, this.snapshot.config.proxy.shutdown.drainTimeout);
    service.instances = instances;
    this.health.sync(this.snapshot.services.values());
  }

  /** Reloads from the config file; an invalid file is logged and the running config keeps serving. */
  async reloadFromFile(): Promise<boolean> {
    if (this.options.configPath === undefined) return false;
    try {
      await this.reload(loadConfigFile(this.options.configPath));
      return true;
    } catch (err) {
      const message = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
      this.observability.reloadFailed();
      this.live.config.failed(message);
      log.error({ err: message }, 'config reload failed; keeping the running config');
      return false;
    }
  }

  /**
   * SIGTERM: readiness fails at once, serving goes on for `shutdown.delay` (so Kubernetes removes
   * the endpoint), then the listener stops accepting and in-flight requests get `drainTimeout`;
   * those still running then are cut (cause `drain_timeout`). During the start, the start stops
   * waiting for service discovery and nothing is bound after it. Every call returns the same promise.
   */
  shutdown(): Promise<void> {
    this.stopping ??= this.stop();
    return this.stopping;
  }

  private async stop(): Promise<void> {
    this.draining = true;
    const { delay, drainTimeout } = this.snapshot.config.proxy.shutdown;
    log.info({ delay, drainTimeout }, 'shutting down');
    if (this.starting !== undefined && !this.listener.listening) {
      // Not serving yet: no endpoint to take out of rotation, no DNS answer worth waiting for.
      this.discovery.close();
      this.kubernetes.close();
      await this.starting.catch(() => {});
    } else {
      await this.starting?.catch(() => {});
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    }
    this.cutAt = Date.now() + drainTimeout;
    const busy = (): boolean => this.inflight > 0 || this.upgrades.open.size > 0;
    await Promise.all([this.listener.drain(drainTimeout, busy), this.tls?.drain(drainTimeout, busy)]);
    this.outliers.stop();
    await this.health.stop();
    this.discovery.close();
    this.kubernetes.close();
    await this.registry.closeAll(1000);
    await this.admin?.close();
    await this.observability.close();
    await this.snapshot.plugins?.close();
    this.cache.close();
    log.info('stopped');
  }
}
