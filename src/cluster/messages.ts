/**
 * The IPC protocol between the cluster primary (src/cluster/primary.ts) and its workers
 * (src/cluster/worker.ts), over the channel node:cluster sets up with every fork.
 *
 * Every message carries a `kubeproxy` field naming its kind, so it never mistakes one of
 * prom-client's or node:cluster's own messages (which use `type` / `cmd`) for ours, or the reverse.
 * Requests that expect an answer carry an `id` the answer repeats.
 *
 * A worker's life: it says `hello` once it listens for messages; the primary answers `start` with
 * the config text it validated (a worker never reads the config file itself, so all workers run
 * the text the primary checked, even when the file changed since); the worker answers `ready`
 * (listener bound) or `failed` (and exits).
 */

/** Environment marker set on forked workers: with node:cluster's own, it makes a process a KubeProxy worker. */
export const WORKER_ENV = 'KUBEPROXY_WORKER';

/** An admin request forwarded to a worker's in-process admin routes. */
export interface AdminRequest {
  method: string;
  /** Path and query, as received by the primary. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** The request body, base64. */
  body: string;
}

export interface AdminReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The response body, UTF-8 (admin answers are text or JSON). */
  body: string;
}

export type ToWorker =
  /**
   * `port`: for `listen.port: 0` (tests), the port the primary picked for all workers. Workers
   * that each listened on port 0 would share one socket only while one of them keeps it open: a
   * replacement started after all of them died would get another port. `tlsPort`: the same for
   * `tls.listen.port: 0`.
   * `workers`: how many workers share the cache memory (cache.maxSize is split between them).
   */
  | { kubeproxy: 'start'; configText: string; source: string; port?: number | undefined; tlsPort?: number | undefined; workers: number }
  | { kubeproxy: 'reload'; id: number; configText: string; source: string }
  | { kubeproxy: 'drain' }
  | { kubeproxy: 'status'; id: number }
  | { kubeproxy: 'metrics'; id: number }
  | { kubeproxy: 'admin'; id: number; request: AdminRequest };

export type FromWorker =
  | { kubeproxy: 'hello' }
  | { kubeproxy: 'ready'; listen: { address: string; port: number }; tls?: { address: string; port: number } | undefined }
  | { kubeproxy: 'failed'; message: string }
  | { kubeproxy: 'draining' }
  | { kubeproxy: 'reply'; id: number; ok: true; value: unknown }
  | { kubeproxy: 'reply'; id: number; ok: false; error: string };

export function isToWorker(message: unknown): message is ToWorker {
  return typeof message === 'object' && message !== null && typeof (message as { kubeproxy?: unknown }).kubeproxy === 'string';
}

export function isFromWorker(message: unknown): message is FromWorker {
  return typeof message === 'object' && message !== null && typeof (message as { kubeproxy?: unknown }).kubeproxy === 'string';
}
