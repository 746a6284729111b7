/** The /status JSON as the page reads it (admin/status.ts; cluster/status-merge.ts in a cluster). */

export type InstanceState = 'draining' | 'leaving' | 'ejected' | 'unhealthy' | 'healthy';

export interface LastMinute {
  requestsPerSecond: number;
  errorRatio: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  retries: number;
}

export interface InstanceView {
  id: string;
  state: InstanceState;
  inflight: number;
  ejections: number;
  ejection: { reason: 'failures' | 'unreachable'; until: string | null } | null;
  lastError: { cause: string; message: string; at: string } | null;
  lastProbe: { ok: boolean; status: number; detail: string; at: string } | null;
}

export interface ServiceView {
  name: string;
  domains: string[];
  loadBalancer: string;
  inflight: number;
  retryBudget: { granted: number; refused: number };
  lastMinute: LastMinute;
  instances: InstanceView[];
}

export interface CacheView {
  enabled: boolean;
  entries: number | null;
  bytes: number | null;
  evictions: number | null;
  purges: number;
  hitRatio: number | null;
  lastMinute: { lookups: number; served: number; hitRatio: number | null };
}

export interface WorkerView {
  slot: number;
  worker: number | null;
  state: string;
  restarts: number;
  pid: number | null;
  requests?: number;
  inflight?: number;
  error?: string;
}

export interface Status {
  mode?: 'cluster';
  ready: boolean;
  draining: boolean;
  uptimeSeconds: number;
  inflight: number;
  connections: number;
  config?: { loadedAt: string; reloads: number; lastReloadError: { message: string; at: string } | null };
  cache?: CacheView;
  services?: ServiceView[];
  workers?: WorkerView[];
}
