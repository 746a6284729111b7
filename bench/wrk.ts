// Runs wrk (pinned with taskset) and parses its --latency output.
import { spawn } from 'node:child_process';
import { killOnExit } from './processes.ts';

export interface WrkOptions {
  url: string;
  durationS: number;
  connections: number;
  host: string;
  /** CPU list for taskset, or null for unpinned. */
  cpu: string | null;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  socketErrors: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function latencyMs(out: string, pct: string): number {
  const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(out);
  if (!m) throw new Error(`wrk output has no ${pct}% latency line`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function parseWrk(out: string): WrkResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h),/.exec(out);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (!total || !rps) throw new Error(`cannot parse wrk output: ${out.slice(0, 300)}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    seconds: (Number(total[2]) * UNIT_MS[total[3]!]!) / 1000,
    rps: Number(rps[1]),
    p50Ms: latencyMs(out, '50'),
    p99Ms: latencyMs(out, '99'),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: sock ? sock.slice(1).reduce((s, n) => s + Number(n), 0) : 0,
  };
}

/** One wrk run, killed if it overruns its duration by 15 s. */
export function runWrk(o: WrkOptions): Promise<WrkResult> {
  const args = ['-t1', `-c${o.connections}`, `-d${o.durationS}s`, '--latency', '--timeout', '5s',
    '-H', `Host: ${o.host}`, o.url];
  const [file, argv] = o.cpu != null ? ['taskset', ['-c', o.cpu, 'wrk', ...args]] : ['wrk', args];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    // Ctrl-C of the harness stops a run in progress too.
    killOnExit(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    child.stderr.on('data', (d: Buffer) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), (o.durationS + 15) * 1000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`wrk failed (${signal ?? code}): ${(err || out).trim().slice(0, 300)}`));
      try { resolve(parseWrk(out)); } catch (e) { reject(e as Error); }
    });
  });
}
