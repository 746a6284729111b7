/**
 * The cluster primary, for `proxy.workers` > 1 (or `auto`): forks the workers (each a Runtime
 * with its own pools on the shared listen socket, see worker.ts), serves the admin port for all
 * of them (admin.ts), and owns reloads, restarts and the drain. It serves no proxy traffic.
 *
 * - Start: every worker gets the config text the primary validated; `kubeproxy started` is
 *   logged (and the admin port bound) once all of them listen. A worker that fails to start
 *   stops the others, and the process exits 1 with the worker's reason, as a single process would.
 * - Reload (SIGHUP, or a change of the file when proxy.watch is on): the file is validated here
 *   once; an invalid one is logged and counted and no worker hears of it; a valid one is sent
 *   to every worker. `proxy.workers` and `proxy.admin` are read at start only (a change is
 *   logged: it takes a restart).
 * - A worker that exits while the proxy is not shutting down is replaced after a back-off
 *   (250 ms, doubling to 30 s for a worker that keeps failing; a worker that stayed up 30 s
 *   resets it). Readiness fails until every slot has a ready worker again.
 * - SIGTERM/SIGINT, at any moment (while the workers start too): readiness fails at once, every worker drains (`shutdown.delay`, then
 *   `drainTimeout` for in-flight requests), and the primary exits 0 once all of them exited;
 *   workers still running after delay + drainTimeout + 5 s are killed and the exit code is 1.
 *
 * Kubernetes sends SIGTERM to PID 1 only, the primary (the image runs node in exec form), which
 * orders the drain over IPC; a signal sent to the whole process group (Ctrl-C in a terminal)
 * reaches the workers too, and each drains once either way.
 */
import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, parseConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { watchConfig, type ConfigWatcher } from '../config/watch.ts';
import { log, setLogLevel } from '../log.ts';
import { metrics } from '../metrics/metrics.ts';
import { withV8Flags } from '../v8-flags.ts';
import { ConfigHistory } from '../observability/live-status.ts';
import { ClusterAdmin, type ClusterHost } from './admin.ts';
import { workerCount } from './count.ts';
import { WORKER_ENV, isFromWorker, type FromWorker, type ToWorker } from './messages.ts';
import type { SlotState, WorkerSlot } from './slot.ts';

/** The CLI module next to this one (cli.ts from src, cli.js from dist): what workers run. */
const CLI_ENTRY = fileURLToPath(new URL(`../cli${extname(fileURLToPath(import.meta.url))}`, import.meta.url));

const RESTART_BASE_MS = 250;
const RESTART_MAX_MS = 30_000;
/** A worker that was ready this long before exiting starts the back-off over. */
const STABLE_MS = 30_000;
/** Time past delay + drainTimeout for a worker to close its pools and exit. */
const EXIT_MARGIN_MS = 5_000;
const RELOAD_TIMEOUT_MS = 10_000;

interface Pending {
  worker: Worker;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export async function runPrimary(config: Config, path: string, loaded: Buffer | undefined, count: number): Promise<number> {
  const text = loaded?.toString('utf8') ?? readFileSync(path, 'utf8');
  return new ClusterPrimary(config, text, path, count).run(loaded);
}

/** A port the OS picks as free on `address` (bound, then released for the workers to bind). */
function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: address, port: 0 }, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

class ClusterPrimary implements ClusterHost {
  readonly slots: WorkerSlot[];
  readonly startedAt = Date.now();
  /** For /status: when the running config was loaded, the last reload error. */
  readonly reloads = new ConfigHistory();
  draining = false;
  private admin: ClusterAdmin | undefined;
  private watcher: ConfigWatcher | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Set while starting: called with a reason when a worker could not start, or undefined when all are ready. */
  private startup: ((failure: string | undefined) => void) | undefined;
  private allExited: (() => void) | undefined;
  private stopping: Promise<number> | undefined;
  /** The listen addresses (plain, TLS) as the first worker bound them. */
  private listenAt: { address: string; port: number } | undefined;
  private tlsAt: { address: string; port: number } | undefined;
  /** For `listen.port: 0` and `tls.listen.port: 0`: the ports picked for every worker (see the `start` message). */
  private sharedPort: number | undefined;
  private sharedTlsPort: number | undefined;

  constructor(
    private config: Config,
    private configText: string,
    private readonly path: string,
    count: number,
  ) {
    this.slots = Array.from({ length: count }, (_, index) => ({
      index,
      worker: undefined,
      state: 'exited' as SlotState,
      connected: false,
      restarts: 0,
      crashesInARow: 0,
      readyAt: undefined,
      failure: undefined,
      restartTimer: undefined,
    }));
  }

  get metricsEnabled(): boolean {
    return this.config.proxy.metrics.enabled;
  }

  get adminToken(): string | undefined {
    return this.config.proxy.admin.token;
  }

  async run(loaded: Buffer | undefined): Promise<number> {
    setLogLevel(this.config.proxy.log.level);
    // Workers run the CLI module itself (not process.argv[1], which may be a wrapper or a test runner).
    // Workers get the V8 flags even when the primary was started without them (see v8-flags.ts).
    cluster.setupPrimary({ exec: CLI_ENTRY, args: ['--config', this.path], execArgv: withV8Flags(process.execArgv) });
    const { listen, tls } = this.config.proxy;
    try {
      if (listen.port === 0) this.sharedPort = await freePort(listen.address);
      if (tls !== undefined && tls.listen.port === 0) this.sharedTlsPort = await freePort(tls.listen.address);
    } catch (err) {
      process.stderr.write(`kubeproxy: cannot start: ${(err as Error).message}\n`);
      return 1;
    }
    log.info({ config: this.path, workers: this.slots.length, services: this.config.proxy.services.length }, 'kubeproxy starting');
    // Signals are taken from before the first fork: SIGTERM while workers start drains them.
    // Kept installed: a repeated signal changes nothing (the default action would kill the drain).
    const signalled = new Promise<string>((resolve) => {
      process.on('SIGTERM', () => resolve('SIGTERM'));
      process.on('SIGINT', () => resolve('SIGINT'));
    });
    // SIGHUP's default action ends the process; a reload while workers start reaches them too
    // (workers that said hello get it, later ones start on the new text).
    process.on('SIGHUP', () => this.reloadFromFile());
    const started = new Promise<string | undefined>((resolve) => {
      this.startup = resolve;
      for (const slot of this.slots) this.fork(slot);
    });
    const first = await Promise.race([started.then((failure) => ({ failure })), signalled.then((signal) => ({ signal }))]);
    this.startup = undefined;
    if ('signal' in first) return this.shutdown(first.signal);
    if (first.failure !== undefined) return this.abort(first.failure);

    const { admin } = this.config.proxy;
    if (admin.enabled) {
      this.admin = new ClusterAdmin(this);
      try {
        await this.admin.listen(admin.address, admin.port);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        return this.abort(e.code === 'EADDRINUSE' ? `admin address already in use (${e.message})` : e.message);
      }
    }
    metrics.configLoaded();
    log.info(
      {
        listen: this.listenAt,
        tls: this.tlsAt,
        admin: this.admin?.address(),
        workers: this.slots.length,
        cacheMaxSizePerWorker: Math.floor(this.config.proxy.cache.maxSize / this.slots.length),
        services: this.config.proxy.services.length,
      },
      'kubeproxy started',
    );

    // `proxy.watch` is read at start: turning it on or off takes a restart.
    if (this.config.proxy.watch) {
      this.watcher = watchConfig(this.path, () => this.reloadFromFile(), {
        baseline: loaded,
        onError: (err) => log.warn({ err: err.message }, 'cannot watch the config file; SIGHUP still reloads'),
      });
    }
    return this.shutdown(await signalled);
  }

  // ---- workers ---------------------------------------------------------------------------------

  private fork(slot: WorkerSlot): void {
    const worker = cluster.fork({ [WORKER_ENV]: '1' });
    slot.worker = worker;
    slot.state = 'starting';
    slot.connected = false;
    slot.readyAt = undefined;
    slot.failure = undefined;
    worker.on('message', (m: unknown) => {
      if (isFromWorker(m)) this.onMessage(slot, worker, m);
    });
    worker.on('error', (err) => log.warn({ worker: worker.id, err: err.message }, 'worker IPC error'));
    worker.once('exit', (code, signal) => this.onExit(slot, worker, code, signal));
  }

  private onMessage(slot: WorkerSlot, worker: Worker, m: FromWorker): void {
    if (slot.worker !== worker) return;
    switch (m.kubeproxy) {
      case 'hello':
        slot.connected = true;
        // A worker forked just before the drain began stops at once.
        this.send(worker, this.draining ? { kubeproxy: 'drain' } : { kubeproxy: 'start', configText: this.configText, source: this.path, port: this.sharedPort, tlsPort: this.sharedTlsPort, workers: this.slots.length });
        return;
      case 'ready':
        slot.state = 'ready';
        slot.readyAt = Date.now();
        this.listenAt ??= m.listen;
        this.tlsAt ??= m.tls;
        if (this.startup !== undefined) {
          if (this.slots.every((s) => s.state === 'ready')) this.startup(undefined);
        } else {
          log.info({ worker: worker.id, workerPid: worker.process.pid, restarts: slot.restarts }, 'worker replaced');
        }
        return;
      case 'failed':
        slot.failure = m.message;
        log.error({ worker: worker.id, err: m.message }, 'worker could not start');
        return;
      case 'draining':
        slot.state = 'draining';
        return;
      case 'reply': {
        const p = this.pending.get(m.id);
        if (p === undefined) return;
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.ok) p.resolve(m.value);
        else p.reject(new Error(m.error));
        return;
      }
    }
  }

  private onExit(slot: WorkerSlot, worker: Worker, code: number | null, signal: string | null): void {
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new Error(`worker ${worker.id} exited`));
    }
    if (slot.worker !== worker) return;
    const was = slot.state;
    slot.worker = undefined;
    slot.state = 'exited';
    slot.connected = false;
    const fields = { worker: worker.id, workerPid: worker.process.pid, code, signal };
    void this.admin?.retire(worker.id, !this.draining);
    if (this.draining) {
      log.info(fields, 'worker stopped');
      if (this.slots.every((s) => s.worker === undefined)) this.allExited?.();
      return;
    }
    if (this.startup !== undefined) {
      this.startup(slot.failure ?? `worker ${worker.id} exited (${signal ?? `code ${code}`}) before it was ready`);
      return;
    }
    if (slot.readyAt !== undefined && Date.now() - slot.readyAt >= STABLE_MS) slot.crashesInARow = 0;
    slot.crashesInARow++;
    const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** (slot.crashesInARow - 1));
    log.warn(
      { ...fields, restartInMs: delay },
      was === 'draining' ? 'worker drained on a signal sent to it alone; starting a new one' : 'worker exited unexpectedly; restarting it',
    );
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.draining) return;
      slot.restarts++;
      this.fork(slot);
    }, delay);
  }

  private send(worker: Worker, message: ToWorker): boolean {
    if (!worker.isConnected()) return false;
    try {
      worker.send(message);
      return true;
    } catch {
      // The channel closed: the exit handler follows.
      return false;
    }
  }

  /** Sends `build(id)` to the worker of `slot` and resolves with its reply, or rejects after `timeoutMs`. */
  request(slot: WorkerSlot, build: (id: number) => ToWorker, timeoutMs: number): Promise<unknown> {
    const worker = slot.worker;
    if (worker === undefined || !slot.connected) return Promise.reject(new Error(`worker slot ${slot.index} has no running worker`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker ${worker.id} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { worker, resolve, reject, timer });
      if (!this.send(worker, build(id))) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new Error(`worker ${worker.id} is not connected`));
      }
    });
  }

  /** Startup failed: stop the workers already running, report like the single process does. */
  private async abort(reason: string): Promise<number> {
    // No restarts from here on.
    this.draining = true;
    const exits = this.slots.flatMap((s) => (s.worker === undefined ? [] : [new Promise((r) => s.worker!.once('exit', r))]));
    for (const s of this.slots) s.worker?.process.kill('SIGKILL');
    await Promise.all(exits);
    await this.admin?.close();
    process.stderr.write(`kubeproxy: cannot start: ${reason}\n`);
    return 1;
  }

  // ---- reload ----------------------------------------------------------------------------------

  reloadFromFile(): void {
    if (this.draining) return;
    let text: string;
    let next: Config;
    try {
      try {
        text = readFileSync(this.path, 'utf8');
      } catch (err) {
        throw new ConfigError([`cannot read file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`], this.path);
      }
      next = parseConfig(text, this.path);
    } catch (err) {
      const message = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
      metrics.configReload(false);
      this.reloads.failed(message);
      log.error({ err: message }, 'config reload failed; keeping the running config');
      return;
    }
    const prev = this.config.proxy;
    const wanted = workerCount(next.proxy.workers);
    if (wanted !== this.slots.length) {
      log.warn({ running: this.slots.length, configured: next.proxy.workers }, 'proxy.workers changed: a restart is needed to change the number of workers');
    }
    const a = prev.admin;
    const b = next.proxy.admin;
    if (a.enabled !== b.enabled || a.address !== b.address || a.port !== b.port) {
      log.warn('proxy.admin changed: a restart is needed to move the admin listener; the old one keeps serving');
    }
    this.config = next;
    this.configText = text;
    setLogLevel(next.proxy.log.level);
    metrics.configReload(true);
    this.reloads.reloaded();
    const targets = this.slots.filter((s) => s.connected && s.worker !== undefined);
    void Promise.allSettled(
      targets.map((s) => this.request(s, (id) => ({ kubeproxy: 'reload', id, configText: text, source: this.path }), RELOAD_TIMEOUT_MS)),
    ).then((results) => {
      const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ slot: targets[i]!.index, err: (r.reason as Error).message }] : []));
      if (failed.length === 0) log.info({ workers: targets.length, services: next.proxy.services.length }, 'config reloaded in every worker');
      else log.error({ failed }, 'config reload failed in some workers');
    });
  }

  // ---- shutdown --------------------------------------------------------------------------------

  shutdown(signal: string): Promise<number> {
    this.stopping ??= this.drain(signal);
    return this.stopping;
  }

  private async drain(signal: string): Promise<number> {
    this.draining = true;
    const live = this.slots.filter((s) => s.worker !== undefined);
    log.info({ signal, workers: live.length }, 'shutting down');
    this.watcher?.close();
    for (const s of this.slots) clearTimeout(s.restartTimer);
    const gone = new Promise<void>((resolve) => {
      this.allExited = resolve;
      if (this.slots.every((s) => s.worker === undefined)) resolve();
    });
    for (const s of live) {
      if (s.connected) this.send(s.worker!, { kubeproxy: 'drain' });
      // Still loading its modules: it has nothing to drain, and waiting for its hello would
      // hold the shutdown for as long as a start takes.
      else s.worker!.process.kill('SIGTERM');
    }
    const { delay, drainTimeout } = this.config.proxy.shutdown;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      gone.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), delay + drainTimeout + EXIT_MARGIN_MS))),
    ]);
    clearTimeout(timer);
    let code = 0;
    if (timedOut) {
      const stuck = this.slots.flatMap((s) => (s.worker === undefined ? [] : [s.worker.id]));
      log.error({ workers: stuck }, 'workers did not stop in time; killing them');
      for (const s of this.slots) s.worker?.process.kill('SIGKILL');
      await gone;
      code = 1;
    }
    await this.admin?.close();
    log.info('stopped');
    return code;
  }
}
