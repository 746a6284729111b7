/**
 * A named downstream service: its instances, the balancing policy and the per-service policies
 * (timeouts, retries, limits) resolved from the config snapshot. A request is only ever sent to an
 * instance of its own service.
 */
import type { Balancer, PickContext } from '../balancer/balancer.ts';
import { createBalancer } from '../balancer/index.ts';
import type { ProxyConfig, ServiceConfig, UpstreamProtocol } from '../config/schema.ts';
import { serviceDomains } from '../config/schema.ts';
import { upstreamCa } from '../config/upstream-ca.ts';
import { servicePrefix } from '../cache/key.ts';
import type { Instance, PoolSettings, UpstreamTls } from './instance.ts';
import { ServiceState } from './service-state.ts';

export type HashKeySource = { kind: 'client-ip' } | { kind: 'path' } | { kind: 'header'; name: string };

export class Service {
  readonly name: string;
  readonly domains: readonly string[];
  readonly balancer: Balancer;
  readonly hashKey: HashKeySource | undefined;
  readonly timeouts: ProxyConfig['timeouts'];
  readonly retries: ProxyConfig['retries'];
  readonly limits: ProxyConfig['limits'];
  readonly outlier: ProxyConfig['outlierDetection'];
  readonly cacheEnabled: boolean;
  readonly upstreamHost: string | undefined;
  /** How its instances are spoken to (`services[].protocol`). */
  readonly protocol: UpstreamProtocol;
  /** For `https` and `h2`: the CA (read at load), the name checked, whether it is checked. */
  readonly tls: UpstreamTls | undefined;
  /** The start of this service's cache keys (cache/key.ts servicePrefix), made once. */
  readonly cacheKeyPrefix: string;
  /** Replaced (never mutated) when membership changes, so balancers may cache by identity. */
  instances: readonly Instance[] = [];
  /**
   * State shared by every snapshot's Service of this name (attempts in flight, retry budget,
   * pending queue); the InstanceRegistry hands it over in `acquire`.
   */
  state = new ServiceState();

  /** Requests in flight to this service, for the retry budget and saturation metrics. */
  get active(): number {
    return this.state.active;
  }

  set active(n: number) {
    this.state.active = n;
  }

  constructor(
    readonly config: ServiceConfig,
    proxy: ProxyConfig,
  ) {
    this.name = config.name;
    this.domains = serviceDomains(config);
    const kind = config.loadBalancer ?? proxy.loadBalancer;
    this.balancer = createBalancer(kind);
    this.hashKey = kind === 'consistent-hash' ? parseHashKey(config.hashKey ?? proxy.hashKey) : undefined;
    this.timeouts = { ...proxy.timeouts, ...config.timeouts };
    this.retries = { ...proxy.retries, ...config.retries };
    this.limits = { ...proxy.limits, ...config.limits };
    this.outlier = { ...proxy.outlierDetection, ...config.outlierDetection };
    this.cacheEnabled = proxy.cache.enabled && config.cache;
    this.upstreamHost = config.upstreamHost;
    this.protocol = config.protocol ?? 'http1';
    const tls = config.tls;
    this.tls =
      this.protocol === 'https' || this.protocol === 'h2'
        ? { ca: tls === undefined ? undefined : upstreamCa(tls), serverName: tls?.serverName, verify: tls?.verify ?? true }
        : undefined;
    this.cacheKeyPrefix = servicePrefix(this.name);
  }

  poolSettings(): PoolSettings {
    return {
      connectTimeout: this.timeouts.connect,
      responseTimeout: this.timeouts.response,
      idleTimeout: this.timeouts.idle,
      keepAliveTimeout: this.timeouts.keepAlive,
      maxConnections: this.limits.maxConnections,
      protocol: this.protocol,
      tls: this.tls,
    };
  }

  /**
   * Picks an instance for one attempt. When no instance is available because all are unhealthy,
   * ejected or unreachable, every non-draining instance is tried anyway (Envoy's panic mode):
   * answering 503 to everyone is worse than trying instances that may have recovered. A refused
   * connection then moves the request on to an instance not tried yet at no retry-budget cost
   * (server/exchange.ts), so the first instance back serves at once.
   */
  pick(ctx: PickContext): Instance | undefined {
    const picked = this.balancer.pick(this.instances, ctx);
    if (picked !== undefined) return picked;
    let best: Instance | undefined;
    for (const i of this.instances) {
      if (i.draining || ctx.exclude?.has(i)) continue;
      if (i.maxConnections !== 0 && i.inflight >= i.maxConnections) continue;
      if (best === undefined || i.inflight / i.weight < best.inflight / best.weight) best = i;
    }
    return best;
  }
}

function parseHashKey(value: string): HashKeySource {
  if (value === 'path') return { kind: 'path' };
  if (value.startsWith('header:')) return { kind: 'header', name: value.slice(7).toLowerCase() };
  return { kind: 'client-ip' };
}
