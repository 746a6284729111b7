/**
 * Request collapsing (RFC 9111 §4: a cache MAY "collapse" concurrent requests for the same
 * resource into one forward request). The first miss or revalidation for a primary key leads a
 * `Flight`; the requests for that key arriving while it is in the air wait for its outcome (each
 * at most `timeoutMs`) and then look the cache up again: served from what the leader stored, or
 * sent upstream themselves when it stored nothing.
 *
 * A background revalidation (stale-while-revalidate) also holds the key's flight, which is what
 * makes it happen once per key at a time.
 */

/**
 * How a flight ended: 'stored' (an entry was written or refreshed), 'uncacheable' (the answer
 * may not be stored), 'error' (the origin failed or answered 5xx: waiting requests may serve
 * stale-if-error without trying again), 'abandoned' (the leader's client left, nothing learned).
 * Waiters also see 'timeout' when the flight outlived their wait.
 */
export type FlightOutcome = 'stored' | 'uncacheable' | 'error' | 'abandoned';
export type WaitOutcome = FlightOutcome | 'timeout';

interface Waiter {
  readonly wake: (outcome: WaitOutcome) => void;
  timer: NodeJS.Timeout | undefined;
}

export class Flight {
  private readonly waiters = new Set<Waiter>();
  private ended = false;

  constructor(
    private readonly flights: Map<string, Flight>,
    readonly key: string,
  ) {}

  /** Requests waiting on this flight. */
  get waiting(): number {
    return this.waiters.size;
  }

  /**
   * Waits at most `timeoutMs` for the outcome. Returns a function that cancels the wait (the
   * waiting client went away); `wake` is never called after it.
   */
  wait(timeoutMs: number, wake: (outcome: WaitOutcome) => void): () => void {
    const waiter: Waiter = { wake, timer: undefined };
    this.waiters.add(waiter);
    waiter.timer = setTimeout(() => {
      if (this.waiters.delete(waiter)) wake('timeout');
    }, timeoutMs);
    return () => {
      clearTimeout(waiter.timer);
      this.waiters.delete(waiter);
    };
  }

  /**
   * Ends the flight: the key is free for a new leader at once, then every waiter is woken (in
   * arrival order). Idempotent.
   */
  done(outcome: FlightOutcome): void {
    if (this.ended) return;
    this.ended = true;
    if (this.flights.get(this.key) === this) this.flights.delete(this.key);
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.wake(outcome);
    }
  }
}

export class Collapser {
  private readonly flights = new Map<string, Flight>();

  /** The flight in the air for `key`, if any. */
  get(key: string): Flight | undefined {
    return this.flights.get(key);
  }

  /** Starts the flight of `key`; the caller must end it with `done`. There must be none already. */
  lead(key: string): Flight {
    const flight = new Flight(this.flights, key);
    this.flights.set(key, flight);
    return flight;
  }

  /** Flights in the air. */
  get size(): number {
    return this.flights.size;
  }
}
