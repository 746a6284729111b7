// `npm run bench -- --shared-cache [--keys 1000] [--requests 20000] [--concurrency 16] [--runs 3]`:
// what the shared cache tier (proxy.cache.shared.redis, issue 15) changes for several replicas.
//
// One origin (origin.ts), a redis-server on loopback (redis.ts), three KubeProxy processes (each
// its own process, `workers: 1`, pinned to the proxy CPU like the main benchmark) behind a
// round-robin client in this harness: request i goes to process i mod 3. The same requests twice,
// first with each process's memory cache alone, then with the shared tier (fresh processes, an
// empty Redis): `--requests` GETs of /cacheable?k=<key> (13 bytes, max-age=3600), the keys drawn
// uniformly from `--keys` with a fixed seed (the same sequence in both phases and every run),
// `--concurrency` requests in flight. Uniform keys are the worst case for per-process caches:
// each process misses each key once (origin requests about keys × 3), against about keys × 1
// with the shared tier.
//
// Hit latency, on a 4th process of each phase (so nothing else loads it), sequential GETs on one
// keep-alive connection, timed by the client from request to the body's end, per key in turn:
//  - Redis hit: with the tier, a key of the load, which the 4th process has never served (empty
//    memory) but the other three stored in Redis; checked with its shared-lookup counter;
//  - miss: a key no process has seen (/cacheable?m=<key>): with the tier, a Redis miss, then the origin;
//  - memory hit: the first key again, now in its memory (no Redis lookup: checked).
// The 4th process is warmed first with 200 other keys the same way.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { parse, stringify } from 'yaml';
import { V8_FLAGS } from '../src/v8-flags.ts';
import { PROJECT_DIR } from './build.ts';
import { childEnv, HOST, type Ctx } from './contenders.ts';
import { KUBEPROXY_BIN, kubeproxyConfig } from './kubeproxy.ts';
import { median, originCounts, waitForQuiet } from './measure.ts';
import { freePort, logTail, sleep, startProcess, stopProcess, waitForPort, type Proc } from './processes.ts';
import type { BenchRedis } from './redis.ts';
import { table } from './report.ts';

export interface SharedCacheOptions {
  keys: number;
  requests: number;
  concurrency: number;
  runs: number;
  quietWaitS: number;
  /** proxy.cache.shared.redis.timeout (`--redis-timeout`); undefined: the proxy's default. */
  redisTimeout?: string | undefined;
}

const REPLICAS = 3;
const PATH = '/cacheable';
const BODY = 'Hello, World!';
const WARM_KEYS = 200;

interface Proxy {
  port: number;
  adminPort: number;
  proc: Proc;
}

/** The latency probe's samples (ms) of one phase. */
interface Probe {
  miss: number[];
  redisHit: number[];
  memoryHit: number[];
}

/** One phase of one run: the load over the three processes, then the probe on the fourth. */
export interface PhaseResult {
  shared: boolean;
  requests: number;
  /** Answers whose Cache-Status says hit. */
  hits: number;
  /** Answers that waited for another request's fetch of the same key (Cache-Status `collapsed`). */
  collapsed: number;
  /** Requests the origin served (its /__stats). */
  originRequests: number;
  /** Shared-tier lookups of the three processes, by result (their metrics). */
  lookups: Record<string, number>;
  loadS: number;
  probe: Probe;
}

/** The keys of the load: uniform over [0, keys), from a fixed seed (mulberry32). */
export function keySequence(n: number, keys: number, seed = 15): number[] {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: n }, () => Math.floor(next() * keys));
}

async function startProxy(ctx: Ctx, name: string, redis: BenchRedis | undefined, redisTimeout: string | undefined): Promise<Proxy> {
  const [port, adminPort] = [await freePort(), await freePort()];
  // The main benchmark's default KubeProxy (metrics, access log, cache on), plus the shared tier.
  const config = parse(kubeproxyConfig({ workers: 1, metrics: true, accessLog: true }, port, adminPort, ctx.originPorts));
  if (redis) config.proxy.cache.shared = { redis: { url: redis.url, ...(redisTimeout ? { timeout: redisTimeout } : {}) } };
  const file = join(ctx.tmpDir, `kubeproxy-shared-cache-${name}.yaml`);
  writeFileSync(file, stringify(config));
  const proc = startProcess(process.execPath, [...V8_FLAGS, KUBEPROXY_BIN, '--config', file], {
    cpu: ctx.proxyCpu, cwd: PROJECT_DIR, env: childEnv({}), logFile: join(ctx.tmpDir, `kubeproxy-shared-cache-${name}-${Date.now()}.log`),
  });
  try {
    await waitForPort(proc, port, 20_000);
  } catch (e) {
    await stopProcess(proc);
    throw e;
  }
  return { port, adminPort, proc };
}

type Answer = 'hit' | 'collapsed' | 'fetched';

/** One GET through a proxy; checks the answer and says where it came from. */
async function get(agent: Agent, proxy: Proxy, path: string): Promise<{ answer: Answer; ms: number }> {
  const t0 = performance.now();
  const res = await request(`http://127.0.0.1:${proxy.port}${path}`, { headers: { host: HOST }, dispatcher: agent, signal: AbortSignal.timeout(10_000) });
  const body = await res.body.text();
  const ms = performance.now() - t0;
  if (res.statusCode !== 200 || body !== BODY) {
    throw new Error(`GET ${path}: ${res.statusCode} with ${body.length} bytes (want 200, ${BODY.length})${logTail(proxy.proc) ? `: ${logTail(proxy.proc)}` : ''}`);
  }
  const status = String(res.headers['cache-status'] ?? '');
  const answer: Answer = /;\s*hit\b/.test(status) ? 'hit' : /;\s*collapsed\b/.test(status) ? 'collapsed' : 'fetched';
  return { answer, ms };
}

/** `kubeproxy_cache_shared_lookups_total` of one process, by result. */
async function sharedLookups(proxy: Proxy): Promise<Record<string, number>> {
  const res = await request(`http://127.0.0.1:${proxy.adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.body.text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^kubeproxy_cache_shared_lookups_total\{[^}]*result="(\w+)"[^}]*\} (\S+)$/gm)) {
    out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** The load: request i to process i mod 3, `concurrency` in flight. */
async function load(agent: Agent, proxies: readonly Proxy[], keys: readonly number[], concurrency: number): Promise<Record<Answer, number>> {
  const counts: Record<Answer, number> = { hit: 0, collapsed: 0, fetched: 0 };
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < keys.length; i = next++) {
      counts[(await get(agent, proxies[i % proxies.length]!, `${PATH}?k=${keys[i]}`)).answer]++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return counts;
}

/**
 * The probe on a process that served nothing yet, key by key, the three kinds of answer
 * interleaved (a busy moment of the machine falls on all three alike): the first read of a key
 * of the load (a Redis hit with the tier; without it, a miss, not kept), a key nobody requested
 * (a miss), the first key again (a memory hit).
 */
async function probe(agent: Agent, prober: Proxy, warmer: Proxy, keys: number, shared: boolean): Promise<Probe> {
  // Warm-up: keys the load did not use, stored (in Redis too) by another process, then the same three requests.
  for (let i = 0; i < WARM_KEYS; i++) await get(agent, warmer, `${PATH}?w=${i}`);
  await sleep(500); // the background writes to Redis
  for (let i = 0; i < WARM_KEYS; i++) {
    for (const path of [`${PATH}?w=${i}`, `${PATH}?wm=${i}`, `${PATH}?w=${i}`]) await get(agent, prober, path);
  }
  const out: Probe = { miss: [], redisHit: [], memoryHit: [] };
  const before = await sharedLookups(prober);
  for (let i = 0; i < keys; i++) {
    const first = await get(agent, prober, `${PATH}?k=${i}`);
    const miss = await get(agent, prober, `${PATH}?m=${i}`);
    const again = await get(agent, prober, `${PATH}?k=${i}`);
    if (miss.answer !== 'fetched') throw new Error(`probe: ${PATH}?m=${i}, which nobody requested, was not fetched from the origin`);
    if (again.answer !== 'hit') throw new Error(`probe: ${PATH}?k=${i} read again was not a hit`);
    if (shared && first.answer === 'hit') out.redisHit.push(first.ms);
    out.miss.push(miss.ms);
    out.memoryHit.push(again.ms);
  }
  if (shared) {
    // One lookup per first read and per fresh key, none for the memory hits; the hits are the first reads that said hit.
    const after = await sharedLookups(prober);
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    const total = Object.keys(after).reduce((n, k) => n + delta(k), 0);
    if (delta('hit') !== out.redisHit.length || total !== 2 * keys) {
      throw new Error(`probe: ${out.redisHit.length} first reads said hit, the process counted ${delta('hit')} shared hits and ${total} lookups (want ${2 * keys})`);
    }
  }
  return out;
}

async function phase(ctx: Ctx, o: SharedCacheOptions, keys: readonly number[], redis: BenchRedis | undefined): Promise<PhaseResult> {
  const tag = redis ? 'shared' : 'memory';
  if (redis) redis.cli('flushall');
  const proxies: Proxy[] = [];
  const agent = new Agent({ connections: o.concurrency, keepAliveTimeout: 60_000 });
  try {
    for (let i = 0; i <= REPLICAS; i++) proxies.push(await startProxy(ctx, `${tag}-${i}`, redis, o.redisTimeout));
    const [serving, prober] = [proxies.slice(0, REPLICAS), proxies[REPLICAS]!];
    await waitForQuiet(ctx, o.quietWaitS, [...proxies.map((p) => p.proc.pid), ...(redis ? [redis.proc.pid] : [])]);
    const before = (await originCounts(ctx))[PATH] ?? 0;
    const t0 = performance.now();
    const counts = await load(agent, serving, keys, o.concurrency);
    const loadS = (performance.now() - t0) / 1000;
    const originRequests = ((await originCounts(ctx))[PATH] ?? 0) - before;
    const lookups: Record<string, number> = {};
    for (const p of serving) addCounts(lookups, await sharedLookups(p));
    if (redis && Object.values(lookups).every((n) => n === 0)) {
      throw new Error('the shared tier did not run (no kubeproxy_cache_shared_lookups_total): is dist/ built from this tree? (npm run build)');
    }
    await sleep(500); // the last background writes to Redis
    const probed = await probe(agent, prober, serving[0]!, o.keys, redis !== undefined);
    return { shared: redis !== undefined, requests: keys.length, hits: counts.hit, collapsed: counts.collapsed, originRequests, lookups, loadS, probe: probed };
  } finally {
    await agent.close();
    for (const p of proxies) await stopProcess(p.proc);
  }
}

export interface SharedCacheRun {
  memory: PhaseResult;
  shared: PhaseResult;
  /** Keys and memory of Redis after the shared phase. */
  redisKeys: number;
  redisMemory: string;
}

export async function runSharedCache(ctx: Ctx, o: SharedCacheOptions, redis: BenchRedis): Promise<SharedCacheRun[]> {
  const keys = keySequence(o.requests, o.keys);
  const runs: SharedCacheRun[] = [];
  for (let k = 0; k < o.runs; k++) {
    // Alternating order, as the main benchmark's rounds: a drift of the machine over a run falls on both phases alike.
    const [first, second] = k % 2 === 0 ? [undefined, redis] : [redis, undefined];
    const a = await phase(ctx, o, keys, first);
    const b = await phase(ctx, o, keys, second);
    const [memory, shared] = first === undefined ? [a, b] : [b, a];
    const redisKeys = Number(redis.cli('dbsize'));
    const redisMemory = /used_memory_human:(\S+)/.exec(redis.cli('info', 'memory'))?.[1] ?? '?';
    for (const r of [memory, shared]) {
      console.log(`[shared-cache] run ${k + 1}, ${r.shared ? 'shared tier' : 'memory only'}: ${pct(r.hits / r.requests)} hits, ${r.originRequests} origin requests, ${r.collapsed} collapsed, ${r.loadS.toFixed(1)} s; shared lookups ${JSON.stringify(r.lookups)}`);
    }
    runs.push({ memory, shared, redisKeys, redisMemory });
  }
  return runs;
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const int = (n: number) => Math.round(n).toLocaleString('en-US');

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export function sharedCacheTables(runs: readonly SharedCacheRun[], o: SharedCacheOptions): string {
  const med = (f: (r: SharedCacheRun) => number) => median(runs.map(f));
  const phases = [['memory', 'each process\'s memory only'], ['shared', 'memory + shared tier (Redis)']] as const;
  const cells = (f: (p: PhaseResult) => string | number) => phases.map(([k]) => String(f(runs[0]![k])));
  const medCells = (f: (p: PhaseResult) => number, fmt: (n: number) => string) => phases.map(([k]) => fmt(med((r) => f(r[k]))));
  const load = table(
    [`${REPLICAS} processes, round-robin`, ...phases.map(([, title]) => title)],
    [
      ['requests (uniform over keys)', ...cells((p) => `${int(p.requests)} over ${int(o.keys)}`)],
      ['cache hits (Cache-Status: hit)', ...medCells((p) => p.hits / p.requests, pct)],
      ['of which from Redis', '–', int(med((r) => r.shared.lookups.hit ?? 0))],
      ['Redis lookups: miss / timeout or error / skipped (breaker open)', '–', ['miss', 'timeout', 'skipped'].map((k) => int(med((r) => (r.shared.lookups[k] ?? 0) + (k === 'timeout' ? r.shared.lookups.error ?? 0 : 0)))).join(' / ')],
      ['origin requests', ...medCells((p) => p.originRequests, int)],
      ['waited for another request\'s fetch (collapsed)', ...medCells((p) => p.collapsed, int)],
      [`time for the load (${o.concurrency} in flight)`, ...medCells((p) => p.loadS, (s) => `${s.toFixed(1)} s`)],
    ],
  );
  const latency = (f: (p: Probe) => number[], k: 'memory' | 'shared', q: number) => med((r) => percentile(f(r[k].probe), q));
  const ms = (n: number) => (Number.isNaN(n) ? '–' : `${n.toFixed(2)} ms`);
  const row = (what: string, k: 'memory' | 'shared', f: (p: Probe) => number[]) => [
    what, ms(latency(f, k, 50)), ms(latency(f, k, 99)), int(med((r) => f(r[k].probe).length)),
  ];
  const hits = table(
    ['answer (4th process, sequential, keep-alive)', 'p50', 'p99', 'samples'],
    [
      row('memory hit, memory only', 'memory', (p) => p.memoryHit),
      row('memory hit, shared tier on', 'shared', (p) => p.memoryHit),
      row('Redis hit (not yet in this process\'s memory)', 'shared', (p) => p.redisHit),
      row('miss, memory only (origin on loopback)', 'memory', (p) => p.miss),
      row('miss, shared tier on (Redis miss, then the origin)', 'shared', (p) => p.miss),
    ],
  );
  const last = runs[runs.length - 1]!;
  // Within one phase the three kinds were interleaved key by key: their ratio is what the machine's drift moves least.
  const ratio = (f: (p: Probe) => number[]) => med((r) => percentile(f(r.shared.probe), 50) / percentile(r.shared.probe.memoryHit, 50)).toFixed(1);
  const sameMoments = `Shared tier on, same process and same moments (interleaved per key), p50 ÷ memory hit's p50: Redis hit ${ratio((p) => p.redisHit)}×, miss ${ratio((p) => p.miss)}× (medians of the runs' ratios).`;
  return `${load}\n\n${hits}\n\n${sameMoments}\nMedians of ${runs.length} run(s), fresh processes and an empty Redis each, the two phases' order alternating. Redis after the last shared phase: ${int(last.redisKeys)} keys, ${last.redisMemory} used.`;
}
