/**
 * A load-balancing policy. Selection is kept apart from health and membership
 * (Caddy's `Upstream.Available()`, Pingora's `BackendSelection`): a balancer only
 * ever looks at `available()`, `weight` and `inflight`, never at health checks.
 */
export interface Pickable {
  /** Stable identity of the instance, `address:port`. */
  readonly id: string;
  /** Relative share of traffic, integer >= 1 (default 1). */
  readonly weight: number;
  /** Requests currently in flight to this instance. */
  readonly inflight: number;
  /** Healthy, not ejected, not at its connection limit. */
  available(): boolean;
}

export interface PickContext {
  /** The value a consistent-hash balancer hashes (client IP, a header, or the path). */
  hashKey?: string | undefined;
  /**
   * Instances already tried for this request: a retry should pick another one.
   * A preference, not a ban: when every available instance is excluded, every
   * policy picks among the excluded ones rather than failing, because retrying an
   * instance that failed once beats a 503. A caller that must never repeat an
   * instance checks `exclude.has(picked)` itself.
   */
  exclude?: ReadonlySet<Pickable> | undefined;
}

export interface Balancer {
  /**
   * Picks one available instance, or undefined when none is available.
   * `instances` is the same array object for as long as membership is unchanged,
   * so a policy may cache per-array structures (a hash ring) by identity.
   */
  pick<T extends Pickable>(instances: readonly T[], ctx: PickContext): T | undefined;
}

/**
 * The weight a policy uses. Config validation keeps weights to integers >= 1, but a
 * policy must not turn a bad value into NaN sums or a black-holed instance, so
 * anything that is not a positive finite number counts as the default weight 1.
 */
export function weightOf(p: Pickable): number {
  const w = p.weight;
  return w > 0 && w < Infinity ? w : 1;
}

/**
 * `ctx.exclude` when it can exclude anything, else undefined: the policies test
 * `exclude !== undefined` per instance instead of calling `has` on an empty set.
 */
export function activeExclude(ctx: PickContext): ReadonlySet<Pickable> | undefined {
  const ex = ctx.exclude;
  return ex !== undefined && ex.size > 0 ? ex : undefined;
}

/** Available and not excluded; `exclude` comes from `activeExclude`. */
export function isEligible(p: Pickable, exclude: ReadonlySet<Pickable> | undefined): boolean {
  return p.available() && (exclude === undefined || !exclude.has(p));
}
