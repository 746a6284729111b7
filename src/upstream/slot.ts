/**
 * An instance slot: what one attempt, one background refresh or one open tunnel holds on an
 * instance while it runs. Taking one counts the attempt in the instance's in-flight number
 * (maxConnections, least-request) and the service's active number (retry budget, saturation);
 * giving it back reports the outcome to passive health and metrics and wakes the oldest request
 * waiting for a connection (pending.ts). Requests (server/exchange.ts), background revalidations
 * (cache/background.ts) and tunnels (server/upgrade.ts) all go through these two functions, so a
 * closing tunnel frees a slot for a queued request exactly as a finished request does.
 */
import type { ProxyError } from '../errors.ts';
import type { Instance } from './instance.ts';
import type { Service } from './service.ts';

/** Told when a slot is given back (Runtime: passive health, metrics). */
export interface AttemptObserver {
  /** `failure` is set for connect errors, resets, timeouts and malformed answers; `status` is 0 then. */
  attemptEnded(instance: Instance, service: Service, status: number, failure: ProxyError | undefined): void;
}

export function acquireSlot(instance: Instance, service: Service): void {
  instance.inflight++;
  service.active++;
}

/** Gives the slot back; `status` is the instance's answer (0 with a `failure`). */
export function releaseSlot(observer: AttemptObserver, instance: Instance, service: Service, status: number, failure: ProxyError | undefined): void {
  instance.inflight--;
  service.active--;
  observer.attemptEnded(instance, service, status, failure);
  // A connection slot came free: the oldest request waiting for one takes it.
  const { pending } = service.state;
  if (pending.size > 0) pending.wakeOne();
}

/** Whether `instance` is at its connection limit (0 = none). */
export function isFull(instance: Instance): boolean {
  return instance.maxConnections !== 0 && instance.inflight >= instance.maxConnections;
}
