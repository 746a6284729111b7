/** The invalidation bus on a real redis-server. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../../test/helpers/redis.ts';
import { InvalidationBus } from './invalidation-bus.ts';

let redis: TestRedis;
let client: Redis;

before(async () => {
  redis = await startRedis();
  client = redis.client();
});

after(async () => {
  client.disconnect();
  await redis.stop();
});

test('an invalidation reaches the other process, never the sender', async () => {
  const subA = redis.client();
  const subB = redis.client();
  const seenA: string[] = [];
  const seenB: string[] = [];
  const handlers = (seen: string[]) => ({ onKey: (k: string) => seen.push(`k:${k}`), onPrefix: (p: string) => seen.push(`p:${p}`), onGap: () => seen.push('gap') });
  const a = new InvalidationBus(client, subA, 'bus:', handlers(seenA));
  const b = new InvalidationBus(client, subB, 'bus:', handlers(seenB));
  try {
    await new Promise((r) => setTimeout(r, 100)); // both subscribed
    await a.publishKey('svc\u0000http://h/a b');
    await b.publishPrefix('svc\u0000');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(seenA, ['p:svc\u0000']);
    assert.deepEqual(seenB, ['k:svc\u0000http://h/a b']);
  } finally {
    a.close();
    b.close();
    subA.disconnect();
    subB.disconnect();
  }
});

test('a subscriber that reconnects is told it may have missed messages', async () => {
  const sub = redis.client();
  const seen: string[] = [];
  const bus = new InvalidationBus(client, sub, 'gap:', { onKey: () => {}, onPrefix: () => {}, onGap: () => seen.push('gap') });
  try {
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(seen, []);
    await client.client('KILL', 'TYPE', 'pubsub');
    const deadline = Date.now() + 5_000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, ['gap']);
  } finally {
    bus.close();
    sub.disconnect();
  }
});
