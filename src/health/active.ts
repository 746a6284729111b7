/**
 * Active health checks (HAProxy's `check` with `rise`/`fall`), per service when `healthCheck` is
 * configured, off otherwise.
 *
 * - Each instance is probed with `GET healthCheck.path`, Host = `healthCheck.host`, else the
 *   service's `upstreamHost`, else its first domain (a wildcard's `*.` dropped). The probe passes
 *   when the status matches `expectedStatus` (a status, a list, or a class like "2xx") within
 *   `timeout` (0 means the interval). Its body is read and dropped.
 * - `unhealthyThreshold` failures in a row take the instance out of rotation
 *   (`instance.healthy = false`); `healthyThreshold` passes in a row bring it back. Instances start
 *   healthy, so adding one never empties a service while its first probes run.
 * - The next probe of an instance is scheduled only when the previous one finished, `interval`
 *   ±10 % later: probes never pile up on a slow instance, and instances do not probe in lockstep.
 *   The first probe comes after a random delay of up to one interval (at most 1 s), which spreads
 *   a large fleet.
 * - Probes use their own connection per probe (`Connection: close`), not the instance's pool: a
 *   probe is not queued behind traffic nor limited by `maxConnections`, and every probe checks
 *   that the instance still accepts connections. They speak the instance's protocol (http1,
 *   https with its CA, h2c, h2: probe-request.ts).
 * - `sync()` is called with the services of each new snapshot (start, reload, discovery change):
 *   instances that stay keep their prober, its counters and their health; new ones get one;
 *   removed ones — or ones whose service no longer has a `healthCheck` — are stopped, and in the
 *   second case the instance goes back to healthy (nothing is checking it any more).
 */
import { Agent } from 'undici';
import type { HealthCheckConfig } from '../config/schema.ts';
import type { Instance } from '../upstream/instance.ts';
import type { Service } from '../upstream/service.ts';
import { probeStatus } from './probe-request.ts';

export interface ProbeResult {
  ok: boolean;
  /** The status received, or 0 when none came. */
  status: number;
  /** Why the probe failed: the unexpected status or the error. */
  detail: string;
  durationMs: number;
}

/** Hooks for logs and metrics. */
export interface HealthCheckEvents {
  /** One probe of `instance` (of service `service`) finished. */
  onProbe?(instance: Instance, service: string, result: ProbeResult): void;
  /** `instance` left (healthy = false) or re-entered (true) rotation. */
  onChange?(instance: Instance, service: string, healthy: boolean, result: ProbeResult | undefined): void;
}

/** `2xx`, `204`, or `[200, 204]`. */
export function statusMatches(expected: HealthCheckConfig['expectedStatus'], status: number): boolean {
  if (typeof expected === 'number') return status === expected;
  if (Array.isArray(expected)) return expected.includes(status);
  return Math.floor(status / 100) === Number(expected[0]);
}

/** interval ±10 %. */
function jitter(interval: number): number {
  return Math.max(1, Math.round(interval * (0.9 + Math.random() * 0.2)));
}

class Prober {
  successes = 0;
  failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private stopped = false;

  constructor(
    readonly instance: Instance,
    private service: string,
    private config: HealthCheckConfig,
    private host: string,
    private readonly checker: ActiveHealthChecker,
  ) {
    this.schedule(Math.random() * Math.min(config.interval, 1000));
  }

  update(service: string, config: HealthCheckConfig, host: string): void {
    const intervalChanged = config.interval !== this.config.interval;
    this.service = service;
    this.config = config;
    this.host = host;
    // A new interval applies now, not after the old (maybe long) one.
    if (intervalChanged && !this.inFlight) this.schedule(jitter(config.interval));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(delay: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), delay);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    this.inFlight = true;
    const result = await this.checker.probe(this.instance, this.config, this.host);
    this.inFlight = false;
    if (this.stopped) return;
    this.apply(result);
    this.schedule(jitter(this.config.interval));
  }

  private apply(result: ProbeResult): void {
    const { instance, config } = this;
    this.checker.emitProbe(instance, this.service, result);
    if (result.ok) {
      this.successes++;
      this.failures = 0;
      if (!instance.healthy && this.successes >= config.healthyThreshold) this.flip(true, result);
    } else {
      this.failures++;
      this.successes = 0;
      if (instance.healthy && this.failures >= config.unhealthyThreshold) this.flip(false, result);
    }
  }

  private flip(healthy: boolean, result: ProbeResult): void {
    this.instance.healthy = healthy;
    this.checker.emitChange(this.instance, this.service, healthy, result);
  }
}

export class ActiveHealthChecker {
  private readonly probers = new Map<Instance, Prober>();
  private readonly agent = new Agent({ connections: 1, pipelining: 1 });

  private readonly listeners: HealthCheckEvents[] = [];

  constructor(events: HealthCheckEvents = {}) {
    this.listeners.push(events);
  }

  /** Adds hooks (metrics subscribe here). */
  addListener(events: HealthCheckEvents): void {
    this.listeners.push(events);
  }

  /** @internal for Prober */
  emitProbe(instance: Instance, service: string, result: ProbeResult): void {
    for (const l of this.listeners) l.onProbe?.(instance, service, result);
  }

  /** @internal for Prober */
  emitChange(instance: Instance, service: string, healthy: boolean, result: ProbeResult | undefined): void {
    for (const l of this.listeners) l.onChange?.(instance, service, healthy, result);
  }

  /** Starts, updates and stops probers to match `services` (the current snapshot's). */
  sync(services: Iterable<Service>): void {
    const seen = new Set<Instance>();
    const unchecked = new Set<Instance>();
    for (const service of services) {
      const hc = service.config.healthCheck;
      for (const instance of service.instances) {
        if (hc === undefined || instance.draining) {
          unchecked.add(instance);
          continue;
        }
        seen.add(instance);
        const host = probeHost(service, hc);
        const prober = this.probers.get(instance);
        if (prober === undefined) this.probers.set(instance, new Prober(instance, service.name, hc, host, this));
        else prober.update(service.name, hc, host);
      }
    }
    for (const [instance, prober] of this.probers) {
      if (seen.has(instance)) continue;
      prober.stop();
      this.probers.delete(instance);
      // Still configured but no longer checked: nothing would ever bring it back otherwise.
      if (unchecked.has(instance) && !instance.healthy) {
        instance.healthy = true;
        this.emitChange(instance, instance.service, true, undefined);
      }
    }
  }

  async stop(): Promise<void> {
    for (const prober of this.probers.values()) prober.stop();
    this.probers.clear();
    await this.agent.destroy().catch(() => {});
  }

  /** One probe; never throws. */
  async probe(instance: Instance, config: HealthCheckConfig, host: string): Promise<ProbeResult> {
    const started = performance.now();
    const timeout = config.timeout > 0 ? config.timeout : config.interval;
    const signal = AbortSignal.timeout(timeout);
    try {
      const status = await probeStatus(instance, this.agent, { path: config.path, host, timeout, signal });
      const ok = statusMatches(config.expectedStatus, status);
      return { ok, status, detail: ok ? '' : `status ${status}`, durationMs: performance.now() - started };
    } catch (err) {
      const e = err as { code?: string; name?: string; message?: string };
      const detail = e.name === 'TimeoutError' || signal.aborted ? `no answer within ${timeout} ms` : (e.code ?? e.message ?? String(err));
      return { ok: false, status: 0, detail, durationMs: performance.now() - started };
    }
  }
}

function probeHost(service: Service, hc: HealthCheckConfig): string {
  if (hc.host !== undefined) return hc.host;
  if (service.upstreamHost !== undefined) return service.upstreamHost;
  const domain = service.domains[0] ?? 'localhost';
  return domain.startsWith('*.') ? domain.slice(2) : domain;
}
