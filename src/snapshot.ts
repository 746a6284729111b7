/**
 * An immutable view of one config: router, services and their instance lists. A request keeps the
 * snapshot it started with, so a reload never changes the rules under an in-flight request.
 *
 * Two steps (validate-then-swap): the constructor builds everything from the config alone and
 * touches no live state, so a failure there leaves the running proxy as it was; `attach` then
 * takes the services' instances from the InstanceRegistry, which outlives snapshots (kept
 * instances get the new weights and pool settings there), right before the snapshot goes live.
 */
import { BlockList, isIPv6 } from 'node:net';
import type { Config } from './config/schema.ts';
import type { PluginSet } from './plugins/set.ts';
import { Router } from './routing/router.ts';
import { Service } from './upstream/service.ts';
import type { HostSpec, InstanceRegistry } from './upstream/registry.ts';

export class Snapshot {
  readonly router: Router<Service>;
  readonly services: ReadonlyMap<string, Service>;
  readonly trusted: BlockList | undefined;
  /** `1.1 kubeproxy` or undefined when Via is off. */
  readonly via: string | undefined;

  constructor(
    readonly config: Config,
    /** The config's plugins, loaded (runtime.ts buildSnapshot); undefined when it names none. */
    readonly plugins: PluginSet | undefined = undefined,
  ) {
    const proxy = config.proxy;
    const services = new Map<string, Service>();
    for (const sc of proxy.services) {
      const service = new Service(sc, proxy);
      services.set(service.name, service);
    }
    this.services = services;
    const fallback = proxy.defaultService === undefined ? undefined : services.get(proxy.defaultService);
    this.router = new Router(
      [...services.values()].map((s) => ({ domains: s.domains, target: s })),
      fallback,
    );
    this.via = proxy.via === false ? undefined : `1.1 ${proxy.via}`;
    if (proxy.trustedProxies.length > 0) {
      const list = new BlockList();
      for (const entry of proxy.trustedProxies) {
        const [ip, bits] = entry.split('/') as [string, string | undefined];
        const family = isIPv6(ip) ? 'ipv6' : 'ipv4';
        if (bits === undefined) list.addAddress(ip, family);
        else list.addSubnet(ip, Number(bits), family);
      }
      this.trusted = list;
    } else {
      this.trusted = undefined;
    }
  }

  /**
   * Gives every service its instances: its static hosts plus those service discovery found, kept
   * ones reused from the registry. The step of a reload that changes live state.
   */
  attach(
    registry: InstanceRegistry,
    /** Instances found by service discovery, added to each service's static hosts. */
    discovered: (service: string) => readonly HostSpec[] = () => [],
  ): void {
    for (const service of this.services.values()) {
      service.instances = registry.acquire(service, serviceHosts(service.config.hosts, discovered(service.name)));
    }
  }

  isTrusted(ip: string): boolean {
    if (this.trusted === undefined) return false;
    return this.trusted.check(ip, isIPv6(ip) ? 'ipv6' : 'ipv4');
  }
}

/** Static hosts, then discovered ones; an address:port listed in both is one instance (the static entry's weight wins). */
export function serviceHosts(statics: readonly HostSpec[], discovered: readonly HostSpec[]): HostSpec[] {
  if (discovered.length === 0) return [...statics];
  const seen = new Set(statics.map((h) => `${h.address}:${h.port}`));
  return [...statics, ...discovered.filter((h) => !seen.has(`${h.address}:${h.port}`))];
}
