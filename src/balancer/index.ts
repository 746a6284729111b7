import type { Balancer } from './balancer.ts';
import { ConsistentHashBalancer } from './consistent-hash.ts';
import { LeastRequestBalancer } from './least-request.ts';
import { RandomBalancer } from './random.ts';
import { RoundRobinBalancer } from './round-robin.ts';

export type { Balancer, PickContext, Pickable } from './balancer.ts';
export { ConsistentHashBalancer } from './consistent-hash.ts';
export { LeastRequestBalancer } from './least-request.ts';
export { RandomBalancer } from './random.ts';
export { RoundRobinBalancer } from './round-robin.ts';

/**
 * Every load-balancing policy by the name the config uses, and how to make one. The config enum
 * (`loadBalancer` in config/schema.ts), the `BalancerKind` type and the contract suite
 * (contract.test.ts) are all derived from this table: a new balancer is one file and one line here.
 * Round-robin and consistent-hash keep state per instances array, so one balancer per service is
 * the natural use, though a shared one stays correct.
 */
export const BALANCERS = {
  'round-robin': () => new RoundRobinBalancer(),
  random: () => new RandomBalancer(),
  'least-request': () => new LeastRequestBalancer(),
  'consistent-hash': () => new ConsistentHashBalancer(),
} as const satisfies Record<string, () => Balancer>;

export type BalancerKind = keyof typeof BALANCERS;

/** The names of BALANCERS, in table order (the order --check lists them in). */
export const BALANCER_KINDS = Object.keys(BALANCERS) as [BalancerKind, ...BalancerKind[]];

/**
 * The default: least request by two random choices. A slow or silent instance holds its requests
 * in flight, so it stops being chosen after its first few, where round-robin keeps sending it a
 * fixed share (a black hole would take a third of the traffic of three instances). Envoy
 * recommends it and Linkerd ships it.
 */
export const DEFAULT_BALANCER: BalancerKind = 'least-request';

/** A new balancer of the given kind; a name not in BALANCERS (from JavaScript) fails loudly. */
export function createBalancer(kind: BalancerKind): Balancer {
  if (!Object.hasOwn(BALANCERS, kind)) throw new TypeError(`unknown load balancer kind ${JSON.stringify(kind)}`);
  return BALANCERS[kind]();
}
