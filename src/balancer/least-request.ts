import { activeExclude, isEligible, weightOf } from './balancer.ts';
import type { Balancer, PickContext, Pickable } from './balancer.ts';
import type { RandomSource } from './random.ts';
import { RoundRobinBalancer } from './round-robin.ts';

/**
 * Least request by the power of two choices (Mitzenmacher, "The Power of Two
 * Choices in Randomized Load Balancing", IEEE TPDS 2001; what Envoy's
 * LEAST_REQUEST does when all weights are equal): take two distinct eligible
 * instances and send the request to the one with fewer requests in flight per unit
 * of weight. The first candidate is the next one of a smooth weighted round-robin,
 * the second a random draw by weight among the others.
 *
 * Why two candidates rather than the global minimum: every replica of the proxy
 * sees only its own in-flight counts, and a strict minimum makes all of them herd
 * onto the same idle instance at once; two choices already cut the maximum load
 * from O(log n / log log n) to O(log log n) while staying random enough not to
 * herd. It also means the most loaded instance is never chosen
 * while any other is eligible.
 *
 * Ties go to the first candidate, the round-robin one: with no load at all (a
 * client sending one request at a time) the traffic rotates exactly by weight, as
 * NGINX's least_conn tries equally loaded servers "in turn", instead of landing
 * twice in a row on one instance by chance. The rotation is per proxy process, so
 * replicas do not move in step.
 */
export class LeastRequestBalancer implements Balancer {
  private readonly rotation = new RoundRobinBalancer();

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

    // Falls back past `exclude` exactly as the loop above did (when every eligible one was tried).
    const first = this.rotation.pick(instances, ctx);
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
