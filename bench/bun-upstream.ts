// `node --import tsx bench/bun-upstream.ts [--duration 10s --runs 3 --warmup 2s --quiet-wait 30s]`
// (`--semantics`: no timing; what each path does with a refusing, resetting, hanging or stalling
// origin, a client that never reads and a slow or fast upload: peers/bun-upstream-check.ts)
// Issue 18: the upstream paths on Bun measured in the same run. One Bun.serve front
// (peers/bun-upstream.ts) with each upstream client in turn: the real undici Pool (dispatch, raw
// handlers), Bun's fetch, an HTTP/1.1 client over Bun.connect (peers/bun-upstream-h1.ts) and
// node:http's request() on Bun; each streaming every answer, and again collecting answers of up to
// 64 KiB first ("buffered"). bare-undici (node:http + undici on Node) runs beside them as the Node
// reference. Same setup as `npm run bench` (measure.ts: proxy pinned to CPU 0, wrk -t1 -c64, origin
// and wrk on CPU 1, interleaved rounds, a fresh process per run).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bunBinary } from '../src/runtime/bun-binary.ts';
import { buildScripts, PROJECT_DIR, saveResults } from './build.ts';
import { childEnv, NotAvailable, peers, startOrigin, WORKLOADS, type Contender, type Ctx, type Running, type WorkloadId } from './contenders.ts';
import { checkSemantics, get, startCheckOrigin } from './peers/bun-upstream-check.ts';
import { measureWorkload, type Row } from './measure.ts';
import { freePort, installCleanup, runTmpDir, startProcess, stopProcess, waitForPort } from './processes.ts';
import { cpuModel } from './procstat.ts';
import { pairedRatio, resultsTable, table } from './report.ts';
import { ensureBinary, versionOf } from './tools.ts';

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: '10s' },
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2s' },
    'quiet-wait': { type: 'string', default: '30s' },
    only: { type: 'string' },
    semantics: { type: 'boolean', default: false },
  },
  strict: true,
});
const secs = (s: string) => Number(/^(\d+)s?$/.exec(s)?.[1] ?? NaN);
const o = { durationS: secs(opt.duration), runs: Number(opt.runs), warmupS: secs(opt.warmup), quietWaitS: secs(opt['quiet-wait']), connections: 64 };
if (!Object.values(o).every((n) => Number.isInteger(n) && n >= 0)) throw new Error('--duration, --warmup, --quiet-wait: e.g. 10s; --runs: an integer');

const BUFFER = 64 * 1024;
const REFERENCE = 'bun undici';

/** The Bun peer (peers/bun-upstream.ts) with `env` (MODE, UPSTREAM, ...) on a free port, pinned to `cpu`. */
async function startBunPeer(tmpDir: string, cpu: string | null, id: string, env: Record<string, string>): Promise<Running> {
  let bin: string;
  try {
    bin = bunBinary();
  } catch (e) {
    throw new NotAvailable((e as Error).message);
  }
  const port = await freePort();
  const proc = startProcess(bin, [join(PROJECT_DIR, 'bench', 'peers', 'bun-upstream.ts')], {
    cpu, cwd: PROJECT_DIR, env: childEnv({ PORT: String(port), ...env }), logFile: join(tmpDir, `${id.replace(/\W+/g, '-')}-${Date.now()}.log`),
  });
  await waitForPort(proc, port, 20_000).catch(async (e: Error) => {
    await stopProcess(proc);
    throw e;
  });
  return { pid: proc.pid, port, fresh: true, stop: () => stopProcess(proc) };
}

function bunMode(id: string, mode: string, bufferMax: number): Contender {
  return {
    id, kind: 'proxy', workloads: ['small', '64k'], pinned: true,
    start: (ctx) => startBunPeer(ctx.tmpDir, ctx.proxyCpu, id, { UPSTREAM: `http://127.0.0.1:${ctx.originPorts[0]}`, MODE: mode, BUFFER_MAX: String(bufferMax) }),
  };
}

const contenders: Contender[] = [
  peers.find((c) => c.id === 'bare-undici')!,
  bunMode(REFERENCE, 'undici', 0),
  bunMode('bun fetch', 'fetch', 0),
  bunMode('bun connect', 'connect', 0),
  bunMode('bun node:http', 'node-http', 0),
  bunMode('bun undici buffered', 'undici', BUFFER),
  bunMode('bun fetch buffered', 'fetch', BUFFER),
  bunMode('bun connect buffered', 'connect', BUFFER),
].filter((c) => !opt.only || opt.only.split(',').some((s) => c.id === s || c.id === REFERENCE));

installCleanup();
if (opt.semantics) {
  // Not timed: each mode against the misbehaving origin of peers/bun-upstream-check.ts.
  const tmpDir = runTmpDir();
  const origin = await startCheckOrigin();
  for (const mode of ['undici', 'fetch', 'connect', 'node-http']) {
    const running = await startBunPeer(tmpDir, null, `check-${mode}`, { UPSTREAM: `http://127.0.0.1:${origin.port}`, MODE: mode, TIMEOUT_MS: '2000' });
    console.log(`${mode} (headers and idle-body timeouts 2 s where the path has them):`);
    const refusing = await startBunPeer(tmpDir, null, `check-${mode}-refused`, { UPSTREAM: `http://127.0.0.1:${await freePort()}`, MODE: mode });
    console.log(`  nothing listening: ${await get(refusing.port, '/')}`);
    await refusing.stop();
    await checkSemantics(running.port, running.pid, origin, (l) => console.log(l));
    await running.stop();
  }
  origin.close();
  process.exit(0);
}
execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
ensureBinary('wrk', 'wrk');
const scripts = buildScripts();
const tmpDir = runTmpDir();
const { proc: origin, ports: originPorts } = await startOrigin(scripts, tmpDir, '1');
const ctx: Ctx = { tmpDir, scripts, originPid: origin.pid, originPorts, proxyCpu: '0', loadCpu: '1', nginxBin: undefined, nginxMissing: 'not used' };

const rows: Row[] = [];
for (const w of ['small', '64k'] as WorkloadId[]) rows.push(...(await measureWorkload(contenders, w, ctx, o)));
await stopProcess(origin);

const x = (n: number) => `${n.toFixed(2)}×`;
const ratios = rows.map((r) => {
  const ref = rows.find((b) => b.contender === REFERENCE && b.workload === r.workload);
  const ok = r.rps !== undefined && ref?.rps !== undefined;
  return [WORKLOADS[r.workload].title, r.contender, ok ? x(pairedRatio(r, ref, 'rps')) : '—', ok ? x(pairedRatio(r, ref, 'p99Ms')) : '—'];
});
const command = `node --import tsx bench/bun-upstream.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
const machine = `${cpuModel()}; Node ${process.version}; Bun ${execFileSync(bunBinary(), ['--version']).toString().trim()}; ${versionOf('wrk', ['-v']).split(' Copyright')[0]}`;
console.log([
  `\n## Upstream paths on Bun (${new Date().toISOString().slice(0, 10)})`, '', `Command: \`${command}\``, `Machine: ${machine}`,
  `Setup: one Bun.serve front, proxy pinned to CPU 0; wrk -t1 -c64 and the origin on CPU 1; ${o.runs} interleaved rounds of ${o.durationS} s, a fresh process per run; "buffered": answers of up to 64 KiB (Content-Length) collected, then sent as one buffer.`, '',
  resultsTable(rows), '', `Ratios to "${REFERENCE}" (median of per-round ratios):`, '',
  table(['Workload', 'Contender', 'req/s ÷', 'p99 ÷'], ratios), '',
].join('\n'));
console.log(`results: ${saveResults('bun-upstream', new Date().toISOString().replace(/[:.]/g, '-'), { command, machine, options: o, rows })}`);
process.exit(0);
