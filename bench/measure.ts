// Measures every contender of one workload in interleaved rounds: run 1 of every contender, run 2
// of every contender, ... Each run has a process of its own: the contender is started, checked,
// warmed up, measured (CPU time, RSS and origin hit counts around the run) and stopped, so only
// one contender runs at a time.
//
// Why interleaved: on a shared VM the host's noise drifts over tens of seconds (the same config
// measures 12k req/s one minute and 21k the next). Measured back to back per contender, two
// contenders' figures were minutes apart and their ratio mostly measured the drift. Within a
// round the samples are seconds apart, so per-round ratios (report.ts) cancel most of it.
//
// Why a process per run: two processes of the same program differ by more than the drift within
// a round. One with an unlucky start (where V8 put what, what it compiled when, the state its GC
// settled in) kept its pace for every round when a workload's processes lived through all of
// them: KubeProxy's 13-byte ratio to the bare pass-through was 0.85x in one full run and 0.70x in
// the next, on builds differing only by a change that removed work from that path, each run
// steady over its 7 rounds. With a process per run, the median over the rounds is also a median
// over processes. It also leaves no contender idling beside the one under load.
import { request } from 'undici';
import { HOST, NotAvailable, WORKLOADS, type Contender, type Ctx, type Running, type WorkloadId } from './contenders.ts';
import { cpuSeconds, machineBusySeconds, processTree, sampleRss, selfAndChildrenCpuSeconds, statusKiB } from './procstat.ts';
import { sleep } from './processes.ts';
import { runWrk, type WrkOptions } from './wrk.ts';

export interface RunOptions {
  durationS: number;
  /** Rounds: every contender is measured once per round. */
  runs: number;
  /** Unmeasured load on each fresh process before its run: V8 compiles the hot path meanwhile. */
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
  /** 1-based round: samples of the same round were taken close in time (absent in older results). */
  round?: number;
}

export interface Row {
  contender: string;
  kind: Contender['kind'];
  workload: WorkloadId;
  pinned: boolean;
  /** In round order. */
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

/** Every live process under the given roots, each once (origin direct's root is the origin). */
function trees(roots: readonly number[]): number[] {
  return [...new Set(roots.flatMap((pid) => processTree(pid)))];
}

/** CPU seconds of everything the benchmark runs: the started contenders, origin, harness and wrk. */
function oursSeconds(ctx: Ctx, contenderPids: readonly number[]): number {
  return cpuSeconds(trees([ctx.originPid, ...contenderPids])) + selfAndChildrenCpuSeconds();
}

/** Busy CPUs not accounted for by the benchmark over `ms` (call while nothing is under load). */
async function foreignLoad(ctx: Ctx, ms: number, contenderPids: readonly number[]): Promise<number> {
  const [busy, ours] = [machineBusySeconds(), oursSeconds(ctx, contenderPids)];
  await sleep(ms);
  return (machineBusySeconds() - busy - (oursSeconds(ctx, contenderPids) - ours)) / (ms / 1000);
}

/**
 * Waits (bounded) until other processes use < 0.1 CPU; returns the last reading. The processes
 * in `contenderPids` (the contender under test) count as the benchmark's own.
 */
export async function waitForQuiet(ctx: Ctx, maxWaitS: number, contenderPids: readonly number[] = []): Promise<number> {
  const deadline = Date.now() + maxWaitS * 1000;
  let load = await foreignLoad(ctx, 1000, contenderPids);
  while (load >= 0.1 && Date.now() < deadline) load = await foreignLoad(ctx, 1000, contenderPids);
  return load;
}

/** Checks over all runs: every answer 2xx, cache hits really hits, misses really misses. */
function check(row: Row, c: Contender, w: WorkloadId): void {
  const sum = (k: 'requests' | 'originHits' | 'non2xx' | 'socketErrors') => row.samples.reduce((a, s) => a + s[k], 0);
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

/** One contender's state over the rounds of a workload. */
interface Slot {
  c: Contender;
  row: Row;
  /** Runs redone because the machine was busy (at most `runs` per row). */
  redone: number;
  /** Peak RSS over this contender's processes (KiB): sampled during its runs, VmHWM when readable. */
  peakKiB: number;
  /** Most processes one of its runs had (workers: auto). */
  processes: number;
}

/** Marks the row as missing (KubeProxy is work in progress: any failure of it is "not available"). */
function fail(s: Slot, e: unknown): void {
  const msg = (e as Error).message;
  if (s.c.kind === 'kubeproxy') s.row.missing = `kubeproxy: not available (${msg})`;
  else s.row.missing = e instanceof NotAvailable ? `${s.c.id}: not available (${msg})` : `error: ${msg}`;
}

/** One measured run of `s` on `running` (redone after a quiet wait while the machine is busy); adds the sample. */
async function takeSample(s: Slot, running: Running, wrk: Omit<WrkOptions, 'durationS'>, round: number,
  ctx: Ctx, w: WorkloadId, o: RunOptions, log: (line: string) => void): Promise<Sample> {
  const { pid } = running;
  const path = WORKLOADS[w].path;
  for (;;) {
    const counts0 = await originCounts(ctx);
    const cpu0 = cpuSeconds(processTree(pid));
    const [busy0, ours0] = [machineBusySeconds(), oursSeconds(ctx, [pid])];
    // RSS is sampled only while the contender is under load: no /proc polling at other times.
    const rss = sampleRss(pid, 250);
    let r;
    try {
      r = await runWrk({ ...wrk, durationS: o.durationS });
    } finally {
      s.peakKiB = Math.max(s.peakKiB, rss.stop().peakKiB);
    }
    const foreign = machineBusySeconds() - busy0 - (oursSeconds(ctx, [pid]) - ours0);
    const cpu = cpuSeconds(processTree(pid)) - cpu0;
    const counts = await originCounts(ctx);
    const sample: Sample = {
      rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms, requests: r.requests,
      cpuUsPerReq: r.requests > 0 ? (cpu * 1e6) / r.requests : 0,
      proxyCpu: cpu / r.seconds,
      foreignCpu: Math.max(0, foreign / r.seconds),
      originHits: (counts[path] ?? 0) - (counts0[path] ?? 0),
      non2xx: r.non2xx, socketErrors: r.socketErrors,
      round,
    };
    const line = `[round ${round}/${o.runs}] ${w.padEnd(9)} ${s.c.id.padEnd(28)} ${Math.round(sample.rps).toLocaleString('en-US').padStart(7)} req/s, p99 ${sample.p99Ms.toFixed(2)} ms`;
    // A run during which other processes used >= 0.1 CPU is redone after a quiet wait (at most
    // `runs` times per row), on the same process and within the same round, so it stays paired
    // with the others' samples.
    if (sample.foreignCpu >= 0.1 && s.redone < o.runs) {
      s.redone++;
      log(`${line}: machine busy (others used ${sample.foreignCpu.toFixed(2)} CPU), redo`);
      await waitForQuiet(ctx, o.quietWaitS, [pid]);
      continue;
    }
    log(sample.foreignCpu >= 0.1 ? `${line} (machine busy: others used ${sample.foreignCpu.toFixed(2)} CPU)` : line);
    s.row.samples.push(sample);
    return sample;
  }
}

/** What only a live process tells (before it stops): its peak RSS and how many processes it has. */
function recordProcess(s: Slot, running: Running): void {
  const tree = processTree(running.pid);
  s.processes = Math.max(s.processes, tree.length);
  if (running.fresh && tree.length === 1) s.peakKiB = Math.max(s.peakKiB, statusKiB(running.pid, 'VmHWM'));
}

/** Medians, checks and notes of a row. */
function summarize(s: Slot, w: WorkloadId): void {
  const { row, c } = s;
  if (s.redone > 0) row.notes.push(`${s.redone} run(s) redone: machine busy`);
  check(row, c, w);
  if (s.processes > 1) row.notes.push(`${s.processes} processes (CPU and RSS summed)`);
  const med = (f: (x: Sample) => number) => median(row.samples.map(f));
  row.rps = med((x) => x.rps);
  row.p50Ms = med((x) => x.p50Ms);
  row.p99Ms = med((x) => x.p99Ms);
  row.cpuUsPerReq = med((x) => x.cpuUsPerReq);
  row.proxyCpu = med((x) => x.proxyCpu);
  row.foreignCpu = med((x) => x.foreignCpu);
  if (c.pinned && c.kind !== 'origin' && row.proxyCpu < 0.85) {
    row.notes.push(`CPU 0 not saturated (${Math.round(row.proxyCpu * 100)} %): held back by ${
      row.foreignCpu >= 0.05 ? 'other processes or ' : ''}the load side (wrk + origin on CPU 1)`);
  }
  if (row.foreignCpu >= 0.05) row.notes.push(`machine busy: other processes used ${row.foreignCpu.toFixed(2)} CPU during the runs`);
  row.peakRssMiB = s.peakKiB / 1024;
  row.notes = [...new Set(row.notes)];
}

/**
 * Measures `contenders` (in this order within a round) on workload `w`; returns their rows in the
 * same order. Every run gets a fresh process (see the header), stopped right after it, also on
 * error. A contender that fails to start, its check or a run gets a `missing` row and is not
 * started again; the others go on.
 */
export async function measureWorkload(contenders: readonly Contender[], w: WorkloadId, ctx: Ctx, o: RunOptions,
  log: (line: string) => void = console.log): Promise<Row[]> {
  const slots: Slot[] = contenders.map((c) => ({
    c, redone: 0, peakKiB: 0, processes: 0,
    row: { contender: c.id, kind: c.kind, workload: w, pinned: c.pinned, samples: [], notes: c.note ? [c.note] : [] },
  }));
  for (let round = 1; round <= o.runs; round++) {
    // The order alternates (forward, backward, forward, ...) rather than rotating: no
    // contender is always first after the quiet wait, neighbours in the list stay neighbours
    // in every round (the lists in run.ts put the pairs the report divides side by side),
    // and a drift that is linear over a round biases a pair's ratio one way in odd rounds and
    // the other way in even rounds, so it cancels across rounds.
    const order = round % 2 === 1 ? slots : [...slots].reverse();
    await waitForQuiet(ctx, o.quietWaitS);
    for (const s of order) {
      if (s.row.missing !== undefined) continue;
      let running: Running | undefined;
      try {
        running = await s.c.start(ctx);
        await sanityCheck(running.port, w);
        const wrk = { url: `http://127.0.0.1:${running.port}${WORKLOADS[w].path}`, connections: o.connections, host: HOST, cpu: ctx.loadCpu };
        if (o.warmupS > 0) await runWrk({ ...wrk, durationS: o.warmupS });
        await takeSample(s, running, wrk, round, ctx, w, o, log);
        recordProcess(s, running);
      } catch (e) {
        fail(s, e);
        log(`[round ${round}/${o.runs}] ${w.padEnd(9)} ${s.c.id.padEnd(28)} ${s.row.missing}`);
      } finally {
        await running?.stop();
      }
    }
  }
  for (const s of slots) if (s.row.missing === undefined) summarize(s, w);
  return slots.map((s) => s.row);
}
