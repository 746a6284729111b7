/**
 * The admin listener, on its own port and never reachable through the proxy's routes:
 * /healthz (liveness: the event loop answers), /readyz (config loaded, listener bound, not
 * draining), /metrics (Prometheus text), /status (JSON: services, instances, health) and / (the
 * status page drawing /status, status-page.ts) are open and read-only; routes for other methods (POST /cache/purge) need the admin token (auth.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { boundAddress, closeServer, listenOn } from '../server/bind.ts';
import { isReadOnly, refuse } from './auth.ts';
import { registerStatusPage } from './status-page.ts';

export type AdminRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

/** What the admin server needs from the running proxy. */
export interface AdminHost {
  readonly ready: boolean;
  readonly draining: boolean;
  /** The token of the running config (proxy.admin.token or tokenFile); undefined when none is set. */
  readonly adminToken: string | undefined;
  status(): unknown;
}

export class AdminServer {
  readonly server: Server;
  private readonly routes = new Map<string, AdminRoute>();
  /** State-changing requests answered below 400, by route (the status page shows the purges). */
  private readonly changes = new Map<string, number>();

  constructor(private readonly host: AdminHost) {
    this.route('GET /healthz', (_req, res) => text(res, 200, 'ok\n'));
    this.route('GET /readyz', (_req, res) => {
      if (this.host.ready) text(res, 200, 'ready\n');
      else text(res, 503, this.host.draining ? 'draining\n' : 'not ready\n');
    });
    this.route('GET /status', (_req, res) => json(res, 200, this.host.status()));
    registerStatusPage((key, handler) => this.route(key, handler));
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  /** Adds or replaces a route, keyed `METHOD /path` (the metrics and purge endpoints hook in here). */
  route(key: string, handler: AdminRoute): void {
    this.routes.set(key, handler);
  }

  /** How many `route` requests (a state-changing one, `POST /cache/purge`) were answered below 400. */
  served(route: string): number {
    return this.changes.get(route) ?? 0;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const key = `${method} ${url.pathname}`;
    const handler = this.routes.get(key);
    if (handler === undefined) {
      req.resume();
      const allowed = [...this.routes.keys()].filter((k) => k.endsWith(` ${url.pathname}`)).map((k) => k.split(' ')[0]);
      if (allowed.length > 0) return text(res, 405, `method ${req.method} not allowed on ${url.pathname}\n`, ['allow', allowed.join(', ')]);
      return text(res, 404, `no admin endpoint ${url.pathname}; try /healthz, /readyz, /metrics, /status\n`);
    }
    if (!isReadOnly(req.method)) {
      const refusal = refuse(req.headers, this.host.adminToken);
      if (refusal !== undefined) {
        req.resume();
        return json(res, refusal.status, { error: refusal.message }, refusal.headers);
      }
    }
    try {
      await handler(req, res, url);
      if (!isReadOnly(req.method) && res.statusCode < 400) this.changes.set(key, this.served(key) + 1);
    } catch (err) {
      if (!res.headersSent) text(res, 500, `admin endpoint failed: ${(err as Error).message}\n`);
      else res.destroy();
    }
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

export function json(res: ServerResponse, status: number, value: unknown, extra: string[] = []): void {
  const body = `${JSON.stringify(value, null, 2)}\n`;
  res.writeHead(status, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store', ...extra]);
  res.end(body);
}
