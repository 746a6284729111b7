/**
 * The circuit breaker in front of the shared cache tier. Redis down or slow costs each lookup
 * at most the tier's timeout; after `failures` errors or timeouts in a row the breaker opens
 * and the tier is skipped outright (no wait at all) for `cooldownMs`; then one operation goes
 * through as a probe (half-open): a success closes the breaker, a failure opens it for another
 * cool-down.
 *
 *   closed ──(failures in a row)──▶ open ──(cooldown)──▶ half-open ──(probe ok)──▶ closed
 *                                    ▲                        │
 *                                    └──────(probe fails)─────┘
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Errors or timeouts in a row that open the breaker. */
  readonly failures: number;
  readonly cooldownMs: number;
  readonly now?: (() => number) | undefined;
  /** Called on every change of state. */
  readonly onChange?: ((state: BreakerState) => void) | undefined;
}

export interface BreakerSnapshot {
  readonly state: BreakerState;
  /** Errors or timeouts in a row so far. */
  readonly consecutiveFailures: number;
  /** How many times it opened since start. */
  readonly opened: number;
  /** While open: when the next probe may go (ISO time). */
  readonly retryAt: string | null;
}

export class SharedBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  #opened = 0;
  #retryAt = 0;
  #probing = false;
  readonly #now: () => number;

  constructor(private readonly options: BreakerOptions) {
    this.#now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Whether an operation may use the tier now; in half-open, true once (the probe) until it settles. */
  allow(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open') {
      if (this.#now() < this.#retryAt) return false;
      this.#set('half-open');
    }
    if (this.#probing) return false;
    this.#probing = true;
    return true;
  }

  /** An operation answered. Returns true when this closed the breaker (the tier is back). */
  success(): boolean {
    this.#failures = 0;
    if (this.#state === 'open') return false; // an answer to a call made before it opened: the probe decides
    this.#probing = false;
    if (this.#state === 'closed') return false;
    this.#set('closed');
    return true;
  }

  /** An operation failed or timed out. */
  failure(): void {
    this.#failures++;
    if (this.#state === 'half-open') {
      this.#probing = false;
      return this.#open();
    }
    if (this.#state === 'closed' && this.#failures >= this.options.failures) this.#open();
  }

  snapshot(): BreakerSnapshot {
    return {
      state: this.#state,
      consecutiveFailures: this.#failures,
      opened: this.#opened,
      retryAt: this.#state === 'open' ? new Date(this.#retryAt).toISOString() : null,
    };
  }

  #open(): void {
    this.#opened++;
    this.#retryAt = this.#now() + this.options.cooldownMs;
    this.#set('open');
  }

  #set(state: BreakerState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.options.onChange?.(state);
  }
}
