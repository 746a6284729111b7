// NGINX contender: a generated nginx.conf in a temp dir, one process (master_process off),
// keep-alive upstream, proxy_cache on /cacheable only. Access log on, as in NGINX's defaults;
// keepalive_requests raised so that, like the Node contenders, it never recycles connections.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NotAvailable, type Contender, type Ctx, type Running } from './contenders.ts';
import { freePort, startProcess, stopProcess, waitForPort } from './processes.ts';

export function nginxConf(dir: string, port: number, originPort: number): string {
  const proxy = `proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";`;
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=bench:10m max_size=256m inactive=1h use_temp_path=off;
  keepalive_requests 1000000;
  # Hold a 64 KiB response in memory (the default 8 x 4k buffers spill it to a temp file).
  proxy_buffer_size 16k;
  proxy_buffers 8 16k;
  upstream origin { server 127.0.0.1:${originPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    proxy_request_buffering off;
    location / { ${proxy} }
    location = /cacheable { ${proxy} proxy_cache bench; proxy_cache_valid 200 1h; add_header X-Cache-Status $upstream_cache_status; }
  }
}
`;
}

/** Starts NGINX on the proxy CPU with the config `conf` writes for its directory and port (the HTTP/2 workloads of h2.ts give theirs). */
export async function startNginx(ctx: Ctx, conf: (dir: string, port: number, nginxBin: string) => string): Promise<Running> {
  if (!ctx.nginxBin) throw new NotAvailable(ctx.nginxMissing ?? 'not installed');
  const dir = join(ctx.tmpDir, `nginx-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), conf(dir, port, ctx.nginxBin));
  const proc = startProcess(ctx.nginxBin, ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
    cpu: ctx.proxyCpu, logFile: join(dir, 'stdout.log'),
  });
  try {
    await waitForPort(proc, port, 10_000);
  } catch (e) {
    await stopProcess(proc);
    throw new NotAvailable(`failed to start: ${(e as Error).message}`);
  }
  return { pid: proc.pid, port, fresh: true, stop: () => stopProcess(proc) };
}

export const nginx: Contender = {
  id: 'nginx', kind: 'proxy', workloads: ['small', '64k', 'cache-hit'], pinned: true,
  start: (ctx) => startNginx(ctx, (dir, port) => nginxConf(dir, port, ctx.originPorts[0])),
};
