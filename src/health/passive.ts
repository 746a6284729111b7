/**
 * Passive health checking (Envoy's outlier detection), fed by every attempt the pipeline ends.
 *
 * - A failure is a connect failure, a reset, a timeout, a malformed answer, or any 5xx status.
 *   Anything else the instance answered is a success and resets the consecutive count. Errors that
 *   are not the instance's doing (the client went away, the body was over the limit) count as
 *   neither.
 * - After `consecutiveFailures` failures in a row the instance is ejected (`instance.ejected`) for
 *   `baseEjectionTime` × the number of times it was ejected in a row, capped at `maxEjectionTime`
 *   (never below `baseEjectionTime`); a timer readmits it. As in Envoy, the multiplier decays by
 *   one for every `baseEjectionTime` the instance then spends in rotation, so an instance that
 *   recovered starts again from the base time while one that keeps failing stays out longer.
 * - At most `maxEjectionPercent` % of a service's instances are ejected at once, rounded down but
 *   at least one — Envoy's rule ("will eject at least one host regardless of the value"), so a
 *   service of two instances at 10 % can still eject its broken one. `maxEjectionPercent: 0`
 *   ejects nothing. Ejecting the last available instance is harmless: when every instance is
 *   unavailable, Service.pick tries them anyway (panic mode) rather than answering 503 to everyone.
 * - Results that arrive while an instance is ejected (requests that were in flight, panic-mode
 *   traffic) are ignored: they neither extend nor end the ejection.
 * - An instance that could not be reached (connect refused or timed out, or the connection closed
 *   before any response byte: `ProxyError.unreachable`) is taken out at once, not after
 *   `consecutiveFailures`, and regardless of `maxEjectionPercent` (sending to it cannot succeed,
 *   so keeping it in rotation protects nothing). It is readmitted as soon as a TCP connect to it
 *   succeeds, tried after 100 ms, 200 ms, then every 500 ms (each probe bounded by the service's
 *   connect timeout), so an instance that comes back is in rotation within about half a second,
 *   however long it was out. Each such failure
 *   still counts towards `consecutiveFailures`: an instance that accepts connections and drops
 *   every request is ejected on the timer like any other failing instance. Like Envoy's split of
 *   "locally originated" errors, and Linkerd's probe of a tripped endpoint.
 *
 * State is kept per Instance object, which survives reloads, so a reload neither readmits an
 * ejected instance nor forgets its failure count. Settings are read from the Service passed with
 * each result (the snapshot the request started with).
 */
import type { ErrorCause, ProxyError } from '../errors.ts';
import type { OutlierConfig } from '../config/schema.ts';
import { canConnect } from './connect-probe.ts';

/** What the detector needs of an instance (an `Instance` in the proxy). */
export interface OutlierInstance {
  readonly id: string;
  ejected: boolean;
  /** Where a connect probe goes; an instance without them is readmitted on the timer only. */
  readonly address?: string;
  readonly port?: number;
  /** Left the config: probing stops and the mark is dropped. */
  readonly draining?: boolean;
}

/** Resolves true when the instance accepts a TCP connection (health/connect-probe.ts in the proxy). */
export type ReachabilityProbe<I> = (instance: I, timeoutMs: number) => Promise<boolean>;

/** What the detector needs of a service (a `Service` in the proxy). */
export interface OutlierService<I extends OutlierInstance> {
  readonly name: string;
  readonly outlier: OutlierConfig;
  readonly instances: readonly I[];
  /** The connect timeout also bounds a connect probe (0 = none: a probe then waits 10 s at most). */
  readonly timeouts?: { readonly connect: number };
}

/** Hooks for logs and metrics. */
export interface OutlierEvents<I extends OutlierInstance> {
  /**
   * `instance` was ejected for `durationMs`; `ejections` counts its ejections in a row. For an
   * unreachable instance `reason` is 'unreachable' and `durationMs` 0: it is out until a connect
   * probe succeeds.
   */
  onEject?(instance: I, service: string, durationMs: number, ejections: number, reason: 'failures' | 'unreachable'): void;
  /** `instance` is back in rotation. */
  onReadmit?(instance: I, service: string): void;
}

export interface OutlierClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: OutlierClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Causes that say something about the instance; the others are the client's or the proxy's doing. */
const INSTANCE_FAILURES: ReadonlySet<ErrorCause> = new Set<ErrorCause>(['connect', 'reset', 'timeout', 'upstream_protocol']);

/** Connect probes of an unreachable instance: soon at first, then at this pace. */
const PROBE_FIRST_MS = 100;
const PROBE_EVERY_MS = 500;
const PROBE_TIMEOUT_MS = 10_000;

interface State {
  consecutive: number;
  /** Ejections in a row (the multiplier of the ejection time). */
  ejections: number;
  /** clock.now() of the last readmission. */
  readmittedAt: number;
  timer: unknown;
  /** Out because it could not be reached: readmitted by a connect probe, not by the timer. */
  unreachable: boolean;
  /** The delay before the next connect probe. */
  probeDelay: number;
  /** How long one connect probe may take: the service's connect timeout. */
  probeTimeout: number;
}

function defaultProbe(instance: OutlierInstance, timeoutMs: number): Promise<boolean> {
  // Nowhere to probe: readmitted at the first probe time, and taken out again if it still fails.
  if (instance.address === undefined || instance.port === undefined) return Promise.resolve(true);
  return canConnect(instance.address, instance.port, timeoutMs);
}

export class OutlierDetector<I extends OutlierInstance = OutlierInstance> {
  private readonly states = new WeakMap<I, State>();
  /** Ejected instances with their readmission timer, so stop() can clear them. */
  private readonly ejected = new Set<I>();
  private stopped = false;
  private readonly listeners: Array<OutlierEvents<I>> = [];

  constructor(
    events: OutlierEvents<I> = {},
    private readonly clock: OutlierClock = realClock,
    private readonly probe: ReachabilityProbe<I> = defaultProbe,
  ) {
    this.listeners.push(events);
  }

  /** Adds hooks (metrics subscribe here). */
  addListener(events: OutlierEvents<I>): void {
    this.listeners.push(events);
  }

  /**
   * Records the end of one attempt: `status` is the response status (0 when none came) and
   * `failure` the error that ended it, if any. The signature of Runtime.onAttemptEnd.
   */
  record(instance: I, service: OutlierService<I>, status: number, failure: ProxyError | undefined): void {
    if (this.stopped) return;
    let failed: boolean;
    if (failure !== undefined) {
      if (!INSTANCE_FAILURES.has(failure.kind)) return;
      failed = true;
    } else {
      failed = status >= 500;
    }
    const cfg = service.outlier;
    if (!cfg.enabled || instance.ejected) return;
    let st = this.states.get(instance);
    if (!failed) {
      if (st !== undefined) st.consecutive = 0;
      return;
    }
    if (st === undefined) {
      st = { consecutive: 0, ejections: 0, readmittedAt: 0, timer: undefined, unreachable: false, probeDelay: PROBE_FIRST_MS, probeTimeout: PROBE_TIMEOUT_MS };
      this.states.set(instance, st);
    }
    st.consecutive++;
    // Over the share: the count stays at the threshold, so the next failure tries again.
    if (st.consecutive >= cfg.consecutiveFailures && this.mayEject(service)) return this.eject(instance, service.name, st, cfg);
    if (failure?.unreachable === true && cfg.maxEjectionPercent > 0) {
      const connect = service.timeouts?.connect ?? 0;
      st.probeTimeout = connect > 0 ? connect : PROBE_TIMEOUT_MS;
      this.takeOut(instance, service.name, st);
    }
  }

  /** Consecutive failures counted for `instance` (for status pages and tests). */
  failures(instance: I): number {
    return this.states.get(instance)?.consecutive ?? 0;
  }

  /** Readmission timers are cleared; ejected instances stay as they are (the process is ending). */
  stop(): void {
    this.stopped = true;
    for (const instance of this.ejected) {
      const st = this.states.get(instance);
      if (st !== undefined) this.clock.clearTimeout(st.timer);
    }
    this.ejected.clear();
  }

  private mayEject(service: OutlierService<I>): boolean {
    const percent = service.outlier.maxEjectionPercent;
    if (percent <= 0) return false;
    let ejected = 0;
    for (const i of service.instances) if (i.ejected) ejected++;
    const allowed = Math.max(1, Math.floor((service.instances.length * percent) / 100));
    return ejected < allowed;
  }

  private eject(instance: I, service: string, st: State, cfg: OutlierConfig): void {
    const now = this.clock.now();
    const base = cfg.baseEjectionTime;
    if (st.ejections > 0 && base > 0) st.ejections = Math.max(0, st.ejections - Math.floor((now - st.readmittedAt) / base));
    st.ejections++;
    st.consecutive = 0;
    const durationMs = Math.min(base * st.ejections, Math.max(cfg.maxEjectionTime, base));
    instance.ejected = true;
    this.ejected.add(instance);
    st.timer = this.clock.setTimeout(() => this.readmit(instance, service, st), durationMs);
    for (const l of this.listeners) l.onEject?.(instance, service, durationMs, st.ejections, 'failures');
  }

  /** Out of rotation until a connect probe succeeds (the timer below only paces the probes). */
  private takeOut(instance: I, service: string, st: State): void {
    st.unreachable = true;
    st.probeDelay = PROBE_FIRST_MS;
    instance.ejected = true;
    this.ejected.add(instance);
    st.timer = this.clock.setTimeout(() => this.probeOnce(instance, service, st), st.probeDelay);
    for (const l of this.listeners) l.onEject?.(instance, service, 0, st.ejections, 'unreachable');
  }

  private probeOnce(instance: I, service: string, st: State): void {
    st.timer = undefined;
    if (this.stopped || !st.unreachable) return;
    if (instance.draining === true) {
      // It left the config, so nothing is sent to it anyway; should it come back, it starts afresh.
      this.ejected.delete(instance);
      st.unreachable = false;
      instance.ejected = false;
      return;
    }
    void this.probe(instance, st.probeTimeout).then((ok) => {
      if (this.stopped || !st.unreachable) return;
      if (ok) return this.readmit(instance, service, st);
      st.probeDelay = Math.min(st.probeDelay * 2, PROBE_EVERY_MS);
      st.timer = this.clock.setTimeout(() => this.probeOnce(instance, service, st), st.probeDelay);
    });
  }

  private readmit(instance: I, service: string, st: State): void {
    this.ejected.delete(instance);
    st.timer = undefined;
    // Readmitted by a probe: its failures so far still count (see the header).
    if (!st.unreachable) st.consecutive = 0;
    st.unreachable = false;
    st.readmittedAt = this.clock.now();
    instance.ejected = false;
    for (const l of this.listeners) l.onReadmit?.(instance, service);
  }
}
