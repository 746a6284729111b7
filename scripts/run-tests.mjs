#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node:test through tsx.
// Node 20 has no glob support in `node --test`, so the file list is built here.
// Usage: node scripts/run-tests.mjs [filter-substring ...]
//        node scripts/run-tests.mjs --runtime bun [filter-substring ...]
//   The Bun leg: the end-to-end files that start a proxy, each proxy a kubeproxy process under
//   Bun, less the tests scripts/bun-leg.mjs skips (with the reason each).
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const args = process.argv.slice(2);
const runtimeAt = args.indexOf('--runtime');
const runtime = runtimeAt === -1 ? 'node' : args.splice(runtimeAt, 2)[1];
if (runtime !== 'node' && runtime !== 'bun') {
  console.error(`--runtime: "${runtime}" is not a runtime (use node or bun)`);
  process.exit(64);
}
const filters = args;

function walk(dir, out) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else if (entry.name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const leg = runtime === 'bun' ? await import('./bun-leg.mjs') : undefined;
const files = (leg ? leg.bunLegFiles(root) : [...walk(join(root, 'src'), []), ...walk(join(root, 'test'), [])])
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=120000', ...(leg ? [leg.bunLegSkipFlag(Number(process.versions.node.split('.')[0]))] : []), ...files],
  { cwd: root, stdio: 'inherit', env: { KUBEPROXY_LOG_LEVEL: 'silent', ...process.env, ...(leg ? { KUBEPROXY_TEST_RUNTIME: 'bun' } : {}) } },
);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
