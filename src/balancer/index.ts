import type { Balancer, BalancerKind } from './balancer.ts';
import { ConsistentHashBalancer } from './consistent-hash.ts';
import { LeastRequestBalancer } from './least-request.ts';
import { RandomBalancer } from './random.ts';
import { RoundRobinBalancer } from './round-robin.ts';

export type { Balancer, BalancerKind, PickContext, Pickable } from './balancer.ts';
export { ConsistentHashBalancer } from './consistent-hash.ts';
export { LeastRequestBalancer } from './least-request.ts';
export { RandomBalancer } from './random.ts';
export { RoundRobinBalancer } from './round-robin.ts';

/**
 * A new balancer of the given kind. Round-robin and consistent-hash keep state
 * per instances array, so one balancer per service is the natural use, though a
 * shared one stays correct.
 */
export function createBalancer(kind: BalancerKind): Balancer {
  switch (kind) {
    case 'round-robin':
      return new RoundRobinBalancer();
    case 'random':
      return new RandomBalancer();
    case 'least-request':
      return new LeastRequestBalancer();
    case 'consistent-hash':
      return new ConsistentHashBalancer();
    default: {
      // Config is validated, but a kind added to BalancerKind and not here must
      // fail the type-check, and a bad string from JavaScript must fail loudly.
      const unknown: never = kind;
      throw new TypeError(`unknown load balancer kind ${JSON.stringify(unknown)}`);
    }
  }
}
