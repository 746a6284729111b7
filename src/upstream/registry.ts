/**
 * Keeps Instance objects across config reloads, keyed by service name and address:port, so a
 * reload keeps health state, ejections, counters and pooled connections of instances that stay
 * (Pingora keys health by backend hash; Caddy keeps a usage pool). Instances that leave finish
 * their in-flight requests before their pool closes.
 */
import { Instance } from './instance.ts';
import type { Service } from './service.ts';
import { ServiceState } from './service-state.ts';

export interface HostSpec {
  address: string;
  port: number;
  weight: number;
}

export class InstanceRegistry {
  private readonly byKey = new Map<string, Instance>();
  /** Keys used by the snapshot being built; see `sweep`. */
  private live = new Set<string>();
  /** Per-service state (budget, pending queue, counters) that outlives snapshots, by service name. */
  private readonly states = new Map<string, ServiceState>();
  private liveServices = new Set<string>();

  /**
   * Returns the instances of `service` for `hosts`, reusing existing ones, and hands the service
   * its shared ServiceState, so requests of the old and the new snapshot count against one budget.
   */
  acquire(service: Service, hosts: readonly HostSpec[]): Instance[] {
    let state = this.states.get(service.name);
    if (state === undefined) this.states.set(service.name, (state = new ServiceState()));
    service.state = state;
    this.liveServices.add(service.name);
    const settings = service.poolSettings();
    const out: Instance[] = [];
    for (const h of hosts) {
      const key = `${service.name}/${h.address}:${h.port}`;
      let instance = this.byKey.get(key);
      if (instance === undefined) {
        instance = new Instance(service.name, h.address, h.port, h.weight, settings);
        this.byKey.set(key, instance);
      } else {
        instance.update(h.weight, settings);
      }
      this.live.add(key);
      out.push(instance);
    }
    return out;
  }

  /** Marks the start of building a new snapshot. */
  begin(): void {
    this.live = new Set();
    this.liveServices = new Set();
  }

  /** Instances not acquired since `begin()` leave: they drain, then their pools close. */
  sweep(drainTimeoutMs: number): Instance[] {
    for (const name of this.states.keys()) if (!this.liveServices.has(name)) this.states.delete(name);
    const gone: Instance[] = [];
    for (const [key, instance] of this.byKey) {
      if (this.live.has(key)) continue;
      this.byKey.delete(key);
      gone.push(instance);
      void instance.close(drainTimeoutMs);
    }
    return gone;
  }

  /**
   * Sets one service's instances to `hosts` between reloads (service discovery): instances that
   * stay keep their state and pools; the service's other instances drain, then close.
   */
  replace(service: Service, hosts: readonly HostSpec[], drainTimeoutMs: number): { instances: Instance[]; gone: Instance[] } {
    const instances = this.acquire(service, hosts);
    const kept = new Set(instances);
    const gone: Instance[] = [];
    // Service names cannot contain "/", so the prefix matches this service only.
    const prefix = `${service.name}/`;
    for (const [key, instance] of this.byKey) {
      if (!key.startsWith(prefix) || kept.has(instance)) continue;
      this.byKey.delete(key);
      gone.push(instance);
      void instance.close(drainTimeoutMs);
    }
    return { instances, gone };
  }

  async closeAll(timeoutMs: number): Promise<void> {
    await Promise.all([...this.byKey.values()].map((i) => i.close(timeoutMs)));
    this.byKey.clear();
  }
}
