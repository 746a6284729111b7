// `npm run bench -- --only h2` (and part of the full run): HTTP/2 over TLS, KubeProxy's TLS port
// (ALPN h2) against NGINX (`listen ... ssl` + HTTP/2), both with the same self-signed P-256
// certificate made here with openssl, both pinned to CPU 0, the origin and h2load on CPU 1, the
// origin reached over HTTP/1.1 keep-alive by both. Interleaved rounds with a fresh process per
// run, as measure.ts does for wrk. Three workloads:
//  - 13 B and 64 KiB GETs: `h2load -c16 -m10 -t1 -n <N>` (16 connections, 10 streams each), N the
//    number of requests the warm-up's rate makes last about <duration> (h2load's timed mode, -D,
//    never ends when a client finishes connecting after the time is up, which KubeProxy's slower
//    handshakes on a loaded machine made happen);
//  - new connections: batches of `h2load -c100 -n100 -m1` (100 clients at once, each one TLS
//    handshake and one 13 B GET on its own connection) repeated for the duration; connections per
//    second = connections done / the time h2load reports for them (its own start-up excluded).
// CPU per request (or per connection) is the server's utime + stime from /proc over the run: it
// moves far less with a busy host than req/s does.
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { V8_FLAGS } from '../src/v8-flags.ts';
import { PROJECT_DIR } from './build.ts';
import { childEnv, HOST, NotAvailable, type Ctx } from './contenders.ts';
import { kubeproxyConfig, KUBEPROXY_BIN } from './kubeproxy.ts';
import { median, waitForQuiet } from './measure.ts';
import { nginxConf, startNginx } from './nginx.ts';
import { cpuSeconds, processTree } from './procstat.ts';
import { freePort, killOnExit, startProcess, stopProcess, waitForPort } from './processes.ts';
import { table } from './report.ts';
import { versionOf } from './tools.ts';

export type H2WorkloadId = 'h2-small' | 'h2-64k' | 'h2-handshakes';

export const H2_WORKLOADS: Record<H2WorkloadId, { path: string; bytes: number; title: string }> = {
  'h2-small': { path: '/small', bytes: 13, title: 'h2: 13-byte GET, not cached' },
  'h2-64k': { path: '/64k', bytes: 64 * 1024, title: 'h2: 64 KiB GET, not cached' },
  'h2-handshakes': { path: '/small', bytes: 13, title: 'h2: new TLS connections (one 13-byte GET each)' },
};

/** Streams and connections of the request workloads; clients per batch of the handshake one. */
const CONNECTIONS = 16;
const STREAMS = 10;
const BATCH = 100;
/** Requests of the warm-up, whose rate sizes the measured run. */
const WARMUP_REQUESTS = CONNECTIONS * STREAMS * 20;

export interface H2Options {
  durationS: number;
  runs: number;
  /** Warm-up: runs of WARMUP_REQUESTS until this long has passed (at least one); the last one's rate sizes the measured run. */
  warmupS: number;
  quietWaitS: number;
  /** Contender ids to run (both when absent). */
  pick: (id: string) => boolean;
}

interface H2Tls {
  certFile: string;
  keyFile: string;
}

interface H2Contender {
  id: 'kubeproxy' | 'nginx' | 'bare-h2';
  start(ctx: Ctx, tls: H2Tls): Promise<{ pid: number; port: number; stop(): Promise<void> }>;
}

export interface H2Sample {
  round: number;
  /** Requests (or connections) per second, as h2load measured them. */
  rate: number;
  count: number;
  /** Server CPU µs per request (or connection). */
  cpuUs: number;
  /** Server CPU time ÷ wall time of the run (1: CPU 0 saturated). */
  cpuUse: number;
  /** Mean request time (connect time for the handshake workload), ms. */
  meanMs: number;
  failed: number;
  tls: string;
}

export interface H2Row {
  contender: string;
  workload: H2WorkloadId;
  samples: H2Sample[];
  rate?: number;
  cpuUs?: number;
  cpuUse?: number;
  meanMs?: number;
  missing?: string;
  notes: string[];
}

/** A self-signed P-256 certificate for HOST in `dir` (no key is ever committed). */
function makeCertificate(dir: string): H2Tls {
  const tls = { certFile: join(dir, 'h2-bench.crt'), keyFile: join(dir, 'h2-bench.key') };
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST}`, '-keyout', tls.keyFile, '-out', tls.certFile], { stdio: 'ignore' });
  return tls;
}

/** The main benchmark's NGINX config with its server on TLS and HTTP/2 (`http2 on` from 1.25.1, the listen flag before). */
export function nginxH2Conf(dir: string, port: number, originPort: number, tls: H2Tls, nginxVersion: string): string {
  const plain = `listen 127.0.0.1:${port};`;
  const conf = nginxConf(dir, port, originPort);
  if (!conf.includes(plain)) throw new Error('bench/nginx.ts no longer has the listen line bench/h2.ts rewrites');
  const [major = 0, minor = 0, patch = 0] = (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(nginxVersion)?.slice(1) ?? []).map(Number);
  const directive = major > 1 || minor > 25 || (minor === 25 && patch >= 1);
  const listen = directive ? `listen 127.0.0.1:${port} ssl; http2 on;` : `listen 127.0.0.1:${port} ssl http2;`;
  // TLS 1.3 as KubeProxy offers it (Debian's NGINX 1.22 otherwise left h2load on TLS 1.2).
  return conf.replace(plain, `${listen}\n    ssl_certificate ${tls.certFile};\n    ssl_certificate_key ${tls.keyFile};\n    ssl_protocols TLSv1.2 TLSv1.3;`);
}

const kubeproxyH2: H2Contender = {
  id: 'kubeproxy',
  async start(ctx, tls) {
    const [port, tlsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    // The main benchmark's default config (metrics, access log, cache on), plus the TLS port.
    const config = parse(kubeproxyConfig({ workers: 1, metrics: true, accessLog: true }, port, adminPort, ctx.originPorts)) as { proxy: Record<string, unknown> };
    config.proxy.tls = { listen: { address: '127.0.0.1', port: tlsPort }, certificates: [{ cert: tls.certFile, key: tls.keyFile }] };
    const file = join(ctx.tmpDir, 'kubeproxy-h2.yaml');
    writeFileSync(file, stringify(config));
    const proc = startProcess(process.execPath, [...V8_FLAGS, KUBEPROXY_BIN, '--config', file], {
      cpu: ctx.proxyCpu, cwd: PROJECT_DIR, env: childEnv({}), logFile: join(ctx.tmpDir, `kubeproxy-h2-${Date.now()}.log`),
    });
    try {
      await waitForPort(proc, tlsPort, 20_000);
    } catch (e) {
      await stopProcess(proc);
      throw new NotAvailable((e as Error).message);
    }
    return { pid: proc.pid, port: tlsPort, stop: () => stopProcess(proc) };
  },
};

const nginxH2: H2Contender = {
  id: 'nginx',
  start: (ctx, tls) => startNginx(ctx, (dir, port, bin) => nginxH2Conf(dir, port, ctx.originPorts[0], tls, versionOf(bin, ['-v']))),
};

/** The Node ceiling: node:http2 + an undici Pool (peers/bare-undici.ts given CERT and KEY), with KubeProxy's V8 flags. */
const bareH2: H2Contender = {
  id: 'bare-h2',
  async start(ctx, tls) {
    const port = await freePort();
    const proc = startProcess(process.execPath, [...V8_FLAGS, ctx.scripts['peers/bare-undici.ts']], {
      cpu: ctx.proxyCpu,
      env: childEnv({ PORT: String(port), UPSTREAM: `http://127.0.0.1:${ctx.originPorts[0]}`, CERT: tls.certFile, KEY: tls.keyFile }),
      logFile: join(ctx.tmpDir, 'bare-h2.log'),
    });
    try {
      await waitForPort(proc, port, 10_000);
    } catch (e) {
      await stopProcess(proc);
      throw new NotAvailable((e as Error).message);
    }
    return { pid: proc.pid, port, stop: () => stopProcess(proc) };
  },
};

/** Order within a round: KubeProxy between the two it is divided by. */
export const H2_CONTENDERS: readonly H2Contender[] = [nginxH2, kubeproxyH2, bareH2];

export interface H2loadResult {
  seconds: number;
  rate: number;
  done: number;
  succeeded: number;
  failed: number;
  status2xx: number;
  dataBytes: number;
  meanRequestMs: number;
  meanConnectMs: number;
  /** `TLSv1.3 TLS_AES_256_GCM_SHA384 h2`, as h2load reports it. */
  tls: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function meanMs(out: string, what: string): number {
  // `time for request:  51us  1.08ms  489us  148us  83.00%`: min, max, mean, sd.
  const m = new RegExp(`^${what}:\\s+\\S+\\s+\\S+\\s+([\\d.]+)(us|ms|s|m)\\s`, 'm').exec(out);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
}

export function parseH2load(out: string): H2loadResult {
  const fin = /^finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req\/s/m.exec(out);
  const req = /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/m.exec(out);
  const codes = /^status codes: (\d+) 2xx/m.exec(out);
  const data = /\((\d+)\) data$/m.exec(out);
  if (!fin || !req || !codes) throw new Error(`cannot parse h2load output: ${out.slice(-400)}`);
  return {
    seconds: (Number(fin[1]) * UNIT_MS[fin[2]!]!) / 1000,
    rate: Number(fin[3]),
    done: Number(req[3]),
    succeeded: Number(req[4]),
    failed: Number(req[5]),
    status2xx: Number(codes[1]),
    dataBytes: Number(data?.[1] ?? 0),
    meanRequestMs: meanMs(out, 'time for request'),
    meanConnectMs: meanMs(out, 'time for connect'),
    tls: ['TLS Protocol', 'Cipher', 'Application protocol'].map((k) => new RegExp(`^${k}: (.*)$`, 'm').exec(out)?.[1] ?? '?').join(' '),
  };
}

/**
 * One h2load run on the load CPU, killed if it overruns by 20 s. A connection silent for 10 s is
 * closed by h2load itself (-N), so a stalled stream counts as failed instead of holding the run.
 * One TLS 1.3 suite for both servers (h2load's first choice; NGINX takes the client's order,
 * Node its own, which starts with AES-256).
 */
function h2load(bin: string, cpu: string | null, args: string[], limitS: number): Promise<H2loadResult> {
  const argv = [...args, '-N10s', '--tls13-ciphers=TLS_AES_128_GCM_SHA256', '-H', `:authority: ${HOST}`];
  const [file, list] = cpu != null ? ['taskset', ['-c', cpu, bin, ...argv]] : [bin, argv];
  return new Promise((resolve, reject) => {
    const child = spawn(file, list, { stdio: ['ignore', 'pipe', 'pipe'] });
    killOnExit(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    child.stderr.on('data', (d: Buffer) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), (limitS + 20) * 1000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`h2load failed (${signal ?? code}): ${out.trim().slice(-300)}`));
      try { resolve(parseH2load(out)); } catch (e) { reject(e as Error); }
    });
  });
}

/** Four requests over h2 must answer 2xx with the workload's body length (bounded: 10 s). */
async function sanityCheck(bin: string, cpu: string | null, url: string, bytes: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await h2load(bin, cpu, ['-n4', '-c1', '-m1', '-t1', url], 5);
      if (r.status2xx === 4 && r.dataBytes === 4 * bytes) return;
      last = `4 GETs: ${r.status2xx} 2xx, ${r.dataBytes} body bytes (want 4, ${4 * bytes})`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`sanity check: ${last}`);
}

/** The handshake workload: batches of BATCH new connections for `durationS`; sums over the batches. */
async function handshakeRun(bin: string, cpu: string | null, url: string, durationS: number): Promise<{ count: number; seconds: number; failed: number; connectMs: number; tls: string }> {
  const end = Date.now() + durationS * 1000;
  const total = { count: 0, seconds: 0, failed: 0, connectMs: 0, tls: '' };
  const connect: number[] = [];
  while (Date.now() < end) {
    const r = await h2load(bin, cpu, [`-c${BATCH}`, `-n${BATCH}`, '-m1', '-t1', url], 30);
    total.count += r.succeeded;
    total.failed += r.failed;
    total.seconds += r.seconds;
    total.tls = r.tls;
    connect.push(r.meanConnectMs);
  }
  total.connectMs = median(connect);
  return total;
}

/** One measured run; `estimate`: the warm-up's req/s, which sizes a request run to about `o.durationS`. */
async function sample(bin: string, ctx: Ctx, w: H2WorkloadId, url: string, pid: number, o: H2Options, round: number, estimate: number): Promise<H2Sample> {
  const [cpu0, t0] = [cpuSeconds(processTree(pid)), performance.now()];
  const use = (cpu: number): number => cpu / ((performance.now() - t0) / 1000);
  if (w === 'h2-handshakes') {
    const r = await handshakeRun(bin, ctx.loadCpu, url, o.durationS);
    const cpu = cpuSeconds(processTree(pid)) - cpu0;
    return { round, rate: r.count / r.seconds, count: r.count, cpuUs: (cpu * 1e6) / Math.max(1, r.count), cpuUse: use(cpu), meanMs: r.connectMs, failed: r.failed, tls: r.tls };
  }
  const n = Math.min(5_000_000, Math.max(CONNECTIONS * STREAMS * 10, Math.round(estimate * o.durationS)));
  const r = await h2load(bin, ctx.loadCpu, [`-c${CONNECTIONS}`, `-m${STREAMS}`, '-t1', `-n${n}`, url], o.durationS * 6 + 30);
  const cpu = cpuSeconds(processTree(pid)) - cpu0;
  return { round, rate: r.rate, count: r.succeeded, cpuUs: (cpu * 1e6) / Math.max(1, r.succeeded), cpuUse: use(cpu), meanMs: r.meanRequestMs, failed: r.failed + (r.done - r.status2xx), tls: r.tls };
}

/** Every H2 workload, each in `runs` interleaved rounds of a fresh process per contender and run. */
export async function runH2(ctx: Ctx, h2loadBin: string, o: H2Options, log: (line: string) => void = console.log): Promise<H2Row[]> {
  const tls = makeCertificate(ctx.tmpDir);
  const contenders = H2_CONTENDERS.filter((c) => o.pick(c.id));
  const rows: H2Row[] = [];
  for (const w of Object.keys(H2_WORKLOADS) as H2WorkloadId[]) {
    const { path, bytes } = H2_WORKLOADS[w];
    const own = contenders.map((c) => ({ c, row: { contender: c.id, workload: w, samples: [], notes: [] } as H2Row }));
    for (let round = 1; round <= o.runs; round++) {
      await waitForQuiet(ctx, o.quietWaitS);
      for (const { c, row } of round % 2 === 1 ? own : [...own].reverse()) {
        if (row.missing !== undefined) continue;
        let running: Awaited<ReturnType<H2Contender['start']>> | undefined;
        try {
          running = await c.start(ctx, tls);
          const url = `https://127.0.0.1:${running.port}${path}`;
          await sanityCheck(h2loadBin, ctx.loadCpu, url, bytes);
          const warmUntil = Date.now() + o.warmupS * 1000;
          let warm = await h2load(h2loadBin, ctx.loadCpu, [`-c${CONNECTIONS}`, `-m${STREAMS}`, '-t1', `-n${WARMUP_REQUESTS}`, url], 120);
          while (Date.now() < warmUntil) warm = await h2load(h2loadBin, ctx.loadCpu, [`-c${CONNECTIONS}`, `-m${STREAMS}`, '-t1', `-n${WARMUP_REQUESTS}`, url], 120);
          const s = await sample(h2loadBin, ctx, w, url, running.pid, o, round, warm.rate);
          row.samples.push(s);
          log(`[round ${round}/${o.runs}] ${w.padEnd(13)} ${c.id.padEnd(10)} ${Math.round(s.rate).toLocaleString('en-US').padStart(7)} /s, ${s.cpuUs.toFixed(0)} µs CPU each, CPU 0 ${Math.round(s.cpuUse * 100)} % used`);
        } catch (e) {
          row.missing = `${c.id}: not available (${(e as Error).message})`;
          log(`[round ${round}/${o.runs}] ${w.padEnd(13)} ${c.id.padEnd(10)} ${row.missing}`);
        } finally {
          await running?.stop();
        }
      }
    }
    for (const { row } of own) {
      if (row.missing !== undefined || row.samples.length === 0) continue;
      row.rate = median(row.samples.map((s) => s.rate));
      row.cpuUs = median(row.samples.map((s) => s.cpuUs));
      row.cpuUse = median(row.samples.map((s) => s.cpuUse));
      row.meanMs = median(row.samples.map((s) => s.meanMs));
      const failed = row.samples.reduce((n, s) => n + s.failed, 0);
      if (failed > 0) row.notes.push(`${failed} failed requests`);
      row.notes.push(...new Set(row.samples.map((s) => s.tls)));
    }
    rows.push(...own.map((x) => x.row));
  }
  return rows;
}

/** KubeProxy ÷ `other` on one workload: the median of the per-round ratios (see report.ts pairedRatio). */
export function h2Ratio(rows: readonly H2Row[], w: H2WorkloadId, key: 'rate' | 'cpuUs', other: H2Contender['id']): number | undefined {
  const kp = rows.find((r) => r.contender === 'kubeproxy' && r.workload === w);
  const ng = rows.find((r) => r.contender === other && r.workload === w);
  if (!kp?.samples.length || !ng?.samples.length || kp.missing || ng.missing) return undefined;
  const theirs = new Map(ng.samples.map((s) => [s.round, s[key]]));
  const ratios = kp.samples.flatMap((s) => (theirs.has(s.round) ? [s[key] / theirs.get(s.round)!] : []));
  return ratios.length > 0 ? median(ratios) : undefined;
}

export function h2Markdown(rows: readonly H2Row[]): string {
  const int = (n: number) => Math.round(n).toLocaleString('en-US');
  const results = table(['workload', 'contender', 'req/s (conn/s)', 'CPU µs each', 'CPU use', 'mean time', 'notes'], rows.map((r) => [
    H2_WORKLOADS[r.workload].title, r.contender,
    r.rate === undefined ? (r.missing ?? 'n/a') : int(r.rate),
    r.cpuUs === undefined ? '' : int(r.cpuUs),
    r.cpuUse === undefined ? '' : `${Math.round(r.cpuUse * 100)} %`,
    r.meanMs === undefined ? '' : `${r.meanMs.toFixed(2)} ms${r.workload === 'h2-handshakes' ? ' (connect)' : ''}`,
    r.notes.join('; '),
  ]));
  const x = (n: number | undefined) => (n === undefined ? 'n/a' : `${n.toFixed(2)}×`);
  const ratios = table(['workload', 'KubeProxy ÷ NGINX, rate', 'CPU each', 'KubeProxy ÷ bare-h2, rate', 'CPU each'], (Object.keys(H2_WORKLOADS) as H2WorkloadId[]).map((w) => [
    H2_WORKLOADS[w].title,
    ...(['nginx', 'bare-h2'] as const).flatMap((other) => [x(h2Ratio(rows, w, 'rate', other)), x(h2Ratio(rows, w, 'cpuUs', other))]),
  ]));
  return [results, '', ratios].join('\n');
}

/** The setup line of the h2 tables. */
export const H2_SETUP = `server pinned to CPU 0, h2load -t1 and the origin on CPU 1; TLS with a self-signed P-256 certificate; `
  + `requests: h2load -c${CONNECTIONS} -m${STREAMS} -t1 -n <what the warm-up's rate (${WARMUP_REQUESTS} requests) serves in <duration>>; new connections: batches of h2load -c${BATCH} -n${BATCH} -m1 `
  + `(each client one handshake and one 13-byte GET) for <duration>; KubeProxy's default config (metrics, access log, cache on) `
  + `with proxy.tls; NGINX as in the main benchmark (access log on, keep-alive upstream) with ssl and HTTP/2 on its server; `
  + `bare-h2: node:http2's secure server + an undici Pool (the Node ceiling)`;
