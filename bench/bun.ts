// The Bun contenders (issue 18): KubeProxy on Bun with the default config (`bun bin/kubeproxy`:
// Bun's node:http front and the Bun.connect upstream client, the defaults there; then the
// Bun.serve front, and the real undici upstream, each in place of its default), and the bare
// Bun.serve + fetch pass-through (peers/bun-serve-fetch.ts: the ceiling on Bun), plus the same
// server answering from memory (the cache-hit ceiling on Bun). The Bun executable is the bun
// optional dependency's (src/runtime/bun-binary.ts); without it these rows say "not available".
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bunBinary } from '../src/runtime/bun-binary.ts';
import { PROJECT_DIR } from './build.ts';
import { childEnv, NotAvailable, type Contender, type Ctx, type WorkloadId } from './contenders.ts';
import { KUBEPROXY_BIN, kubeproxyConfig } from './kubeproxy.ts';
import { freePort, startProcess, stopProcess, waitForPort } from './processes.ts';

function bun(): string {
  try {
    return bunBinary();
  } catch (e) {
    throw new NotAvailable((e as Error).message);
  }
}

async function startOnBun(ctx: Ctx, id: string, args: (port: number) => string[], env: Record<string, string>, port?: number): Promise<{ pid: number; port: number; fresh: true; stop(): Promise<void> }> {
  const p = port ?? (await freePort());
  const proc = startProcess(bun(), args(p), {
    cpu: ctx.proxyCpu,
    cwd: PROJECT_DIR,
    env: childEnv({ PORT: String(p), ...env }),
    logFile: join(ctx.tmpDir, `${id.replace(/\W+/g, '-')}-${Date.now()}.log`),
  });
  try {
    await waitForPort(proc, p, 20_000);
  } catch (e) {
    await stopProcess(proc);
    throw new NotAvailable((e as Error).message);
  }
  return { pid: proc.pid, port: p, fresh: true, stop: () => stopProcess(proc) };
}

function bunPeer(id: string, kind: Contender['kind'], workloads: WorkloadId[], memory: boolean): Contender {
  return {
    id, kind, workloads, pinned: true,
    start: (ctx) => startOnBun(ctx, id, () => [join(PROJECT_DIR, 'bench', 'peers', 'bun-serve-fetch.ts')], { UPSTREAM: `http://127.0.0.1:${ctx.originPorts[0]}`, MEMORY: memory ? '1' : '0' }),
  };
}

/** KubeProxy on Bun with the default config and `env` (KUBEPROXY_BUN_FRONT: src/server/front.ts; KUBEPROXY_BUN_UPSTREAM: src/upstream/bun-h1-client.ts). */
function kubeproxyOnBun(id: string, env: Record<string, string>, note: string): Contender {
  const name = id.replace(/\W+/g, '-');
  return {
    id, kind: 'kubeproxy', workloads: ['small', '64k', 'cache-hit'], pinned: true, note,
    async start(ctx) {
      const [port, adminPort] = [await freePort(), await freePort()];
      const config = join(ctx.tmpDir, `${name}.yaml`);
      writeFileSync(config, kubeproxyConfig({ workers: 1, metrics: true, accessLog: true }, port, adminPort, ctx.originPorts));
      return startOnBun(ctx, name, () => [KUBEPROXY_BIN, '--config', config], env, port);
    },
  };
}

export const kubeproxyBun = kubeproxyOnBun('kubeproxy (bun)', {}, "bun bin/kubeproxy: the defaults on Bun (node:http front, Bun.connect upstream)");
export const kubeproxyBunServeFront = kubeproxyOnBun('kubeproxy (bun, Bun.serve front)', { KUBEPROXY_BUN_FRONT: 'serve' }, 'KUBEPROXY_BUN_FRONT=serve bun bin/kubeproxy');
export const kubeproxyBunUndici = kubeproxyOnBun('kubeproxy (bun, undici upstream)', { KUBEPROXY_BUN_UPSTREAM: 'undici' }, 'KUBEPROXY_BUN_UPSTREAM=undici bun bin/kubeproxy');

export const bunPeers: Contender[] = [
  bunPeer('bun-serve-fetch', 'proxy', ['small', '64k'], false),
  bunPeer('bun-serve memory', 'ceiling', ['cache-hit'], true),
];
