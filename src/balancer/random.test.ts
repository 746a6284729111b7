import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pickable } from './balancer.ts';
import { RandomBalancer } from './random.ts';
import { TestInstance as Instance } from './test-instance.ts';


/** |observed - n p| within six binomial standard deviations: a correct policy fails < 1e-8 of runs. */
function assertShare(observed: number, n: number, p: number, what: string): void {
  const tolerance = 6 * Math.sqrt(n * p * (1 - p));
  assert.ok(
    Math.abs(observed - n * p) <= tolerance,
    `${what}: ${observed} of ${n}, expected ${n * p} ± ${Math.round(tolerance)}`,
  );
}

describe('random balancer', () => {
  test('spreads requests uniformly over equally weighted instances', () => {
    const all = Array.from({ length: 5 }, (_, i) => new Instance(`i${i}`));
    const b = new RandomBalancer();
    const n = 50_000;
    const counts = new Map<Pickable, number>();
    for (let i = 0; i < n; i++) {
      const p = b.pick(all, {})!;
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
    for (const p of all) assertShare(counts.get(p) ?? 0, n, 1 / 5, p.id);
  });

  test('spreads over the available instances only, uniformly, while one is down', () => {
    const all = Array.from({ length: 4 }, (_, i) => new Instance(`i${i}`));
    all[2].up = false;
    const b = new RandomBalancer();
    const n = 30_000;
    const counts = new Map<Pickable, number>();
    for (let i = 0; i < n; i++) {
      const p = b.pick(all, {})!;
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
    assert.equal(counts.get(all[2]), undefined);
    for (const p of [all[0], all[1], all[3]]) assertShare(counts.get(p) ?? 0, n, 1 / 3, p.id);
  });

  test('maps the random draw onto cumulative weights of the available instances', () => {
    // Weights 1, (down), 2, 1: the draw scaled to [0, 4) lands in [0,1) a, [1,3) c, [3,4) d.
    const all = [new Instance('a', 1), new Instance('b', 5), new Instance('c', 2), new Instance('d', 1)];
    all[1].up = false;
    const at = (r: number) => new RandomBalancer(() => r).pick(all, {})?.id;
    assert.equal(at(0), 'a');
    assert.equal(at(0.2499), 'a');
    assert.equal(at(0.25), 'c');
    assert.equal(at(0.7499), 'c');
    assert.equal(at(0.75), 'd');
    assert.equal(at(0.9999999999999999), 'd');
  });

  test('a retry draws only among the instances not yet tried', () => {
    const all = [new Instance('a'), new Instance('b'), new Instance('c')];
    const tried = new Set<Pickable>([all[0]]);
    for (const r of [0, 0.3, 0.5, 0.7, 0.99]) {
      assert.notEqual(new RandomBalancer(() => r).pick(all, { exclude: tried }), all[0]);
    }
  });
});
