/**
 * KubeProxy inside another Node.js program: `startProxy(config)` validates the config (an object
 * shaped like the YAML file, or the path of a file), loads its plugins, binds the ports and
 * returns a handle. No signal handler and no file watcher are installed: the embedding program
 * decides when to reload and stop.
 */
import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { ConfigError, loadConfigFile, validateConfig } from './config/load.ts';
import type { Config, configSchema } from './config/schema.ts';
import { Runtime } from './runtime.ts';

/** The config as written (durations like "5s" and sizes like "10MiB" included), before defaults. */
export type ProxyConfigInput = z.input<typeof configSchema>;

export interface StartOptions {
  /**
   * The directory plugin paths (`./plugins/auth.mjs`) are relative to, for a config given as an
   * object. Default: the working directory. A config file's paths are relative to its own directory.
   */
  baseDir?: string;
}

export interface ProxyHandle {
  /** The address and port the proxy listens on (the port the OS chose for `port: 0`). */
  readonly address: string;
  readonly port: number;
  /** The admin port (health, readiness, metrics), or undefined when `proxy.admin.enabled` is false. */
  readonly adminPort: number | undefined;
  /** The config in force, validated and with its defaults. */
  readonly config: Config;
  /**
   * Validates and swaps in a new config (plugins loaded first); rejects with a ConfigError and
   * keeps the running config when it is invalid. Without an argument a file-started proxy
   * re-reads its file. `proxy.listen` and `proxy.admin` cannot move (a restart can).
   */
  reload(config?: ProxyConfigInput): Promise<void>;
  /** Drains in-flight requests (up to `proxy.shutdown.drainTimeout`) and closes every port. */
  stop(): Promise<void>;
}

export async function startProxy(config: ProxyConfigInput | string, options: StartOptions = {}): Promise<ProxyHandle> {
  const first = readConfig(config);
  // Workers are processes forked by the CLI; an embedded proxy runs in its host's process.
  if (first.config.proxy.workers !== 1) {
    throw new ConfigError(['proxy.workers: an embedded proxy runs in this process; use the kubeproxy command for workers'], first.source);
  }
  const baseDir = first.path === undefined ? resolve(options.baseDir ?? process.cwd()) : dirname(first.path);
  const runtime = await Runtime.start(first.config, { configPath: first.path, pluginBaseDir: baseDir });
  const listen = runtime.listener.address();
  return {
    address: listen.address,
    port: listen.port,
    adminPort: runtime.admin?.address().port,
    get config() {
      return runtime.snapshot.config;
    },
    async reload(next) {
      if (next === undefined) {
        if (first.path === undefined) throw new TypeError('reload() needs a config: this proxy was not started from a file');
        return runtime.reload(loadConfigFile(first.path));
      }
      await runtime.reload(validateConfig(next, '<startProxy config>'));
    },
    stop: () => runtime.shutdown(),
  };
}

function readConfig(config: ProxyConfigInput | string): { config: Config; path: string | undefined; source: string } {
  if (typeof config === 'string') {
    const path = resolve(config);
    return { config: loadConfigFile(path), path, source: path };
  }
  return { config: validateConfig(config, '<startProxy config>'), path: undefined, source: '<startProxy config>' };
}
