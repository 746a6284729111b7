/**
 * Starts a real KubeProxy runtime in-process on 127.0.0.1 with OS-assigned ports; with
 * KUBEPROXY_TEST_RUNTIME=bun, a `kubeproxy` process under Bun with the same config instead
 * (the Bun leg of the suite: `node scripts/run-tests.mjs --runtime bun`).
 */
import { validateConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import { spawnProxy, TEST_RUNTIME } from './child.ts';

/** The admin token of every test proxy (unless the test gives its own `admin` block). */
export const TEST_ADMIN_TOKEN = 'test-admin-token';

export interface TestProxy {
  runtime: Runtime;
  port: number;
  adminPort: number;
  close(): Promise<void>;
}

export interface TestService {
  name: string;
  domain?: string;
  domains?: string[];
  hosts: Array<{ address?: string; port: number; weight?: number }>;
  [key: string]: unknown;
}

/**
 * `proxy` is the `proxy:` block without listen/admin (they are set to 127.0.0.1:0). Any other key
 * of the real schema may be given; the config is validated exactly as a YAML file would be.
 */
export async function startProxy(proxy: { services: TestService[]; [key: string]: unknown }): Promise<TestProxy> {
  const services = proxy.services.map((s) => ({
    ...s,
    hosts: s.hosts.map((h) => ({ address: '127.0.0.1', ...h })),
  }));
  const config = validateConfig({
    proxy: {
      listen: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0, token: TEST_ADMIN_TOKEN },
      ...proxy,
      services,
    },
  });
  if (TEST_RUNTIME === 'bun') return startProcess(proxy);
  const runtime = await Runtime.start(config);
  return {
    runtime,
    port: runtime.listener.address().port,
    adminPort: runtime.admin ? runtime.admin.address().port : 0,
    close: async () => {
      await runtime.shutdown();
    },
  };
}

/**
 * The proxy as a separate process (the config was validated above, as in-process). Its Runtime
 * lives in that process: a test that reads it cannot run on this leg (scripts/bun-leg.mjs lists them).
 */
async function startProcess(proxy: { services: TestService[]; [key: string]: unknown }): Promise<TestProxy> {
  const child = await spawnProxy({ admin: { address: '127.0.0.1', port: 0, token: TEST_ADMIN_TOKEN }, ...proxy });
  const started = child.logs.find((l) => l.msg === 'kubeproxy started');
  const tls = started?.tls as { address: string; port: number } | undefined;
  // What a process can tell of its Runtime: the TLS listener's address (from the start log line).
  const runtime = new Proxy({} as Runtime, {
    get(_, key) {
      if (key === 'tls' && tls !== undefined) return { address: () => tls };
      throw new Error(`the proxy runs as a ${TEST_RUNTIME} process (KUBEPROXY_TEST_RUNTIME): its Runtime cannot be read from the test (runtime.${String(key)})`);
    },
  });
  return {
    runtime,
    port: child.port,
    adminPort: child.adminPort,
    close: async () => {
      child.child.kill('SIGTERM');
      await child.exited;
      await child.cleanup();
    },
  };
}
