/**
 * What the status page shows that neither the metrics nor the instances keep: each service's
 * last minute (window.ts), each instance's last error and the end of its ejection, and when the
 * config was loaded and why the last reload failed. /status reads it (admin/status.ts).
 *
 * Hot path: `ended` runs once per finished request. It records into the service's window, kept
 * on the service's state (which outlives reloads, so a reload keeps the minute), at the end time
 * the log phase took: O(1), no allocation. Attempt ends are looked at only when they failed.
 */
import type { RequestContext } from '../context.ts';
import type { ProxyError } from '../errors.ts';
import type { OutlierDetector } from '../health/passive.ts';
import type { Instance } from '../upstream/instance.ts';
import type { Service } from '../upstream/service.ts';
import { CACHE_FORWARDED, CACHE_NONE, CACHE_SERVED, RequestWindow, emptyCounts, type WindowCounts } from './window.ts';

/** An instance's last failed attempt. */
export interface LastError {
  cause: string;
  message: string;
  at: string;
}

/** Why and until when an instance is out of rotation (outlier detection). */
export interface Ejection {
  reason: 'failures' | 'unreachable';
  /** When the ejection ends; null for an unreachable instance (out until a connect succeeds). */
  until: string | null;
}

/** The config as /status reports it. */
export interface ConfigState {
  loadedAt: string;
  reloads: number;
  lastReloadError: { message: string; at: string } | null;
}

/** What the live status subscribes to in the running proxy (Runtime). */
export interface LiveSource {
  readonly outliers: Pick<OutlierDetector<Instance>, 'addListener'>;
  onRequestEnd(fn: (ctx: RequestContext) => void): void;
  onAttemptEnd(fn: (instance: Instance, service: Service, status: number, failure: ProxyError | undefined) => void): void;
}

/** The reload history of one process (a Runtime, or the cluster primary that validates reloads). */
export class ConfigHistory {
  private loadedAt = new Date().toISOString();
  private reloads = 0;
  private lastError: ConfigState['lastReloadError'] = null;

  reloaded(): void {
    this.loadedAt = new Date().toISOString();
    this.reloads++;
  }

  failed(message: string): void {
    this.lastError = { message, at: new Date().toISOString() };
  }

  state(): ConfigState {
    return { loadedAt: this.loadedAt, reloads: this.reloads, lastReloadError: this.lastError };
  }
}

export class LiveStatus {
  readonly config = new ConfigHistory();
  private readonly errors = new WeakMap<Instance, LastError>();
  private readonly ejections = new WeakMap<Instance, Ejection>();

  constructor(source: LiveSource) {
    source.onRequestEnd(this.ended);
    source.onAttemptEnd(this.attemptEnded);
    source.outliers.addListener({
      onEject: (instance, _service, durationMs, _n, reason) => {
        this.ejections.set(instance, { reason, until: reason === 'unreachable' ? null : new Date(Date.now() + durationMs).toISOString() });
      },
    });
  }

  // ---- hot path -------------------------------------------------------------------------------

  private readonly ended = (ctx: RequestContext): void => {
    const service = ctx.service;
    if (service === undefined) return;
    const w = (service.state.window ??= new RequestWindow());
    const now = ctx.end;
    const cause = ctx.errorCause;
    // A client that left is not the service failing; anything the proxy cut or a 5xx is.
    const error = cause === undefined ? ctx.status >= 500 : cause !== 'client_abort';
    const cache = ctx.cacheResult;
    const outcome = cache === '' || cache === 'bypass' ? CACHE_NONE : cache === 'hit' || cache === 'stale' ? CACHE_SERVED : CACHE_FORWARDED;
    w.record(performance.timeOrigin + now, now - ctx.start, error, ctx.attempts > 1 ? ctx.attempts - 1 : 0, outcome);
  };

  private readonly attemptEnded = (instance: Instance, _service: Service, _status: number, failure: ProxyError | undefined): void => {
    if (failure === undefined) return;
    this.errors.set(instance, { cause: failure.kind, message: failure.message, at: new Date().toISOString() });
  };

  // ---- /status ----------------------------------------------------------------------------------

  /** The last minute of a service (empty before its first request). */
  window(service: Service, nowMs: number = Date.now()): WindowCounts {
    return service.state.window?.sums(nowMs) ?? emptyCounts();
  }

  lastError(instance: Instance): LastError | null {
    return this.errors.get(instance) ?? null;
  }

  /** The current ejection of an instance, or null when it is in rotation. */
  ejection(instance: Instance): Ejection | null {
    return instance.ejected ? (this.ejections.get(instance) ?? null) : null;
  }
}
