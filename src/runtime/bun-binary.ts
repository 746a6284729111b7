/**
 * The Bun executable `--runtime bun` runs: the one npm installed with the `bun` optional
 * dependency (so nobody installs Bun by hand), or the one `KUBEPROXY_BUN` names (an image or a
 * machine with its own Bun).
 */
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const BUN_ENV = 'KUBEPROXY_BUN';

/** Why Bun cannot be run, said to the user as it is. */
export class BunMissing extends Error {}

/** The path of the Bun executable; throws BunMissing naming the problem and the fix. */
export function bunBinary(env: NodeJS.ProcessEnv = process.env, from: string = import.meta.url): string {
  const named = env[BUN_ENV];
  if (named !== undefined && named !== '') return executable(named, BUN_ENV, '');
  let manifest: string;
  try {
    manifest = createRequire(from).resolve('bun/package.json');
  } catch {
    throw new BunMissing(
      'the bun package is not installed (it is an optional dependency of kubeproxy: reinstall without --omit=optional / --no-optional, ' +
        `or set ${BUN_ENV} to a Bun executable)`,
    );
  }
  const { bin } = createRequire(from)(manifest) as { bin?: string | Record<string, string> };
  const rel = typeof bin === 'string' ? bin : bin?.bun;
  if (rel === undefined) throw new BunMissing(`the bun package at ${dirname(manifest)} names no "bun" executable`);
  // npm leaves the package without its binary when no prebuilt one exists for this platform.
  return executable(join(dirname(manifest), rel), 'the bun package', ' (is there a Bun build for this platform?)');
}

function executable(path: string, source: string, hint: string): string {
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new BunMissing(`${source}: ${path} is not an executable file${hint}`);
  }
  return path;
}
