/** Reading the cluster primary's admin /status (proxy.workers > 1) in end-to-end tests. */
import { request } from './http.ts';

export interface WorkerStatus {
  slot: number;
  worker: number | null;
  state: string;
  restarts: number;
  pid: number | null;
  requests?: number;
  error?: string;
  cache?: { entries: number | null };
  services?: Array<{ name: string }>;
}

export interface ClusterStatus {
  mode: string;
  pid: number;
  ready: boolean;
  draining: boolean;
  requests: number;
  workers: WorkerStatus[];
}

export async function clusterStatus(adminPort: number): Promise<ClusterStatus> {
  const r = await request(adminPort, { path: '/status' });
  if (r.status !== 200) throw new Error(`/status answered ${r.status}: ${r.text}`);
  return JSON.parse(r.text) as ClusterStatus;
}

/** The pids of the running workers, by slot. */
export async function workerPids(adminPort: number): Promise<number[]> {
  return (await clusterStatus(adminPort)).workers.map((w) => w.pid ?? 0);
}
