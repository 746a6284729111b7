// The "Node ceiling": node:http server + one undici Pool per origin, streaming both ways. With
// CERT and KEY (PEM files) it is node:http2's secure server instead (h2, and HTTP/1.1 by ALPN):
// the ceiling of the HTTP/2 workloads (h2.ts, `bare-h2`).
// Env: PORT, UPSTREAM (e.g. http://127.0.0.1:19001), CERT, KEY.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { Pool } from 'undici';

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'expect']);
const pools = new Map<string, Pool>();
const pool = (origin: string) => pools.get(origin) ?? pools.set(origin, new Pool(origin)).get(origin)!;
const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:19001';

/** Without connection-specific fields, nor h2's pseudo-header fields (`:path`...). */
function strip(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP.has(k) && k[0] !== ':') out[k] = v;
  return out;
}

const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool(upstream).stream(
    { path: req.url ?? '/', method: req.method as 'GET', headers: strip(req.headers), body: hasBody ? req : null },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, strip(headers));
      return res;
    },
    (err) => {
      if (!err) return;
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy(err);
    },
  );
};

const server = process.env.CERT
  ? http2.createSecureServer({ cert: readFileSync(process.env.CERT), key: readFileSync(process.env.KEY!), allowHTTP1: true }, handler)
  : http.createServer({ keepAliveTimeout: 65_000 }, handler);
server.listen(Number(process.env.PORT), '127.0.0.1');

const ppid = process.ppid;
setInterval(() => { if (process.ppid !== ppid) process.exit(0); }, 1000).unref();
