// `npm run bench [-- --duration 10s --runs 3 | --quick | --memory | --instructions | --scale | --shared-cache | --only a,b | --baseline <git-rev>]`
// (`--only h2`: the HTTP/2 over TLS workloads of h2.ts only; the full run ends with them.)
// Orchestrates the loopback benchmark: starts the origin, then per workload measures every
// contender in interleaved rounds, each run on a fresh process (measure.ts), prints markdown tables,
// writes bench/results/*.json.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { buildScripts, saveResults } from './build.ts';
import { originDirect, peers, startOrigin, WORKLOADS, type Contender, type Ctx, type WorkloadId } from './contenders.ts';
import { baselineKubeproxy, kubeproxies, staleBuildNote } from './kubeproxy.ts';
import { bunPeers, kubeproxyBun, kubeproxyBunServeFront, kubeproxyBunUndici } from './bun.ts';
import { prepareBaseline, removeBaseline } from './baseline.ts';
import { measureWorkload, type Row } from './measure.ts';
import { memoryCheck, memoryTable, type MemoryResult } from './memory.ts';
import { nginx } from './nginx.ts';
import { H2_SETUP, h2Markdown, runH2, type H2Row } from './h2.ts';
import { runInstructions } from './instructions.ts';
import { runScale, scaleTable } from './scale.ts';
import { startRedis } from './redis.ts';
import { runSharedCache, sharedCacheTables } from './shared-cache.ts';
import { installCleanup, runTmpDir, stopProcess } from './processes.ts';
import { cpuModel } from './procstat.ts';
import { benchMarkdown, evaluateTargets, type BenchMeta } from './report.ts';
import { ensureBinary, versionOf } from './tools.ts';

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: '10s' },
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2s' },
    connections: { type: 'string', default: '64' },
    quick: { type: 'boolean', default: false },
    memory: { type: 'boolean', default: false },
    instructions: { type: 'boolean', default: false },
    scale: { type: 'boolean', default: false },
    services: { type: 'string', default: '5000' },
    'shared-cache': { type: 'boolean', default: false },
    keys: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '16' },
    'redis-timeout': { type: 'string' },
    'warmup-requests': { type: 'string' },
    requests: { type: 'string' },
    soak: { type: 'string', default: '60s' },
    'quiet-wait': { type: 'string', default: '30s' },
    only: { type: 'string' },
    baseline: { type: 'string' },
    report: { type: 'string' },
  },
  strict: true,
});

function seconds(s: string, name: string): number {
  const m = /^(\d+)(s|m)?$/.exec(s);
  if (!m) throw new Error(`--${name}: expected e.g. 10s or 1m, got ${s}`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
}

const durationS = opt.quick ? 3 : seconds(opt.duration, 'duration');
const runs = opt.quick ? 1 : Math.max(1, Number(opt.runs));
const warmupS = opt.quick ? 1 : seconds(opt.warmup, 'warmup');
const soakS = opt.quick ? 10 : seconds(opt.soak, 'soak');
const quietWaitS = opt.quick ? 5 : seconds(opt['quiet-wait'], 'quiet-wait');
const connections = Number(opt.connections);
// --only: workload ids (small, 64k, cache-hit) pick workloads; `=name` picks the contender of that
// exact name; any other entry, the contenders whose name contains it. The origin always runs.
const onlyItems = opt.only?.split(',').map((s) => s.trim()).filter(Boolean);
const onlyWorkloads = onlyItems?.filter((o): o is WorkloadId => o in WORKLOADS);
// `h2` is a workload id too (bench/h2.ts): without any workload id, every workload runs, h2 included.
const withH2 = !onlyItems?.some((o) => o in WORKLOADS || o === 'h2') || onlyItems.includes('h2');
const only = onlyItems?.filter((o) => !(o in WORKLOADS) && o !== 'h2');
const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;

if (opt.report) {
  // Re-print the tables of a saved run: `npm run bench -- --report bench/results/bench-latest.json`.
  const saved = JSON.parse(readFileSync(opt.report, 'utf8')) as BenchMeta & { rows: Row[] };
  console.log(benchMarkdown(saved, saved.rows));
  process.exit(0);
}

/** --baseline <git-rev>: that revision, built in a worktree, runs next to the default KubeProxy; the worktree goes at exit. */
function withBaseline(): Contender[] {
  if (!opt.baseline) return [];
  const b = prepareBaseline(opt.baseline);
  // After installCleanup's exit handler has stopped the processes running from the worktree.
  process.on('exit', () => {
    try {
      removeBaseline(b);
    } catch (e) {
      console.error(`baseline: could not remove its worktree: ${(e as Error).message}`);
    }
  });
  return [baselineKubeproxy(b.rev, b.dir)];
}

installCleanup();
if (opt.instructions) {
  // Counted under valgrind (instructions.ts): nothing pinned, no wrk or nginx needed.
  const requests = (opt.requests ?? (opt.quick ? '500,1500' : '1000,3000')).split(',').map(Number);
  if (requests.length !== 2 || !requests.every(Number.isInteger)) throw new Error(`--requests: expected N1,N2 (e.g. 1000,3000), got ${opt.requests}`);
  const warmupRequests = Number(opt['warmup-requests'] ?? (opt.quick ? 1000 : 3000));
  if (!Number.isInteger(warmupRequests)) throw new Error(`--warmup-requests: expected an integer, got ${opt['warmup-requests']}`);
  await runInstructions({ command, warmupRequests, requests: requests as [number, number], extra: withBaseline(), only });
  process.exit(0);
}
const cpuCount = os.availableParallelism(); // before pinning ourselves, which narrows it to 1
const pinned = cpuCount >= 2;
if (pinned) {
  // The harness itself stays off the proxy's CPU.
  execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
} else {
  console.log('note: fewer than 2 CPUs: nothing is pinned, figures are not comparable with pinned runs');
}

ensureBinary('wrk', 'wrk');
let nginxBin: string | undefined;
let nginxMissing: string | undefined;
try {
  nginxBin = ensureBinary('nginx', 'nginx');
} catch (e) {
  nginxMissing = (e as Error).message;
  console.log(`nginx: skipped (${nginxMissing})`);
}
// h2load (nghttp2-client) for the HTTP/2 workloads (h2.ts); without it they are skipped with a note.
let h2loadBin: string | undefined;
if (withH2 && !opt.memory && !opt.scale && !opt['shared-cache']) {
  try {
    h2loadBin = ensureBinary('h2load', 'nghttp2-client');
  } catch (e) {
    console.log(`h2: skipped (${(e as Error).message})`);
  }
}
const stale = staleBuildNote();
if (stale) console.log(stale);

const scripts = buildScripts();
const tmpDir = runTmpDir();

const loadCpu = pinned ? '1' : null;
const { proc: origin, ports: originPorts } = await startOrigin(scripts, tmpDir, loadCpu);

const baselineKp = withBaseline();

const ctx: Ctx = { tmpDir, scripts, originPid: origin.pid, originPorts, proxyCpu: pinned ? '0' : null, loadCpu, nginxBin, nginxMissing };
const [bare, nodeHttpProxy, fastify, memoryServer] = peers as [Contender, Contender, Contender, Contender];
// Report order (rows, tables).
const all: Contender[] = [originDirect, bare, nodeHttpProxy, fastify, nginx, memoryServer, ...kubeproxies, ...baselineKp, kubeproxyBun, kubeproxyBunServeFront, kubeproxyBunUndici, ...bunPeers];
// Order within a measuring round: the rows the report divides sit side by side, so their k-th
// samples are seconds apart (bare-undici or memory-server next to the default KubeProxy, then
// the KubeProxy variants whose differences give the cost of metrics and of the access log).
const [kpDefault, kpNoLog, kpNone, kpAuto, kpPlugin] = kubeproxies as [Contender, Contender, Contender, Contender, Contender];
// The one-empty-plugin variant next to the default: their ratio is the cost of the plugin hooks.
// The previous build (--baseline) right after the default: their ratio is new ÷ previous.
// Issue 18: KubeProxy on Bun right after the default (on Node), then the Bun ceilings.
const roundOrder: Contender[] = [originDirect, nodeHttpProxy, fastify, nginx, bare, memoryServer, kpDefault, kubeproxyBun, kubeproxyBunServeFront, kubeproxyBunUndici, ...bunPeers, ...baselineKp, kpPlugin, kpNoLog, kpNone, kpAuto];
if (roundOrder.length !== all.length || !all.every((c) => roundOrder.includes(c))) throw new Error('bench: roundOrder must list every contender once');
const picked = (id: string) => !only || only.length === 0 || only.some((o) => (o.startsWith('=') ? id === o.slice(1) : id.includes(o)));
const selected = (c: Contender) => c === originDirect || picked(c.id);

const machine = `${cpuModel()}, ${cpuCount} CPUs; Node ${process.version}; ${versionOf('wrk', ['-v']).split(' Copyright')[0]}; ${nginxBin ? versionOf(nginxBin, ['-v']) : 'nginx: not installed'}`;
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const save = (name: string, data: unknown): string => saveResults(name, stamp, data);

if (opt['shared-cache']) {
  // --requests here: the load's request count (default 20 per key).
  const [keys, concurrency] = [Number(opt.keys), Number(opt.concurrency)];
  const requests = Number(opt.requests ?? keys * 20);
  if (![keys, requests, concurrency].every((n) => Number.isInteger(n) && n > 0)) throw new Error('--keys, --requests, --concurrency: expected positive integers');
  const o = { keys, requests, concurrency, runs, quietWaitS, redisTimeout: opt['redis-timeout'] };
  const redis = await startRedis(tmpDir, loadCpu);
  const redisVersion = versionOf('redis-server', ['--version']).split(' sha=')[0];
  const results = await runSharedCache(ctx, o, redis);
  await redis.stop();
  const out = [
    `## Shared cache tier: 3 processes behind round-robin (${new Date().toISOString().slice(0, 10)})`, '',
    `Command: \`${command}\``, `Machine: ${machine}; ${redisVersion}`,
    `Setup: 3 KubeProxy processes (workers: 1, metrics, access log, cache on) pinned to CPU 0; the client, the origin and redis-server (no persistence, maxmemory 256mb, volatile-lru) on CPU 1; ${requests} GETs of 13-byte cacheable responses, keys uniform over ${keys} (fixed seed, the same sequence in both columns), request i to process i mod 3, ${concurrency} in flight; Redis lookup timeout: ${o.redisTimeout ?? 'the proxy\'s default'}.`, '',
    sharedCacheTables(results, o),
  ].join('\n');
  console.log(`\n${out}\n`);
  console.log(`results: ${save('shared-cache', { command, machine, options: o, runs: results })}`);
} else if (opt.scale) {
  const services = Number(opt.services);
  if (!Number.isInteger(services) || services < 2) throw new Error(`--services: expected an integer >= 2, got ${opt.services}`);
  const rows = await runScale(ctx, { services, runs, durationS, warmupS, connections, quietWaitS });
  const out = [
    `## KubeProxy with many services (${new Date().toISOString().slice(0, 10)})`, '',
    `Command: \`${command}\``, `Machine: ${machine}`,
    `Setup: proxy pinned to CPU 0 (workers: 1, metrics and access log on); wrk -t1 -c${connections} and the origin on CPU 1; every service has 2 instances (the two origin ports).`, '',
    scaleTable(rows),
  ].join('\n');
  console.log(`\n${out}\n`);
  console.log(`results: ${save('scale', { command, machine, rows })}`);
} else if (opt.memory) {
  const streamBytes = 1024 * 1024 * 1024;
  const memOpts = { soakS, streamBytes, connections, quietWaitS };
  const targets = all.filter((c) => (c.kind === 'proxy' || c.kind === 'kubeproxy') && (only ? selected(c) : ['bare-undici', 'kubeproxy'].includes(c.id)));
  const results: MemoryResult[] = [];
  for (const c of targets) {
    console.log(`memory: ${c.id} (1 GiB up + down, then ${soakS} s soak) ...`);
    results.push(await memoryCheck(c, ctx, memOpts));
  }
  const out = [
    `## KubeProxy memory check (${new Date().toISOString().slice(0, 10)})`, '',
    `Command: \`${command}\``, `Machine: ${machine}`,
    `Setup: proxy pinned to CPU 0; wrk -t1 -c${connections} (soak on /small), origin and the 1 GiB client on CPU 1; RSS of the proxy process tree.`, '',
    memoryTable(results, memOpts),
  ].join('\n');
  console.log(`\n${out}\n`);
  console.log(`results: ${save('memory', { command, machine, options: memOpts, results })}`);
} else {
  const workloadIds = (Object.keys(WORKLOADS) as WorkloadId[]).filter((w) => (onlyWorkloads?.length ? onlyWorkloads.includes(w) : !onlyItems?.includes('h2')));
  const workloads = workloadIds.map((w) => ({ w, contenders: roundOrder.filter((c) => selected(c) && c.workloads.includes(w)) }));
  const count = workloads.reduce((n, x) => n + x.contenders.length, 0);
  console.log(`${count} rows over ${workloads.length} workloads: per workload ${runs} interleaved round(s) of one ${durationS} s run of every contender, each run on a fresh process warmed up for ${warmupS} s; wrk -t1 -c${connections}`);
  const rows: Row[] = [];
  for (const { w, contenders } of workloads) {
    const measured = await measureWorkload(contenders, w, ctx, { durationS, runs, warmupS, connections, quietWaitS });
    for (const row of measured) {
      const fig = row.rps === undefined ? row.missing : `median ${Math.round(row.rps).toLocaleString('en-US')} req/s, p99 ${row.p99Ms!.toFixed(2)} ms${row.invalid ? ' (check failed)' : ''}`;
      console.log(`[done] ${w.padEnd(9)} ${row.contender.padEnd(28)} ${fig}`);
    }
    rows.push(...all.flatMap((c) => measured.filter((r) => r.contender === c.id)));
  }
  const meta: BenchMeta = {
    command, machine, date: new Date().toISOString().slice(0, 10),
    setup: `loopback; ${pinned ? 'proxy under test pinned to CPU 0 (taskset -c 0), wrk -t1 and the origin on CPU 1' : 'nothing pinned'}; wrk -t1 -c${connections}; ${runs} interleaved round(s) (run k of every contender, then run k+1), ${durationS} s each, median reported; every run on a fresh process of its own (started, warmed up ${warmupS} s, measured, stopped: one contender up at a time); KubeProxy (workers: 1) with metrics, access log and the cache on, round-robin over 2 origin ports.`,
  };
  if (rows.length > 0) {
    const out = benchMarkdown(meta, rows);
    console.log(`\n${out}\n`);
    console.log(`results: ${save('bench', { ...meta, options: { durationS, runs, warmupS, connections }, rows, targets: evaluateTargets(rows) })}`);
  }
  if (h2loadBin !== undefined) {
    const h2Machine = `${machine}; ${versionOf(h2loadBin, ['--version'])}`;
    console.log(`h2: KubeProxy's TLS port and NGINX over HTTP/2, ${runs} interleaved round(s) of ${durationS} s per workload`);
    const h2Rows: H2Row[] = await runH2(ctx, h2loadBin, { durationS, runs, warmupS, quietWaitS, pick: picked });
    const out = [`## HTTP/2 over TLS: KubeProxy and NGINX (${meta.date})`, '', `Command: \`${command}\``, `Machine: ${h2Machine}`,
      `Setup: ${H2_SETUP}; ${runs} interleaved round(s), a fresh process per run, median reported.`, '', h2Markdown(h2Rows)].join('\n');
    console.log(`\n${out}\n`);
    console.log(`results: ${save('h2', { command, machine: h2Machine, options: { durationS, runs, warmupS }, rows: h2Rows })}`);
  }
}

await stopProcess(origin);
process.exit(0);
