// Measures every contender of one workload in interleaved rounds: start them all fresh, check
// each answers, warm each up, then run 1 of every contender, run 2 of every contender, ...
// with CPU time, RSS and origin hit counts around each run.
//
// Why interleaved: on a shared VM the host's noise drifts over tens of seconds (the same config
// measures 12k req/s one minute and 21k the next). Measured back to back per contender, two
// contenders' figures were minutes apart and their ratio mostly measured the drift. Within a
// round the samples are seconds apart, so per-round ratios (report.ts) cancel most of it.
import { request } from 'undici';
import { HOST, NotAvailable, WORKLOADS, type Contender, type Ctx, type Running, type WorkloadId } from './contenders.ts';
import { cpuSeconds, machineBusySeconds, processTree, sampleRss, selfAndChildrenCpuSeconds, statusKiB } from './procstat.ts';
import { sleep } from './processes.ts';
import { runWrk, type WrkOptions } from './wrk.ts';

export interface RunOptions {
  durationS: number;
  /** Rounds: every contender is measured once per round. */
  runs: number;
  warmupS: number;
  /**
   * An unmeasured run right before each sample: a contender idle while the others were measured
   * is colder than after its warm-up (V8 flushes the bytecode of code left unused; before the
   * contenders ran with --no-memory-reducer, its idle-time GC also shrank their heaps); without
   * it, the first second of each sample re-warms it, and more so for a bigger program.
   */
  rewarmS: number;
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
  /** CPUs used by the other (idle) contenders of the round during the run. */
  idleCpu?: number;
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
 * in `contenderPids` (started, idle contenders) count as the benchmark's own.
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
  running?: Running;
  wrk?: Omit<WrkOptions, 'durationS'>;
  /** Runs redone because the machine was busy (at most `runs` per row). */
  redone: number;
  /** Peak of the RSS sampled during this contender's own runs (KiB). */
  peakKiB: number;
}

const alive = (s: Slot): s is Slot & { running: Running; wrk: Omit<WrkOptions, 'durationS'> } =>
  !!s.running && !!s.wrk && s.row.missing === undefined;

/** Pids of the contenders that are up (measured or idle): the benchmark's own processes. */
const startedPids = (slots: readonly Slot[]): number[] => slots.filter(alive).map((s) => s.running.pid);

/** Marks the row as missing (KubeProxy is work in progress: any failure of it is "not available"). */
function fail(s: Slot, e: unknown): void {
  const msg = (e as Error).message;
  if (s.c.kind === 'kubeproxy') s.row.missing = `kubeproxy: not available (${msg})`;
  else s.row.missing = e instanceof NotAvailable ? `${s.c.id}: not available (${msg})` : `error: ${msg}`;
}

/** One measured run of `s` (redone after a quiet wait while the machine is busy); adds the sample. */
async function takeSample(s: Slot & { running: Running; wrk: Omit<WrkOptions, 'durationS'> }, round: number, slots: Slot[],
  ctx: Ctx, w: WorkloadId, o: RunOptions, log: (line: string) => void): Promise<Sample> {
  const { pid } = s.running;
  const path = WORKLOADS[w].path;
  for (;;) {
    if (o.rewarmS > 0) await runWrk({ ...s.wrk, durationS: o.rewarmS });
    const started = startedPids(slots);
    const idleRoots = started.filter((p) => p !== pid && p !== ctx.originPid);
    const counts0 = await originCounts(ctx);
    const [cpu0, idle0] = [cpuSeconds(processTree(pid)), cpuSeconds(trees(idleRoots))];
    const [busy0, ours0] = [machineBusySeconds(), oursSeconds(ctx, started)];
    // RSS is sampled only while this contender is under load: its own peak, and no /proc
    // polling of idle contenders competing with wrk and the origin for CPU 1.
    const rss = sampleRss(pid, 250);
    let r;
    try {
      r = await runWrk({ ...s.wrk, durationS: o.durationS });
    } finally {
      s.peakKiB = Math.max(s.peakKiB, rss.stop().peakKiB);
    }
    const foreign = machineBusySeconds() - busy0 - (oursSeconds(ctx, started) - ours0);
    const cpu = cpuSeconds(processTree(pid)) - cpu0;
    const idle = cpuSeconds(trees(idleRoots)) - idle0;
    const counts = await originCounts(ctx);
    const sample: Sample = {
      rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms, requests: r.requests,
      cpuUsPerReq: r.requests > 0 ? (cpu * 1e6) / r.requests : 0,
      proxyCpu: cpu / r.seconds,
      foreignCpu: Math.max(0, foreign / r.seconds),
      idleCpu: Math.max(0, idle / r.seconds),
      originHits: (counts[path] ?? 0) - (counts0[path] ?? 0),
      non2xx: r.non2xx, socketErrors: r.socketErrors,
      round,
    };
    const line = `[round ${round}/${o.runs}] ${w.padEnd(9)} ${s.c.id.padEnd(28)} ${Math.round(sample.rps).toLocaleString('en-US').padStart(7)} req/s, p99 ${sample.p99Ms.toFixed(2)} ms`;
    // A run during which other processes used >= 0.1 CPU is redone after a quiet wait (at most
    // `runs` times per row), within the same round so it stays paired with the others' samples.
    if (sample.foreignCpu >= 0.1 && s.redone < o.runs) {
      s.redone++;
      log(`${line}: machine busy (others used ${sample.foreignCpu.toFixed(2)} CPU), redo`);
      await waitForQuiet(ctx, o.quietWaitS, started);
      continue;
    }
    log(sample.foreignCpu >= 0.1 ? `${line} (machine busy: others used ${sample.foreignCpu.toFixed(2)} CPU)` : line);
    s.row.samples.push(sample);
    return sample;
  }
}

/** Medians, checks and notes of a row whose contender is still running (for VmHWM). */
function summarize(s: Slot & { running: Running }, w: WorkloadId): void {
  const { row, c, running } = s;
  if (s.redone > 0) row.notes.push(`${s.redone} run(s) redone: machine busy`);
  check(row, c, w);
  const tree = processTree(running.pid);
  const hwm = running.fresh && tree.length === 1 ? statusKiB(running.pid, 'VmHWM') : 0;
  if (tree.length > 1) row.notes.push(`${tree.length} processes (CPU and RSS summed)`);
  const med = (f: (x: Sample) => number) => median(row.samples.map(f));
  row.rps = med((x) => x.rps);
  row.p50Ms = med((x) => x.p50Ms);
  row.p99Ms = med((x) => x.p99Ms);
  row.cpuUsPerReq = med((x) => x.cpuUsPerReq);
  row.proxyCpu = med((x) => x.proxyCpu);
  row.foreignCpu = med((x) => x.foreignCpu);
  const idleCpu = med((x) => x.idleCpu ?? 0);
  if (c.pinned && c.kind !== 'origin' && row.proxyCpu < 0.85) {
    row.notes.push(`CPU 0 not saturated (${Math.round(row.proxyCpu * 100)} %): held back by ${
      row.foreignCpu >= 0.05 ? 'other processes or ' : ''}the load side (wrk + origin on CPU 1)`);
  }
  if (row.foreignCpu >= 0.05) row.notes.push(`machine busy: other processes used ${row.foreignCpu.toFixed(2)} CPU during the runs`);
  if (idleCpu >= 0.05) row.notes.push(`the idle contenders used ${idleCpu.toFixed(2)} CPU during its runs`);
  row.peakRssMiB = Math.max(s.peakKiB, hwm) / 1024;
  row.notes = [...new Set(row.notes)];
}

/**
 * Measures `contenders` (in this order within a round) on workload `w`; returns their rows in the
 * same order. Each contender is started fresh on its own port and stays up (idle while the others
 * are measured) until the last round; all are stopped at the end, also on error. A contender that
 * fails to start, its check or a run gets a `missing` row; the others go on.
 */
export async function measureWorkload(contenders: readonly Contender[], w: WorkloadId, ctx: Ctx, o: RunOptions,
  log: (line: string) => void = console.log): Promise<Row[]> {
  const slots: Slot[] = contenders.map((c) => ({
    c, redone: 0, peakKiB: 0,
    row: { contender: c.id, kind: c.kind, workload: w, pinned: c.pinned, samples: [], notes: c.note ? [c.note] : [] },
  }));
  const guarded = async (s: Slot, what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      fail(s, e);
      log(`${what} ${w.padEnd(9)} ${s.c.id.padEnd(28)} ${s.row.missing}`);
      await s.running?.stop(); // frees CPU 0 at once; stopping again at the end is a no-op
    }
  };
  try {
    await waitForQuiet(ctx, o.quietWaitS);
    for (const s of slots) {
      await guarded(s, '[start]', async () => {
        s.running = await s.c.start(ctx);
        await sanityCheck(s.running.port, w);
        s.wrk = { url: `http://127.0.0.1:${s.running.port}${WORKLOADS[w].path}`, connections: o.connections, host: HOST, cpu: ctx.loadCpu };
      });
    }
    if (o.warmupS > 0) {
      for (const s of slots.filter(alive)) await guarded(s, '[warm-up]', async () => { await runWrk({ ...s.wrk!, durationS: o.warmupS }); });
    }
    for (let round = 1; round <= o.runs; round++) {
      // The order alternates (forward, backward, forward, ...) rather than rotating: no
      // contender is always first after the quiet wait, neighbours in the list stay neighbours
      // in every round (the lists in run.ts put the pairs the report divides side by side),
      // and a drift that is linear over a round biases a pair's ratio one way in odd rounds and
      // the other way in even rounds, so it cancels across rounds.
      const order = round % 2 === 1 ? slots : [...slots].reverse();
      await waitForQuiet(ctx, o.quietWaitS, startedPids(slots));
      for (const s of order) {
        if (!alive(s)) continue;
        await guarded(s, `[round ${round}/${o.runs}]`, async () => { await takeSample(s, round, slots, ctx, w, o, log); });
      }
    }
    for (const s of slots) if (alive(s)) summarize(s, w);
  } finally {
    await Promise.allSettled(slots.map((s) => s.running?.stop()));
  }
  return slots.map((s) => s.row);
}
