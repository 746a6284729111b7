// Instructions per request (`npm run bench -- --instructions`): each contender runs under
// `valgrind --tool=cachegrind --cache-sim=no`, which counts the instructions its process executes
// (all threads: main, V8's background compilers, GC helpers, libuv pool). Unlike req/s on a shared
// VM (±30 % within minutes), the count does not drift with the host; it moves between runs only
// with what V8 compiles when (up to ~50 k instructions per request seen), so a cost of a few per
// cent (metrics, the access log) shows over repeated runs.
//
// Per contender: two fresh processes, each warmed up with W requests (TurboFan compiles the hot
// path during the first ones; uncounted, that compilation would dominate), then driven with N1
// requests in one and N2 in the other. Startup, warm-up and shutdown are the same in both, so
// (Ir(N2 run) - Ir(N1 run)) / (N2 - N1) is the steady-state cost of one request.
import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { buildScripts, saveResults } from './build.ts';
import { HOST, peers, startOrigin, WORKLOADS, type Contender, type Ctx, type WorkloadId } from './contenders.ts';
import { kubeproxies, staleBuildNote } from './kubeproxy.ts';
import { originCounts } from './measure.ts';
import { runTmpDir, stopProcess } from './processes.ts';
import { cpuModel } from './procstat.ts';
import { table } from './report.ts';
import { ensureBinary, versionOf } from './tools.ts';

/** Keep-alive connections of the driver: a few, so the proxy's per-connection work is amortized as under wrk. */
const CONNECTIONS = 8;
/** Per request, and per run on top of 200 ms a request (~9 ms each under valgrind when alone). */
const REQUEST_TIMEOUT_MS = 30_000;

export interface InstructionsOptions {
  command: string;
  warmupRequests: number;
  requests: [number, number];
  /** More KubeProxy contenders (--baseline: a previous build), counted in both workloads after the default. */
  extra?: Contender[];
  /** --only: contender names (exact with a leading =, else contained) to count; the rest are skipped. */
  only?: string[] | undefined;
}

interface CountRun {
  requests: number;
  /** Instructions executed by the contender's process, start to exit. */
  ir: number;
  /** Requests the origin served during the counted requests (cache hits: should be ~0). */
  originRequests: number;
  seconds: number;
}

export interface InstructionsRow {
  workload: WorkloadId;
  contender: string;
  runs: CountRun[];
  /** (Ir(N2) - Ir(N1)) / (N2 - N1). */
  perRequest?: number;
  missing?: string;
  note?: string;
}

interface DriveResult { seconds: number }

/** n GETs over CONNECTIONS keep-alive connections; every answer must be 200 with the workload's body length. */
function drive(port: number, path: string, n: number, bytes: number): Promise<DriveResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    let started = 0;
    let done = 0;
    let over = false;
    const finish = (err?: Error) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      agent.destroy();
      if (err) reject(err);
      else resolve({ seconds: (Date.now() - t0) / 1000 });
    };
    const limitMs = n * 200 + 60_000;
    const timer = setTimeout(() => finish(new Error(`${n} requests did not finish within ${Math.round(limitMs / 1000)} s (${done} done)`)), limitMs);
    const one = () => {
      if (over || started >= n) return;
      const k = ++started;
      const req = http.get({ host: '127.0.0.1', port, path, agent, headers: { host: HOST } }, (res) => {
        let got = 0;
        res.on('data', (c: Buffer) => { got += c.length; });
        res.on('end', () => {
          if (res.statusCode !== 200 || got !== bytes) return finish(new Error(`request ${k}: ${res.statusCode}, ${got} bytes (expected 200, ${bytes} bytes)`));
          if (++done === n) finish();
          else one();
        });
        res.on('error', (e) => finish(new Error(`request ${k}: ${e.message}`)));
      });
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
      req.on('error', (e) => finish(new Error(`request ${k}: ${e.message}`)));
    };
    for (let i = 0; i < Math.min(CONNECTIONS, n); i++) one();
  });
}

/** The `summary:` line of a cachegrind output file: with --cache-sim=no, the total Ir. */
function cachegrindIr(file: string): number {
  if (!existsSync(file)) throw new Error(`cachegrind wrote no ${file} (was the process killed before it could exit?)`);
  const m = /^summary:\s+(\d+)/m.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`no summary line in ${file}`);
  return Number(m[1]);
}

async function countRun(c: Contender, ctx: Ctx, w: WorkloadId, warmup: number, n: number): Promise<CountRun> {
  const { path, bytes } = WORKLOADS[w];
  const r = await c.start(ctx);
  let counted: { originRequests: number; seconds: number };
  try {
    await drive(r.port, path, warmup, bytes);
    const before = (await originCounts(ctx))[path] ?? 0;
    const { seconds } = await drive(r.port, path, n, bytes);
    counted = { originRequests: ((await originCounts(ctx))[path] ?? 0) - before, seconds };
  } finally {
    // SIGTERM, then wait (stopGraceMs) for the exit: cachegrind writes its file as the process exits.
    await r.stop();
  }
  return { requests: n, ir: cachegrindIr(join(ctx.tmpDir, `cachegrind.${r.pid}.out`)), ...counted };
}

const k = (n: number | undefined) => (n === undefined ? '—' : (n / 1000).toFixed(1));
const pct = (part: number, whole: number) => `${((part / whole) * 100).toFixed(1)} %`;

export function instructionsMarkdown(rows: InstructionsRow[]): string {
  const ref: Record<WorkloadId, string> = { small: 'bare-undici', '64k': 'bare-undici', 'cache-hit': 'memory-server' };
  const get = (w: WorkloadId, id: string) => rows.find((r) => r.workload === w && r.contender === id)?.perRequest;
  const body = rows.map((r) => {
    const base = get(r.workload, ref[r.workload]);
    const origin = r.runs.map((x) => x.originRequests).join(' / ');
    return [
      WORKLOADS[r.workload].title, r.contender, k(r.perRequest),
      r.perRequest !== undefined && base !== undefined ? `${(r.perRequest / base).toFixed(2)}×` : '—',
      r.runs.length ? `${origin} of ${r.runs.map((x) => x.requests).join(' / ')}` : '—',
      r.missing ?? r.note ?? '',
    ];
  });
  const lines = [table(['Workload', 'Contender', 'Instructions / request (k)', `÷ reference`, 'Origin saw (counted)', 'Notes'], body), ''];
  const cost = (label: string, w: WorkloadId, a: string, b: string, of: string) => {
    const [x, y, d] = [get(w, a), get(w, b), get(w, of)];
    if (x === undefined || y === undefined || d === undefined) return `- ${label}: n/a`;
    return `- ${label}: ${k(x - y)} k instructions / request (${pct(x - y, d)} of the default KubeProxy's)`;
  };
  lines.push(`Reference: bare-undici (not cached), memory-server (cache hit). Cost, from the KubeProxy variants:`);
  lines.push(cost('metrics, 13-byte not cached (access log off − metrics+log off)', 'small', 'kubeproxy (access log off)', 'kubeproxy (metrics+log off)', 'kubeproxy'));
  lines.push(cost('access log, 13-byte not cached (default − access log off)', 'small', 'kubeproxy', 'kubeproxy (access log off)', 'kubeproxy'));
  lines.push(cost('metrics + access log, cache hit (default − metrics+log off)', 'cache-hit', 'kubeproxy', 'kubeproxy (metrics+log off)', 'kubeproxy'));
  lines.push(cost('one plugin with empty onRequest + onResponse, 13-byte not cached (one empty plugin − default)', 'small', 'kubeproxy (one empty plugin)', 'kubeproxy', 'kubeproxy'));
  lines.push(cost('one plugin with empty onRequest + onResponse, cache hit (one empty plugin − default)', 'cache-hit', 'kubeproxy (one empty plugin)', 'kubeproxy', 'kubeproxy'));
  return lines.join('\n');
}

export async function runInstructions(o: InstructionsOptions): Promise<void> {
  const [n1, n2] = o.requests;
  if (!(n2 > n1 && n1 > 0 && o.warmupRequests >= 0)) throw new Error(`--requests N1,N2 needs 0 < N1 < N2 (got ${n1},${n2})`);
  const valgrind = ensureBinary('valgrind', 'valgrind');
  const stale = staleBuildNote();
  if (stale) console.log(stale);

  const scripts = buildScripts();
  const tmpDir = runTmpDir();
  // The origin and this driver run natively: valgrind counts only the contender's process.
  const { proc: origin, ports: originPorts } = await startOrigin(scripts, tmpDir, null);

  const ctx: Ctx = {
    tmpDir, scripts, originPid: origin.pid, originPorts, proxyCpu: null, loadCpu: null, nginxBin: undefined, nginxMissing: 'not used',
    wrap: {
      // %p: valgrind's pid, which is the contender's (valgrind runs the program in its own process).
      prefix: [valgrind, '--tool=cachegrind', '--cache-sim=no', `--cachegrind-out-file=${join(tmpDir, 'cachegrind.%p.out')}`, `--log-file=${join(tmpDir, 'valgrind.%p.log')}`],
      // Node starts in seconds alone under valgrind, far slower beside other valgrind runs.
      startTimeoutMs: 180_000,
      stopGraceMs: 60_000,
    },
  };
  const extra = o.extra ?? [];
  const byId = (id: string) => {
    const c = [...peers, ...kubeproxies, ...extra].find((x) => x.id === id);
    if (!c) throw new Error(`bench: no contender ${id}`);
    return c;
  };
  const extraIds = extra.map((c) => c.id);
  const wanted = (id: string) => o.only === undefined || o.only.length === 0 || o.only.some((x) => (x.startsWith('=') ? id === x.slice(1) : id.includes(x)));
  const plan: [WorkloadId, string[]][] = ([
    ['small', ['bare-undici', 'kubeproxy', ...extraIds, 'kubeproxy (one empty plugin)', 'kubeproxy (access log off)', 'kubeproxy (metrics+log off)']],
    ['cache-hit', ['memory-server', 'kubeproxy', ...extraIds, 'kubeproxy (one empty plugin)', 'kubeproxy (metrics+log off)']],
  ] as [WorkloadId, string[]][]).map(([w, ids]) => [w, ids.filter(wanted)]);
  const total = plan.reduce((n, [, ids]) => n + ids.length, 0);
  console.log(`${total} rows, 2 fresh processes each under cachegrind: ${o.warmupRequests} warm-up requests, then ${n1} / ${n2} counted; ${CONNECTIONS} keep-alive connections`);

  const rows: InstructionsRow[] = [];
  for (const [w, ids] of plan) {
    for (const id of ids) {
      const row: InstructionsRow = { workload: w, contender: id, runs: [] };
      try {
        for (const n of [n1, n2]) row.runs.push(await countRun(byId(id), ctx, w, o.warmupRequests, n));
        const [a, b] = row.runs as [CountRun, CountRun];
        row.perRequest = (b.ir - a.ir) / (n2 - n1);
        const originShare = (a.originRequests + b.originRequests) / (n1 + n2);
        if (w === 'cache-hit' && originShare > 0.01) row.note = 'NOT cache hits';
        if (w !== 'cache-hit' && originShare < 0.9) row.note = 'cached?';
      } catch (e) {
        row.missing = `not available (${(e as Error).message.slice(0, 200)})`;
      }
      rows.push(row);
      const fig = row.perRequest !== undefined
        ? `${k(row.perRequest)} k instructions / request (${row.runs.map((x) => `${(x.ir / 1e9).toFixed(2)} G Ir in ${x.seconds.toFixed(0)} s`).join(', ')})`
        : row.missing;
      console.log(`[done] ${w.padEnd(9)} ${id.padEnd(28)} ${fig}`);
    }
  }

  const machine = `${cpuModel()}, ${os.availableParallelism()} CPUs; Node ${process.version}; ${versionOf(valgrind, ['--version'])}`;
  const date = new Date().toISOString();
  const out = [
    `## KubeProxy instructions per request (${date.slice(0, 10)})`, '',
    `Command: \`${o.command}\``, `Machine: ${machine}`,
    `Setup: each contender in a fresh process under \`valgrind --tool=cachegrind --cache-sim=no\` (all its threads: V8's background compilers and GC included), ${o.warmupRequests} warm-up requests, then ${n1} counted in one process and ${n2} in another, ${CONNECTIONS} keep-alive connections, origin and driver outside valgrind; instructions / request = (Ir(${n2}) − Ir(${n1})) / ${n2 - n1}. KubeProxy: workers 1, cache on, round-robin over 2 origin ports.`, '',
    instructionsMarkdown(rows),
  ].join('\n');
  console.log(`\n${out}\n`);

  const data = { command: o.command, machine, date, options: { warmupRequests: o.warmupRequests, requests: o.requests, connections: CONNECTIONS }, rows };
  console.log(`results: ${saveResults('instructions', date.replace(/[:.]/g, '-'), data)}`);
  await stopProcess(origin);
}
