/**
 * DNS service discovery: each service with `discovery: { dns, port, interval }` has its A and AAAA
 * records resolved every `interval`; every address is an instance on `port`. A Kubernetes headless
 * Service answers one record per ready pod, so pods join and leave as they become ready or go.
 *
 * Failures never shrink a service: a timeout, SERVFAIL, REFUSED or unreachable DNS server keeps the
 * last good set (Envoy's STRICT_DNS does the same) and is reported through `status()` and the
 * `onResolve` hook. An answer with no addresses (NXDOMAIN, or NOERROR without records) is real
 * data: Kubernetes answers NXDOMAIN for a headless Service with no ready pod (kubernetes/dns#245).
 * But resolvers also return NXDOMAIN spuriously under load (coredns#6518), so a service that has
 * instances only empties once the empty answer has been seen EMPTY_CONFIRMATIONS times in a row.
 *
 * This module only resolves and remembers; the runtime turns the addresses into instances
 * (`onChange`), so instance state (health, pools) stays with the InstanceRegistry.
 */
import { Resolver } from 'node:dns/promises';
import { performance } from 'node:perf_hooks';
import type { DnsDiscoveryConfig, ProxyConfig } from '../config/schema.ts';
import { log } from '../log.ts';
import type { HostSpec } from '../upstream/registry.ts';

/** How many consecutive empty answers empty a service that has instances. */
export const EMPTY_CONFIRMATIONS = 3;
/** Per-query timeout and tries (c-ares doubles the timeout on each retry). */
const QUERY_TIMEOUT_MS = 2000;
const QUERY_TRIES = 2;
/** Answers that mean "this name has no records of that type", not "DNS is broken". */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

export type DiscoveryState = 'pending' | 'ok' | 'failing';

/** What `/status` shows for a service with discovery. */
export interface DiscoveryStatus {
  dns: string;
  port: number;
  intervalMs: number;
  /** `pending` until the first answer, `ok` after a good one, `failing` since the last failure. */
  state: DiscoveryState;
  /** The set in use: the last good answer, sorted. */
  addresses: string[];
  lastSuccessAt: string | null;
  lastErrorAt: string | null;
  lastError: string | null;
  consecutiveFailures: number;
}

/** One resolution, for metrics (e.g. `kubeproxy_discovery_errors_total{service}` on failure). */
export interface ResolveEvent {
  service: string;
  dns: string;
  outcome: 'success' | 'failure';
  /** Error code such as `ETIMEOUT`, `ESERVFAIL`, `ECONNREFUSED`, `EEMPTY` (unconfirmed empty answer). */
  code: string | undefined;
  error: string | undefined;
  /** Addresses in use after this resolution (on failure: the kept set). */
  addresses: number;
  durationSeconds: number;
}

export interface DnsDiscoveryOptions {
  /** Called when a service's address set changed; read the new set with `hosts(service)`. */
  onChange: (service: string) => void;
}

interface Watch {
  service: string;
  dns: string;
  port: number;
  weight: number;
  interval: number;
  addresses: string[];
  state: DiscoveryState;
  lastSuccessAt: number | undefined;
  lastErrorAt: number | undefined;
  lastError: string | undefined;
  consecutiveFailures: number;
  emptyStreak: number;
  /** Resolutions of one service never overlap: each waits for the previous one. */
  queue: Promise<void>;
  timer: NodeJS.Timeout | undefined;
  stopped: boolean;
}

export class DnsDiscovery {
  private readonly watches = new Map<string, Watch>();
  private readonly listeners: Array<(event: ResolveEvent) => void> = [];
  private resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });
  private servers: string = '';
  private started = false;
  private closed = false;

  constructor(private readonly options: DnsDiscoveryOptions) {}

  /**
   * Applies a config: starts watching new services, stops removed ones. A service that keeps its
   * discovery keeps its addresses and state, so a reload never empties it: a new port or weight
   * applies to the kept addresses at once (`hosts()` reads them), and a new `dns` name is resolved
   * at once, its answer replacing the kept addresses as any answer would.
   */
  configure(proxy: Pick<ProxyConfig, 'services' | 'dnsServers'>): void {
    const servers = (proxy.dnsServers ?? []).join(',');
    if (servers !== this.servers) {
      this.servers = servers;
      // A new Resolver, not setServers(): setServers throws while queries are in flight.
      this.resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });
      if (proxy.dnsServers) this.resolver.setServers(proxy.dnsServers);
    }
    // Services with `discovery.dns` only (discovery.kubernetes is kubernetes.ts's).
    const wanted = new Map<string, DnsDiscoveryConfig>();
    for (const s of proxy.services) if (s.discovery && 'dns' in s.discovery) wanted.set(s.name, s.discovery);
    for (const name of [...this.watches.keys()]) if (!wanted.has(name)) this.stopWatch(name);
    for (const [name, d] of wanted) {
      const w = this.watches.get(name);
      if (w) {
        const intervalChanged = w.interval !== d.interval;
        w.port = d.port;
        w.weight = d.weight;
        w.interval = d.interval;
        if (w.dns !== d.dns) {
          w.dns = d.dns;
          w.state = 'pending';
          w.emptyStreak = 0;
          if (this.started) void this.resolveNow(name);
        } else if (intervalChanged) {
          this.schedule(w);
        }
        continue;
      }
      const watch: Watch = {
        service: name,
        dns: d.dns,
        port: d.port,
        weight: d.weight,
        interval: d.interval,
        addresses: [],
        state: 'pending',
        lastSuccessAt: undefined,
        lastErrorAt: undefined,
        lastError: undefined,
        consecutiveFailures: 0,
        emptyStreak: 0,
        queue: Promise.resolve(),
        timer: undefined,
        stopped: false,
      };
      this.watches.set(name, watch);
      if (this.started) void this.resolveNow(name);
    }
  }

  /** Resolves every service once (so the proxy starts with its instances), then keeps polling. */
  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    await Promise.all([...this.watches.keys()].map((name) => this.resolveNow(name)));
  }

  /** Resolves one service now (after any resolution in progress); the next poll follows `interval` later. */
  resolveNow(service: string): Promise<void> {
    const w = this.watches.get(service);
    if (w === undefined) return Promise.resolve();
    w.queue = w.queue
      .then(() => this.resolveOnce(w))
      // A throwing listener must not break the chain (every later poll waits on it).
      .catch((err: unknown) => log.error({ err, service }, 'service discovery failed unexpectedly'));
    return w.queue;
  }

  /** The instances of `service` from its last good answer (empty when it has no discovery). */
  hosts(service: string): HostSpec[] {
    const w = this.watches.get(service);
    if (w === undefined) return [];
    return w.addresses.map((address) => ({ address, port: w.port, weight: w.weight }));
  }

  status(service: string): DiscoveryStatus | undefined {
    const w = this.watches.get(service);
    if (w === undefined) return undefined;
    return {
      dns: w.dns,
      port: w.port,
      intervalMs: w.interval,
      state: w.state,
      addresses: [...w.addresses],
      lastSuccessAt: w.lastSuccessAt === undefined ? null : new Date(w.lastSuccessAt).toISOString(),
      lastErrorAt: w.lastErrorAt === undefined ? null : new Date(w.lastErrorAt).toISOString(),
      lastError: w.lastError ?? null,
      consecutiveFailures: w.consecutiveFailures,
    };
  }

  /** Hook for metrics: called after every resolution, good or failed. Returns an unsubscribe function. */
  onResolve(fn: (event: ResolveEvent) => void): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Stops every poll; answers still in flight are dropped. */
  close(): void {
    this.closed = true;
    for (const name of [...this.watches.keys()]) this.stopWatch(name);
    this.resolver.cancel();
  }

  private stopWatch(name: string): void {
    const w = this.watches.get(name);
    if (w === undefined) return;
    w.stopped = true;
    clearTimeout(w.timer);
    this.watches.delete(name);
  }

  private schedule(w: Watch): void {
    clearTimeout(w.timer);
    if (w.stopped || this.closed || !this.started) return;
    w.timer = setTimeout(() => void this.resolveNow(w.service), w.interval);
    // Polling alone never keeps the process alive; the listeners do.
    w.timer.unref();
  }

  private async resolveOnce(w: Watch): Promise<void> {
    if (w.stopped) return;
    clearTimeout(w.timer);
    const began = performance.now();
    const resolver = this.resolver;
    const dns = w.dns;
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(dns), resolver.resolve6(dns)]);
    // Stopped, or renamed by a reload meanwhile (the new name's resolution is queued next).
    if (w.stopped || w.dns !== dns) return;
    const durationSeconds = (performance.now() - began) / 1000;
    let failure: { code: string; message: string } | undefined;
    const found: string[] = [];
    for (const r of [v4, v6]) {
      if (r.status === 'fulfilled') found.push(...r.value);
      else {
        const code = (r.reason as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
        if (!NO_RECORDS.has(code)) failure ??= { code, message: `${code} resolving ${w.dns}` };
      }
    }
    const addresses = [...new Set(found)].sort();
    if (failure === undefined && addresses.length === 0 && w.addresses.length > 0 && ++w.emptyStreak < EMPTY_CONFIRMATIONS) {
      failure = {
        code: 'EEMPTY',
        message: `no A/AAAA records for ${w.dns} (${w.emptyStreak}/${EMPTY_CONFIRMATIONS} answers in a row); keeping the last ${w.addresses.length} address(es)`,
      };
    }
    if (failure === undefined) {
      if (w.state === 'failing') log.info({ service: w.service, dns: w.dns, failures: w.consecutiveFailures }, 'service discovery recovered');
      w.emptyStreak = 0;
      w.consecutiveFailures = 0;
      w.state = 'ok';
      w.lastSuccessAt = Date.now();
      const added = addresses.filter((a) => !w.addresses.includes(a));
      const removed = w.addresses.filter((a) => !addresses.includes(a));
      w.addresses = addresses;
      if (added.length > 0 || removed.length > 0) {
        log.info({ service: w.service, dns: w.dns, added, removed, addresses: addresses.length }, 'service instances changed');
        this.options.onChange(w.service);
      }
    } else {
      if (failure.code !== 'EEMPTY') w.emptyStreak = 0;
      // Logged when a failure streak starts; /status and the metrics hook count the rest.
      if (w.consecutiveFailures === 0) log.warn({ service: w.service, dns: w.dns, err: failure.message, kept: w.addresses.length }, 'service discovery failed; keeping the last addresses');
      w.consecutiveFailures++;
      w.state = 'failing';
      w.lastErrorAt = Date.now();
      w.lastError = failure.message;
    }
    this.schedule(w);
    const event: ResolveEvent = {
      service: w.service,
      dns: w.dns,
      outcome: failure === undefined ? 'success' : 'failure',
      code: failure?.code,
      error: failure?.message,
      addresses: w.addresses.length,
      durationSeconds,
    };
    for (const fn of [...this.listeners]) fn(event);
  }
}
