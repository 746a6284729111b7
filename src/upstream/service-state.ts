/**
 * The part of a service that outlives config snapshots, kept by the InstanceRegistry by service
 * name: counters, the retry budget and the queue of requests waiting for a connection. Requests
 * started on an old snapshot and requests started on the new one share it, so a reload neither
 * resets the budget nor strands waiters whose slots are freed by older requests.
 */
import type { RequestWindow } from '../observability/window.ts';
import { PendingQueue } from './pending.ts';
import { RetryBudget } from './retry-budget.ts';

export class ServiceState {
  /** Attempts in flight to the service's instances. */
  active = 0;
  readonly budget = new RetryBudget();
  readonly pending = new PendingQueue();
  /** The service's last minute for the status page (observability/live-status.ts), made at its first request. */
  window: RequestWindow | undefined = undefined;
}
