/**
 * How many worker processes `proxy.workers` asks for.
 *
 * `auto` is the number of CPUs this process may run on (os.availableParallelism(), which
 * follows the CPU affinity mask, e.g. `taskset`), lowered to the container's CPU quota when
 * there is one: in Kubernetes a pod with `limits.cpu: 2` on a 32-core node sees 32 CPUs but is
 * throttled to 2 CPU-seconds per second, and 32 workers would only add memory and contention.
 * The quota is read from cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`)
 * and rounded up (1.5 CPUs → 2 workers).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export interface CpuSource {
  parallelism(): number;
  /** File content, or undefined when it cannot be read. */
  read(path: string): string | undefined;
}

const system: CpuSource = {
  parallelism: availableParallelism,
  read(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
};

export function workerCount(setting: 'auto' | number, source: CpuSource = system): number {
  if (setting !== 'auto') return setting;
  const cpus = Math.max(1, source.parallelism());
  const quota = cgroupCpuQuota(source);
  return quota === undefined ? cpus : Math.max(1, Math.min(cpus, Math.ceil(quota)));
}

/** CPUs allowed by the cgroup's CFS quota, or undefined when unlimited or unknown. */
export function cgroupCpuQuota(source: CpuSource = system): number | undefined {
  // cgroup v2: "max 100000" (no limit) or "<quota> <period>".
  const v2 = source.read('/sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) {
    const [quota, period] = v2.trim().split(/\s+/);
    return ratio(quota, period);
  }
  // cgroup v1: quota -1 means no limit.
  const quota = source.read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') ?? source.read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us');
  const period = source.read('/sys/fs/cgroup/cpu/cpu.cfs_period_us') ?? source.read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us');
  return ratio(quota?.trim(), period?.trim());
}

function ratio(quota: string | undefined, period: string | undefined): number | undefined {
  if (quota === undefined || period === undefined || quota === 'max') return undefined;
  const q = Number(quota);
  const p = Number(period);
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return q / p;
}
