/** Paths and small runners shared by the deploy/ checks (chart, example manifests, Dockerfile). */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHART = join(ROOT, 'deploy/helm/kubeproxy');

export function readText(relative: string): string {
  return readFileSync(join(ROOT, relative), 'utf8');
}

export function readYaml<T = Record<string, unknown>>(relative: string): T {
  return parseYaml(readText(relative)) as T;
}

/** Every document of a multi-document YAML file. */
export function readYamlDocuments(relative: string): Array<Record<string, unknown>> {
  return parseAllDocuments(readText(relative))
    .map((d) => d.toJS() as Record<string, unknown> | null)
    .filter((d): d is Record<string, unknown> => d !== null);
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (bounded by `timeoutMs`), collecting its output. */
export function runCommand(cmd: string, args: readonly string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, KUBEPROXY_LOG_LEVEL: 'silent', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The real CLI from source: `node --import tsx src/cli.ts ARGS`. */
export function runCli(args: readonly string[]): Promise<Run> {
  return runCommand(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args]);
}

/** Writes `text` to a file in a fresh temp dir; `cleanup()` removes the dir. */
export function tempFile(name: string, text: string): { path: string; dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-deploy-'));
  const path = join(dir, name);
  writeFileSync(path, text);
  return { path, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
