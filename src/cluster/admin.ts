/**
 * The admin port in cluster mode, served once, by the primary (workers bind no admin port):
 *
 *   GET /healthz   200 while the primary runs and at least one worker is alive (503 otherwise)
 *   GET /readyz    200 when every worker reported ready and none is draining; 503 from the
 *                  moment the primary starts shutting down, and while a worker is replaced
 *   GET /metrics   the workers' metrics merged with prom-client's AggregatorRegistry.aggregate:
 *                  counters and histograms summed, gauges summed unless their declaration in
 *                  metrics/metrics.ts says otherwise (instance health: min; event-loop lag: max;
 *                  utilisation: average). Config reload metrics and the process/Node.js metrics
 *                  come from the primary too (the primary is the one that validates reloads;
 *                  memory and CPU then cover the whole process tree).
 *   GET /status    the primary's state and each worker's /status (plus its pid and the number of
 *                  requests it served), asked over IPC; `services` and `cache` merged from them
 *                  (status-merge.ts), `config` from the primary (it validates reloads)
 *   GET /          the status page drawing /status (admin/status-page.ts)
 *   anything else  sent to every running worker's own admin routes (e.g. POST /cache/purge, as
 *                  each worker has its own cache); see `fanOut` for how the answers are merged.
 *                  A method other than GET/HEAD needs the admin token here first (admin/auth.ts),
 *                  and is checked again by each worker against the same config.
 *
 * Why not AggregatorRegistry.clusterMetrics(): it reads the workers' registries without running
 * the scrape hooks (the gauges set from state at scrape time, in-flight requests, connections,
 * pool use, cache size, would be stale), and it needs an AggregatorRegistry built in every
 * worker. The workers answer over the same IPC channel as status and reload instead, with the
 * JSON prom-client aggregates.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import { isReadOnly, refuse } from '../admin/auth.ts';
import { json, text } from '../admin/server.ts';
import { registerStatusPage } from '../admin/status-page.ts';
import type { ConfigHistory } from '../observability/live-status.ts';
import { metrics, type MetricsJSON } from '../metrics/metrics.ts';
import type { AdminReply, ToWorker } from './messages.ts';
import type { WorkerSlot } from './slot.ts';
import { mergeWorkerStatus } from './status-merge.ts';
import { boundAddress, closeServer, listenOn } from '../server/bind.ts';

/** What the admin server needs from the primary. */
export interface ClusterHost {
  readonly draining: boolean;
  readonly startedAt: number;
  readonly metricsEnabled: boolean;
  /** proxy.admin.token (or tokenFile's content) of the running config. */
  readonly adminToken: string | undefined;
  readonly slots: readonly WorkerSlot[];
  /** When the running config was loaded and the last reload error (the primary validates reloads). */
  readonly reloads: Pick<ConfigHistory, 'state'>;
  request(slot: WorkerSlot, build: (id: number) => ToWorker, timeoutMs: number): Promise<unknown>;
}

/** Metrics the primary owns: reloads are validated (and counted) by it, not by the workers. */
const PRIMARY_METRICS: ReadonlySet<string> = new Set(['kubeproxy_config_reloads_total', 'kubeproxy_config_last_reload_success_timestamp_seconds']);

const ASK_TIMEOUT_MS = 5_000;
const FORWARD_TIMEOUT_MS = 15_000;
const MAX_FORWARDED_BODY = 1024 * 1024;

type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export class ClusterAdmin {
  readonly server: Server;
  private readonly routes = new Map<string, Route>();
  /** Each worker's metrics at the last scrape, by worker id (see `retire`). */
  private readonly lastScrape = new Map<number, MetricsJSON>();
  /** Counters and histograms of workers that died, as last scraped. */
  private retired: MetricsJSON = [];

  constructor(private readonly host: ClusterHost) {
    this.routes.set('GET /healthz', (_req, res) => {
      if (this.host.slots.some((s) => s.worker !== undefined)) text(res, 200, 'ok\n');
      else text(res, 503, 'no worker is running\n');
    });
    this.routes.set('GET /readyz', (_req, res) => {
      if (this.host.draining) return text(res, 503, 'draining\n');
      const notReady = this.host.slots.filter((s) => s.state !== 'ready');
      if (notReady.length === 0) return text(res, 200, 'ready\n');
      text(res, 503, `not ready: ${notReady.map((s) => `worker slot ${s.index} is ${s.worker === undefined ? 'restarting' : s.state}`).join(', ')}\n`);
    });
    this.routes.set('GET /status', async (_req, res) => json(res, 200, await this.status()));
    this.routes.set('GET /metrics', (_req, res) => this.metrics(res));
    registerStatusPage((key, handler) => this.routes.set(key, handler));
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    try {
      const handler = this.routes.get(`${method} ${url.pathname}`);
      if (handler !== undefined) {
        req.resume();
        return await handler(req, res, url);
      }
      const allowed = [...this.routes.keys()].filter((k) => k.endsWith(` ${url.pathname}`)).map((k) => k.split(' ')[0]);
      if (allowed.length > 0) {
        req.resume();
        return text(res, 405, `method ${req.method} not allowed on ${url.pathname}\n`, ['allow', allowed.join(', ')]);
      }
      if (!isReadOnly(req.method)) {
        const refusal = refuse(req.headers, this.host.adminToken);
        if (refusal !== undefined) {
          req.resume();
          return json(res, refusal.status, { error: refusal.message }, refusal.headers);
        }
      }
      await this.fanOut(req, res);
    } catch (err) {
      if (!res.headersSent) text(res, 500, `admin endpoint failed: ${(err as Error).message}\n`);
      else res.destroy();
    }
  }

  /** Workers that run a Runtime and can answer. */
  private running(): WorkerSlot[] {
    return this.host.slots.filter((s) => s.connected && (s.state === 'ready' || s.state === 'draining'));
  }

  private async metrics(res: ServerResponse): Promise<void> {
    if (!this.host.metricsEnabled) return text(res, 404, 'metrics are disabled (proxy.metrics.enabled: false)\n');
    const slots = this.running();
    const results = await Promise.allSettled(slots.map((s) => this.host.request(s, (id) => ({ kubeproxy: 'metrics', id }), ASK_TIMEOUT_MS)));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`worker slot ${slots[i]!.index}: ${(r.reason as Error).message}`] : []));
    // A sum without one worker would look like a counter reset to Prometheus: no answer is better.
    if (failed.length > 0) return text(res, 503, `metrics unavailable: ${failed.join('; ')}\n`);
    const own = (await metrics.registry.getMetricsAsJSON()).filter((m) => PRIMARY_METRICS.has(m.name) || !m.name.startsWith('kubeproxy_'));
    const fromWorkers = results.map((r, i) => {
      const value = (r as PromiseFulfilledResult<MetricsJSON>).value.filter((m) => !PRIMARY_METRICS.has(m.name));
      const id = slots[i]!.worker?.id;
      if (id !== undefined) this.lastScrape.set(id, value);
      return value;
    });
    const body = await AggregatorRegistry.aggregate([own, ...this.retired.length > 0 ? [this.retired] : [], ...fromWorkers]).metrics();
    res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }

  /**
   * A worker exited. When it died (`keep`), its counters and histograms as last scraped stay in
   * the sums: without them the totals would drop, which Prometheus reads as a counter reset and
   * turns into a burst in rate(). What it counted after the last scrape is lost; its gauges go.
   */
  async retire(workerId: number, keep: boolean): Promise<void> {
    const last = this.lastScrape.get(workerId);
    this.lastScrape.delete(workerId);
    if (!keep || last === undefined) return;
    const monotonic = last.filter((m) => String(m.type) === 'counter' || String(m.type) === 'histogram');
    this.retired = await AggregatorRegistry.aggregate([this.retired, monotonic]).getMetricsAsJSON();
  }

  async status(): Promise<unknown> {
    const workers = await Promise.all(
      this.host.slots.map(async (s) => {
        const base = { slot: s.index, worker: s.worker?.id ?? null, state: s.worker === undefined ? 'restarting' : s.state, restarts: s.restarts };
        if (s.worker === undefined || !s.connected) return { ...base, pid: s.worker?.process.pid ?? null };
        try {
          return { ...base, ...(await this.host.request(s, (id) => ({ kubeproxy: 'status', id }), ASK_TIMEOUT_MS) as object) };
        } catch (err) {
          return { ...base, pid: s.worker.process.pid ?? null, error: (err as Error).message };
        }
      }),
    );
    const sum = (key: string): number =>
      workers.reduce((n, w) => n + (typeof (w as Record<string, unknown>)[key] === 'number' ? ((w as Record<string, unknown>)[key] as number) : 0), 0);
    const merged = mergeWorkerStatus(workers);
    return {
      mode: 'cluster',
      pid: process.pid,
      ready: !this.host.draining && this.host.slots.every((s) => s.state === 'ready'),
      draining: this.host.draining,
      uptimeSeconds: Math.round((Date.now() - this.host.startedAt) / 1000),
      requests: sum('requests'),
      inflight: sum('inflight'),
      connections: sum('connections'),
      config: this.host.reloads.state(),
      ...(merged.cache === undefined ? {} : { cache: merged.cache }),
      services: merged.services,
      workers,
    };
  }

  /**
   * Sends the request to every running worker's admin routes. Identical answers (a 404, a 400
   * naming a bad parameter) are passed on as they are. JSON answers with the same status that
   * differ, or that count `removed` entries (a purge removes entries from each worker's own
   * cache), are merged: the first worker's body, `removed` summed over the workers, and
   * `workers` with each answer. Any other disagreement, or a worker that did not answer, is a
   * 502 listing each worker's answer.
   */
  private async fanOut(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, MAX_FORWARDED_BODY);
    if (body === undefined) {
      res.shouldKeepAlive = false;
      return text(res, 413, `admin request body is larger than ${MAX_FORWARDED_BODY} bytes\n`);
    }
    const slots = this.running();
    if (slots.length === 0) return text(res, 503, 'no worker is running\n');
    const request = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: body.toString('base64') };
    const results = await Promise.allSettled(slots.map((s) => this.host.request(s, (id) => ({ kubeproxy: 'admin', id, request }), FORWARD_TIMEOUT_MS)));
    const answers = results.map(
      (r, i): { worker: number | null; reply?: AdminReply; error?: string } => ({
        worker: slots[i]!.worker?.id ?? null,
        ...(r.status === 'fulfilled' ? { reply: r.value as AdminReply } : { error: (r.reason as Error).message }),
      }),
    );
    const first = answers[0]!.reply;
    const bodies = answers.map((a) => (a.reply === undefined ? undefined : parseObject(a.reply.body)));
    const counts = bodies.every((b) => typeof b?.removed === 'number');
    if (first !== undefined && answers.every((a) => a.reply?.status === first.status)) {
      if (!counts && answers.every((a) => a.reply!.body === first.body)) return pass(res, first);
      if (bodies.every((b) => b !== undefined)) {
        const merged: Record<string, unknown> = { ...bodies[0] };
        if (counts) merged.removed = bodies.reduce((n, b) => n + (b!.removed as number), 0);
        merged.workers = answers.map((a, i) => ({ worker: a.worker, status: a.reply!.status, ...bodies[i] }));
        return json(res, first.status, merged);
      }
    }
    json(res, 502, {
      error: 'the workers answered differently',
      workers: answers.map((a) => (a.reply === undefined ? { worker: a.worker, error: a.error } : { worker: a.worker, status: a.reply.status, body: parseObject(a.reply.body) ?? a.reply.body })),
    });
  }

  listen(address: string, port: number): Promise<void> {
    return listenOn(this.server, address, port);
  }

  address(): { address: string; port: number } {
    return boundAddress(this.server, 'admin server');
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}

function pass(res: ServerResponse, reply: AdminReply): void {
  // A HEAD answer has no body but the length of the GET one.
  const length = reply.headers['content-length'];
  const headers: string[] = ['content-length', typeof length === 'string' ? length : String(Buffer.byteLength(reply.body)), 'cache-control', 'no-store'];
  for (const name of ['content-type', 'allow', 'www-authenticate']) {
    const v = reply.headers[name];
    if (typeof v === 'string') headers.push(name, v);
  }
  res.writeHead(reply.status, headers);
  res.end(reply.body);
}

/** The request body, or undefined as soon as it exceeds `limit` (the rest is discarded). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        chunks.length = 0;
        resolve(undefined);
      } else chunks.push(c);
    });
    req.on('end', () => resolve(size > limit ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseObject(body: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(body);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
