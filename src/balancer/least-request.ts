import { activeExclude, isEligible, weightOf } from './balancer.ts';
import type { Balancer, PickContext, Pickable } from './balancer.ts';
import type { RandomSource } from './random.ts';

/**
 * Least request by the power of two choices (Mitzenmacher, "The Power of Two
 * Choices in Randomized Load Balancing", IEEE TPDS 2001; what Envoy's
 * LEAST_REQUEST does when all weights are equal): draw two distinct eligible instances
 * at random by weight and send the request to the one with fewer requests in
 * flight per unit of weight.
 *
 * Why two random candidates rather than the global minimum: every replica of the
 * proxy sees only its own in-flight counts, and a strict minimum makes all of
 * them herd onto the same idle instance at once; two choices already cut the
 * maximum load from O(log n / log log n) to O(log log n) while staying random
 * enough not to herd. It also means the most loaded instance is never chosen
 * while any other is eligible.
 *
 * Ties go to the first candidate, which is itself a weighted draw, so with no load
 * at all the traffic splits exactly by weight.
 */
export class LeastRequestBalancer implements Balancer {
  constructor(private readonly random: RandomSource = Math.random) {}

  pick<T extends Pickable>(instances: readonly T[], ctx: PickContext): T | undefined {
    let exclude = activeExclude(ctx);
    let total = 0;
    let count = 0;
    let only: T | undefined;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < instances.length; i++) {
        const p = instances[i];
        if (!isEligible(p, exclude)) continue;
        total += weightOf(p);
        count++;
        only = p;
      }
      // Every available instance already tried: retrying one beats failing the request.
      if (count > 0 || exclude === undefined) break;
      exclude = undefined;
    }
    if (count <= 1) return only;

    const first = draw(instances, exclude, this.random() * total, undefined);
    if (first === undefined) return only;
    const firstWeight = weightOf(first);
    const second = draw(instances, exclude, this.random() * (total - firstWeight), first);
    if (second === undefined) return first;
    // first.inflight / firstWeight <= second.inflight / secondWeight, without dividing.
    return first.inflight * weightOf(second) <= second.inflight * firstWeight ? first : second;
  }
}

/**
 * Walks the cumulative weights of the eligible instances, leaving out `skip` (the
 * first candidate, whose weight the caller already took off the range).
 */
function draw<T extends Pickable>(
  instances: readonly T[],
  exclude: ReadonlySet<Pickable> | undefined,
  r: number,
  skip: T | undefined,
): T | undefined {
  let last: T | undefined;
  for (let i = 0; i < instances.length; i++) {
    const p = instances[i];
    if (p === skip || !isEligible(p, exclude)) continue;
    r -= weightOf(p);
    if (r < 0) return p;
    last = p;
  }
  // Rounding can leave r at a hair above 0 after the last eligible instance.
  return last;
}
