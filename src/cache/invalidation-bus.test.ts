/** The invalidation bus on a real redis-server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
  const sub = r.server.client();
  const seen: string[] = [];
  const bus = new InvalidationBus(r.client, sub, 'gap:', { onKey: () => {}, onPrefix: () => {}, onGap: () => seen.push('gap') });
  try {
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(seen, []);
    await r.client.client('KILL', 'TYPE', 'pubsub');
    const deadline = Date.now() + 5_000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, ['gap']);
  } finally {
    bus.close();
    sub.disconnect();
  }
});
