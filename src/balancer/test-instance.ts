/** A stand-in instance for balancer tests: only what a Balancer may look at. */
import type { Pickable } from './balancer.ts';

export class TestInstance implements Pickable {
  inflight = 0;
  up = true;
  constructor(
    readonly id: string,
    readonly weight = 1,
  ) {}
  available(): boolean {
    return this.up;
  }
}
