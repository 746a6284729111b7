/**
 * One instance (address:port) of a service and its connection pool. Per-instance state (health,
 * ejection, in-flight count) lives here and outlives config snapshots: a reload that keeps the
 * instance keeps this object (Caddy keeps host state in a usage pool for the same reason).
 *
 * The undici Pool (~18 KB of heap) is made on the instance's first request and closed once it has
 * gone idle: no request for a whole idle period (`keepAliveTimeout`, at least 100 ms) and no open
 * connection. By then its keep-alive connections are closed anyway, so a later request loses
 * nothing and gets a new pool; a config of thousands of instances only pays for the ones in use.
 * Health, ejection and counters stay on the Instance across pools.
 *
 * The pool follows the service's `protocol`: undici's Pool for `http1` and `https` (HTTP/1.1, one
 * request per connection at a time), an H2Client (h2-client.ts: one session, many streams) for
 * `h2c` and `h2`; on Bun a BunH1Client (bun-h1-client.ts; KUBEPROXY_BUN_UPSTREAM=undici keeps undici) for
 * `http1`. A reload that changes the protocol or the TLS settings (a new CA) gives the
 * instance a new pool; connections already open finish their requests.
 */
import { Pool, buildConnector, errors, type Dispatcher } from 'undici';
import { isIP, isIPv6 } from 'node:net';
import type { Pickable } from '../balancer/balancer.ts';
import type { UpstreamProtocol } from '../config/schema.ts';
import { currentRuntime } from '../runtime/select.ts';
import { BunH1Client, bunUpstream } from './bun-h1-client.ts';
import { H2Client, type AttemptHandler, type DispatchRequest } from './h2-client.ts';

/** TLS to an `https` or `h2` instance. */
export interface UpstreamTls {
  /** PEM bundle replacing the system's CAs, or undefined for them. */
  ca: string | undefined;
  /** The name sent by SNI and checked in the certificate; undefined: the instance's address. */
  serverName: string | undefined;
  /** false accepts any certificate. */
  verify: boolean;
}

export interface PoolSettings {
  connectTimeout: number;
  responseTimeout: number;
  idleTimeout: number;
  keepAliveTimeout: number;
  /** 0 = unlimited. */
  maxConnections: number;
  protocol: UpstreamProtocol;
  /** For `https` and `h2`. */
  tls: UpstreamTls | undefined;
}

/** What an instance sends requests through: undici's Pool (HTTP/1.1), an H2Client, or on Bun a BunH1Client. */
type Upstream = Pool | H2Client | BunH1Client;

/** Floor of the idle period, so a keepAlive of 0 does not check the pool in a tight loop. */
const MIN_IDLE_CHECK_MS = 100;

export class Instance implements Pickable {
  readonly id: string;
  /** `http://address:port` (`https://` for `https` and `h2`), the origin the pool connects to. */
  origin: string;
  weight: number;
  inflight = 0;
  /** Set by active health checks; an instance starts healthy (Envoy does the same for static hosts). */
  healthy = true;
  /** Set by passive outlier detection while the instance is ejected. */
  ejected = false;
  /** Set when the instance left the config: finish in-flight requests, take no new ones. */
  draining = false;
  private settings: PoolSettings;
  /** Made by the first `dispatch`, dropped when idle (see the header). */
  private pool: Upstream | undefined;
  /** Requests dispatched since the pool was made; compared at each idle check. */
  private uses = 0;
  private usesAtCheck = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly service: string,
    readonly address: string,
    readonly port: number,
    weight: number,
    settings: PoolSettings,
  ) {
    this.id = `${address}:${port}`;
    this.origin = originOf(address, port, settings);
    this.weight = weight;
    this.settings = settings;
    // A bad KUBEPROXY_BUN_UPSTREAM stops the start with its message, not the first request.
    if (currentRuntime === 'bun') bunUpstream();
  }

  /** How the instance is spoken to, and its TLS settings (active health checks probe the same way). */
  get protocol(): UpstreamProtocol {
    return this.settings.protocol;
  }

  get tls(): UpstreamTls | undefined {
    return this.settings.tls;
  }

  available(): boolean {
    return this.healthy && !this.ejected && !this.draining && (this.settings.maxConnections === 0 || this.inflight < this.settings.maxConnections);
  }

  /** Sends one request through the instance's pool, made now if there is none. Throws like `Pool.dispatch`. */
  dispatch(req: DispatchRequest, handler: AttemptHandler): boolean {
    if (this.closed) throw new errors.ClientClosedError();
    let pool = this.pool;
    if (pool === undefined) {
      pool = this.pool = createPool(this, this.settings);
      this.uses = 0;
      this.usesAtCheck = 0;
      this.scheduleIdleCheck();
    }
    this.uses++;
    if (!(pool instanceof Pool)) return pool.dispatch(req, handler);
    const tls = this.settings.tls;
    const opts: Dispatcher.DispatchOptions & { servername?: string } = {
      origin: this.origin,
      method: req.method,
      path: req.path,
      headers: req.headers,
      body: req.body,
      // undici must not retry or reorder: retries are the proxy's decision (retry budget).
      idempotent: false,
      reset: false,
    };
    // One name for every request: undici would otherwise take each request's Host, and start a new connection whenever it changes.
    if (tls !== undefined) opts.servername = tls.serverName ?? this.address;
    return pool.dispatch(opts, handler as unknown as Dispatcher.DispatchHandler);
  }

  /** Whether a pool exists now (made by a request, not yet closed as idle). */
  get hasPool(): boolean {
    return this.pool !== undefined;
  }

  /** Applies new settings from a reload; a pool is only let go when its options changed. */
  update(weight: number, settings: PoolSettings): void {
    this.weight = weight;
    this.draining = false;
    const changed = !samePoolSettings(this.settings, settings);
    this.settings = settings;
    this.origin = originOf(this.address, this.port, settings);
    if (changed) this.dropPool();
  }

  get maxConnections(): number {
    return this.settings.maxConnections;
  }

  /** Closes the pool once in-flight requests are done (or destroys it after `timeoutMs`). */
  async close(timeoutMs = 30_000): Promise<void> {
    this.draining = true;
    this.closed = true;
    clearTimeout(this.idleTimer);
    const pool = this.pool;
    this.pool = undefined;
    if (pool === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      pool.close().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          pool.destroy().catch(() => {}).finally(resolve);
        }, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  /** The next request makes a new pool; requests in flight on the old one finish (close() waits for them). */
  private dropPool(): void {
    clearTimeout(this.idleTimer);
    const old = this.pool;
    this.pool = undefined;
    old?.close().catch(() => {});
  }

  private scheduleIdleCheck(): void {
    this.idleTimer = setTimeout(() => this.idleCheck(), Math.max(this.settings.keepAliveTimeout, MIN_IDLE_CHECK_MS));
    this.idleTimer.unref();
  }

  private idleCheck(): void {
    const pool = this.pool;
    if (pool === undefined) return;
    const used = this.uses !== this.usesAtCheck;
    this.usesAtCheck = this.uses;
    const { connected, pending, running } = pool.stats;
    if (used || connected > 0 || pending > 0 || running > 0) this.scheduleIdleCheck();
    else this.dropPool();
  }
}

function originOf(address: string, port: number, s: PoolSettings): string {
  const scheme = s.protocol === 'https' || s.protocol === 'h2' ? 'https' : 'http';
  return `${scheme}://${isIPv6(address) ? `[${address}]` : address}:${port}`;
}

function createPool(instance: Instance, s: PoolSettings): Upstream {
  const tls = s.tls;
  if (s.protocol === 'h2c' || s.protocol === 'h2') {
    return new H2Client(instance.origin, instance.id, {
      connectTimeout: s.connectTimeout,
      responseTimeout: s.responseTimeout,
      idleTimeout: s.idleTimeout,
      keepAliveTimeout: s.keepAliveTimeout,
      tls: tls === undefined ? undefined : tlsOptions(instance),
    });
  }
  // On Bun (unless KUBEPROXY_BUN_UPSTREAM=undici): HTTP/1.1 over Bun's own sockets (bun-h1-client.ts).
  if (s.protocol === 'http1' && currentRuntime === 'bun' && bunUpstream() === 'connect') {
    return new BunH1Client(instance.address, instance.port, instance.id, s);
  }
  return new Pool(instance.origin, {
    connections: s.maxConnections === 0 ? null : s.maxConnections,
    // No pipelining: a slow response must never hold up the next request on that connection.
    pipelining: 1,
    connectTimeout: s.connectTimeout === 0 ? 365 * 24 * 3600_000 : s.connectTimeout,
    headersTimeout: s.responseTimeout,
    bodyTimeout: s.idleTimeout,
    // timeouts.keepAlive is the ceiling for an idle pooled socket: an origin's longer
    // `Keep-Alive: timeout=` hint cannot stretch it (a shorter one still shortens it, less undici's
    // 2 s safety margin). undici rejects 0, so "no idle reuse" is the shortest wait it takes.
    keepAliveTimeout: Math.max(s.keepAliveTimeout, 1),
    keepAliveMaxTimeout: Math.max(s.keepAliveTimeout, 1),
    // Upstream response headers may be as large as a client's; 64 KiB matches NGINX's large buffers.
    maxHeaderSize: 64 * 1024,
    ...(tls === undefined ? {} : { connect: tlsConnector(instance, s.connectTimeout) }),
  });
}

/**
 * The instance's TLS settings as node:tls options, for every connection to it (its pool, its h2
 * sessions, health probes, upgrade tunnels): the service's CA and verification, and the name sent
 * by SNI and checked in the certificate (serverName, or the instance's address). An IP address is
 * not sent by SNI (RFC 6066 §3): node:tls then checks the certificate for that address.
 */
export function tlsOptions(instance: Instance): { ca?: string; rejectUnauthorized: boolean; servername?: string } {
  const tls = instance.tls;
  const name = tls?.serverName ?? instance.address;
  return {
    ...(tls?.ca === undefined ? {} : { ca: tls.ca }),
    rejectUnauthorized: tls?.verify ?? true,
    ...(isIP(name) === 0 ? { servername: name } : {}),
  };
}

/**
 * `https` through undici: its connector with the instance's TLS options. undici would name each
 * connection after the request's Host; the instance's name is used instead.
 */
export function tlsConnector(instance: Instance, connectTimeout: number): buildConnector.connector {
  const { servername, ...options } = tlsOptions(instance);
  const connector = buildConnector({ ...options, timeout: connectTimeout === 0 ? 365 * 24 * 3600_000 : connectTimeout });
  return (opts, callback) => connector({ ...opts, servername }, callback);
}

function samePoolSettings(a: PoolSettings, b: PoolSettings): boolean {
  return (
    a.connectTimeout === b.connectTimeout &&
    a.responseTimeout === b.responseTimeout &&
    a.idleTimeout === b.idleTimeout &&
    a.keepAliveTimeout === b.keepAliveTimeout &&
    a.maxConnections === b.maxConnections &&
    a.protocol === b.protocol &&
    a.tls?.ca === b.tls?.ca &&
    a.tls?.serverName === b.tls?.serverName &&
    a.tls?.verify === b.tls?.verify
  );
}
