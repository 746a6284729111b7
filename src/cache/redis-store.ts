/**
 * `CacheStore` (store.ts) in Redis or Valkey: the shared tier behind each process's memory
 * (tiered-store.ts). Every method returns a promise; a failure rejects (the tiered store
 * decides what that means for a request: nothing, see there).
 *
 * Keys, for the configured prefix P (one prefix = one shared cache):
 *   P m:<primary key>   hash: `vn` the Vary names all variants share, `c` one descriptor line
 *                       per variant, newest first ("gen \t chunks \t expiresAt \t bytes \t vary id"),
 *                       and `v:<gen>` each variant's status, headers and times (JSON)
 *   P b:<gen>:<i>       the body in chunks of CHUNK_BYTES (64 KiB), never one huge value
 *   P s / P d / P a     stats counters / deadline of each primary key (sorted set) / the entries
 *                       and bytes each key is accounted for (hash): see stats()
 *
 * A writer never exposes a half-written variant: the chunks are written under a fresh
 * generation id, then one Lua script swaps the descriptor (and removes what it replaced), all
 * in one pipeline, so one round trip. A read is one script too: descriptors, the live
 * variants' heads and all their chunks. A variant with a missing piece (Redis evicted it under
 * maxmemory, or a FLUSHALL raced the read) is left out, never served cut.
 *
 * Expiry: every key gets a Redis TTL of its storage deadline (`CacheEntry.expiresAt`, capped
 * by `maxTtl`; `maxTtl` when absent) plus TTL_MARGIN_MS; reads skip variants past `expiresAt`
 * by the store's clock, as the memory store does.
 *
 * Where the contract (store.ts) differs: the store has no byte bound of its own and no LRU:
 * memory is Redis's `maxmemory` with its eviction policy (`volatile-lru` advised: every cache
 * key has a TTL, the index keys do not). `evictions` counts only variants beyond
 * `maxVariantsPerKey`. `stats()` counts what the stores wrote and removed, with keys past
 * their deadline subtracted as it runs (at most REAP_BATCH per call); what Redis itself
 * evicts under maxmemory is not subtracted.
 *
 * The scripts name keys they build from P rather than declaring them all in KEYS: the store
 * needs a standalone Redis/Valkey (or a replicated primary), not Redis Cluster.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { DEFAULT_MAX_OBJECT_SIZE, DEFAULT_MAX_VARIANTS_PER_KEY } from './memory-store.ts';
import { entryByteSize, type CacheEntry, type CacheObject, type CacheStats, type CacheStore } from './store.ts';

export interface RedisStoreOptions {
  readonly redis: Redis;
  /** Prefix of every key (proxy.cache.shared.redis.keyPrefix). */
  readonly keyPrefix: string;
  /** Largest variant accepted (accounted bytes, as the memory store). Default 8 MiB. */
  readonly maxObjectSize?: number | undefined;
  readonly maxVariantsPerKey?: number | undefined;
  /** Longest Redis TTL, and the TTL of entries without expiresAt. Default 24 h. */
  readonly maxTtl?: number | undefined;
  /** Clock (epoch ms) for expiresAt. Default Date.now. */
  readonly now?: (() => number) | undefined;
}

/** Body chunk size: large values block Redis's single thread and its replication. */
export const CHUNK_BYTES = 64 * 1024;
/** Keys outlive their deadline this long, so the reaper (not Redis) removes them and their accounting. */
const TTL_MARGIN_MS = 60_000;
const DEFAULT_MAX_TTL = 24 * 3600 * 1000;
/** Keys past their deadline removed per write or stats() call. */
const REAP_BATCH = 64;
/** Keys per SCAN step of deleteByPrefix. */
const SCAN_COUNT = 500;

const LUA_COMMON = `
local P = ARGV[1]
local function parse(c)
  local out = {}
  if not c then return out end
  for line in string.gmatch(c, '[^\\n]+') do
    local g, n, x, s, vk = string.match(line, '^([^\\t]+)\\t(%d+)\\t(%d+)\\t(%d+)\\t(.*)$')
    if g then out[#out + 1] = { g = g, n = tonumber(n), x = tonumber(x), s = tonumber(s), vk = vk, line = line } end
  end
  return out
end
local function chunkKeys(v, from)
  local keys = {}
  for i = from, math.min(v.n - 1, from + 999) do keys[#keys + 1] = P .. 'b:' .. v.g .. ':' .. i end
  return keys
end
local function dropChunks(v)
  for from = 0, v.n - 1, 1000 do redis.call('DEL', unpack(chunkKeys(v, from))) end
end
-- Removes a primary key, its chunks and its accounting; returns the variants it had.
local function removeKey(key)
  local meta = P .. 'm:' .. key
  local vs = parse(redis.call('HGET', meta, 'c'))
  for _, v in ipairs(vs) do dropChunks(v) end
  redis.call('DEL', meta)
  local acct = redis.call('HGET', P .. 'a', key)
  if acct then
    local e, b = string.match(acct, '^(%d+) (%d+)$')
    redis.call('HINCRBY', P .. 's', 'entries', -tonumber(e))
    redis.call('HINCRBY', P .. 's', 'bytes', -tonumber(b))
    redis.call('HINCRBY', P .. 's', 'keys', -1)
    redis.call('HDEL', P .. 'a', key)
  end
  redis.call('ZREM', P .. 'd', key)
  return #vs
end
local function reap(now)
  local due = redis.call('ZRANGEBYSCORE', P .. 'd', '-inf', now, 'LIMIT', 0, ${REAP_BATCH})
  for _, key in ipairs(due) do removeKey(key) end
end
`;

/** KEYS[1] meta; ARGV P, now. Returns [json, n, chunk x n, json, n, ...] for the live variants, newest first. */
const LUA_READ = `${LUA_COMMON}
local now = tonumber(ARGV[2])
local vs = parse(redis.call('HGET', KEYS[1], 'c'))
local out = {}
for _, v in ipairs(vs) do
  if v.x == 0 or v.x > now then
    out[#out + 1] = redis.call('HGET', KEYS[1], 'v:' .. v.g)
    out[#out + 1] = v.n
    for from = 0, v.n - 1, 1000 do
      local chunks = redis.call('MGET', unpack(chunkKeys(v, from)))
      for i = 1, #chunks do out[#out + 1] = chunks[i] end
    end
  end
end
return out
`;

/**
 * KEYS[1] meta; ARGV P, now, maxVariants, vary names, refuse (1: too large, only drop what it
 * supersedes), descriptor line, gen, json, primary key, maxTtl. Returns 1 when stored.
 */
const LUA_PUT = `${LUA_COMMON}
local now, maxv, vn, refuse = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5] == '1'
local key, maxTtl = ARGV[9], tonumber(ARGV[10])
reap(now)
local meta = KEYS[1]
local old = parse(redis.call('HGET', meta, 'c'))
local same = redis.call('HGET', meta, 'vn') == vn
local new = parse(ARGV[6])[1]
local list, dropped, evicted = {}, {}, 0
if not refuse then list[1] = new end
for _, v in ipairs(old) do
  if same and v.vk ~= new.vk and (v.x == 0 or v.x > now) then list[#list + 1] = v else dropped[#dropped + 1] = v end
end
while #list > maxv do
  dropped[#dropped + 1] = table.remove(list)
  evicted = evicted + 1
end
for _, v in ipairs(dropped) do
  dropChunks(v)
  redis.call('HDEL', meta, 'v:' .. v.g)
end
local acct = redis.call('HGET', P .. 'a', key)
local oldE, oldB = 0, 0
if acct then
  local e, b = string.match(acct, '^(%d+) (%d+)$')
  oldE, oldB = tonumber(e), tonumber(b)
end
local bytes, deadline, lines = 0, 0, {}
for _, v in ipairs(list) do
  bytes = bytes + v.s
  lines[#lines + 1] = v.line
  local d = now + maxTtl
  if v.x > 0 and v.x < d then d = v.x end
  if d > deadline then deadline = d end
end
if #list == 0 then
  redis.call('DEL', meta)
  redis.call('ZREM', P .. 'd', key)
  redis.call('HDEL', P .. 'a', key)
else
  redis.call('HSET', meta, 'c', table.concat(lines, '\\n'), 'vn', vn)
  if not refuse then redis.call('HSET', meta, 'v:' .. new.g, ARGV[8]) end
  redis.call('PEXPIRE', meta, math.max(1, deadline - now) + ${TTL_MARGIN_MS})
  redis.call('ZADD', P .. 'd', deadline, key)
  redis.call('HSET', P .. 'a', key, #list .. ' ' .. bytes)
end
local hadKey = acct and 1 or 0
local hasKey = #list > 0 and 1 or 0
redis.call('HINCRBY', P .. 's', 'entries', #list - oldE)
redis.call('HINCRBY', P .. 's', 'bytes', bytes - oldB)
redis.call('HINCRBY', P .. 's', 'keys', hasKey - hadKey)
if evicted > 0 then redis.call('HINCRBY', P .. 's', 'evictions', evicted) end
if refuse then return 0 end
return 1
`;

/** KEYS[1] meta; ARGV P, primary key. Returns the number of variants removed. */
const LUA_DELETE = `${LUA_COMMON}
return removeKey(ARGV[2])
`;

/** KEYS[1] the stats hash; ARGV P, now. Returns entries, keys, bytes, evictions. */
const LUA_STATS = `${LUA_COMMON}
reap(tonumber(ARGV[2]))
return redis.call('HMGET', KEYS[1], 'entries', 'keys', 'bytes', 'evictions')
`;

/** The scripts as ioredis custom commands (EVALSHA, EVAL the first time on each connection). */
interface StoreCommands {
  kpRead: (meta: string, prefix: string, now: number) => Promise<unknown>;
  kpReadBuffer: (meta: string, prefix: string, now: number) => Promise<(Buffer | number | null)[] | null>;
  kpPut: (meta: string, ...args: (string | number)[]) => Promise<number>;
  kpDelete: (meta: string, prefix: string, key: string) => Promise<number>;
  kpStats: (stats: string, prefix: string, now: number) => Promise<(string | null)[]>;
}

type ScriptedRedis = Redis & StoreCommands;

/** The JSON of one variant's head in `P m:<key>` `v:<gen>`. */
interface StoredHead {
  s: number;
  h: readonly string[];
  z: number;
  q: number;
  r: number;
  n: readonly string[];
  k: string;
  x: number | null;
}

export class RedisStore implements CacheStore {
  readonly keyPrefix: string;
  readonly maxObjectSize: number;
  readonly maxVariantsPerKey: number;
  readonly maxTtl: number;
  readonly #redis: ScriptedRedis;
  readonly #now: () => number;

  constructor(options: RedisStoreOptions) {
    this.keyPrefix = options.keyPrefix;
    this.maxObjectSize = options.maxObjectSize ?? DEFAULT_MAX_OBJECT_SIZE;
    this.maxVariantsPerKey = options.maxVariantsPerKey ?? DEFAULT_MAX_VARIANTS_PER_KEY;
    this.maxTtl = options.maxTtl ?? DEFAULT_MAX_TTL;
    this.#now = options.now ?? Date.now;
    const redis = options.redis as ScriptedRedis;
    if (typeof redis.kpRead !== 'function') {
      redis.defineCommand('kpRead', { numberOfKeys: 1, lua: LUA_READ });
      redis.defineCommand('kpPut', { numberOfKeys: 1, lua: LUA_PUT });
      redis.defineCommand('kpDelete', { numberOfKeys: 1, lua: LUA_DELETE });
      redis.defineCommand('kpStats', { numberOfKeys: 1, lua: LUA_STATS });
    }
    this.#redis = redis;
  }

  async get(key: string): Promise<CacheObject | undefined> {
    const reply = await this.#redis.kpReadBuffer(this.#meta(key), this.keyPrefix, this.#now());
    if (reply === null || reply.length === 0) return undefined;
    const variants: CacheEntry[] = [];
    let size = 0;
    for (let i = 0; i < reply.length; ) {
      const head = reply[i];
      const n = reply[i + 1] as number;
      const chunks = reply.slice(i + 2, i + 2 + n);
      i += 2 + n;
      if (!Buffer.isBuffer(head) || chunks.some((c) => !Buffer.isBuffer(c))) continue; // a part is gone: left out
      const entry = toEntry(key, JSON.parse(head.toString('utf8')) as StoredHead, chunks as Buffer[]);
      if (entry === undefined) continue;
      variants.push(entry);
      size += entryByteSize(entry);
    }
    return variants.length === 0 ? undefined : { key, variants, size };
  }

  async put(key: string, entry: CacheEntry): Promise<boolean> {
    if (entry.key !== key) throw new TypeError(`entry.key ${JSON.stringify(entry.key)} does not match key ${JSON.stringify(key)}`);
    const now = this.#now();
    const bytes = entryByteSize(entry);
    const refuse = bytes > this.maxObjectSize;
    const gen = randomBytes(9).toString('base64url');
    const chunks = refuse ? [] : rechunk(entry.body, CHUNK_BYTES);
    const expiresAt = entry.expiresAt ?? 0;
    const line = `${gen}\t${chunks.length}\t${Math.max(0, Math.floor(expiresAt))}\t${bytes}\t${varyId(entry.varyKey)}`;
    const head: StoredHead = {
      s: entry.status,
      h: entry.headers,
      z: entry.bodySize,
      q: entry.requestTime,
      r: entry.responseTime,
      n: entry.varyNames,
      k: entry.varyKey,
      x: entry.expiresAt ?? null,
    };
    const deadline = expiresAt > 0 ? Math.min(expiresAt, now + this.maxTtl) : now + this.maxTtl;
    const ttl = Math.max(1, deadline - now) + TTL_MARGIN_MS;
    // Chunks first, then the swap, on one connection: the swap runs after them, one round trip.
    const pipeline = this.#redis.pipeline() as ReturnType<Redis['pipeline']> & Pick<StoreCommands, 'kpPut'>;
    chunks.forEach((chunk, i) => pipeline.set(`${this.keyPrefix}b:${gen}:${i}`, chunk, 'PX', ttl));
    pipeline.kpPut(
      this.#meta(key),
      this.keyPrefix,
      now,
      this.maxVariantsPerKey,
      entry.varyNames.join(','),
      refuse ? '1' : '0',
      line,
      gen,
      JSON.stringify(head),
      key,
      this.maxTtl,
    );
    const results = await pipeline.exec();
    if (results === null) throw new Error('redis pipeline was discarded');
    for (const [err] of results) if (err) throw err;
    return results[results.length - 1]![1] === 1;
  }

  async delete(key: string): Promise<boolean> {
    return (await this.#delete(key)) > 0;
  }

  /** Every key under the prefix, by SCAN (purges are rare; lookups never scan). */
  async deleteByPrefix(prefix: string): Promise<number> {
    const match = `${globEscape(this.#meta(prefix))}*`;
    const metaPrefix = `${this.keyPrefix}m:`;
    let cursor = '0';
    let removed = 0;
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT);
      cursor = next;
      const counts = await Promise.all(keys.map((k) => this.#delete(k.slice(metaPrefix.length))));
      for (const n of counts) removed += n;
    } while (cursor !== '0');
    return removed;
  }

  async stats(): Promise<CacheStats> {
    const [entries, keys, bytes, evictions] = await this.#redis.kpStats(`${this.keyPrefix}s`, this.keyPrefix, this.#now());
    return { entries: Number(entries ?? 0), keys: Number(keys ?? 0), bytes: Number(bytes ?? 0), evictions: Number(evictions ?? 0) };
  }

  #delete(key: string): Promise<number> {
    return this.#redis.kpDelete(this.#meta(key), this.keyPrefix, key);
  }

  #meta(key: string): string {
    return `${this.keyPrefix}m:${key}`;
  }
}

function toEntry(key: string, h: StoredHead, body: Buffer[]): CacheEntry | undefined {
  let size = 0;
  for (const c of body) size += c.length;
  if (size !== h.z) return undefined;
  const entry: CacheEntry = {
    key,
    status: h.s,
    headers: h.h,
    body,
    bodySize: h.z,
    requestTime: h.q,
    responseTime: h.r,
    varyNames: h.n,
    varyKey: h.k,
  };
  return h.x === null ? entry : { ...entry, expiresAt: h.x };
}

/** The body in pieces of at most `size` bytes (the last one shorter). */
export function rechunk(body: readonly Buffer[], size: number): Buffer[] {
  const out: Buffer[] = [];
  let parts: Buffer[] = [];
  let length = 0;
  for (let chunk of body) {
    while (chunk.length > 0) {
      const take = Math.min(size - length, chunk.length);
      parts.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      length += take;
      chunk = chunk.subarray(take);
      if (length === size) {
        out.push(parts.length === 1 ? parts[0]! : Buffer.concat(parts, length));
        parts = [];
        length = 0;
      }
    }
  }
  if (length > 0) out.push(parts.length === 1 ? parts[0]! : Buffer.concat(parts, length));
  return out;
}

/** A Vary key as one line-free token (it holds newlines, the descriptors are lines). */
function varyId(varyKey: string): string {
  return createHash('sha1').update(varyKey).digest('base64url');
}

/** The key as a literal SCAN MATCH pattern. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}
