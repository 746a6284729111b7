/**
 * Requests of one service waiting for a connection slot while every instance is at
 * `limits.maxConnections`. The queue is FIFO and bounded by `limits.maxPending`, and each wait is
 * bounded too (the caller passes the service's connect timeout, as HAProxy's `timeout queue`
 * defaults to `timeout connect`), so overload turns into fast 503s instead of an unbounded queue.
 * Timers are only created for requests that actually wait, which happens only under overload.
 */

export interface Waiter {
  /** Set once the waiter was woken, expired or cancelled. */
  settled: boolean;
  readonly wake: () => void;
  readonly expire: () => void;
  timer: NodeJS.Timeout | undefined;
}

export class PendingQueue {
  private waiters: Waiter[] = [];
  private head = 0;
  private count = 0;

  /** Requests waiting now. */
  get size(): number {
    return this.count;
  }

  /**
   * Queues a waiter unless `max` are already waiting (then returns undefined: answer 503).
   * `wake` runs when a slot may be free; `expire` after `timeoutMs` (0 = no timer).
   */
  add(wake: () => void, expire: () => void, timeoutMs: number, max: number): Waiter | undefined {
    if (this.count >= max) return undefined;
    const waiter: Waiter = { settled: false, wake, expire, timer: undefined };
    if (timeoutMs > 0) {
      waiter.timer = setTimeout(() => {
        if (waiter.settled) return;
        this.settle(waiter);
        waiter.expire();
      }, timeoutMs);
    }
    this.waiters.push(waiter);
    this.count++;
    return waiter;
  }

  /** The client went away (or the request failed) while waiting. */
  cancel(waiter: Waiter): void {
    if (!waiter.settled) this.settle(waiter);
  }

  /** A slot came free: the oldest waiter gets it. Returns false when nobody was waiting. */
  wakeOne(): boolean {
    while (this.head < this.waiters.length) {
      const waiter = this.waiters[this.head++]!;
      if (waiter.settled) continue;
      this.settle(waiter);
      this.compact();
      waiter.wake();
      return true;
    }
    this.compact();
    return false;
  }

  private settle(waiter: Waiter): void {
    waiter.settled = true;
    clearTimeout(waiter.timer);
    this.count--;
  }

  /** Drops consumed entries once they are the larger part of the array (amortised O(1)). */
  private compact(): void {
    if (this.head === this.waiters.length) {
      this.waiters = [];
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.waiters.length) {
      this.waiters = this.waiters.slice(this.head);
      this.head = 0;
    }
  }
}
