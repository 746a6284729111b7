/** The invalidation bus on a real redis-server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from '../../test/helpers/load.ts';
import { redisForTests } from '../../test/helpers/redis.ts';
import { InvalidationBus } from './invalidation-bus.ts';

const r = redisForTests();

test('an invalidation reaches the other process, never the sender', async () => {
  const subA = r.server.client();
  const subB = r.server.client();
  const seenA: string[] = [];
  const seenB: string[] = [];
  const handlers = (seen: string[]) => ({ onKey: (k: string) => seen.push(`k:${k}`), onPrefix: (p: string) => seen.push(`p:${p}`), onGap: () => seen.push('gap') });
  const a = new InvalidationBus(r.client, subA, 'bus:', handlers(seenA));
  const b = new InvalidationBus(r.client, subB, 'bus:', handlers(seenB));
  try {
    await until(async () => ((await r.client.pubsub('NUMSUB', a.channel)) as [string, number])[1] === 2, 'both subscribed');
    await a.publishKey('svc\u0000http://h/a b');
    await b.publishPrefix('svc\u0000');
    await until(() => seenA.length + seenB.length >= 2, 'both messages delivered');
    await new Promise((resolve) => setTimeout(resolve, 50)); // and no third one (its own)
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
  const sub = r.server.client();
  const seen: string[] = [];
  const bus = new InvalidationBus(r.client, sub, 'gap:', { onKey: () => {}, onPrefix: () => {}, onGap: () => seen.push('gap') });
  try {
    await until(async () => ((await r.client.pubsub('NUMSUB', bus.channel)) as [string, number])[1] === 1, 'subscribed');
    assert.deepEqual(seen, []);
    await r.client.client('KILL', 'TYPE', 'pubsub');
    await until(() => seen.length > 0, 'told of the gap');
    assert.deepEqual(seen, ['gap']);
    await until(async () => ((await r.client.pubsub('NUMSUB', bus.channel)) as [string, number])[1] === 1, 'subscribed again');
  } finally {
    bus.close();
    sub.disconnect();
  }
});
