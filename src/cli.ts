/**
 * `kubeproxy --config FILE`: validates the config (exit 2 with every problem listed), starts the
 * proxy, reloads on SIGHUP, drains on SIGTERM/SIGINT (at any moment, during the start too) and
 * exits 0.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from './config/load.ts';
import { watchConfig } from './config/watch.ts';
import type { Config } from './config/schema.ts';
import { log } from './log.ts';
import { Runtime, buildSnapshot } from './runtime.ts';
import { pluginBaseDir } from './plugins/load.ts';
import { workerCount } from './cluster/count.ts';
import { runPrimary } from './cluster/primary.ts';
import { isClusterWorker, runWorker } from './cluster/worker.ts';
import { BunMissing } from './runtime/bun-binary.ts';
import { currentRuntime, followParent, requestedRuntime, runOnBun } from './runtime/select.ts';

const HELP = `Usage: kubeproxy --config FILE [--check] [--runtime node|bun]

A reverse proxy that routes by Host header to load-balanced services, with an RFC 9111 cache,
health checks and Prometheus metrics.

Options:
  -c, --config FILE   YAML config file (default: $KUBEPROXY_CONFIG)
      --check         validate the config, print a summary and exit
      --runtime NAME  node (default) or bun: run on Bun, the optional dependency
                      (default: $KUBEPROXY_RUNTIME)
  -h, --help          show this help
  -v, --version       print the version

Exit codes: 0 stopped cleanly (or --check: the config is valid), 1 could not start or stop
cleanly, 2 invalid config (every problem listed), 64 usage error (e.g. no --config).

Signals: SIGHUP reloads the config (an invalid one is logged and the running one kept), as does
a change of the config file when proxy.watch is on (the default; Kubernetes ConfigMap updates
included); SIGTERM/SIGINT, at any moment (during the start too), fail readiness, drain in-flight
requests and exit 0.
Admin endpoints (proxy.admin, default 127.0.0.1:9901): /healthz /readyz /metrics /status, open;
POST /cache/purge needs "Authorization: Bearer <token>" (proxy.admin.token or tokenFile).
`;

export const EXIT_USAGE = 64;
export const EXIT_CONFIG = 2;

export async function main(argv: string[]): Promise<number> {
  // A worker forked by the cluster primary takes its config from the primary, not from argv.
  if (isClusterWorker()) return runWorker();
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        check: { type: 'boolean' },
        runtime: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`kubeproxy: ${(err as Error).message}\n\n${HELP}`);
    return EXIT_USAGE;
  }
  const runtime = requestedRuntime(args.runtime);
  if (typeof runtime === 'object') {
    process.stderr.write(`kubeproxy: ${runtime.error}\n\n${HELP}`);
    return EXIT_USAGE;
  }
  if (runtime === 'bun' && currentRuntime !== 'bun') {
    try {
      return await runOnBun(argv);
    } catch (err) {
      if (!(err instanceof BunMissing)) throw err;
      process.stderr.write(`kubeproxy: --runtime bun: ${err.message}\n`);
      return 1;
    }
  }
  if (currentRuntime === 'bun') followParent();
  if (runtime === 'node' && currentRuntime !== 'node') {
    process.stderr.write(`kubeproxy: --runtime node: this process runs on ${currentRuntime}; start it with node\n`);
    return EXIT_USAGE;
  }
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const path = args.config ?? process.env.KUBEPROXY_CONFIG;
  if (!path) {
    process.stderr.write(`kubeproxy: no config file: pass --config FILE or set KUBEPROXY_CONFIG\n\n${HELP}`);
    return EXIT_USAGE;
  }
  let config: Config;
  // The bytes the config is loaded from (read first): the file watcher compares the file with
  // them, so an edit made while the proxy starts is not missed.
  let loaded: Buffer | undefined;
  try {
    loaded = readFileSync(path);
  } catch {
    // loadConfigFile reports it.
  }
  try {
    config = loadConfigFile(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kubeproxy: ${err.message}\n`);
      return EXIT_CONFIG;
    }
    throw err;
  }
  if (args.check) {
    // Everything a start builds, plugins included (imported, their factories called, then closed).
    try {
      await (await buildSnapshot(config, pluginBaseDir(path))).plugins?.close();
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`kubeproxy: ${new ConfigError(err.problems, path).message}\n`);
        return EXIT_CONFIG;
      }
      throw err;
    }
    const p = config.proxy;
    const admin = p.admin.enabled ? `admin ${p.admin.address}:${p.admin.port} (${p.admin.token === undefined ? 'no token: purge disabled' : 'token set'})` : 'admin off';
    process.stdout.write(
      `config ${path} is valid: listen ${p.listen.address}:${p.listen.port}, ${admin}, ${p.services.length} service(s): ` +
        `${p.services.map((s) => `${s.name} (${s.hosts.length} host(s)${s.discovery ? ` + ${'dns' in s.discovery ? `dns ${s.discovery.dns}:${s.discovery.port}` : `endpointslices of ${s.discovery.kubernetes.service}:${s.discovery.kubernetes.port}`}` : ''})`).join(', ')}\n`,
    );
    return 0;
  }
  return run(config, path, loaded);
}

async function run(config: Config, path: string, loaded: Buffer | undefined): Promise<number> {
  // proxy.workers > 1 (or auto on a multi-core machine): this process becomes the cluster primary.
  const workers = workerCount(config.proxy.workers);
  if (workers > 1) return runPrimary(config, path, loaded, workers);
  // Signals are taken from here on, before the start: SIGTERM while the first DNS answers are
  // awaited stops the start, as it stops a running proxy.
  const stop = new AbortController();
  const onSignal = (signal: string) => () => {
    if (stop.signal.aborted) return;
    log.info({ signal }, 'signal received');
    stop.abort();
  };
  // Kept installed: a repeated signal changes nothing (the default action would kill the drain).
  process.on('SIGTERM', onSignal('SIGTERM'));
  process.on('SIGINT', onSignal('SIGINT'));
  // SIGHUP's default action ends the process: taken from the start too, and acted on once running.
  let runtime: Runtime | undefined;
  let reloadWhenStarted = false;
  process.on('SIGHUP', () => {
    if (runtime === undefined) reloadWhenStarted = true;
    else void runtime.reloadFromFile();
  });
  log.info({ config: path, services: config.proxy.services.length, runtime: currentRuntime }, 'kubeproxy starting');
  try {
    runtime = await Runtime.start(config, { configPath: path, signal: stop.signal });
  } catch (err) {
    // A plugin that cannot be loaded is an invalid config.
    if (err instanceof ConfigError) {
      process.stderr.write(`kubeproxy: ${new ConfigError(err.problems, path).message}\n`);
      return EXIT_CONFIG;
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`kubeproxy: cannot start: ${e.code === 'EADDRINUSE' ? `address already in use (${e.message})` : e.message}\n`);
    return 1;
  }
  const rt = runtime;
  if (reloadWhenStarted && !stop.signal.aborted) void rt.reloadFromFile();
  // `proxy.watch` is read at start: turning it on or off takes a restart.
  const watcher =
    config.proxy.watch && !stop.signal.aborted
      ? watchConfig(path, () => void rt.reloadFromFile(), {
          baseline: loaded,
          onError: (err) => log.warn({ err: err.message }, 'cannot watch the config file; SIGHUP still reloads'),
        })
      : undefined;
  stop.signal.addEventListener('abort', () => watcher?.close(), { once: true });
  if (!stop.signal.aborted) await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
  try {
    // The runtime started its shutdown on the same abort: this is that one shutdown's end.
    await rt.shutdown();
    return 0;
  } catch (err) {
    log.error({ err }, 'shutdown failed');
    return 1;
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

// Run when executed directly (bin/kubeproxy or `node src/cli.ts`), not when imported by tests.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`kubeproxy: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
