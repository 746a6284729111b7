/**
 * The client-facing port as the Runtime, the metrics and /status see it, whichever server runs
 * it (front.ts picks one).
 */
import type { ProxyConfig } from '../config/schema.ts';
import type { ProxyError } from '../errors.ts';

export interface ClientFront {
  /** Which port this is in the metrics. */
  readonly name: 'http' | 'https';
  /** Open client connections (Bun.serve: requests in flight). */
  readonly connections: number;
  readonly listening: boolean;
  listen(address: string, port: number): Promise<void>;
  address(): { address: string; port: number };
  /** Stops accepting; in-flight requests get `timeoutMs` while `busy()`, then what is left is cut. */
  drain(timeoutMs: number, busy: () => boolean): Promise<void>;
  applyClientConfig(client: ProxyConfig['client']): void;
  /** Requests refused before the pipeline; returns the unsubscribe. */
  onRefused(fn: (refusal: ProxyError) => void): () => void;
  /** Connections closed over client.maxConnections; returns the unsubscribe. */
  onConnectionRefused(fn: () => void): () => void;
}
