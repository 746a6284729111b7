// Finds wrk, nginx, h2load (nghttp2-client, the HTTP/2 workloads) and valgrind (`--instructions`), installing the Debian package with apt-get when one is absent.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

function locate(bin: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  const found = r.status === 0 ? r.stdout.trim() : '';
  if (found) return found;
  return [`/usr/sbin/${bin}`, `/usr/bin/${bin}`].find((p) => existsSync(p));
}

function apt(args: string[]): boolean {
  // RUNLEVEL=1 keeps the package's init script from starting a system-wide service.
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' };
  const r = spawnSync('apt-get', args, { env, stdio: 'ignore', timeout: 300_000 });
  return r.status === 0;
}

/** Path of `bin`, installing Debian package `pkg` if needed; throws with the reason when impossible. */
export function ensureBinary(bin: string, pkg: string): string {
  const found = locate(bin);
  if (found) return found;
  if (process.getuid?.() !== 0) throw new Error(`${bin} not installed and not root (apt-get install -y ${pkg})`);
  if (!locate('apt-get')) throw new Error(`${bin} not installed and no apt-get on this machine`);
  console.log(`installing ${pkg} with apt-get ...`);
  if (!apt(['install', '-y', '-q', pkg])) apt(['update', '-q']) && apt(['install', '-y', '-q', pkg]);
  const path = locate(bin);
  if (!path) throw new Error(`apt-get install ${pkg} failed`);
  return path;
}

export function versionOf(cmd: string, args: string[]): string {
  // nginx -v prints to stderr; wrk -v exits 1: take the first line of either stream.
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}
