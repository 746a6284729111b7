/**
 * On Bun, the module name `undici` is Bun's own fetch-based stand-in (no `Pool.dispatch`, no raw
 * dispatch handlers), and Bun refuses to let a plugin redirect a built-in name. The proxy needs
 * the real undici (src/upstream/client.ts drives its dispatch handler API), so this module loads
 * the package from node_modules by path and copies its exports onto Bun's built-in module object.
 * Bun builds the ES namespace of a built-in on its first import, so this must run before any
 * module imports `undici`: as a `--preload` (src/runtime/reexec.ts) or before a dynamic import of
 * the CLI (bin/kubeproxy). On Node it is never loaded.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** Where the real undici's entry is (this package's own dependency, found from this file). */
export function realUndiciPath(): string {
  const manifest = require.resolve('undici/package.json');
  const { main } = require(manifest) as { main?: string };
  return join(dirname(manifest), main ?? 'index.js');
}

/** Replaces Bun's `undici` with the real one; throws naming the problem when that cannot be done. */
export function useRealUndici(): void {
  const real = require(realUndiciPath()) as Record<string, unknown>;
  const builtin = require('undici') as Record<string, unknown>;
  if (builtin === real) return;
  for (const key of Object.keys(real)) builtin[key] = real[key];
  // Bun keeps `Pool` etc. as plain properties today; a Bun whose built-in is frozen would leave
  // the stand-in in place and every upstream request would fail: refuse to start instead.
  if (builtin.Pool !== real.Pool) {
    throw new Error(`this Bun (${process.versions.bun ?? '?'}) does not let the real undici replace its built-in "undici" module`);
  }
}

useRealUndici();
