/**
 * The retry budget of one service: retries in flight may be at most `budgetPercent` % of the
 * service's requests in flight that are not retries (Linkerd's `retryRatio`), so during an outage
 * retries add at most that share of load instead of multiplying it by the attempt count: at the
 * default 20 %, upstream attempts stay within 1.2 × the client requests. (Envoy's `retry_budget`
 * counts the retries themselves among the active requests, which lets them reach 25 % of the
 * attempts at 20 %.) `budgetPercent: 100` turns the budget off.
 *
 * Below `minRetryConcurrency` retries in flight a retry is always allowed (Envoy's
 * `min_retry_concurrency`, default 3), so a service with little traffic — where 20 % of 1 active
 * request rounds to nothing — can still retry a lone failure, and sequential failovers are never
 * refused however many there are per second.
 *
 * A retry after an unreachable instance (a refused or dropped connection) takes no slot at all
 * (server/exchange.ts): it is no load on the service.
 *
 * The percent and the floor are passed on each call because they come from the config snapshot
 * the request started with, while the budget itself outlives snapshots (it lives in ServiceState).
 */
export class RetryBudget {
  /** Retries in flight (granted and not yet released). */
  inflight = 0;
  /** Retries granted and refused since start, for observability. */
  granted = 0;
  denied = 0;

  /**
   * Asks for one retry. `active` is the service's active requests (in flight and waiting),
   * retries included, counting the one that wants to retry. Returns false when the retry would
   * exceed the budget. Every `true` must be paired with one `release()` when that retry attempt ends.
   */
  tryAcquire(active: number, budgetPercent: number, minRetryConcurrency: number): boolean {
    const firsts = Math.max(0, active - this.inflight);
    // Rounded down, as Envoy does: 20 % of 4 requests allows no retry beyond the floor.
    const allowed = budgetPercent >= 100 ? Infinity : Math.max(minRetryConcurrency, Math.floor((firsts * budgetPercent) / 100));
    if (this.inflight < allowed) {
      this.inflight++;
      this.granted++;
      return true;
    }
    this.denied++;
    return false;
  }

  release(): void {
    if (this.inflight > 0) this.inflight--;
  }
}
