import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cgroupCpuQuota, workerCount, type CpuSource } from './count.ts';

function machine(cpus: number, files: Record<string, string> = {}): CpuSource {
  return { parallelism: () => cpus, read: (path) => files[path] };
}

test('a number of workers is taken as written', () => {
  assert.equal(workerCount(1, machine(8)), 1);
  assert.equal(workerCount(3, machine(2)), 3);
});

test('auto is one worker per CPU when no cgroup limits the CPU time', () => {
  assert.equal(workerCount('auto', machine(4)), 4);
  assert.equal(workerCount('auto', machine(4, { '/sys/fs/cgroup/cpu.max': 'max 100000\n' })), 4);
  assert.equal(workerCount('auto', machine(4, { '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' })), 4);
});

test('auto follows a container CPU limit, rounded up, never above the CPUs there are', () => {
  // Kubernetes limits.cpu: 1500m on a 16-CPU node (cgroup v2).
  assert.equal(workerCount('auto', machine(16, { '/sys/fs/cgroup/cpu.max': '150000 100000\n' })), 2);
  // limits.cpu: 8 on a 4-CPU node.
  assert.equal(workerCount('auto', machine(4, { '/sys/fs/cgroup/cpu.max': '800000 100000\n' })), 4);
  // limits.cpu: 250m: still one worker.
  assert.equal(workerCount('auto', machine(4, { '/sys/fs/cgroup/cpu.max': '25000 100000\n' })), 1);
  // cgroup v1.
  assert.equal(workerCount('auto', machine(8, { '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '300000\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' })), 3);
});

test('an unreadable or malformed cgroup file means no limit', () => {
  assert.equal(cgroupCpuQuota(machine(2, { '/sys/fs/cgroup/cpu.max': 'garbage' })), undefined);
  assert.equal(cgroupCpuQuota(machine(2, { '/sys/fs/cgroup/cpu.max': '0 100000' })), undefined);
  assert.equal(cgroupCpuQuota(machine(2)), undefined);
  assert.equal(workerCount('auto', machine(0)), 1, 'at least one worker');
});
