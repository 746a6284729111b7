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
import { AdminServer } from './admin/server.ts';
import { CacheLayer } from './cache/layer.ts';
import { registerPurgeRoutes } from './cache/purge.ts';
import { DnsDiscovery } from './discovery/dns.ts';
import { ActiveHealthChecker } from './health/active.ts';
import { OutlierDetector } from './health/passive.ts';
import { Observability } from './observability/wire.ts';
import { Listener } from './server/listener.ts';
import { Pipeline, type PipelineHost } from './server/pipeline.ts';
import { UpgradeHandler } from './server/upgrade.ts';
import type { Instance } from './upstream/instance.ts';
import { InstanceRegistry } from './upstream/registry.ts';
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
}

export class Runtime implements PipelineHost {
  snapshot: Snapshot;
  draining = false;
  /** Requests in flight (all services). */
  inflight = 0;
  readonly registry = new InstanceRegistry();
  /** DNS service discovery; outlives snapshots like the registry, so a reload keeps discovered sets. */
  readonly discovery: DnsDiscovery;
  /** Active health checks (services with `healthCheck`); probers outlive snapshots with their instances. */
  readonly health: ActiveHealthChecker;
  /** Passive outlier detection, fed by every attempt's end. */
  readonly outliers: OutlierDetector<Instance>;
  readonly pipeline: Pipeline;
  readonly upgrades: UpgradeHandler;
  readonly listener: Listener;
  readonly admin: AdminServer | undefined;
  /** The HTTP cache; outlives snapshots (a reload keeps the entries, see cache/layer.ts). */
  readonly cache: CacheLayer;
  /** Metrics, access log, GET /metrics; subscribes to the request and attempt ends. */
  readonly observability: Observability;
  readonly startedAt = Date.now();
  private readonly endListeners: Array<(ctx: RequestContext) => void> = [];
  private readonly attemptListeners: Array<(instance: Instance, service: Service, status: number, failure: ProxyError | undefined) => void> = [];

  private constructor(
    config: Config,
    readonly options: RuntimeOptions,
  ) {
    setLogLevel(config.proxy.log.level);
    this.discovery = new DnsDiscovery({ onChange: (service) => this.applyDiscovered(service) });
    this.discovery.configure(config.proxy);
    this.registry.begin();
    this.snapshot = new Snapshot(config, this.registry, (service) => this.discovery.hosts(service));
    this.cache = new CacheLayer(this, config.proxy.cache, this.snapshot.services.values());
    this.outliers = new OutlierDetector<Instance>({
      onEject: (i, service, ms, n) => log.warn({ service, instance: i.id, ejectedForMs: ms, ejectionsInARow: n }, 'instance ejected'),
      onReadmit: (i, service) => log.info({ service, instance: i.id }, 'instance readmitted'),
    });
    this.onAttemptEnd((instance, service, status, failure) => this.outliers.record(instance, service, status, failure));
    this.health = new ActiveHealthChecker({
      onChange: (i, service, healthy, r) =>
        healthy ? log.info({ service, instance: i.id }, 'instance healthy') : log.warn({ service, instance: i.id, probe: r?.detail }, 'instance unhealthy'),
    });
    this.pipeline = new Pipeline(this);
    this.upgrades = new UpgradeHandler(this);
    this.listener = new Listener(this.pipeline, this.upgrades, config.proxy.client);
    this.admin = config.proxy.admin.enabled ? new AdminServer(this) : undefined;
    this.observability = new Observability(this, config);
    if (this.admin) registerPurgeRoutes(this.admin, this);
    this.observability.setCacheStats(() => this.cache.stats());
  }

  static async start(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
    const rt = new Runtime(config, options);
    const { listen, admin } = config.proxy;
    // One resolution before listening, so discovered services have instances from the first request.
    await rt.discovery.start();
    rt.health.sync(rt.snapshot.services.values());
    await rt.listener.listen(listen.address, listen.port);
    if (options.worker !== undefined) {
      log.info({ listen: rt.listener.address(), services: config.proxy.services.length }, 'worker started');
      return rt;
    }
    if (rt.admin) await rt.admin.listen(admin.address, admin.port);
    log.info({ listen: rt.listener.address(), admin: rt.admin?.address(), services: config.proxy.services.length }, 'kubeproxy started');
    return rt;
  }

  /** Ready to take traffic: config loaded, listener bound, not draining. */
  get ready(): boolean {
    return !this.draining && this.listener.server.listening;
  }

  // PipelineHost
  requestEnded(ctx: RequestContext): void {
    this.inflight--;
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
   * Swaps in a new config. The snapshot is built before anything changes; requests already in
   * flight keep the snapshot they started with; instances that stay keep their state and pools.
   */
  reload(config: Config): void {
    const listenChanged =
      config.proxy.listen.port !== this.snapshot.config.proxy.listen.port || config.proxy.listen.address !== this.snapshot.config.proxy.listen.address;
    if (listenChanged) log.warn('proxy.listen changed: a restart is needed to move the listener; the old address keeps serving');
    this.discovery.configure(config.proxy);
    this.registry.begin();
    const next = new Snapshot(config, this.registry, (service) => this.discovery.hosts(service));
    this.snapshot = next;
    this.cache.reload(config.proxy.cache, next.services.values());
    this.registry.sweep(config.proxy.shutdown.drainTimeout);
    this.health.sync(next.services.values());
    this.listener.applyClientConfig(config.proxy.client);
    setLogLevel(config.proxy.log.level);
    this.observability.reloaded(config);
    log.info({ services: config.proxy.services.length }, 'config reloaded');
  }

  /**
   * Service discovery found a new address set for `name`: the service's instances become its
   * static hosts plus the discovered ones. Pods that stay keep their Instance (health, pool);
   * pods that left take no new requests and close once their in-flight ones finish.
   */
  private applyDiscovered(name: string): void {
    const service = this.snapshot.services.get(name);
    if (service === undefined) return;
    const hosts = serviceHosts(service.config.hosts, this.discovery.hosts(name));
    const { instances } = this.registry.replace(service, hosts, this.snapshot.config.proxy.shutdown.drainTimeout);
    service.instances = instances;
    this.health.sync(this.snapshot.services.values());
  }

  /** Reloads from the config file; an invalid file is logged and the running config keeps serving. */
  reloadFromFile(): boolean {
    if (this.options.configPath === undefined) return false;
    try {
      this.reload(loadConfigFile(this.options.configPath));
      return true;
    } catch (err) {
      const message = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
      this.observability.reloadFailed();
      log.error({ err: message }, 'config reload failed; keeping the running config');
      return false;
    }
  }

  /**
   * SIGTERM: readiness fails at once, serving goes on for `shutdown.delay` (so Kubernetes removes
   * the endpoint), then the listener stops accepting and in-flight requests get `drainTimeout`.
   */
  async shutdown(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const { delay, drainTimeout } = this.snapshot.config.proxy.shutdown;
    log.info({ delay, drainTimeout }, 'shutting down');
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    await this.listener.drain(drainTimeout, () => this.inflight > 0 || this.upgrades.open.size > 0);
    this.outliers.stop();
    await this.health.stop();
    this.discovery.close();
    await this.registry.closeAll(1000);
    await this.admin?.close();
    await this.observability.close();
    log.info('stopped');
  }
}
