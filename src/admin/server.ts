/**
 * The admin listener, on its own port and never reachable through the proxy's routes:
 * /healthz (liveness: the event loop answers), /readyz (config loaded, listener bound, not
 * draining), /metrics (Prometheus text) and /status (JSON: services, instances, health).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Runtime } from '../runtime.ts';
import { boundAddress, closeServer, listenOn } from '../server/bind.ts';

export type AdminRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export class AdminServer {
  readonly server: Server;
  private readonly routes = new Map<string, AdminRoute>();

  constructor(private readonly runtime: Runtime) {
    this.route('GET /healthz', (_req, res) => text(res, 200, 'ok\n'));
    this.route('GET /readyz', (_req, res) => {
      if (this.runtime.ready) text(res, 200, 'ready\n');
      else text(res, 503, this.runtime.draining ? 'draining\n' : 'not ready\n');
    });
    this.route('GET /status', (_req, res) => json(res, 200, this.status()));
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  /** Adds or replaces a route, keyed `METHOD /path` (the metrics and purge endpoints hook in here). */
  route(key: string, handler: AdminRoute): void {
    this.routes.set(key, handler);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const handler = this.routes.get(`${method} ${url.pathname}`);
    if (handler === undefined) {
      const allowed = [...this.routes.keys()].filter((k) => k.endsWith(` ${url.pathname}`)).map((k) => k.split(' ')[0]);
      if (allowed.length > 0) return text(res, 405, `method ${req.method} not allowed on ${url.pathname}\n`, ['allow', allowed.join(', ')]);
      return text(res, 404, `no admin endpoint ${url.pathname}; try /healthz, /readyz, /metrics, /status\n`);
    }
    try {
      await handler(req, res, url);
    } catch (err) {
      if (!res.headersSent) text(res, 500, `admin endpoint failed: ${(err as Error).message}\n`);
      else res.destroy();
    }
  }

  status(): unknown {
    const snap = this.runtime.snapshot;
    return {
      ready: this.runtime.ready,
      draining: this.runtime.draining,
      uptimeSeconds: Math.round((Date.now() - this.runtime.startedAt) / 1000),
      inflight: this.runtime.inflight,
      connections: this.runtime.listener.connections,
      // Size from the cache store, lookups and hit ratio since start (see observability/wire.ts).
      cache: { enabled: snap.config.proxy.cache.enabled, ...this.runtime.observability.cacheStatus() },
      services: [...snap.services.values()].map((s) => ({
        name: s.name,
        domains: s.domains,
        loadBalancer: s.config.loadBalancer ?? snap.config.proxy.loadBalancer,
        active: s.active,
        // Only for services with `discovery`: state, addresses in use, last error and last success.
        ...(s.config.discovery ? { discovery: this.runtime.discovery.status(s.name) } : {}),
        instances: s.instances.map((i) => ({
          id: i.id,
          weight: i.weight,
          healthy: i.healthy,
          ejected: i.ejected,
          available: i.available(),
          inflight: i.inflight,
          // Ejections since start (failed health checks or outlier detection), the last one, the last probe.
          ...this.runtime.observability.instanceStatus(i),
        })),
      })),
    };
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

export function text(res: ServerResponse, status: number, body: string, extra: string[] = []): void {
  res.writeHead(status, ['content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store', ...extra]);
  res.end(body);
}

export function json(res: ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value, null, 2)}\n`;
  res.writeHead(status, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store']);
  res.end(body);
}
