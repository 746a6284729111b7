/**
 * Which server takes the plain port: node:http (listener.ts, on Node and by default on Bun) or
 * Bun.serve (bun-front.ts, on Bun with KUBEPROXY_BUN_FRONT=serve). The choice is made once, at start.
 */
import type { ProxyConfig } from '../config/schema.ts';
import { currentRuntime, envChoice } from '../runtime/select.ts';
import { BunServeFront } from './bun-front.ts';
import type { ClientFront } from './client-front.ts';
import { Listener, type RequestHandlers } from './listener.ts';
import type { UpgradeHandler } from './upgrade.ts';

/**
 * `KUBEPROXY_BUN_FRONT`: which server takes the plain port on Bun. `node` (the default): Bun's
 * node:http, every behaviour of the Node front; `serve`: Bun.serve (bun-front.ts says what it
 * changes). Measured no faster on the benchmark (README, Running on Bun), so not the default.
 */
export const BUN_FRONT_ENV = 'KUBEPROXY_BUN_FRONT';
const BUN_FRONTS = ['serve', 'node'] as const;

/** The front asked for on Bun, or an error naming the bad value. */
export function bunFront(env: NodeJS.ProcessEnv = process.env): (typeof BUN_FRONTS)[number] {
  return envChoice(env, BUN_FRONT_ENV, BUN_FRONTS, 'node', 'a front');
}

/** The plain HTTP port: Bun.serve on Bun with KUBEPROXY_BUN_FRONT=serve, node:http otherwise. */
export function plainFront(handlers: RequestHandlers, upgrade: UpgradeHandler, client: ProxyConfig['client'], worker: boolean): ClientFront {
  if (currentRuntime === 'bun' && bunFront() === 'serve') return new BunServeFront(handlers, client, worker);
  return new Listener(handlers, upgrade, client);
}
