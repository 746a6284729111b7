/**
 * The fresh-hit fast path. A stored entry never changes (store.ts: objects are immutable, a
 * refresh stores a new one), so what a hit needs from its headers is computed once per entry
 * and kept in a WeakMap: the freshness lifetime, the corrected initial age (RFC 9111 §4.2.3,
 * so current_age is one addition per hit), whether no-cache forbids reuse, and the client-ready
 * header list. A hit then parses nothing: no Cache-Control, no HTTP-date.
 *
 * The fast path applies to a "plain" request: no Cache-Control or Pragma (so no request
 * directive can change the decision, RFC 9111 §5.2.1) and no If-None-Match / If-Modified-Since
 * (no 304 to evaluate). For such a request `plainDecision` gives exactly what policy.ts
 * `evaluateReuse` gives for 'fresh' (hit.test.ts checks the equivalence); anything else takes
 * the full path in layer.ts.
 */
import { DELTA_SECONDS_MAX, responseDirectives } from './directives.ts';
import { currentAge, freshnessLifetime, type PolicyOptions } from './policy.ts';
import type { CacheEntry } from './store.ts';

export interface EntryFacts {
  /** The policy options these facts were computed with (a reload may change them). */
  readonly policy: PolicyOptions;
  /** freshness_lifetime, seconds. */
  readonly lifetime: number;
  /** corrected_initial_age, seconds: current_age at responseTime. */
  readonly initialAge: number;
  /** Unqualified no-cache: never reused without validation (§5.2.2.4). */
  readonly noCache: boolean;
}

const facts = new WeakMap<CacheEntry, EntryFacts>();

export function entryFacts(entry: CacheEntry, policy: PolicyOptions): EntryFacts {
  let f = facts.get(entry);
  if (f === undefined || f.policy !== policy) {
    f = {
      policy,
      lifetime: freshnessLifetime(entry.status, entry.headers, entry.responseTime, policy),
      initialAge: currentAge(entry, entry.responseTime),
      noCache: responseDirectives(entry.headers, policy.targetedFields).noCache,
    };
    facts.set(entry, f);
  }
  return f;
}

/** current_age at `now` (RFC 9111 §4.2.3), seconds, as policy.ts currentAge computes it. */
export function ageAt(entry: CacheEntry, f: EntryFacts, now: number): number {
  const resident = Math.max(0, now - entry.responseTime) / 1000;
  return Math.min(DELTA_SECONDS_MAX, f.initialAge + resident);
}

/** The fresh-hit decision for a plain request: the remaining ttl (> 0), or undefined (take the full path). */
export function plainDecision(entry: CacheEntry, policy: PolicyOptions, now: number): { age: number; ttl: number } | undefined {
  const f = entryFacts(entry, policy);
  if (f.noCache) return undefined;
  const age = ageAt(entry, f, now);
  const ttl = f.lifetime - age;
  return ttl > 0 ? { age, ttl } : undefined;
}

/**
 * Whether the request carries nothing that could change a fresh hit: no Cache-Control, Pragma,
 * If-None-Match or If-Modified-Since field.
 */
export function isPlainRequest(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const n = name.length;
    // Length first: most request fields are none of these four.
    if (n !== 6 && n !== 13 && n !== 17) continue;
    const lower = name.toLowerCase();
    if (lower === 'pragma' || lower === 'cache-control' || lower === 'if-none-match' || lower === 'if-modified-since') return false;
  }
  return true;
}
