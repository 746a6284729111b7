/**
 * The ioredis connections of the shared cache tier, set up so that Redis can never hold a
 * request: a command sent while the connection is down fails at once instead of queueing until
 * a reconnect (`enableOfflineQueue: false`), is never retried or re-sent after one, and the
 * client reconnects for ever in the background (100 ms, 200 ms, ... at most 2 s apart).
 * The subscriber (invalidation-bus.ts) keeps the offline queue: its SUBSCRIBE may wait for the
 * first connection; the bus subscribes again after every reconnect.
 */
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import { log } from '../log.ts';

/** ioredis, loaded by the first shared tier: a proxy without one starts without it (~0.1 s of CPU). */
let ioredis: typeof import('ioredis') | undefined;
const redisClass = (): typeof Redis => (ioredis ??= createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis;

export interface RedisClientOptions {
  /** Shown by CLIENT LIST, to tell the proxies' connections apart. */
  readonly name: string;
  /** Queue commands while disconnected (the subscriber only). */
  readonly queueWhileDown?: boolean;
}

/** How long a (re)connection attempt may take before it is abandoned and tried again. */
const CONNECT_TIMEOUT_MS = 2_000;

export function createRedisClient(url: string, options: RedisClientOptions): Redis {
  const client = new (redisClass())(url, {
    connectionName: options.name,
    enableOfflineQueue: options.queueWhileDown === true,
    maxRetriesPerRequest: options.queueWhileDown === true ? null : 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(100 * times, 2_000),
    // ioredis resubscribes after a reconnect without catching the SUBSCRIBE's promise: a connection
    // lost again before the reply would be an unhandled rejection, which ends a Node process.
    // invalidation-bus.ts subscribes again itself.
    autoResubscribe: false,
    // No command may outlive this by much: a lookup gave up long before (tiered-store.ts).
    commandTimeout: options.queueWhileDown === true ? undefined : 5_000,
  });
  let down = false;
  client.on('error', (err: Error) => {
    // ioredis reports every failed reconnect: one warning per outage, the rest at debug.
    if (down) return log.debug({ err: err.message, redis: options.name }, 'shared cache: redis error');
    down = true;
    log.warn({ err: err.message, redis: options.name }, 'shared cache: redis unavailable; serving from memory and the origin');
  });
  client.on('ready', () => {
    if (down) log.info({ redis: options.name }, 'shared cache: redis available again');
    down = false;
  });
  return client;
}

/** Closes a client without waiting for replies that will never come (Redis may be gone). */
export function closeRedisClient(client: Redis): void {
  client.disconnect(false);
}
