// Memory checks (`npm run bench -- --memory`), per proxy:
//  - RSS flatness: wrk -c64 on /small for 60 s (10 s with --quick), RSS sampled every second;
//    first (1 s into the load) / last / max and drift = (last - first) / first.
//  - 1 GiB streamed through the proxy, upload (POST /upload) and download (GET /stream),
//    generated on the fly on both ends; target: adds < 32 MiB to the proxy's RSS, measured from
//    just before the 1 GiB transfer, after a 64 MiB transfer of the same kind has warmed it up
//    (its own growth is reported too: the same figure for 64 MiB and 1 GiB is a working set,
//    not growth with body size).
import { Readable } from 'node:stream';
import { request } from 'undici';
import { HOST, NotAvailable, type Contender, type Ctx, type Running } from './contenders.ts';
import { waitForQuiet } from './measure.ts';
import { sampleRss, treeRssKiB } from './procstat.ts';
import { sleep } from './processes.ts';
import { table } from './report.ts';
import { runWrk } from './wrk.ts';

export interface MemoryOptions { soakS: number; streamBytes: number; connections: number; quietWaitS: number }

export interface MemoryResult {
  contender: string;
  missing?: string;
  soak?: { firstMiB: number; lastMiB: number; maxMiB: number; driftPct: number; samplesMiB: number[] };
  upload?: Transfer;
  download?: Transfer;
  /** The 64 MiB transfers before them: the same growth there means none with body size. */
  upload64?: Transfer;
  download64?: Transfer;
  streamPass?: boolean;
}

interface Transfer { addedMiB: number; baselineMiB: number; peakMiB: number; seconds: number }

const MIB = 1024 * 1024;
const LIMIT_MIB = 32;

function generated(bytes: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 'u');
  let left = bytes;
  return Readable.from((function* () {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      yield n === chunk.length ? chunk : chunk.subarray(0, n);
    }
  })());
}

/** Streams `bytes` through the proxy; RSS growth is measured from just before. */
async function transfer(r: Running, kind: 'upload' | 'download', bytes: number): Promise<Transfer> {
  await sleep(500);
  const baseline = treeRssKiB(r.pid);
  const rss = sampleRss(r.pid, 100);
  const t0 = Date.now();
  const signal = AbortSignal.timeout(180_000);
  let got = 0;
  let peakKiB = 0;
  try {
    if (kind === 'upload') {
      const res = await request(`http://127.0.0.1:${r.port}/upload`, {
        method: 'POST', headers: { host: HOST, 'content-length': String(bytes) }, body: generated(bytes), signal,
      });
      got = ((await res.body.json()) as { bytes: number }).bytes;
    } else {
      const res = await request(`http://127.0.0.1:${r.port}/stream?bytes=${bytes}`, { headers: { host: HOST }, signal });
      for await (const c of res.body) got += (c as Buffer).length;
    }
  } finally {
    peakKiB = rss.stop().peakKiB;
  }
  if (got !== bytes) throw new Error(`${kind}: ${got} of ${bytes} bytes arrived`);
  return { addedMiB: (peakKiB - baseline) / 1024, baselineMiB: baseline / 1024, peakMiB: peakKiB / 1024, seconds: (Date.now() - t0) / 1000 };
}

async function withFresh<T>(c: Contender, ctx: Ctx, o: MemoryOptions, fn: (r: Running) => Promise<T>): Promise<T> {
  await waitForQuiet(ctx, o.quietWaitS);
  const r = await c.start(ctx);
  try {
    // A few requests so that lazy initialisation is not counted as growth.
    for (let i = 0; i < 50; i++) {
      const res = await request(`http://127.0.0.1:${r.port}/small`, { headers: { host: HOST }, signal: AbortSignal.timeout(5000) });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`GET /small answered ${res.statusCode}`);
    }
    return await fn(r);
  } finally {
    await r.stop();
  }
}

export async function memoryCheck(c: Contender, ctx: Ctx, o: MemoryOptions): Promise<MemoryResult> {
  const out: MemoryResult = { contender: c.id };
  try {
    await withFresh(c, ctx, o, async (r) => {
      // A 64 MiB transfer first brings the streaming path (socket buffers, young generation)
      // to its steady state, so that the 1 GiB figure shows growth with body size only.
      out.upload64 = await transfer(r, 'upload', 64 * MIB);
      out.upload = await transfer(r, 'upload', o.streamBytes);
      out.download64 = await transfer(r, 'download', 64 * MIB);
      out.download = await transfer(r, 'download', o.streamBytes);
      out.streamPass = out.upload.addedMiB < LIMIT_MIB && out.download.addedMiB < LIMIT_MIB;
    });
    await withFresh(c, ctx, o, async (r) => {
      const wrk = { url: `http://127.0.0.1:${r.port}/small`, connections: o.connections, host: HOST, cpu: ctx.loadCpu };
      await runWrk({ ...wrk, durationS: Math.max(1, Math.min(5, Math.round(o.soakS / 4))) }); // warm-up
      const rss = sampleRss(r.pid, 1000);
      await runWrk({ ...wrk, durationS: o.soakS });
      const mib = rss.stop().samples.slice(1).map((k) => k / 1024);
      const first = mib[0]!;
      const last = mib[mib.length - 1]!;
      out.soak = { firstMiB: first, lastMiB: last, maxMiB: Math.max(...mib), driftPct: ((last - first) / first) * 100, samplesMiB: mib };
    });
  } catch (e) {
    out.missing = e instanceof NotAvailable || c.kind === 'kubeproxy'
      ? `not available (${(e as Error).message})` : `error: ${(e as Error).message}`;
  }
  return out;
}

export function memoryTable(results: MemoryResult[], o: MemoryOptions): string {
  const f = (n: number | undefined) => (n === undefined ? '—' : `${n.toFixed(1)}`);
  return table(
    ['Proxy', `RSS first/last/max over ${o.soakS} s (MiB)`, 'Drift', `${o.streamBytes / MIB} MiB upload: +RSS`, 'download: +RSS', `< ${LIMIT_MIB} MiB`, '64 MiB up / down: +RSS', 'Notes'],
    results.map((r) => [
      r.contender,
      r.soak ? `${f(r.soak.firstMiB)} / ${f(r.soak.lastMiB)} / ${f(r.soak.maxMiB)}` : '—',
      r.soak ? `${r.soak.driftPct >= 0 ? '+' : ''}${r.soak.driftPct.toFixed(1)} %` : '—',
      r.upload ? `${f(r.upload.addedMiB)} MiB (${r.upload.seconds.toFixed(1)} s)` : '—',
      r.download ? `${f(r.download.addedMiB)} MiB (${r.download.seconds.toFixed(1)} s)` : '—',
      r.streamPass === undefined ? 'n/a' : r.streamPass ? 'PASS' : 'FAIL',
      r.upload64 && r.download64 ? `${f(r.upload64.addedMiB)} / ${f(r.download64.addedMiB)} MiB` : '—',
      r.missing ?? '',
    ]),
  );
}
