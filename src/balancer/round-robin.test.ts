import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RoundRobinBalancer } from './round-robin.ts';
import { TestInstance as Instance } from './test-instance.ts';


function ids(b: RoundRobinBalancer, all: readonly Instance[], picks: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < picks; i++) out.push(b.pick(all, {})?.id ?? '-');
  return out;
}

describe('round-robin balancer', () => {
  test('sends exactly one request to each instance in turn', () => {
    const all = ['a', 'b', 'c', 'd'].map((id) => new Instance(id));
    const b = new RoundRobinBalancer();
    const seen = ids(b, all, 4 * 250);
    for (let i = 0; i < seen.length; i++) assert.equal(seen[i], all[i % 4].id, `pick ${i}`);
  });

  test('interleaves weights 5,1,1 as a a b a c a a, like NGINX, instead of five a in a row', () => {
    const all = [new Instance('a', 5), new Instance('b', 1), new Instance('c', 1)];
    const b = new RoundRobinBalancer();
    const cycle = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
    // The cycle repeats exactly: after a full cycle every `current` is back to 0.
    assert.deepEqual(ids(b, all, 7 * 3), [...cycle, ...cycle, ...cycle]);
  });

  test('gives every instance exactly its weight share over each cycle', () => {
    const all = [new Instance('a', 4), new Instance('b', 3), new Instance('c', 2), new Instance('d', 1)];
    const b = new RoundRobinBalancer();
    for (let cycle = 0; cycle < 20; cycle++) {
      const counts = new Map<string, number>();
      for (const id of ids(b, all, 10)) counts.set(id, (counts.get(id) ?? 0) + 1);
      assert.deepEqual(Object.fromEntries(counts), { a: 4, b: 3, c: 2, d: 1 }, `cycle ${cycle}`);
    }
  });

  test('keeps rotating over the rest while an instance is down, and takes it back when it recovers', () => {
    const all = ['a', 'b', 'c'].map((id) => new Instance(id));
    const b = new RoundRobinBalancer();
    assert.deepEqual(ids(b, all, 3), ['a', 'b', 'c']);
    all[1].up = false;
    assert.deepEqual(ids(b, all, 4), ['a', 'c', 'a', 'c']);
    all[1].up = true;
    const counts = new Map<string, number>();
    for (const id of ids(b, all, 300)) counts.set(id, (counts.get(id) ?? 0) + 1);
    // A recovered instance is not owed a burst: it rejoins at its fair share.
    assert.deepEqual(Object.fromEntries(counts), { a: 100, b: 100, c: 100 });
  });

  test('a retry goes to the next instance, not back to the one that failed', () => {
    const all = ['a', 'b', 'c'].map((id) => new Instance(id));
    const b = new RoundRobinBalancer();
    const first = b.pick(all, {});
    assert.equal(first, all[0]);
    const retry = b.pick(all, { exclude: new Set([first!]) });
    assert.equal(retry, all[1]);
  });

  test('two services sharing one balancer each keep their own rotation', () => {
    const web = ['w1', 'w2', 'w3'].map((id) => new Instance(id));
    const api = ['a1', 'a2'].map((id) => new Instance(id));
    const b = new RoundRobinBalancer();
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      seen.push(b.pick(web, {})!.id);
      seen.push(b.pick(api, {})!.id);
    }
    assert.deepEqual(seen, ['w1', 'a1', 'w2', 'a2', 'w3', 'a1', 'w1', 'a2', 'w2', 'a1', 'w3', 'a2']);
  });

  test('a membership change starts a fresh rotation over the new instances', () => {
    const b = new RoundRobinBalancer();
    const before = ['a', 'b', 'c'].map((id) => new Instance(id));
    assert.deepEqual(ids(b, before, 2), ['a', 'b']);
    const after = [...before, new Instance('d')];
    assert.deepEqual(ids(b, after, 8), ['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd']);
  });
});
