/**
 * Invalidation across processes on Redis pub/sub: when one proxy process deletes or rewrites a
 * key in the shared tier, every other process drops its memory copy, so the next lookup reads
 * the shared one. One channel per key prefix (`<keyPrefix>invalidate`); a message is
 * `<sender id> <k|p> <primary key or prefix>`, and a process ignores its own.
 *
 * Pub/sub delivers at most once: a process whose subscriber connection was down may have
 * missed messages, so when it subscribes again it is told (`onGap`) and drops its whole memory
 * tier, which then refills from the shared one.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { log } from '../log.ts';

export interface InvalidationHandlers {
  /** Another process changed or removed this primary key. */
  onKey(key: string): void;
  /** Another process removed every key starting with this prefix. */
  onPrefix(prefix: string): void;
  /** Messages may have been missed (the subscriber reconnected). */
  onGap(): void;
}

export class InvalidationBus {
  /** This process's id in messages. */
  readonly id = randomBytes(6).toString('base64url');
  readonly channel: string;
  #lost = false;
  #closed = false;

  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    keyPrefix: string,
    handlers: InvalidationHandlers,
  ) {
    this.channel = `${keyPrefix}invalidate`;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const space = message.indexOf(' ');
      if (space < 0 || message.slice(0, space) === this.id) return;
      const kind = message.charAt(space + 1);
      const value = message.slice(space + 3);
      if (kind === 'k') handlers.onKey(value);
      else if (kind === 'p') handlers.onPrefix(value);
    });
    subscriber.on('close', () => {
      this.#lost = true;
    });
    subscriber.on('ready', () => {
      if (!this.#lost || this.#closed) return;
      this.#lost = false;
      this.subscribe();
      handlers.onGap();
    });
    this.subscribe();
  }

  /** At start and after every reconnect (redis-client.ts: ioredis's own resubscribe is off). */
  private subscribe(): void {
    this.subscriber.subscribe(this.channel).catch((err: unknown) => {
      if (!this.#closed) log.warn({ err: (err as Error).message }, 'shared cache: subscribing to invalidations failed');
    });
  }

  /** Tells the other processes that `key` changed or is gone. */
  async publishKey(key: string): Promise<void> {
    await this.publisher.publish(this.channel, `${this.id} k ${key}`);
  }

  /** Tells the other processes that every key under `prefix` is gone. */
  async publishPrefix(prefix: string): Promise<void> {
    await this.publisher.publish(this.channel, `${this.id} p ${prefix}`);
  }

  close(): void {
    this.#closed = true;
  }
}
