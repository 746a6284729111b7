/**
 * The demo downstream service: echoes the request (method, path, headers, body size) and its own
 * name as JSON. Flags add latency or failures so the proxy's behaviour can be watched by hand.
 *
 *   kubeproxy-demo-upstream --port 9001 --name alpha [--latency 200] [--fail-rate 0.1] [--status 503]
 */
import { createServer, type Server } from 'node:http';
import { parseArgs } from 'node:util';

export interface DemoOptions {
  port: number;
  address?: string;
  name: string;
  /** Milliseconds added before answering. */
  latency?: number;
  /** Share (0-1) of requests answered with `failStatus`. */
  failRate?: number;
  failStatus?: number;
}

export function startDemoUpstream(opts: DemoOptions): Promise<Server> {
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      const answer = () => {
        const fail = (opts.failRate ?? 0) > 0 && Math.random() < (opts.failRate ?? 0);
        const status = fail ? (opts.failStatus ?? 503) : 200;
        if (req.url === '/healthz') {
          res.writeHead(fail ? status : 200, { 'content-type': 'text/plain' });
          res.end(fail ? 'failing\n' : 'ok\n');
          return;
        }
        const body = JSON.stringify(
          { instance: opts.name, port: opts.port, method: req.method, path: req.url, headers: req.headers, bodyBytes: bytes, failed: fail },
          null,
          2,
        );
        res.writeHead(status, { 'content-type': 'application/json', 'x-demo-instance': opts.name });
        res.end(`${body}\n`);
      };
      if (opts.latency) setTimeout(answer, opts.latency);
      else answer();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address ?? '127.0.0.1', () => resolve(server));
  });
}

const HELP = `Usage: kubeproxy-demo-upstream --port N --name NAME [--address A] [--latency MS] [--fail-rate R] [--status CODE]
Echoes each request (method, path, headers, body size) and its own name as JSON.
  --latency MS     wait MS milliseconds before answering
  --fail-rate R    answer a share R (0-1) of requests with --status (default 503)
`;

export async function demoMain(argv: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        port: { type: 'string', short: 'p' },
        name: { type: 'string', short: 'n' },
        address: { type: 'string', short: 'a' },
        latency: { type: 'string' },
        'fail-rate': { type: 'string' },
        status: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`kubeproxy-demo-upstream: ${(err as Error).message}\n${HELP}`);
    return 64;
  }
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const port = Number(v.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write(`kubeproxy-demo-upstream: --port must be an integer 1-65535\n${HELP}`);
    return 64;
  }
  const server = await startDemoUpstream({
    port,
    address: v.address ?? '127.0.0.1',
    name: v.name ?? `demo-${port}`,
    latency: Number(v.latency ?? 0),
    failRate: Number(v['fail-rate'] ?? 0),
    failStatus: Number(v.status ?? 503),
  });
  process.stdout.write(`demo upstream ${v.name ?? port} listening on ${v.address ?? '127.0.0.1'}:${port}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}
