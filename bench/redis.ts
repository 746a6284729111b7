// A redis-server for the shared-cache benchmark: the Debian package on a free loopback port,
// set up as the Helm chart's Redis is (no RDB, no AOF, maxmemory with volatile-lru).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startProcess, stopProcess, waitForPort, type Proc } from './processes.ts';
import { ensureBinary } from './tools.ts';

export interface BenchRedis {
  proc: Proc;
  port: number;
  url: string;
  /** One redis-cli command; its output, trimmed. */
  cli(...args: string[]): string;
  stop(): Promise<void>;
}

export async function startRedis(tmpDir: string, cpu: string | null): Promise<BenchRedis> {
  const bin = ensureBinary('redis-server', 'redis-server');
  const port = await freePort();
  const dir = join(tmpDir, `redis-${port}`);
  mkdirSync(dir, { recursive: true });
  const proc = startProcess(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    '--maxmemory', '256mb', '--maxmemory-policy', 'volatile-lru'], { cpu, logFile: join(dir, 'redis.log') });
  try {
    await waitForPort(proc, port, 10_000);
  } catch (e) {
    await stopProcess(proc);
    throw e;
  }
  return {
    proc, port, url: `redis://127.0.0.1:${port}`,
    cli: (...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 }).trim(),
    stop: () => stopProcess(proc),
  };
}
