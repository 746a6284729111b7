import { activeExclude, isEligible, weightOf } from './balancer.ts';
import type { Balancer, PickContext, Pickable } from './balancer.ts';

/**
 * Smooth weighted round-robin, NGINX's algorithm (ngx_http_upstream_get_peer in
 * src/http/ngx_http_upstream_round_robin.c, introduced in nginx 1.3.1): every
 * eligible instance adds its weight to its `current`, the largest `current` wins
 * and gives back the total. Unlike naive WRR (a weight-5 instance taking five
 * requests in a row) this interleaves, so weights 5,1,1 give `a a b a c a a`, and
 * equal weights give an exact rotation.
 *
 * Only eligible instances take part in a round (NGINX skips down and already-tried
 * peers the same way), so an instance that is unavailable keeps its `current`
 * frozen and rejoins where it left off instead of being owed a burst of requests.
 */
export class RoundRobinBalancer implements Balancer {
  /**
   * The `current` weights, per membership array. A WeakMap rather than a single
   * field so that one balancer shared by several services keeps one rotation per
   * service, and an old array's state goes away with the array.
   */
  private readonly states = new WeakMap<readonly Pickable[], Float64Array>();
  /** Fast path: consecutive picks almost always see the same array. */
  private lastInstances: readonly Pickable[] | undefined;
  private lastCurrent: Float64Array | undefined;

  pick<T extends Pickable>(instances: readonly T[], ctx: PickContext): T | undefined {
    const n = instances.length;
    if (n === 0) return undefined;
    const current = this.stateFor(instances);
    const exclude = activeExclude(ctx);
    let best = select(instances, current, exclude);
    // Every available instance already tried: retrying one beats failing the request.
    if (best < 0 && exclude !== undefined) best = select(instances, current, undefined);
    return best < 0 ? undefined : instances[best];
  }

  private stateFor(instances: readonly Pickable[]): Float64Array {
    const last = this.lastCurrent;
    if (instances === this.lastInstances && last !== undefined && last.length === instances.length) return last;
    let current = this.states.get(instances);
    // The length check guards against a caller that mutated the array in place,
    // which the Balancer contract forbids but which must not read past the end.
    if (current === undefined || current.length !== instances.length) {
      current = new Float64Array(instances.length);
      this.states.set(instances, current);
    }
    this.lastInstances = instances;
    this.lastCurrent = current;
    return current;
  }
}

/** One NGINX round; returns the chosen index or -1 when nothing is eligible. */
function select(
  instances: readonly Pickable[],
  current: Float64Array,
  exclude: ReadonlySet<Pickable> | undefined,
): number {
  let best = -1;
  let total = 0;
  for (let i = 0; i < instances.length; i++) {
    const p = instances[i];
    if (!isEligible(p, exclude)) continue;
    const w = weightOf(p);
    current[i] += w;
    total += w;
    // Strictly greater: ties go to the earlier instance, as in NGINX, which is what
    // makes equal weights an exact rotation in array order.
    if (best < 0 || current[i] > current[best]) best = i;
  }
  if (best >= 0) current[best] -= total;
  return best;
}
