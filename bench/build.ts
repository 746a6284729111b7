// Transpiles the origin and the peers to plain .mjs under bench/results/.build/ so that
// they run on bare `node`: the tsx loader would add ~45 MiB RSS and a loader thread to
// every contender, which KubeProxy (running built JS) does not pay.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import ts from 'typescript';

export const BENCH_DIR = import.meta.dirname;
export const PROJECT_DIR = join(BENCH_DIR, '..');
export const RESULTS_DIR = join(BENCH_DIR, 'results');

export const SCRIPTS = ['origin.ts', 'peers/bare-undici.ts', 'peers/memory-server.ts',
  'peers/node-http-proxy.ts', 'peers/fastify-http-proxy.ts'] as const;

/** Returns the path of the built .mjs for each source in SCRIPTS. */
export function buildScripts(): Record<(typeof SCRIPTS)[number], string> {
  const outDir = join(RESULTS_DIR, '.build');
  mkdirSync(outDir, { recursive: true });
  const out = {} as Record<(typeof SCRIPTS)[number], string>;
  for (const src of SCRIPTS) {
    const { outputText } = ts.transpileModule(readFileSync(join(BENCH_DIR, src), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      fileName: src,
    });
    const file = join(outDir, basename(src, '.ts') + '.mjs');
    writeFileSync(file, outputText);
    out[src] = file;
  }
  return out;
}

/** Writes `data` as bench/results/<name>-<stamp>.json and <name>-latest.json; returns the first. */
export function saveResults(name: string, stamp: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const text = JSON.stringify(data, null, 2);
  const file = join(RESULTS_DIR, `${name}-${stamp}.json`);
  writeFileSync(file, text);
  writeFileSync(join(RESULTS_DIR, `${name}-latest.json`), text);
  return file;
}
