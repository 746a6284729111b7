// `--baseline <git-rev>`: builds a previous revision of KubeProxy in a git worktree under .tmp/ so
// that it runs as one more contender ("kubeproxy@<rev>") in the same rounds as the current build:
// the report's new ÷ previous ratio then comes from runs seconds apart, not from two runs hours apart.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PROJECT_DIR } from './build.ts';

export interface Baseline {
  /** The short commit id, as shown in the contender's name. */
  rev: string;
  /** The worktree: the previous build's project directory (bin/kubeproxy, dist/). */
  dir: string;
  /** How node_modules was provided: shared with this checkout, or installed with `npm ci`. */
  modules: 'shared' | 'npm ci';
}

function git(args: string[], cwd = PROJECT_DIR): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** The dependency lists of a package.json: equal lists let the worktree use this checkout's node_modules. */
function dependencies(dir: string): string {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
  return JSON.stringify([pkg.dependencies ?? {}, pkg.devDependencies ?? {}, pkg.optionalDependencies ?? {}]);
}

/**
 * Checks out `rev` in .tmp/bench-baseline-<rev> (detached), gives it node_modules (a symlink to
 * this checkout's when the dependency lists match, else `npm ci` there) and builds it
 * (`tsc -p tsconfig.build.json`, as `npm run build`). Throws with the reason when any step fails.
 */
export function prepareBaseline(revSpec: string, log: (line: string) => void = console.log): Baseline {
  let sha: string;
  try {
    sha = git(['rev-parse', '--verify', '--quiet', `${revSpec}^{commit}`]);
  } catch {
    throw new Error(`--baseline: ${revSpec} is not a commit of this repository`);
  }
  const rev = git(['rev-parse', '--short', sha]);
  const dir = join(PROJECT_DIR, '.tmp', `bench-baseline-${rev}`);
  if (existsSync(dir)) removeBaseline({ rev, dir, modules: 'shared' });
  log(`baseline: checking out ${revSpec} (${rev}) in ${relative(PROJECT_DIR, dir)}`);
  git(['worktree', 'add', '--detach', dir, sha]);
  const baseline: Baseline = { rev, dir, modules: 'shared' };
  try {
    if (dependencies(dir) === dependencies(PROJECT_DIR)) {
      symlinkSync(join(PROJECT_DIR, 'node_modules'), join(dir, 'node_modules'), 'dir');
    } else {
      baseline.modules = 'npm ci';
      log(`baseline: ${rev} has other dependencies than this checkout: npm ci in its worktree`);
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: dir, stdio: 'inherit', timeout: 600_000 });
    }
    log(`baseline: building ${rev}`);
    // `prepare` would run the same tsc; called directly so no other lifecycle script runs.
    const tsc = join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
    try {
      execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: dir, stdio: 'inherit', timeout: 600_000 });
    } catch {
      throw new Error(`--baseline: ${revSpec} (${rev}) does not build (tsc -p tsconfig.build.json failed, above)`);
    }
    if (!existsSync(join(dir, 'bin', 'kubeproxy'))) throw new Error(`--baseline: ${rev} has no bin/kubeproxy`);
  } catch (e) {
    removeBaseline(baseline);
    throw e;
  }
  return baseline;
}

/** Removes the worktree and its registration (`git worktree prune`); a shared node_modules is only unlinked. */
export function removeBaseline(b: Baseline): void {
  const link = join(b.dir, 'node_modules');
  if (existsSync(link) && lstatSync(link).isSymbolicLink()) rmSync(link);
  try {
    git(['worktree', 'remove', '--force', b.dir]);
  } catch {
    rmSync(b.dir, { recursive: true, force: true });
  }
  git(['worktree', 'prune']);
}
