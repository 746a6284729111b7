/**
 * The plugin chains of one config snapshot: the proxy-level chain (every request) and, for each
 * service with plugins of its own, the proxy-level plugins followed by the service's. A snapshot
 * without plugins has no PluginSet at all, so the request path pays one `undefined` check.
 */
import type { Config } from '../config/schema.ts';
import { log } from '../log.ts';
import { metrics } from '../metrics/metrics.ts';
import type { HookName } from './api.ts';
import { PluginChain, type LoadedPlugin, type PluginFailureSink } from './chain.ts';
import { loadPlugins, type LoadedPlugins } from './load.ts';

/** Logs a failing hook with its error and counts kubeproxy_plugin_errors_total{plugin,hook}. */
const reportFailure: PluginFailureSink = (p: LoadedPlugin, hook: HookName, err: unknown) => {
  const e = err instanceof Error ? { message: err.message, stack: err.stack } : { message: String(err) };
  log.error({ plugin: p.plugin.name, where: p.where, hook, err: e }, 'plugin hook failed');
  metrics.pluginError(p.plugin.name, hook);
};

export class PluginSet {
  /** Proxy-level plugins; undefined when there are none (services may still have their own). */
  readonly proxy: PluginChain | undefined;
  private readonly services: ReadonlyMap<string, PluginChain>;

  private constructor(
    readonly loaded: LoadedPlugins,
    report: PluginFailureSink,
  ) {
    this.proxy = loaded.proxy.length > 0 ? new PluginChain(loaded.proxy, report) : undefined;
    const services = new Map<string, PluginChain>();
    for (const [name, own] of loaded.services) {
      if (own.length > 0) services.set(name, new PluginChain([...loaded.proxy, ...own], report, loaded.proxy.length));
    }
    this.services = services;
  }

  /** undefined when the config names no plugin. */
  static of(loaded: LoadedPlugins, report: PluginFailureSink = reportFailure): PluginSet | undefined {
    return loaded.size === 0 ? undefined : new PluginSet(loaded, report);
  }

  /** The chain for a routed request of `service`: its own plugins after the proxy-level ones. */
  forService(service: string): PluginChain | undefined {
    return this.services.get(service) ?? this.proxy;
  }

  /** The config is replaced or the proxy stops: plugins release what they hold. */
  close(): Promise<void> {
    return this.loaded.close();
  }
}

/**
 * The plugins `config` names, imported and made (a ConfigError names any broken one); undefined,
 * synchronously, when it names none, so a config without plugins builds without a Promise.
 */
export function loadPluginSet(config: Config, baseDir: string): Promise<PluginSet | undefined> | undefined {
  const { proxy } = config;
  if (proxy.plugins.length === 0 && proxy.services.every((s) => s.plugins.length === 0)) return undefined;
  return loadPlugins(config, baseDir).then((loaded) => PluginSet.of(loaded));
}
