// The contract every load-balancing policy keeps, run against every kind the
// factory knows. Policy-specific behaviour lives in <kind>.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PickContext, Pickable } from './balancer.ts';
import { VNODES_PER_WEIGHT } from './consistent-hash.ts';
import { BALANCER_KINDS, createBalancer, type BalancerKind } from './index.ts';
import { TestInstance as Instance } from './test-instance.ts';


function instances(n: number): Instance[] {
  return Array.from({ length: n }, (_, i) => new Instance(`10.0.0.${i + 1}:8080`));
}

/** Distinct keys, as distinct clients would send; policies other than consistent-hash ignore them. */
function ctx(i: number, exclude?: ReadonlySet<Pickable>): PickContext {
  return { hashKey: `client-${i}`, exclude };
}

/**
 * Variance of an instance's long-run share of traffic around its weight share p,
 * before sampling: zero (the default) for the policies that target the weights
 * exactly. A hash ring's shares are fixed by where the instance ids happen to land:
 * with V points in all, an instance holding a fraction p of them owns a
 * Beta(pV, (1-p)V) share of the ring, whose variance is p(1-p)/(V+1).
 */
const SHARE_VARIANCE: Partial<Record<BalancerKind, (p: number, points: number) => number>> = {
  'consistent-hash': (p, points) => (p * (1 - p)) / (points + 1),
};

// Every kind in the BALANCERS table: a new balancer is under contract without a line here.
for (const kind of BALANCER_KINDS) {
  const shareVariance = SHARE_VARIANCE[kind] ?? (() => 0);
  describe(`${kind} balancer contract`, () => {
    test('never sends a request to an unavailable instance, even as availability changes', () => {
      const b = createBalancer(kind);
      const all = instances(6);
      all[1].up = false;
      all[4].up = false;
      for (let i = 0; i < 5000; i++) {
        // Flip one instance every 50 picks, never taking down the last available one.
        if (i % 50 === 0) {
          const victim = all[(i / 50) % all.length];
          if (!victim.up || all.some((p) => p !== victim && p.up)) victim.up = !victim.up;
        }
        const picked = b.pick(all, ctx(i));
        assert.ok(picked, `pick ${i} found no instance while ${all.filter((p) => p.up).length} were up`);
        assert.equal(picked.up, true, `pick ${i} returned unavailable ${picked.id}`);
      }
    });

    test('a retry never goes back to an instance it already tried while another is available', () => {
      const b = createBalancer(kind);
      const all = instances(5);
      all[2].up = false;
      for (let i = 0; i < 3000; i++) {
        const tried = new Set<Pickable>([all[i % 5], all[(i + 1) % 5]]);
        const picked = b.pick(all, ctx(i, tried));
        assert.ok(picked);
        assert.equal(tried.has(picked), false, `pick ${i} returned already-tried ${picked.id}`);
        assert.equal(picked.available(), true);
      }
    });

    test('a retry that has tried every available instance still gets one rather than nothing', () => {
      const b = createBalancer(kind);
      const all = instances(3);
      all[0].up = false;
      const tried = new Set<Pickable>([all[1], all[2]]);
      for (let i = 0; i < 200; i++) {
        const picked = b.pick(all, ctx(i, tried));
        assert.ok(picked === all[1] || picked === all[2], `pick ${i} returned ${picked?.id}`);
      }
    });

    test('returns nothing when no instance is available', () => {
      const b = createBalancer(kind);
      assert.equal(b.pick([], ctx(0)), undefined);
      assert.equal(b.pick([], {}), undefined);
      const all = instances(4);
      for (const p of all) p.up = false;
      for (let i = 0; i < 100; i++) {
        assert.equal(b.pick(all, ctx(i)), undefined);
        assert.equal(b.pick(all, ctx(i, new Set([all[0]]))), undefined);
      }
      assert.equal(b.pick(all, {}), undefined);
    });

    test('with a single available instance every request goes to it', () => {
      const b = createBalancer(kind);
      const all = instances(5);
      for (const p of all) p.up = false;
      all[3].up = true;
      all[3].inflight = 1000;
      for (let i = 0; i < 1000; i++) assert.equal(b.pick(all, ctx(i)), all[3]);
      const alone = [new Instance('10.0.1.1:80', 7)];
      for (let i = 0; i < 100; i++) assert.equal(b.pick(alone, ctx(i)), alone[0]);
      assert.equal(b.pick(alone, {}), alone[0]);
    });

    test('an instance of weight 3 gets three times the traffic of one of weight 1', () => {
      const b = createBalancer(kind);
      const heavy = new Instance('10.0.0.1:8080', 3);
      const light = new Instance('10.0.0.2:8080', 1);
      const all = [heavy, light];
      const n = 40_000;
      let heavyPicks = 0;
      for (let i = 0; i < n; i++) if (b.pick(all, ctx(i)) === heavy) heavyPicks++;
      // Six standard deviations: sampling noise (binomial) plus, for a hash ring,
      // the fixed deviation of the ring's shares. A correct policy fails this less
      // than once in 10^8 runs; a policy ignoring weights (share 1/2) misses by 14 to 100 sigma.
      const p = 3 / 4;
      const points = VNODES_PER_WEIGHT * 4;
      const sigma = Math.sqrt(n * p * (1 - p) + n * n * shareVariance(p, points));
      const expected = n * p;
      assert.ok(
        Math.abs(heavyPicks - expected) <= 6 * sigma,
        `weight-3 instance got ${heavyPicks} of ${n} picks, expected ${expected} ± ${Math.round(6 * sigma)}`,
      );
    });
  });
}

describe('createBalancer', () => {
  test('rejects a load balancer kind it does not know', () => {
    assert.throws(() => createBalancer('fastest' as BalancerKind), /unknown load balancer kind "fastest"/);
  });
});
