// Measures one contender on one workload: start it fresh, check it answers, warm up,
// then N wrk runs with CPU time, RSS and origin hit counts around each.
import { request } from 'undici';
import { HOST, NotAvailable, WORKLOADS, type Contender, type Ctx, type Running, type WorkloadId } from './contenders.ts';
import { cpuSeconds, machineBusySeconds, processTree, sampleRss, selfAndChildrenCpuSeconds, statusKiB } from './procstat.ts';
import { sleep } from './processes.ts';
import { runWrk } from './wrk.ts';

export interface RunOptions {
  durationS: number;
  runs: number;
  warmupS: number;
  connections: number;
  /** Wait up to this long for other processes to leave the machine before starting. */
  quietWaitS: number;
}

export interface Sample {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerReq: number;
  /** Proxy CPU time / wall time (1 = one CPU fully used). */
  proxyCpu: number;
  /** CPUs used by processes that are not part of the benchmark during the run. */
  foreignCpu: number;
  requests: number;
  originHits: number;
  non2xx: number;
  socketErrors: number;
}

export interface Row {
  contender: string;
  kind: Contender['kind'];
  workload: WorkloadId;
  pinned: boolean;
  samples: Sample[];
  /** Medians over the runs (peakRssMiB: the peak over all of them). */
  rps?: number;
  p50Ms?: number;
  p99Ms?: number;
  cpuUsPerReq?: number;
  proxyCpu?: number;
  foreignCpu?: number;
  peakRssMiB?: number;
  notes: string[];
  /** Why there are no figures: "not available (...)" or "error: ...". */
  missing?: string;
  /** Figures exist but a check failed (not cache hits, errors): not used for ratios. */
  invalid?: boolean;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function originCounts(ctx: Ctx): Promise<Record<string, number>> {
  const res = await request(`http://127.0.0.1:${ctx.originPorts[0]}/__stats`, { signal: AbortSignal.timeout(5000) });
  return (await res.body.json()) as Record<string, number>;
}

/** GET through the contender until it answers 200 with the expected length (bounded: 10 s). */
async function sanityCheck(port: number, w: WorkloadId): Promise<void> {
  const { path, bytes } = WORKLOADS[w];
  const deadline = Date.now() + 10_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await request(`http://127.0.0.1:${port}${path}`, { headers: { host: HOST }, signal: AbortSignal.timeout(3000) });
      const body = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode === 200 && body.length === bytes) return;
      last = `GET ${path} answered ${res.statusCode} with ${body.length} bytes (want 200, ${bytes})`;
    } catch (e) {
      last = `GET ${path} failed: ${(e as Error).message}`;
    }
    await sleep(250);
  }
  throw new Error(`sanity check: ${last}`);
}

/** CPU seconds of everything the benchmark runs: contender, origin, harness and wrk. */
function oursSeconds(ctx: Ctx, pid: number): number {
  const proxy = pid === ctx.originPid ? 0 : cpuSeconds(processTree(pid));
  return proxy + cpuSeconds(processTree(ctx.originPid)) + selfAndChildrenCpuSeconds();
}

/** Busy CPUs not accounted for by the benchmark over `ms` (call while nothing is under load). */
async function foreignLoad(ctx: Ctx, ms: number): Promise<number> {
  const [busy, ours] = [machineBusySeconds(), oursSeconds(ctx, ctx.originPid)];
  await sleep(ms);
  return (machineBusySeconds() - busy - (oursSeconds(ctx, ctx.originPid) - ours)) / (ms / 1000);
}

/** Waits (bounded) until other processes use < 0.1 CPU; returns the last reading. */
export async function waitForQuiet(ctx: Ctx, maxWaitS: number): Promise<number> {
  const deadline = Date.now() + maxWaitS * 1000;
  let load = await foreignLoad(ctx, 1000);
  while (load >= 0.1 && Date.now() < deadline) load = await foreignLoad(ctx, 1000);
  return load;
}

/** Checks over all runs: every answer 2xx, cache hits really hits, misses really misses. */
function check(row: Row, c: Contender, w: WorkloadId): void {
  const sum = (k: keyof Sample) => row.samples.reduce((a, s) => a + s[k], 0);
  const [requests, originHits, non2xx, socketErrors] = [sum('requests'), sum('originHits'), sum('non2xx'), sum('socketErrors')];
  if (non2xx > 0) { row.notes.push(`${non2xx} non-2xx answers`); row.invalid = true; }
  if (socketErrors > 0) row.notes.push(`${socketErrors} socket errors`);
  if (c.kind === 'origin' || c.kind === 'ceiling') return;
  if (w === 'cache-hit' && originHits > requests * 0.01) {
    row.notes.push(`NOT cache hits: origin saw ${originHits} of ${requests} requests`);
    row.invalid = true;
  } else if (w !== 'cache-hit' && originHits < requests * 0.9) {
    row.notes.push(`origin saw only ${originHits} of ${requests} requests (cached?)`);
    row.invalid = true;
  }
}

export async function measure(c: Contender, w: WorkloadId, ctx: Ctx, o: RunOptions): Promise<Row> {
  const row: Row = { contender: c.id, kind: c.kind, workload: w, pinned: c.pinned, samples: [], notes: c.note ? [c.note] : [] };
  let running: Running | undefined;
  try {
    await waitForQuiet(ctx, o.quietWaitS);
    running = await c.start(ctx);
    await sanityCheck(running.port, w);
    const wrk = { url: `http://127.0.0.1:${running.port}${WORKLOADS[w].path}`, connections: o.connections, host: HOST, cpu: ctx.loadCpu };
    if (o.warmupS > 0) await runWrk({ ...wrk, durationS: o.warmupS });
    const rss = sampleRss(running.pid, 250);
    // A run during which other processes used >= 0.1 CPU is redone after a quiet wait
    // (at most `runs` times per row), since a shared machine skews the figures.
    let redone = 0;
    while (row.samples.length < o.runs) {
      const counts0 = await originCounts(ctx);
      const cpu0 = cpuSeconds(processTree(running.pid));
      const [busy0, ours0] = [machineBusySeconds(), oursSeconds(ctx, running.pid)];
      const r = await runWrk({ ...wrk, durationS: o.durationS });
      const foreign = machineBusySeconds() - busy0 - (oursSeconds(ctx, running.pid) - ours0);
      const cpu = cpuSeconds(processTree(running.pid)) - cpu0;
      const counts = await originCounts(ctx);
      const p = WORKLOADS[w].path;
      const sample: Sample = {
        rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms, requests: r.requests,
        cpuUsPerReq: r.requests > 0 ? (cpu * 1e6) / r.requests : 0,
        proxyCpu: cpu / r.seconds,
        foreignCpu: Math.max(0, foreign / r.seconds),
        originHits: (counts[p] ?? 0) - (counts0[p] ?? 0),
        non2xx: r.non2xx, socketErrors: r.socketErrors,
      };
      if (sample.foreignCpu >= 0.1 && redone < o.runs) {
        redone++;
        await waitForQuiet(ctx, o.quietWaitS);
        continue;
      }
      row.samples.push(sample);
    }
    if (redone > 0) row.notes.push(`${redone} run(s) redone: machine busy`);
    check(row, c, w);
    const { peakKiB } = rss.stop();
    const tree = processTree(running.pid);
    const hwm = running.fresh && tree.length === 1 ? statusKiB(running.pid, 'VmHWM') : 0;
    if (tree.length > 1) row.notes.push(`${tree.length} processes (CPU and RSS summed)`);
    row.rps = median(row.samples.map((s) => s.rps));
    row.p50Ms = median(row.samples.map((s) => s.p50Ms));
    row.p99Ms = median(row.samples.map((s) => s.p99Ms));
    row.cpuUsPerReq = median(row.samples.map((s) => s.cpuUsPerReq));
    row.proxyCpu = median(row.samples.map((s) => s.proxyCpu));
    row.foreignCpu = median(row.samples.map((s) => s.foreignCpu));
    if (c.pinned && c.kind !== 'origin' && row.proxyCpu < 0.85) {
      row.notes.push(`CPU 0 not saturated (${Math.round(row.proxyCpu * 100)} %): held back by ${
        row.foreignCpu >= 0.05 ? 'other processes or ' : ''}the load side (wrk + origin on CPU 1)`);
    }
    if (row.foreignCpu >= 0.05) row.notes.push(`machine busy: other processes used ${row.foreignCpu.toFixed(2)} CPU during the runs`);
    row.peakRssMiB = Math.max(peakKiB, hwm) / 1024;
    row.notes = [...new Set(row.notes)];
  } catch (e) {
    // KubeProxy is work in progress: any failure of it is reported as "not available".
    const msg = (e as Error).message;
    if (c.kind === 'kubeproxy') row.missing = `kubeproxy: not available (${msg})`;
    else row.missing = e instanceof NotAvailable ? `${c.id}: not available (${msg})` : `error: ${msg}`;
  } finally {
    await running?.stop();
  }
  return row;
}
