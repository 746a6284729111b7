// What is measured: the workloads and the contenders (how each one is started).
import { join } from 'node:path';
import { V8_FLAGS } from '../src/v8-flags.ts';
import type { SCRIPTS } from './build.ts';
import { freePort, startProcess, stopProcess, waitForPort, type Proc } from './processes.ts';

export type WorkloadId = 'small' | '64k' | 'cache-hit';

export const WORKLOADS: Record<WorkloadId, { path: string; bytes: number; title: string }> = {
  small: { path: '/small', bytes: 13, title: '13-byte GET, not cached' },
  '64k': { path: '/64k', bytes: 64 * 1024, title: '64 KiB GET, not cached' },
  'cache-hit': { path: '/cacheable', bytes: 13, title: 'cache hit, 13 bytes' },
};

export const HOST = 'bench.local';

export interface Ctx {
  tmpDir: string;
  scripts: Record<(typeof SCRIPTS)[number], string>;
  originPid: number;
  /** Two ports of the origin process (KubeProxy round-robins over both; peers use the first). */
  originPorts: [number, number];
  /** CPU for the proxy under test, and for load generator + origin (null: unpinned). */
  proxyCpu: string | null;
  loadCpu: string | null;
  nginxBin: string | undefined;
  nginxMissing: string | undefined;
  /** Run Node contenders under a command prefix (valgrind: `--instructions`), with longer waits. */
  wrap?: Wrap;
}

export interface Wrap {
  prefix: readonly string[];
  startTimeoutMs: number;
  stopGraceMs: number;
}

export interface Running {
  pid: number;
  port: number;
  /** Started for this measurement (so VmHWM is this workload's peak). */
  fresh: boolean;
  stop(): Promise<void>;
}

export interface Contender {
  id: string;
  kind: 'origin' | 'proxy' | 'ceiling' | 'kubeproxy';
  workloads: readonly WorkloadId[];
  pinned: boolean;
  note?: string;
  start(ctx: Ctx): Promise<Running>;
}

/** The contender cannot run here (not installed, not built yet): its rows say so, the run goes on. */
export class NotAvailable extends Error {}

/** Environment for contenders: no NODE_OPTIONS from the caller's shell, so every Node starts alike. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

function nodePeer(id: string, script: (typeof SCRIPTS)[number], kind: Contender['kind'], workloads: WorkloadId[]): Contender {
  return {
    id, kind, workloads, pinned: true,
    async start(ctx) {
      const port = await freePort();
      // With KubeProxy's V8 flags: the ceiling gets the same runtime settings as the proxy measured against it.
      const proc = startProcess(process.execPath, [...V8_FLAGS, ctx.scripts[script]], {
        cpu: ctx.proxyCpu,
        env: childEnv({ PORT: String(port), UPSTREAM: `http://127.0.0.1:${ctx.originPorts[0]}` }),
        logFile: join(ctx.tmpDir, `${id}.log`),
        wrap: ctx.wrap?.prefix,
      });
      try {
        await waitForPort(proc, port, ctx.wrap?.startTimeoutMs ?? 10_000);
      } catch (e) {
        await stopProcess(proc);
        throw e;
      }
      return { pid: proc.pid, port, fresh: true, stop: () => stopProcess(proc, ctx.wrap?.stopGraceMs) };
    },
  };
}

/** Starts the origin (origin.ts) on two free ports, pinned to `cpu` when given. */
export async function startOrigin(scripts: Ctx['scripts'], tmpDir: string, cpu: string | null): Promise<{ proc: Proc; ports: [number, number] }> {
  const ports: [number, number] = [await freePort(), await freePort()];
  const proc = startProcess(process.execPath, [scripts['origin.ts']], {
    cpu, env: childEnv({ PORTS: ports.join(',') }), logFile: join(tmpDir, 'origin.log'),
  });
  await waitForPort(proc, ports[0], 10_000);
  await waitForPort(proc, ports[1], 10_000);
  return { proc, ports };
}

export const originDirect: Contender = {
  id: 'origin (direct)', kind: 'origin', workloads: ['small', '64k', 'cache-hit'], pinned: true,
  note: 'no proxy; origin on the load CPU',
  async start(ctx) {
    return { pid: ctx.originPid, port: ctx.originPorts[0], fresh: false, stop: async () => {} };
  },
};

export const peers: Contender[] = [
  nodePeer('bare-undici', 'peers/bare-undici.ts', 'proxy', ['small', '64k']),
  nodePeer('node-http-proxy', 'peers/node-http-proxy.ts', 'proxy', ['small', '64k']),
  nodePeer('fastify-http-proxy', 'peers/fastify-http-proxy.ts', 'proxy', ['small', '64k']),
  nodePeer('memory-server', 'peers/memory-server.ts', 'ceiling', ['cache-hit']),
];
