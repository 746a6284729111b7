// Starts child processes (optionally pinned with taskset), waits for their port,
// and stops every one of them (with its descendants) on stop, exit, error or SIGINT.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { processTree } from './procstat.ts';

const live = new Set<ChildProcess>();

/** A temporary directory for one harness run (configs, logs), removed when the harness exits. */
export function runTmpDir(): string {
  const dir = mkdtempSync(join(os.tmpdir(), 'kubeproxy-bench-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface StartOptions {
  /** CPU list for `taskset -c` (e.g. "0"); null runs unpinned. */
  cpu?: string | null;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr go to this file (never to a pipe the harness must drain). */
  logFile?: string;
  /** Command prefix (e.g. valgrind and its options): the process started is `wrap[0]`. */
  wrap?: readonly string[];
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  logFile: string | undefined;
  /** Set once the process has exited. */
  exited: { code: number | null; signal: string | null; error?: Error } | undefined;
}

export function startProcess(cmd: string, args: string[], o: StartOptions = {}): Proc {
  const full = [...(o.wrap ?? []), cmd, ...args];
  const [file, argv] = o.cpu != null ? ['taskset', ['-c', o.cpu, ...full]] : [full[0]!, full.slice(1)];
  const fd = o.logFile ? openSync(o.logFile, 'a') : 'ignore';
  const child = spawn(file, argv, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', fd, fd] });
  if (typeof fd === 'number') closeSync(fd);
  const proc: Proc = { child, pid: child.pid ?? -1, logFile: o.logFile, exited: undefined };
  live.add(child);
  child.on('error', (error) => {
    proc.exited = { code: null, signal: null, error };
    live.delete(child);
  });
  child.on('exit', (code, signal) => {
    proc.exited ??= { code, signal };
    live.delete(child);
  });
  return proc;
}

/** Last non-empty lines of a process's log, for "not available (reason)" messages. */
export function logTail(proc: Proc, lines = 3): string {
  if (!proc.logFile || !existsSync(proc.logFile)) return '';
  const text = readFileSync(proc.logFile, 'utf8').trim().split('\n').filter(Boolean);
  return text.slice(-lines).join(' | ').slice(0, 300);
}

export function exitReason(proc: Proc): string {
  const e = proc.exited;
  if (!e) return 'still running';
  if (e.error) return e.error.message;
  const tail = logTail(proc);
  return `exited with ${e.signal ?? `code ${e.code}`}${tail ? `: ${tail}` : ''}`;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(500);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  });
}

/** Resolves once 127.0.0.1:port accepts connections; throws if the process exits or time runs out. */
export async function waitForPort(proc: Proc, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(exitReason(proc));
    if (await canConnect(port)) return;
    await sleep(100);
  }
  throw new Error(`did not listen on 127.0.0.1:${port} within ${timeoutMs / 1000}s${logTail(proc) ? `: ${logTail(proc)}` : ''}`);
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function signalTree(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try { process.kill(pid, signal); } catch { /* already gone */ }
  }
}

/** SIGTERM to the process and its descendants, SIGKILL to what is left after graceMs. */
export async function stopProcess(proc: Proc, graceMs = 3000): Promise<void> {
  if (proc.exited || proc.pid <= 0) return;
  const tree = processTree(proc.pid);
  signalTree(tree, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (!proc.exited && Date.now() < deadline) await sleep(50);
  const left = tree.filter((pid) => existsSync(`/proc/${pid}`));
  if (left.length > 0) signalTree(left, 'SIGKILL');
  const hard = Date.now() + 2000;
  while (!proc.exited && Date.now() < hard) await sleep(50);
}

/** Kills `child` too when the harness is stopped (a child not started by startProcess, e.g. wrk). */
export function killOnExit(child: ChildProcess): void {
  live.add(child);
  const forget = () => live.delete(child);
  child.once('exit', forget);
  child.once('error', forget);
}

function killAllNow(): void {
  for (const child of live) if (child.pid) signalTree(processTree(child.pid), 'SIGKILL');
}

let installed = false;
/** Everything started here is stopped on normal exit, on an uncaught error and on SIGINT/SIGTERM. */
export function installCleanup(onSignal?: () => void): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      onSignal?.();
      console.error(`\n${sig}: stopping ${live.size} child process(es)`);
      killAllNow();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    console.error(err);
    killAllNow();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    console.error(err);
    killAllNow();
    process.exit(1);
  });
}
