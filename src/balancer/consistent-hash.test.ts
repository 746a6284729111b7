import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pickable } from './balancer.ts';
import { ConsistentHashBalancer, VNODES_PER_WEIGHT, murmur3, murmur3Uint32 } from './consistent-hash.ts';
import { TestInstance as Instance } from './test-instance.ts';


function instances(n: number, weight = 1): Instance[] {
  return Array.from({ length: n }, (_, i) => new Instance(`10.0.0.${i + 1}:8080`, weight));
}

/** Client-IP-like keys: the realistic worst case, differing only in their last bytes. */
const KEYS = Array.from({ length: 10_000 }, (_, i) => `192.168.${i >> 8}.${i & 255}`);

/** The id each key maps to. */
function owners(b: ConsistentHashBalancer, all: readonly Pickable[], keys = KEYS): string[] {
  return keys.map((hashKey) => b.pick(all, { hashKey })!.id);
}

/** Reference MurmurHash3 x86_32 over bytes, straight from the published algorithm. */
function referenceMurmur3(bytes: Uint8Array, seed: number): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed | 0;
  const blocks = bytes.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = bytes.length & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= bytes[blocks + 2] << 16;
    if (tail >= 2) k ^= bytes[blocks + 1] << 8;
    k ^= bytes[blocks];
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

describe('consistent-hash balancer', () => {
  test('sends the same key to the same instance every time', () => {
    const all = instances(5);
    const b = new ConsistentHashBalancer();
    const first = owners(b, all);
    for (let round = 0; round < 3; round++) assert.deepEqual(owners(b, all), first);
  });

  test('every proxy replica sends a key to the same instance, whatever order it lists instances in', () => {
    const a = owners(new ConsistentHashBalancer(), instances(6));
    const shuffled = instances(6).reverse();
    [shuffled[1], shuffled[4]] = [shuffled[4], shuffled[1]];
    assert.deepEqual(owners(new ConsistentHashBalancer(), shuffled), a);
  });

  test('replicas agree even where two instances\' ring points collide', () => {
    // Found by search: point 151 of the first and point 5 of the second hash to the
    // same position (points sit at murmur3(v as 4 LE bytes, seed = murmur3(id))).
    const [x, y] = ['10.1.2.37:8080', '10.1.2.216:8080'];
    const collision = murmur3Uint32(151, murmur3(x));
    assert.equal(murmur3Uint32(5, murmur3(y)), collision);
    const all = [x, y].flatMap((id) => Array.from({ length: VNODES_PER_WEIGHT }, (_, v) => murmur3Uint32(v, murmur3(id))));
    const below = Math.max(...all.filter((h) => h < collision));
    // A key landing on the collided point: it belongs to the smaller id, in any order.
    let hashKey = '';
    for (let i = 0; hashKey === ''; i++) {
      const h = murmur3(`key-${i}`);
      if (h > below && h <= collision) hashKey = `key-${i}`;
    }
    const xy = [new Instance(x), new Instance(y)];
    assert.equal(new ConsistentHashBalancer().pick(xy, { hashKey })!.id, y);
    assert.equal(new ConsistentHashBalancer().pick([xy[1], xy[0]], { hashKey })!.id, y);
  });

  test('spreads keys over the instances close to evenly', () => {
    const all = instances(4);
    const counts = new Map<string, number>();
    for (const id of owners(new ConsistentHashBalancer(), all)) counts.set(id, (counts.get(id) ?? 0) + 1);
    // Six standard deviations of sampling noise plus the ring's own deviation: an
    // instance holding 1/4 of V points owns a Beta share with variance p(1-p)/(V+1).
    const n = KEYS.length;
    const p = 1 / 4;
    const points = VNODES_PER_WEIGHT * 4;
    const tolerance = 6 * Math.sqrt(n * p * (1 - p) + (n * n * p * (1 - p)) / (points + 1));
    for (const inst of all) {
      const got = counts.get(inst.id) ?? 0;
      assert.ok(Math.abs(got - n * p) <= tolerance, `${inst.id} owns ${got} of ${n} keys, expected ${n * p} ± ${Math.round(tolerance)}`);
    }
  });

  test('adding a 5th instance to 4 moves about a fifth of the keys, all of them to the new instance', () => {
    const before = instances(4);
    const after = [...before, new Instance('10.0.0.5:8080')];
    const b = new ConsistentHashBalancer();
    const was = owners(b, before);
    const now = owners(b, after);
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (was[i] === now[i]) continue;
      moved++;
      assert.equal(now[i], '10.0.0.5:8080', `key ${KEYS[i]} moved from ${was[i]} to ${now[i]}`);
    }
    const fraction = moved / KEYS.length;
    assert.ok(fraction >= 0.1 && fraction <= 0.3, `moved ${(fraction * 100).toFixed(1)}% of keys`);
  });

  test("removing an instance moves only that instance's keys, spread over all the others", () => {
    const before = instances(5);
    const gone = before[2];
    const after = before.filter((p) => p !== gone);
    const b = new ConsistentHashBalancer();
    const was = owners(b, before);
    const now = owners(b, after);
    const landed = new Map<string, number>();
    for (let i = 0; i < KEYS.length; i++) {
      if (was[i] === gone.id) landed.set(now[i], (landed.get(now[i]) ?? 0) + 1);
      else assert.equal(now[i], was[i], `key ${KEYS[i]} of a surviving instance moved`);
    }
    // Virtual nodes hand the orphaned keys to every survivor, not to one neighbour.
    assert.equal(landed.size, 4, `orphaned keys went to ${[...landed.keys()].join(', ')}`);
  });

  test('while the owner is down its keys go to a stable stand-in and come back when it recovers', () => {
    const all = instances(4);
    const b = new ConsistentHashBalancer();
    const was = owners(b, all);
    all[1].up = false;
    const during = owners(b, all);
    for (let i = 0; i < KEYS.length; i++) {
      if (was[i] === all[1].id) assert.notEqual(during[i], all[1].id);
      else assert.equal(during[i], was[i], `key ${KEYS[i]} moved although its owner is up`);
    }
    assert.deepEqual(owners(b, all), during, 'the stand-ins are stable');
    all[1].up = true;
    assert.deepEqual(owners(b, all), was);
  });

  test('a retry goes to the same next instance on the ring for a given key', () => {
    const all = instances(4);
    const b = new ConsistentHashBalancer();
    for (const hashKey of KEYS.slice(0, 500)) {
      const first = b.pick(all, { hashKey })!;
      const exclude = new Set<Pickable>([first]);
      const retry = b.pick(all, { hashKey, exclude })!;
      assert.notEqual(retry, first);
      // Same as if the first choice were down: the next eligible point clockwise.
      (first as Instance).up = false;
      assert.equal(b.pick(all, { hashKey }), retry);
      (first as Instance).up = true;
      assert.equal(b.pick(all, { hashKey, exclude }), retry);
    }
  });

  test('raising one instance\'s weight only moves keys to that instance', () => {
    const before = instances(4);
    const after = before.map((p, i) => (i === 0 ? new Instance(p.id, 2) : p));
    const b = new ConsistentHashBalancer();
    const was = owners(b, before);
    const now = owners(b, after);
    let gained = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (was[i] === now[i]) continue;
      assert.equal(now[i], before[0].id);
      gained++;
    }
    assert.ok(gained > 0);
  });

  test('weights of 100 everywhere route exactly like weights of 1', () => {
    const b = new ConsistentHashBalancer();
    assert.deepEqual(owners(b, instances(4, 100)), owners(b, instances(4, 1)));
  });

  test('without a hash key, requests take turns over the instances instead of all landing on one', () => {
    const all = instances(3);
    const b = new ConsistentHashBalancer();
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(b.pick(all, i % 2 === 0 ? {} : { hashKey: '' })!.id);
    assert.deepEqual(seen, [0, 1, 2, 0, 1, 2].map((i) => all[i].id));
  });

  test('builds the ring once per membership, not per request', () => {
    let idReads = 0;
    class Counted implements Pickable {
      readonly weight = 1;
      readonly inflight = 0;
      constructor(private readonly address: string) {}
      get id(): string {
        idReads++;
        return this.address;
      }
      available(): boolean {
        return true;
      }
    }
    const make = () => Array.from({ length: 4 }, (_, i) => new Counted(`10.0.0.${i + 1}:8080`));
    const b = new ConsistentHashBalancer();
    const all = make();
    for (const hashKey of KEYS.slice(0, 1000)) b.pick(all, { hashKey });
    assert.equal(idReads, 4);
    b.pick(make(), { hashKey: 'x' });
    assert.equal(idReads, 8, 'a new membership array gets its own ring');
    b.pick(all, { hashKey: 'y' });
    assert.equal(idReads, 8, 'the first ring is still cached');
  });

  test('handles weights up to the configured maximum without an oversized ring', () => {
    const all = [...instances(20, 1000), new Instance('10.0.1.1:8080', 1)];
    const b = new ConsistentHashBalancer();
    const counts = new Map<string, number>();
    for (const id of owners(b, all)) counts.set(id, (counts.get(id) ?? 0) + 1);
    assert.equal(counts.size >= 20, true);
    assert.ok((counts.get('10.0.1.1:8080') ?? 0) < 50, 'the weight-1 instance gets a sliver');
  });
});

describe('murmur3', () => {
  test('matches the published MurmurHash3 x86_32 test vectors', () => {
    assert.equal(murmur3('', 0), 0);
    assert.equal(murmur3('', 1), 0x514e28b7);
    assert.equal(murmur3('test', 0), 0xba6bd213);
    assert.equal(murmur3('Hello, world!', 0), 0xc0363e43);
    assert.equal(murmur3('Hello, world!', 1234), 0xfaf6cdb3);
    assert.equal(murmur3('The quick brown fox jumps over the lazy dog', 0), 0x2e4ff723);
  });

  test('hashes the UTF-8 bytes of any key, so other implementations agree', () => {
    const samples = ['a', 'ab', 'abc', 'abcd', 'abcde', 'é', '日本語のキー', '😀 emoji', 'x\u{10ffff}y', 'lone \ud800 high', 'lone \udc00 low', 'end \ud83d'];
    for (const s of samples) {
      for (const seed of [0, 1, 0xdeadbeef]) {
        assert.equal(murmur3(s, seed), referenceMurmur3(new TextEncoder().encode(s), seed), JSON.stringify(s));
      }
    }
  });

  test('hashes a 32-bit integer as its four little-endian bytes', () => {
    assert.equal(murmur3Uint32(0x64636261, 0), murmur3('abcd', 0));
    const bytes = new Uint8Array(4);
    for (const [v, seed] of [[0, 0], [1, 7], [0xffffffff, 42], [160, 0x9747b28c]]) {
      new DataView(bytes.buffer).setUint32(0, v, true);
      assert.equal(murmur3Uint32(v, seed), referenceMurmur3(bytes, seed));
    }
  });
});
