/**
 * `--runtime bun` (or `KUBEPROXY_RUNTIME=bun`): the same CLI started again under Bun, with the
 * real undici put in place of Bun's built-in one first (bun-undici.ts). Node is the default and
 * the reference; a process already on Bun runs as it is.
 *
 * The Node process stays as the Bun process's parent (Node cannot exec): it passes on SIGTERM,
 * SIGINT and SIGHUP and exits with Bun's exit code. Where the extra process matters (the Bun
 * image, the benchmark), Bun is started directly: `bun --preload ./dist/runtime/bun-undici.js
 * bin/kubeproxy --config FILE`, which is what this module runs.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bunBinary } from './bun-binary.ts';

export const RUNTIMES = ['node', 'bun'] as const;
export type RuntimeName = (typeof RUNTIMES)[number];
export const RUNTIME_ENV = 'KUBEPROXY_RUNTIME';
/** Set by runOnBun on the Bun process: the pid of its Node parent (see followParent). */
const PARENT_ENV = 'KUBEPROXY_RUNTIME_PARENT';

/** The runtime this process is. */
export const currentRuntime: RuntimeName = process.versions.bun === undefined ? 'node' : 'bun';

/**
 * The runtime asked for (the flag first, then the environment), undefined when neither says,
 * or an error message.
 */
export function requestedRuntime(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): RuntimeName | undefined | { error: string } {
  const [value, source] = flag !== undefined ? [flag, '--runtime'] : [env[RUNTIME_ENV], RUNTIME_ENV];
  if (value === undefined || value === '') return undefined;
  return (RUNTIMES as readonly string[]).includes(value) ? (value as RuntimeName) : { error: `${source}: "${value}" is not a runtime (use ${RUNTIMES.join(' or ')})` };
}

/**
 * `env[name]` as one of `choices` (`fallback` when unset or empty); a bad value is an error naming
 * the variable, the value, what it should be (`what`) and the choices.
 */
export function envChoice<T extends string>(env: NodeJS.ProcessEnv, name: string, choices: readonly T[], fallback: T, what: string): T {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new Error(`${name}: "${value}" is not ${what} (use ${choices.join(' or ')})`);
}

const ext = extname(fileURLToPath(import.meta.url));
/** The CLI module (cli.ts from src, cli.js from dist) and the module Bun loads before it. */
const CLI_ENTRY = fileURLToPath(new URL(`../cli${ext}`, import.meta.url));
export const BUN_PRELOAD = fileURLToPath(new URL(`./bun-undici${ext}`, import.meta.url));

/** Bun's command line for the CLI with `args` (the runtime flag already taken out). */
export function bunCommand(args: readonly string[]): { file: string; args: string[] } {
  return { file: bunBinary(), args: ['--preload', BUN_PRELOAD, CLI_ENTRY, ...args] };
}

const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** Runs the CLI under Bun with `args`; resolves with its exit code (128 + signal number when killed). */
export function runOnBun(args: readonly string[]): Promise<number> {
  const { file, args: argv } = bunCommand(args);
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: 'inherit', env: { ...process.env, [RUNTIME_ENV]: 'bun', [PARENT_ENV]: String(process.pid) } });
    const forward = (signal: NodeJS.Signals) => () => {
      child.kill(signal);
    };
    const handlers = FORWARDED.map((s) => [s, forward(s)] as const);
    for (const [s, fn] of handlers) process.on(s, fn);
    child.once('error', (err) => {
      for (const [s, fn] of handlers) process.off(s, fn);
      reject(new Error(`cannot run ${file}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      for (const [s, fn] of handlers) process.off(s, fn);
      resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
    });
  });
}

/**
 * In the Bun process runOnBun started: drains (SIGTERM to itself) once its Node parent is gone,
 * e.g. killed with SIGKILL, which cannot be passed on; without this the proxy would keep its
 * ports with nobody left to stop it. The parent is polled (once a second, unref'd timer).
 */
export function followParent(env: NodeJS.ProcessEnv = process.env): void {
  const parent = Number(env[PARENT_ENV]);
  if (!Number.isInteger(parent) || parent !== process.ppid) return;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM');
  }, 1000);
  timer.unref();
}
