// `npm run bench -- --scale [--services 5000] [--runs 3] [--duration 10s]`: what a config of
// many services costs. KubeProxy is started with 1 service and with N services, each of 2
// instances (the two origin ports), metrics and access log on, one worker, pinned like the
// main benchmark; the N-service config once as YAML and once as JSON (what a generator
// writes; config/json.ts reads it without the YAML parser). Per start it records:
//  - time to first 200: from spawn to the first proxied 200 (polled every 5 ms, Host = the
//    last service's domain), so config parsing, snapshot building and listening all count; and
//    the CPU time the process used by then, which a busy machine inflates far less than the
//    wall time;
//  - the first GET /metrics after it (wall time): the metrics series of every service and
//    instance are made there, not before the first request;
//  - RSS of the idle process 2 s after that first 200 (one instance has been used): what the
//    start left, garbage of config parsing included (an idle process runs no GC);
//  - RSS and V8 heap in use after a full GC, run by a preload (`--expose-gc`, SIGUSR2) that
//    exists for this measurement only: what the config really holds;
//  - req/s of wrk on that one Host (routing cost: it should not depend on N).
// Bytes per never-used instance = (figure at N - figure at 1) / (2 N - 2): everything a service
// and its instances add (config objects, Service, routes, Instance, metrics series) shared out
// over the instances.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import { V8_FLAGS } from '../src/v8-flags.ts';
import { PROJECT_DIR } from './build.ts';
import { childEnv, type Ctx } from './contenders.ts';
import { KUBEPROXY_BIN } from './kubeproxy.ts';
import { median, waitForQuiet } from './measure.ts';
import { cpuSeconds, processTree, treeRssKiB } from './procstat.ts';
import { freePort, logTail, sleep, startProcess, stopProcess } from './processes.ts';
import { table } from './report.ts';
import { runWrk } from './wrk.ts';

export interface ScaleOptions {
  services: number;
  runs: number;
  durationS: number;
  warmupS: number;
  connections: number;
  quietWaitS: number;
}

interface ScaleSample {
  firstOkMs: number;
  firstOkCpuMs: number;
  firstScrapeMs: number;
  rssMiB: number;
  gcRssMiB: number;
  gcHeapMiB: number;
  rps: number;
}

/** A config size's medians over its samples, with the samples. */
export interface ScaleRow extends ScaleSample {
  services: number;
  format: ConfigFormat;
  instances: number;
  samples: ScaleSample[];
}

/** The preload: on SIGUSR2, a full GC, then the heap in use on stderr (the process's log file). */
const GC_PRELOAD = `process.on('SIGUSR2', () => {
  globalThis.gc();
  process.stderr.write('scale-heap-used ' + process.memoryUsage().heapUsed + '\\n');
});
`;

/** Sends SIGUSR2 and waits (bounded) for the heap figure the preload prints; bytes. */
async function fullGc(pid: number, logFile: string): Promise<number> {
  const printed = () => [...readFileSync(logFile, 'utf8').matchAll(/^scale-heap-used (\d+)$/gm)].map((m) => Number(m[1]));
  const before = printed().length;
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 200; i++) {
    await sleep(50);
    const all = printed();
    if (all.length > before) return all[all.length - 1]!;
  }
  throw new Error('the GC preload did not answer within 10 s');
}

const domainOf = (i: number) => `s${i}.scale.test`;

export type ConfigFormat = 'yaml' | 'json';

export function scaleConfig(services: number, port: number, adminPort: number, originPorts: readonly number[], format: ConfigFormat = 'yaml'): string {
  const config = {
    proxy: {
      listen: { address: '127.0.0.1', port },
      admin: { address: '127.0.0.1', port: adminPort },
      workers: 1,
      services: Array.from({ length: services }, (_, i) => ({
        name: `s${i}`,
        domain: domainOf(i),
        hosts: originPorts.map((p) => ({ address: '127.0.0.1', port: p })),
      })),
    },
  };
  return format === 'json' ? `${JSON.stringify(config, null, 2)}\n` : stringify(config);
}

/** Polls until one proxied GET answers 200; returns the time since `t0` in ms. */
async function firstOk(port: number, host: string, t0: number, exited: () => boolean): Promise<number> {
  const deadline = t0 + 60_000;
  while (performance.now() < deadline) {
    if (exited()) throw new Error('kubeproxy exited before answering');
    try {
      const res = await request(`http://127.0.0.1:${port}/small`, { headers: { host }, signal: AbortSignal.timeout(2000) });
      await res.body.dump();
      if (res.statusCode === 200) return performance.now() - t0;
    } catch {
      // Not listening yet.
    }
    await sleep(5);
  }
  throw new Error('no 200 within 60 s');
}

/** One GET /metrics on the admin port; its wall time in ms. */
async function scrape(adminPort: number): Promise<number> {
  const t0 = performance.now();
  const res = await request(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(30_000) });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`GET /metrics: ${res.statusCode}`);
  return performance.now() - t0;
}

async function one(services: number, ctx: Ctx, o: ScaleOptions, config: string, port: number, adminPort: number): Promise<ScaleSample> {
  await waitForQuiet(ctx, o.quietWaitS);
  const host = domainOf(services - 1);
  const preload = join(ctx.tmpDir, 'scale-gc-preload.mjs');
  writeFileSync(preload, GC_PRELOAD);
  const logFile = join(ctx.tmpDir, `kubeproxy-scale-${services}-${Date.now()}.log`);
  const t0 = performance.now();
  const proc = startProcess(process.execPath, [...V8_FLAGS, '--expose-gc', '--import', pathToFileURL(preload).href, KUBEPROXY_BIN, '--config', config], {
    cpu: ctx.proxyCpu, cwd: PROJECT_DIR, env: childEnv({}), logFile,
  });
  try {
    let firstOkMs: number;
    try {
      firstOkMs = await firstOk(port, host, t0, () => proc.exited !== undefined);
    } catch (e) {
      throw new Error(`${(e as Error).message}${logTail(proc) ? `: ${logTail(proc)}` : ''}`);
    }
    const firstOkCpuMs = cpuSeconds(processTree(proc.pid)) * 1000;
    // As Prometheus would soon after the start: the series exist from here on (RSS below counts them).
    const firstScrapeMs = await scrape(adminPort);
    await sleep(2000);
    const rssMiB = treeRssKiB(proc.pid) / 1024;
    const gcHeapMiB = (await fullGc(proc.pid, logFile)) / 1024 / 1024;
    await sleep(1000);
    const gcRssMiB = treeRssKiB(proc.pid) / 1024;
    const url = `http://127.0.0.1:${port}/small`;
    await runWrk({ url, host, durationS: o.warmupS, connections: o.connections, cpu: ctx.loadCpu });
    const r = await runWrk({ url, host, durationS: o.durationS, connections: o.connections, cpu: ctx.loadCpu });
    if (r.non2xx > 0 || r.socketErrors > 0) throw new Error(`wrk: ${r.non2xx} non-2xx, ${r.socketErrors} socket errors`);
    return { firstOkMs, firstOkCpuMs, firstScrapeMs, rssMiB, gcRssMiB, gcHeapMiB, rps: r.rps };
  } finally {
    await stopProcess(proc);
  }
}

export async function runScale(ctx: Ctx, o: ScaleOptions): Promise<ScaleRow[]> {
  const sizes: Array<[number, ConfigFormat]> = [[1, 'yaml'], [o.services, 'yaml'], [o.services, 'json']];
  const setups = await Promise.all(sizes.map(async ([n, format]) => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const file = join(ctx.tmpDir, `kubeproxy-scale-${n}.${format}`);
    writeFileSync(file, scaleConfig(n, port, adminPort, ctx.originPorts, format));
    return { n, format, port, adminPort, file, samples: [] as ScaleSample[] };
  }));
  // Interleaved, like the main benchmark: run k of both sizes, then run k+1.
  for (let k = 0; k < o.runs; k++) {
    for (const s of k % 2 === 0 ? setups : [...setups].reverse()) {
      const sample = await one(s.n, ctx, o, s.file, s.port, s.adminPort);
      console.log(`[scale] ${String(s.n).padStart(5)} services (${s.format}): first 200 after ${sample.firstOkMs.toFixed(0)} ms (${sample.firstOkCpuMs.toFixed(0)} ms CPU), first scrape ${sample.firstScrapeMs.toFixed(0)} ms, RSS ${sample.rssMiB.toFixed(1)} MiB idle, ${sample.gcRssMiB.toFixed(1)} MiB after a full GC (heap ${sample.gcHeapMiB.toFixed(1)} MiB), ${Math.round(sample.rps)} req/s`);
      s.samples.push(sample);
    }
  }
  return setups.map((s) => ({
    services: s.n,
    format: s.format,
    instances: 2 * s.n,
    samples: s.samples,
    firstOkMs: median(s.samples.map((x) => x.firstOkMs)),
    firstOkCpuMs: median(s.samples.map((x) => x.firstOkCpuMs)),
    firstScrapeMs: median(s.samples.map((x) => x.firstScrapeMs)),
    rssMiB: median(s.samples.map((x) => x.rssMiB)),
    gcRssMiB: median(s.samples.map((x) => x.gcRssMiB)),
    gcHeapMiB: median(s.samples.map((x) => x.gcHeapMiB)),
    rps: median(s.samples.map((x) => x.rps)),
  }));
}

/** Bytes each instance beyond the first two adds to a figure in MiB (the N-service YAML row against the 1-service row). */
export function bytesPerInstance(rows: readonly ScaleRow[], mib: (r: ScaleRow) => number): number {
  const [small, large] = [rows[0]!, rows[1]!];
  return ((mib(large) - mib(small)) * 1024 * 1024) / (large.instances - small.instances);
}

export function scaleTable(rows: readonly ScaleRow[]): string {
  const body = table(
    ['services × 2 instances', 'first 200 after (CPU used)', 'first /metrics', 'RSS idle after start', 'after a full GC: RSS / heap', 'req/s, one Host'],
    rows.map((r) => [
      `${r.services.toLocaleString('en-US')}, ${r.format === 'json' ? 'JSON' : 'YAML'}`,
      `${r.firstOkMs.toFixed(0)} ms (${r.firstOkCpuMs.toFixed(0)} ms)`,
      `${r.firstScrapeMs.toFixed(0)} ms`,
      `${r.rssMiB.toFixed(1)} MiB`,
      `${r.gcRssMiB.toFixed(1)} / ${r.gcHeapMiB.toFixed(1)} MiB`,
      Math.round(r.rps).toLocaleString('en-US'),
    ]),
  );
  const kib = (mib: (r: ScaleRow) => number) => `${(bytesPerInstance(rows, mib) / 1024).toFixed(1)} KiB`;
  const ratio = rows[1]!.rps / rows[0]!.rps;
  return `${body}\n\nPer never-used instance (YAML rows): ${kib((r) => r.gcRssMiB)} of RSS after a full GC (${kib((r) => r.gcHeapMiB)} of heap; ${kib((r) => r.rssMiB)} of RSS idle after start, garbage included). req/s at ${rows[1]!.services.toLocaleString('en-US')} services / at 1: ${ratio.toFixed(2)}×. Medians of ${rows[0]!.samples.length} run(s), a fresh process each.`;
}
