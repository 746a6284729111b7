/**
 * The running proxy: the current config snapshot, the instance registry that outlives snapshots,
 * the client listener and the admin server; atomic reload and graceful shutdown.
 */
import type { Config } from './config/schema.ts';
import { loadConfigFile, ConfigError } from './config/load.ts';
import type { RequestContext } from './context.ts';
import type { ProxyError } from './errors.ts';
import { log, setLogLevel } from './log.ts';
import { Snapshot } from './snapshot.ts';
import { AdminServer } from './admin/server.ts';
import { Listener } from './server/listener.ts';
import { Pipeline, type PipelineHost } from './server/pipeline.ts';
import { UpgradeHandler } from './server/upgrade.ts';
import type { Instance } from './upstream/instance.ts';
import { InstanceRegistry } from './upstream/registry.ts';
import type { Service } from './upstream/service.ts';

export interface RuntimeOptions {
  /** File to reload from on SIGHUP / change; undefined for a config given in memory (tests). */
  configPath?: string | undefined;
}

export class Runtime implements PipelineHost {
  snapshot: Snapshot;
  draining = false;
  /** Requests in flight (all services). */
  inflight = 0;
  readonly registry = new InstanceRegistry();
  readonly pipeline: Pipeline;
  readonly upgrades: UpgradeHandler;
  readonly listener: Listener;
  readonly admin: AdminServer | undefined;
  readonly startedAt = Date.now();
  private readonly endListeners: Array<(ctx: RequestContext) => void> = [];
  private readonly attemptListeners: Array<(instance: Instance, service: Service, status: number, failure: ProxyError | undefined) => void> = [];

  private constructor(
    config: Config,
    readonly options: RuntimeOptions,
  ) {
    setLogLevel(config.proxy.log.level);
    this.registry.begin();
    this.snapshot = new Snapshot(config, this.registry);
    this.pipeline = new Pipeline(this);
    this.upgrades = new UpgradeHandler(this);
    this.listener = new Listener(this.pipeline, this.upgrades, config.proxy.client);
    this.admin = config.proxy.admin.enabled ? new AdminServer(this) : undefined;
  }

  static async start(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
    const rt = new Runtime(config, options);
    const { listen, admin } = config.proxy;
    await rt.listener.listen(listen.address, listen.port);
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
    this.registry.begin();
    const next = new Snapshot(config, this.registry);
    this.snapshot = next;
    this.registry.sweep(config.proxy.shutdown.drainTimeout);
    this.listener.applyClientConfig(config.proxy.client);
    setLogLevel(config.proxy.log.level);
    log.info({ services: config.proxy.services.length }, 'config reloaded');
  }

  /** Reloads from the config file; an invalid file is logged and the running config keeps serving. */
  reloadFromFile(): boolean {
    if (this.options.configPath === undefined) return false;
    try {
      this.reload(loadConfigFile(this.options.configPath));
      return true;
    } catch (err) {
      const message = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
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
    await this.registry.closeAll(1000);
    await this.admin?.close();
    log.info('stopped');
  }
}
