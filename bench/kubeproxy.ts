// Starts KubeProxy as `node --no-memory-reducer bin/kubeproxy --config <generated yaml>` (the
// Docker image's command line; flags from src/v8-flags.ts), in four variants.
// The config spelling lives only in kubeproxyConfig() below: adjust it there if the CLI's
// format changes.
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { stringify } from 'yaml';
import { V8_FLAGS } from '../src/v8-flags.ts';
import { PROJECT_DIR } from './build.ts';
import { childEnv, HOST, NotAvailable, type Contender, type Ctx, type WorkloadId } from './contenders.ts';
import { freePort, startProcess, stopProcess, waitForPort } from './processes.ts';

export const KUBEPROXY_BIN = join(PROJECT_DIR, 'bin', 'kubeproxy');

export interface KubeProxyVariant {
  workers: 1 | 'auto';
  /** Metrics and access log (both on in the default config), apart so each one's cost shows. */
  metrics: boolean;
  accessLog: boolean;
  /** One plugin with an empty onRequest and onResponse (EMPTY_PLUGIN): what the plugin hooks cost. */
  emptyPlugin?: boolean;
}

/** The plugin of the `emptyPlugin` variant, written next to the generated config. */
export const EMPTY_PLUGIN = 'export default () => ({ name: "empty", onRequest() {}, onResponse() {} });\n';

export function kubeproxyConfig(v: KubeProxyVariant, port: number, adminPort: number, originPorts: readonly number[]): string {
  return stringify({
    proxy: {
      listen: { address: '127.0.0.1', port },
      admin: { address: '127.0.0.1', port: adminPort },
      workers: v.workers,
      accessLog: { enabled: v.accessLog },
      metrics: { enabled: v.metrics },
      cache: { enabled: true, maxSize: '256MiB' },
      ...(v.emptyPlugin ? { plugins: [{ module: './empty-plugin.mjs' }] } : {}),
      services: [{
        name: 'bench',
        domain: HOST,
        hosts: originPorts.map((p) => ({ address: '127.0.0.1', port: p })),
      }],
    },
  });
}

function newestMtime(dir: string, depth = 6): number {
  if (!existsSync(dir) || depth < 0) return 0;
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p, depth - 1) : statSync(p).mtimeMs);
  }
  return newest;
}

/** A warning when src/ changed after the last build (bin/kubeproxy may run dist/). */
export function staleBuildNote(): string | undefined {
  const src = newestMtime(join(PROJECT_DIR, 'src'));
  const dist = newestMtime(join(PROJECT_DIR, 'dist'));
  return dist > 0 && src > dist ? 'note: src/ is newer than dist/: run `npm run build` first if bin/kubeproxy runs dist/' : undefined;
}

/**
 * `root`: the project directory of the build to run (another revision's worktree for
 * `--baseline`, see baseline.ts); `workloads`: where it is measured.
 */
export function kubeproxy(id: string, v: KubeProxyVariant, root = PROJECT_DIR, workloads: readonly WorkloadId[] = ['small', '64k', 'cache-hit']): Contender {
  const pinned = v.workers === 1;
  const bin = join(root, 'bin', 'kubeproxy');
  return {
    id, kind: 'kubeproxy', workloads, pinned,
    ...(pinned ? {} : { note: 'workers: auto on CPUs 0-1 (shares both CPUs with wrk and the origin)' }),
    async start(ctx: Ctx) {
      if (!existsSync(bin)) throw new NotAvailable(`${relative(PROJECT_DIR, bin)} not found`);
      const [port, adminPort] = [await freePort(), await freePort()];
      const config = join(ctx.tmpDir, `kubeproxy-${id.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(config, kubeproxyConfig(v, port, adminPort, ctx.originPorts));
      if (v.emptyPlugin) writeFileSync(join(ctx.tmpDir, 'empty-plugin.mjs'), EMPTY_PLUGIN);
      // As the Docker image starts it: with the V8 flags of src/v8-flags.ts.
      const proc = startProcess(process.execPath, [...V8_FLAGS, bin, '--config', config], {
        // The harness pins itself (and so every unpinned child) to CPU 1: `workers: auto` gets both
        // CPUs back explicitly, or it would resolve to one worker.
        cpu: pinned ? ctx.proxyCpu : '0-1',
        cwd: root,
        env: childEnv({}),
        logFile: join(ctx.tmpDir, `kubeproxy-${Date.now()}.log`),
        wrap: ctx.wrap?.prefix,
      });
      try {
        await waitForPort(proc, port, ctx.wrap?.startTimeoutMs ?? 20_000);
      } catch (e) {
        await stopProcess(proc);
        throw new NotAvailable((e as Error).message);
      }
      return { pid: proc.pid, port, fresh: true, stop: () => stopProcess(proc, ctx.wrap?.stopGraceMs) };
    },
  };
}

/** The default KubeProxy of a previous build (`--baseline`), in the workloads issue 19 compares: 13 B and cache hits. */
export function baselineKubeproxy(rev: string, root: string): Contender {
  return kubeproxy(`kubeproxy@${rev}`, { workers: 1, metrics: true, accessLog: true }, root, ['small', 'cache-hit']);
}

export const kubeproxies: Contender[] = [
  kubeproxy('kubeproxy', { workers: 1, metrics: true, accessLog: true }),
  kubeproxy('kubeproxy (access log off)', { workers: 1, metrics: true, accessLog: false }),
  kubeproxy('kubeproxy (metrics+log off)', { workers: 1, metrics: false, accessLog: false }),
  kubeproxy('kubeproxy (workers: auto)', { workers: 'auto', metrics: true, accessLog: true }),
  kubeproxy('kubeproxy (one empty plugin)', { workers: 1, metrics: true, accessLog: true, emptyPlugin: true }),
];
