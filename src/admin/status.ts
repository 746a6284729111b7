/**
 * The JSON of GET /status: readiness, uptime, in-flight requests, connections, the config's
 * load and reload error, the cache's figures and every service with its last minute (requests
 * per second, errors, latency quantiles, retries) and its instances (state, health, ejections,
 * last probe, last error, discovery). The status page (admin/page/) draws it; the cluster
 * primary merges the workers' (cluster/status-merge.ts).
 */
import type { DnsDiscovery } from '../discovery/dns.ts';
import type { KubernetesDiscovery } from '../discovery/kubernetes.ts';
import type { LiveStatus } from '../observability/live-status.ts';
import type { Observability } from '../observability/wire.ts';
import { mergeCounts, summarize, type WindowCounts } from '../observability/window.ts';
import type { Snapshot } from '../snapshot.ts';
import type { Instance } from '../upstream/instance.ts';

/**
 * An instance's state, worst first: left the config (draining its requests), terminating in
 * its EndpointSlice (leaving discovery), ejected by outlier detection, failing active checks.
 */
export type InstanceState = 'draining' | 'leaving' | 'ejected' | 'unhealthy' | 'healthy';

/** What /status reads from the running proxy. */
export interface StatusSource {
  readonly ready: boolean;
  readonly draining: boolean;
  readonly startedAt: number;
  readonly inflight: number;
  readonly snapshot: Snapshot;
  readonly listener: { readonly connections: number };
  readonly discovery: Pick<DnsDiscovery, 'status'>;
  readonly kubernetes: Pick<KubernetesDiscovery, 'status'>;
  readonly observability: Pick<Observability, 'cacheStatus' | 'instanceStatus'>;
  readonly live: Pick<LiveStatus, 'window' | 'lastError' | 'ejection' | 'config'>;
  /** State-changing admin requests served, by route (cache purges). */
  readonly admin: { served(route: string): number } | undefined;
  /** The shared cache tier (proxy.cache.shared), when there is one. */
  readonly cache?: { sharedStatus(): unknown };
}

export function proxyStatus(source: StatusSource): unknown {
  const snap = source.snapshot;
  const now = Date.now();
  const windows: WindowCounts[] = [];
  return {
    ready: source.ready,
    draining: source.draining,
    uptimeSeconds: Math.round((Date.now() - source.startedAt) / 1000),
    inflight: source.inflight,
    connections: source.listener.connections,
    config: { ...source.live.config.state(), workers: null },
    services: [...snap.services.values()].map((s) => {
      const discovery = s.config.discovery ? (source.discovery.status(s.name) ?? source.kubernetes.status(s.name)) : undefined;
      const terminating = new Set(discovery !== undefined && 'terminating' in discovery ? discovery.terminating : []);
      const window = source.live.window(s, now);
      windows.push(window);
      return {
        name: s.name,
        domains: s.domains,
        loadBalancer: s.config.loadBalancer ?? snap.config.proxy.loadBalancer,
        active: s.active,
        // Attempts in flight plus requests waiting for a connection (as kubeproxy_inflight_requests).
        inflight: s.active + s.state.pending.size,
        retryBudget: { granted: s.state.budget.granted, refused: s.state.budget.denied },
        // The last minute: raw sums (the cluster primary adds them up) and what they say.
        window,
        lastMinute: summarize(window),
        // Only for services with `discovery`: state, addresses in use, last error and last success.
        ...(discovery !== undefined ? { discovery } : {}),
        instances: s.instances.map((i) => ({
          id: i.id,
          state: instanceState(i, terminating),
          weight: i.weight,
          healthy: i.healthy,
          ejected: i.ejected,
          available: i.available(),
          inflight: i.inflight,
          ejection: source.live.ejection(i),
          lastError: source.live.lastError(i),
          // Ejections since start (failed health checks or outlier detection), the last one, the last probe.
          ...source.observability.instanceStatus(i),
        })),
      };
    }),
    // Size from the cache store, lookups and hit ratio since start (see observability/wire.ts); the last minute over all services.
    cache: cacheStatus(source, mergeCounts(windows)),
  };
}

function cacheStatus(source: StatusSource, window: WindowCounts): unknown {
  return {
    enabled: source.snapshot.config.proxy.cache.enabled,
    ...source.observability.cacheStatus(),
    purges: source.admin?.served('POST /cache/purge') ?? 0,
    lastMinute: { lookups: window.cacheLookups, served: window.cacheServed, hitRatio: summarize(window).cacheHitRatio },
    // Breaker state, lookups and writes of the shared tier, its last error (shared-tier.ts).
    ...optionalShared(source.cache?.sharedStatus()),
  };
}

function optionalShared(shared: unknown): { shared?: unknown } {
  return shared === undefined ? {} : { shared };
}

export function instanceState(i: Instance, terminating: ReadonlySet<string>): InstanceState {
  if (i.draining) return 'draining';
  if (terminating.has(i.id)) return 'leaving';
  if (i.ejected) return 'ejected';
  return i.healthy ? 'healthy' : 'unhealthy';
}
