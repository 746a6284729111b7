import { activeExclude, isEligible, weightOf } from './balancer.ts';
import type { Balancer, PickContext, Pickable } from './balancer.ts';

/** A source of uniform numbers in [0, 1), like `Math.random`. */
export type RandomSource = () => number;

/**
 * Weighted random: a uniform draw over the cumulative weights of the eligible
 * instances. Stateless, so it suits many proxy replicas that must not synchronise
 * (each replica's own round-robin would start every rotation on the same instance).
 *
 * Two passes over the array (sum, then walk) instead of building a cumulative
 * array, because availability changes between picks and an array per pick is
 * garbage on the hot path.
 */
export class RandomBalancer implements Balancer {
  constructor(private readonly random: RandomSource = Math.random) {}

  pick<T extends Pickable>(instances: readonly T[], ctx: PickContext): T | undefined {
    let exclude = activeExclude(ctx);
    let total = totalWeight(instances, exclude);
    if (total === 0 && exclude !== undefined) {
      // Every available instance already tried: retrying one beats failing the request.
      exclude = undefined;
      total = totalWeight(instances, undefined);
    }
    if (total === 0) return undefined;
    let r = this.random() * total;
    let last: T | undefined;
    for (let i = 0; i < instances.length; i++) {
      const p = instances[i];
      if (!isEligible(p, exclude)) continue;
      r -= weightOf(p);
      if (r < 0) return p;
      last = p;
    }
    // Rounding can leave r at a hair above 0 after the last eligible instance.
    return last;
  }
}

function totalWeight(instances: readonly Pickable[], exclude: ReadonlySet<Pickable> | undefined): number {
  let total = 0;
  for (let i = 0; i < instances.length; i++) {
    const p = instances[i];
    if (isEligible(p, exclude)) total += weightOf(p);
  }
  return total;
}
