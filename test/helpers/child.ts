/**
 * A real `kubeproxy --config FILE` child process (`node --import tsx src/cli.ts`, or under Bun
 * with KUBEPROXY_TEST_RUNTIME=bun), for tests of signals and file watching. The config is written to a temp dir as JSON (valid YAML); listen and
 * admin are on 127.0.0.1 with OS-assigned ports, read back from the "kubeproxy started" log line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { bunCommand } from '../../src/runtime/select.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string };

export interface ChildProxy {
  child: ChildProcess;
  port: number;
  adminPort: number;
  configPath: string;
  /** Every JSON log line so far. */
  logs: LogLine[];
  /** Resolves with the first line at index >= `from` matching `pred`. */
  waitForLog(pred: (line: LogLine) => boolean, from?: number, timeoutMs?: number): Promise<LogLine>;
  /** Replaces the config file atomically (write + rename, as editors and kubectl do). */
  writeConfig(proxy: ProxyBlock | string): Promise<void>;
  /** Resolves when the process exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills the process if still running and removes the temp dir. */
  cleanup(): Promise<void>;
}

export type ProxyBlock = { services: Array<Record<string, unknown>>; [key: string]: unknown };

export function configText(proxy: ProxyBlock): string {
  const services = proxy.services.map((s) => ({
    ...s,
    hosts: (s.hosts as Array<Record<string, unknown>>).map((h) => ({ address: '127.0.0.1', ...h })),
  }));
  return `${JSON.stringify({ proxy: { listen: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 }, ...proxy, services } }, null, 2)}\n`;
}

/** The runtime the end-to-end tests run the proxy on (`node scripts/run-tests.mjs --runtime bun` sets it). */
export const TEST_RUNTIME = process.env.KUBEPROXY_TEST_RUNTIME === 'bun' ? 'bun' : 'node';

/** The command line of `kubeproxy <args>` from the sources, on the runtime under test. */
export function cliCommand(args: readonly string[]): { file: string; args: string[] } {
  return TEST_RUNTIME === 'bun' ? bunCommand(args) : nodeCommand(args);
}

function nodeCommand(args: readonly string[]): { file: string; args: string[] } {
  return { file: process.execPath, args: ['--import', 'tsx', 'src/cli.ts', ...args] };
}

/** `runtime`: this one instead of the leg's; `env`: more environment for the proxy. */
export interface SpawnOptions {
  runtime?: 'node' | 'bun';
  env?: Record<string, string>;
}

export async function spawnProxy(proxy: ProxyBlock, options: SpawnOptions = {}): Promise<ChildProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'kubeproxy-child-'));
  const configPath = join(dir, 'config.yaml');
  await writeFile(configPath, configText(proxy));
  const args = ['--config', configPath];
  const command = options.runtime === 'bun' ? bunCommand(args) : options.runtime === 'node' ? nodeCommand(args) : cliCommand(args);
  const child = spawn(command.file, command.args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KUBEPROXY_LOG_LEVEL: 'info', ...options.env },
  });
  const logs: LogLine[] = [];
  let listeners: Array<() => void> = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push({ msg: line });
    }
    const l = listeners;
    listeners = [];
    for (const fn of l) fn();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const fn of listeners) fn();
    }),
  );
  const waitForLog = (pred: (line: LogLine) => boolean, from = 0, timeoutMs = 20_000): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`log line not seen within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
      const check = () => {
        for (let i = from; i < logs.length; i++) {
          if (pred(logs[i]!)) {
            clearTimeout(timer);
            return resolve(logs[i]!);
          }
        }
        if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer);
          return reject(new Error(`proxy exited (${child.exitCode ?? child.signalCode}); stderr: ${stderr.slice(-2000)}`));
        }
        listeners.push(check);
      };
      check();
    });
  const started = await waitForLog((l) => l.msg === 'kubeproxy started');
  const listen = started.listen as { port: number };
  const admin = started.admin as { port: number };
  return {
    child,
    port: listen.port,
    adminPort: admin.port,
    configPath,
    logs,
    waitForLog,
    exited,
    async writeConfig(next) {
      const tmp = join(dir, `.config.${process.hrtime.bigint()}.tmp`);
      await writeFile(tmp, typeof next === 'string' ? next : configText(next));
      await rename(tmp, configPath);
    },
    async cleanup() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
