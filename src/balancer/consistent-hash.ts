import { activeExclude, isEligible, weightOf } from './balancer.ts';
import type { Balancer, PickContext, Pickable } from './balancer.ts';
import { RoundRobinBalancer } from './round-robin.ts';

/**
 * Ring points per unit of weight. 160 is libketama's figure (40 MD5 digests x 4
 * points): enough that each instance's share of the ring stays within a few
 * percent of its weight, few enough that a ring of a hundred instances is a
 * couple of hundred kilobytes.
 */
export const VNODES_PER_WEIGHT = 160;

/**
 * Upper bound on ring points. Weights go up to 1000, and 160 x 1000 points for
 * each of many instances would make every membership change cost a second of
 * hashing and sorting; above the bound the point counts are scaled down.
 */
const MAX_RING_POINTS = 1 << 18;

interface Ring {
  /** Point positions on the ring, ascending. */
  readonly points: Uint32Array;
  /** `owners[i]` is the index, in the instances array, of the instance at `points[i]`. */
  readonly owners: Uint32Array;
  /** Length of the array the ring was built from. */
  readonly size: number;
}

/**
 * Consistent hashing (Karger et al., "Consistent Hashing and Random Trees", STOC
 * 1997) with virtual nodes as in libketama: every instance owns
 * VNODES_PER_WEIGHT x weight points on a 32-bit ring, and a key belongs to the
 * first point clockwise from its hash. Adding an instance to n others therefore
 * moves only about 1/(n+1) of the keys, all of them to the newcomer, and removing
 * one moves only its own keys; many points per instance keep the shares close to
 * the weights and spread a departed instance's keys over all the survivors
 * instead of dumping them on one neighbour.
 *
 * The point positions depend only on the instance ids (`address:port`), never on
 * array order, so every replica of the proxy maps a key to the same instance.
 *
 * When the owner is unavailable or excluded the key walks clockwise to the next
 * eligible point, so it moves to a stable second choice and comes back when the
 * owner recovers.
 *
 * Weights are divided by their greatest common divisor before they become point
 * counts (weights of 100 everywhere cost no more than weights of 1). A membership
 * change that changes that divisor, or pushes the ring past MAX_RING_POINTS,
 * rescales every instance and moves more keys than the 1/(n+1) above.
 *
 * Without a hash key (undefined or empty: the configured header was absent)
 * there is no affinity to keep, so the request goes to a smooth weighted
 * round-robin instead of piling every keyless request onto the owner of "".
 */
export class ConsistentHashBalancer implements Balancer {
  private readonly rings = new WeakMap<readonly Pickable[], Ring>();
  private lastInstances: readonly Pickable[] | undefined;
  private lastRing: Ring | undefined;
  private readonly keyless = new RoundRobinBalancer();

  pick<T extends Pickable>(instances: readonly T[], ctx: PickContext): T | undefined {
    const key = ctx.hashKey;
    if (key === undefined || key === '') return this.keyless.pick(instances, ctx);
    if (instances.length === 0) return undefined;

    const { points, owners } = this.ringFor(instances);
    let i = lowerBound(points, murmur3(key));
    let exclude = activeExclude(ctx);
    const owner = instances[owners[i]];
    if (isEligible(owner, exclude)) return owner;

    // Slow path. Make sure the walk will find something first: with every instance
    // down it would otherwise visit all the points, calling available() each time.
    if (!anyEligible(instances, exclude)) {
      if (exclude === undefined) return undefined;
      // Every available instance already tried: retrying one beats failing the request.
      exclude = undefined;
      if (!anyEligible(instances, undefined)) return undefined;
    }
    const len = points.length;
    for (let step = 0; step < len; step++) {
      const p = instances[owners[i]];
      if (isEligible(p, exclude)) return p;
      if (++i === len) i = 0;
    }
    // Only reachable when availability flips during the walk.
    return undefined;
  }

  private ringFor(instances: readonly Pickable[]): Ring {
    const last = this.lastRing;
    if (instances === this.lastInstances && last !== undefined && last.size === instances.length) return last;
    let ring = this.rings.get(instances);
    // The size check guards against a caller that mutated the array in place,
    // which the Balancer contract forbids but which must not index past the end.
    if (ring === undefined || ring.size !== instances.length) {
      ring = buildRing(instances);
      this.rings.set(instances, ring);
    }
    this.lastInstances = instances;
    this.lastRing = ring;
    return ring;
  }
}

function anyEligible(instances: readonly Pickable[], exclude: ReadonlySet<Pickable> | undefined): boolean {
  for (let i = 0; i < instances.length; i++) if (isEligible(instances[i], exclude)) return true;
  return false;
}

/** Index of the first point >= hash, wrapping to 0 past the top of the ring. */
function lowerBound(points: Uint32Array, hash: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid] < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo === points.length ? 0 : lo;
}

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function buildRing(instances: readonly Pickable[]): Ring {
  const n = instances.length;
  const ids = new Array<string>(n);
  const counts = new Array<number>(n);
  let divisor = 0;
  for (let i = 0; i < n; i++) {
    ids[i] = instances[i].id;
    counts[i] = Math.max(1, Math.round(weightOf(instances[i])));
    divisor = gcd(counts[i], divisor);
  }
  let total = 0;
  for (let i = 0; i < n; i++) total += (counts[i] = (counts[i] / divisor) * VNODES_PER_WEIGHT);
  if (total > MAX_RING_POINTS) {
    const scale = MAX_RING_POINTS / total;
    total = 0;
    for (let i = 0; i < n; i++) total += (counts[i] = Math.max(1, Math.floor(counts[i] * scale)));
  }

  const hashes = new Uint32Array(total);
  const ownerOf = new Uint32Array(total);
  const vnodeOf = new Uint32Array(total);
  let k = 0;
  for (let i = 0; i < n; i++) {
    // Point v sits at murmur3(v as 4 little-endian bytes, seed = murmur3(id)): the
    // same independence as hashing "id#v" strings, without building 160 strings
    // per unit of weight. It does not depend on the point count, so raising a
    // weight only adds points and leaves the existing ones where they were.
    const seed = murmur3(ids[i]);
    for (let v = 0; v < counts[i]; v++, k++) {
      hashes[k] = murmur3Uint32(v, seed);
      ownerOf[k] = i;
      vnodeOf[k] = v;
    }
  }
  // Sort (hash, point index) pairs packed into one double (hash * total + index is
  // exact below 2^53), which a Float64Array sorts natively: several times faster
  // than an index array with a comparator on a ring of a few hundred thousand points.
  const packed = new Float64Array(total);
  for (let j = 0; j < total; j++) packed[j] = hashes[j] * total + j;
  packed.sort();
  const order = new Uint32Array(total);
  for (let j = 0; j < total; j++) order[j] = packed[j] % total;
  // Equal hashes came out in array order; re-break them by id so that every replica,
  // whatever order discovery lists the instances in, agrees on the owner.
  for (let j = 0; j < total; ) {
    let end = j + 1;
    while (end < total && hashes[order[end]] === hashes[order[j]]) end++;
    if (end - j > 1) {
      const run = Array.from(order.subarray(j, end)).sort(
        (a, b) => compareIds(ids[ownerOf[a]], ids[ownerOf[b]]) || vnodeOf[a] - vnodeOf[b],
      );
      order.set(run, j);
    }
    j = end;
  }
  const points = new Uint32Array(total);
  const owners = new Uint32Array(total);
  for (let j = 0; j < total; j++) {
    points[j] = hashes[order[j]];
    owners[j] = ownerOf[order[j]];
  }
  return { points, owners, size: n };
}

// MurmurHash3 x86_32 (Austin Appleby, public domain) over the UTF-8 bytes of a
// string, encoded on the fly so that hashing a key allocates nothing. Chosen over
// FNV-1a for its final avalanche: keys such as sequential client IPs differ only
// in their last bytes, and FNV-1a spreads those poorly over the top of the range
// that decides ring position. The block state lives at module level, which is safe
// because hashing never yields to other code.
let mH = 0;
let mK = 0;
let mShift = 0;

function scramble(k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, 0x1b873593);
}

function feed(byte: number): void {
  mK |= byte << mShift;
  mShift += 8;
  if (mShift === 32) {
    mH ^= scramble(mK);
    mH = (mH << 13) | (mH >>> 19);
    mH = (Math.imul(mH, 5) + 0xe6546b64) | 0;
    mK = 0;
    mShift = 0;
  }
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 x86_32 of the four little-endian bytes of `value`. */
export function murmur3Uint32(value: number, seed: number): number {
  let h = seed ^ scramble(value | 0);
  h = (h << 13) | (h >>> 19);
  h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  return fmix(h ^ 4);
}

/**
 * MurmurHash3 x86_32 of the UTF-8 encoding of `key` (lone surrogates encode as
 * U+FFFD, as TextEncoder and Buffer do), as an unsigned 32-bit integer.
 */
export function murmur3(key: string, seed = 0): number {
  mH = seed | 0;
  mK = 0;
  mShift = 0;
  let bytes = 0;
  const len = key.length;
  for (let i = 0; i < len; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x80) {
      feed(c);
      bytes += 1;
    } else if (c < 0x800) {
      feed(0xc0 | (c >> 6));
      feed(0x80 | (c & 0x3f));
      bytes += 2;
    } else if (c < 0xd800 || c > 0xdfff) {
      feed(0xe0 | (c >> 12));
      feed(0x80 | ((c >> 6) & 0x3f));
      feed(0x80 | (c & 0x3f));
      bytes += 3;
    } else {
      const next = i + 1 < len ? key.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        feed(0xf0 | (cp >> 18));
        feed(0x80 | ((cp >> 12) & 0x3f));
        feed(0x80 | ((cp >> 6) & 0x3f));
        feed(0x80 | (cp & 0x3f));
        bytes += 4;
      } else {
        feed(0xef);
        feed(0xbf);
        feed(0xbd);
        bytes += 3;
      }
    }
  }
  let h = mH;
  if (mShift > 0) h ^= scramble(mK);
  return fmix(h ^ bytes);
}
