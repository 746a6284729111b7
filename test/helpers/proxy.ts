/** Starts a real KubeProxy runtime in-process on 127.0.0.1 with OS-assigned ports. */
import { validateConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';

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
