/**
 * The JSON of GET /status: readiness, uptime, in-flight requests, connections, the cache's
 * figures and every service with its instances (health, ejections, last probe, discovery).
 */
import type { DnsDiscovery } from '../discovery/dns.ts';
import type { KubernetesDiscovery } from '../discovery/kubernetes.ts';
import type { Observability } from '../observability/wire.ts';
import type { Snapshot } from '../snapshot.ts';

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
}

export function proxyStatus(source: StatusSource): unknown {
  const snap = source.snapshot;
  return {
    ready: source.ready,
    draining: source.draining,
    uptimeSeconds: Math.round((Date.now() - source.startedAt) / 1000),
    inflight: source.inflight,
    connections: source.listener.connections,
    // Size from the cache store, lookups and hit ratio since start (see observability/wire.ts).
    cache: { enabled: snap.config.proxy.cache.enabled, ...source.observability.cacheStatus() },
    services: [...snap.services.values()].map((s) => ({
      name: s.name,
      domains: s.domains,
      loadBalancer: s.config.loadBalancer ?? snap.config.proxy.loadBalancer,
      active: s.active,
      // Only for services with `discovery`: state, addresses in use, last error and last success.
      ...(s.config.discovery ? { discovery: source.discovery.status(s.name) ?? source.kubernetes.status(s.name) } : {}),
      instances: s.instances.map((i) => ({
        id: i.id,
        weight: i.weight,
        healthy: i.healthy,
        ejected: i.ejected,
        available: i.available(),
        inflight: i.inflight,
        // Ejections since start (failed health checks or outlier detection), the last one, the last probe.
        ...source.observability.instanceStatus(i),
      })),
    })),
  };
}
