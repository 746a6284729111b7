/**
 * A cluster worker (`proxy.workers` > 1): one Runtime with its own pools, health checks and
 * cache, listening on the shared listen address (node:cluster hands it the primary's socket).
 * It takes its config text, reloads and drain orders from the primary (src/cluster/primary.ts)
 * and answers its status, metrics and admin requests; the admin port belongs to the primary.
 *
 * Signals: SIGTERM or SIGINT sent to the worker itself (a terminal's Ctrl-C reaches the whole
 * process group, `kill` a single pid) drain it exactly as the primary's `drain` does; a second
 * one, or the drain order after it, changes nothing. SIGHUP is ignored: reloads go through the
 * primary, which validates the file once for every worker (and a terminal hang-up sent to the
 * group must not kill the workers).
 */
import cluster from 'node:cluster';
import { ConfigError, parseConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { log, setLogger } from '../log.ts';
import { Runtime } from '../runtime.ts';
import { pluginBaseDir } from '../plugins/load.ts';
import { injectRequest } from './inject.ts';
import { WORKER_ENV, isToWorker, type FromWorker, type ToWorker } from './messages.ts';

/** True in a process forked by the KubeProxy cluster primary (not in any other node:cluster worker). */
export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1';
}

/** Runs this process as a worker; resolves with its exit code once it stopped. */
export function runWorker(): Promise<number> {
  const id = cluster.worker?.id ?? 0;
  setLogger(log.child({ worker: id }));

  let runtime: Runtime | undefined;
  let starting: Promise<Runtime | undefined> | undefined;
  let stopping = false;
  /** Requests ended since start, for /status (how node:cluster spread the load). */
  let requests = 0;
  /** For `listen.port: 0` and `tls.listen.port: 0`: the ports the workers share (see the `start` message). */
  let sharedPort: number | undefined;
  let sharedTlsPort: number | undefined;
  let workers = 1;
  /** Aborted by a drain order or a signal: stops the Runtime, also while it starts. */
  const stopSignal = new AbortController();

  /**
   * The config as this worker runs it. `cache.maxSize` bounds the memory of the whole proxy, so
   * each of the N workers (each with its own cache) gets maxSize / N: the pod's memory stays
   * what the config says, at the cost of entries stored once per worker.
   */
  const parse = (text: string, source: string): Config => {
    const config = parseConfig(text, source);
    const { listen, cache, tls } = config.proxy;
    const port = listen.port === 0 && sharedPort !== undefined ? sharedPort : listen.port;
    const tlsListen = tls !== undefined && tls.listen.port === 0 && sharedTlsPort !== undefined ? { ...tls.listen, port: sharedTlsPort } : tls?.listen;
    return {
      ...config,
      proxy: {
        ...config.proxy,
        listen: { ...listen, port },
        ...(tls === undefined ? {} : { tls: { ...tls, listen: tlsListen! } }),
        cache: { ...cache, maxSize: Math.floor(cache.maxSize / workers) },
      },
    };
  };

  const send = (message: FromWorker): void => {
    if (!process.connected) return;
    try {
      process.send!(message);
    } catch {
      // The primary is gone: node:cluster exits this worker on 'disconnect'.
    }
  };

  return new Promise<number>((resolve) => {
    const stop = (reason: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ reason }, 'worker draining');
      send({ kubeproxy: 'draining' });
      stopSignal.abort();
      void (async () => {
        const rt = runtime ?? (await starting);
        // The abort started its shutdown (also during the start): this waits for that one.
        await rt?.shutdown();
      })().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, 'worker shutdown failed');
          resolve(1);
        },
      );
    };

    const start = (configText: string, source: string, port: number | undefined, tlsPort: number | undefined, count: number): void => {
      if (starting !== undefined || stopping) return;
      sharedPort = port;
      sharedTlsPort = tlsPort;
      workers = Math.max(1, count);
      let config;
      try {
        config = parse(configText, source);
      } catch (err) {
        // The primary validated this text: only a broken installation gets here.
        send({ kubeproxy: 'failed', message: err instanceof ConfigError ? err.message : (err as Error).message });
        return resolve(2);
      }
      starting = Runtime.start(config, { worker: id, signal: stopSignal.signal, pluginBaseDir: pluginBaseDir(source) }).then(
        (rt) => {
          runtime = rt;
          rt.onRequestEnd(() => requests++);
          // Told to stop while it started: it never served, and says nothing of being ready.
          if (!stopping) send({ kubeproxy: 'ready', listen: rt.listener.address(), tls: rt.tls?.address() });
          return rt;
        },
        (err: NodeJS.ErrnoException) => {
          const message = err.code === 'EADDRINUSE' ? `address already in use (${err.message})` : err.message;
          send({ kubeproxy: 'failed', message });
          resolve(1);
          return undefined;
        },
      );
    };

    const answer = (id: number, work: () => unknown): void => {
      void (async () => work())().then(
        (value) => send({ kubeproxy: 'reply', id, ok: true, value }),
        (err: unknown) => send({ kubeproxy: 'reply', id, ok: false, error: (err as Error).message ?? String(err) }),
      );
    };

    /** The Runtime once started; requests that arrive while it starts wait for it. */
    const running = async (): Promise<Runtime> => {
      const rt = runtime ?? (await starting);
      if (rt === undefined) throw new Error('the worker is not running');
      return rt;
    };

    const handle = (m: ToWorker): void => {
      switch (m.kubeproxy) {
        case 'start':
          return start(m.configText, m.source, m.port, m.tlsPort, m.workers);
        case 'reload':
          return answer(m.id, async () => {
            const rt = await running();
            try {
              await rt.reload(parse(m.configText, m.source));
            } catch (err) {
              rt.observability.reloadFailed();
              const message = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
              log.error({ err: message }, 'config reload failed; keeping the running config');
              throw new Error(message);
            }
            return null;
          });
        case 'drain':
          return stop('drain ordered by the primary');
        case 'status':
          return answer(m.id, async () => {
            const rt = await running();
            return { pid: process.pid, requests, ...(rt.status() as object) };
          });
        case 'metrics':
          return answer(m.id, async () => (await running()).observability.metrics.metricsJSON());
        case 'admin':
          return answer(m.id, async () => {
            const rt = await running();
            if (rt.admin === undefined) throw new Error('the admin server is disabled');
            return injectRequest(rt.admin.server, m.request);
          });
      }
    };

    process.on('message', (m: unknown) => {
      if (isToWorker(m)) handle(m);
    });
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => log.info('SIGHUP ignored by a worker: send it to the primary to reload'));
    send({ kubeproxy: 'hello' });
  });
}
