/**
 * One instance (address:port) of a service and its connection pool. Per-instance state (health,
 * ejection, in-flight count, open connections) lives here and outlives config snapshots: a reload
 * that keeps the instance keeps this object (Caddy keeps host state in a usage pool for the
 * same reason).
 */
import { Pool } from 'undici';
import { isIPv6 } from 'node:net';
import type { Pickable } from '../balancer/balancer.ts';

export interface PoolSettings {
  connectTimeout: number;
  responseTimeout: number;
  idleTimeout: number;
  keepAliveTimeout: number;
  /** 0 = unlimited. */
  maxConnections: number;
}

export class Instance implements Pickable {
  readonly id: string;
  /** `http://address:port`, the origin the pool connects to. */
  readonly origin: string;
  weight: number;
  inflight = 0;
  /** Set by active health checks; an instance starts healthy (Envoy does the same for static hosts). */
  healthy = true;
  /** Set by passive outlier detection while the instance is ejected. */
  ejected = false;
  /** Set when the instance left the config: finish in-flight requests, take no new ones. */
  draining = false;
  pool: Pool;
  private settings: PoolSettings;

  constructor(
    readonly service: string,
    readonly address: string,
    readonly port: number,
    weight: number,
    settings: PoolSettings,
  ) {
    this.id = `${address}:${port}`;
    this.origin = `http://${isIPv6(address) ? `[${address}]` : address}:${port}`;
    this.weight = weight;
    this.settings = settings;
    this.pool = createPool(this.origin, settings);
  }

  available(): boolean {
    return this.healthy && !this.ejected && !this.draining && (this.settings.maxConnections === 0 || this.inflight < this.settings.maxConnections);
  }

  /** Applies new settings from a reload; the pool is only replaced when its options changed. */
  update(weight: number, settings: PoolSettings): void {
    this.weight = weight;
    this.draining = false;
    if (samePoolSettings(this.settings, settings)) {
      this.settings = settings;
      return;
    }
    const old = this.pool;
    this.settings = settings;
    this.pool = createPool(this.origin, settings);
    // In-flight requests on the old pool finish; close() waits for them.
    old.close().catch(() => {});
  }

  get maxConnections(): number {
    return this.settings.maxConnections;
  }

  /** Closes the pool once in-flight requests are done (or destroys it after `timeoutMs`). */
  async close(timeoutMs = 30_000): Promise<void> {
    this.draining = true;
    const pool = this.pool;
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
}

function createPool(origin: string, s: PoolSettings): Pool {
  return new Pool(origin, {
    connections: s.maxConnections === 0 ? null : s.maxConnections,
    // No pipelining: a slow response must never hold up the next request on that connection.
    pipelining: 1,
    connectTimeout: s.connectTimeout === 0 ? 365 * 24 * 3600_000 : s.connectTimeout,
    headersTimeout: s.responseTimeout,
    bodyTimeout: s.idleTimeout,
    keepAliveTimeout: s.keepAliveTimeout,
    keepAliveMaxTimeout: Math.max(s.keepAliveTimeout, 600_000),
    // Upstream response headers may be as large as a client's; 64 KiB matches NGINX's large buffers.
    maxHeaderSize: 64 * 1024,
  });
}

function samePoolSettings(a: PoolSettings, b: PoolSettings): boolean {
  return (
    a.connectTimeout === b.connectTimeout &&
    a.responseTimeout === b.responseTimeout &&
    a.idleTimeout === b.idleTimeout &&
    a.keepAliveTimeout === b.keepAliveTimeout &&
    a.maxConnections === b.maxConnections
  );
}
