// The "Node ceiling" of the HTTP/2 workloads (h2.ts): node:http2's secure server (h2, and
// HTTP/1.1 by ALPN) + one undici Pool to the origin, streaming, nothing else: what Node itself
// costs per TLS connection and per h2 request. Env: PORT, UPSTREAM, CERT, KEY (PEM file paths).
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'expect', 'host']);
const pool = new Pool(process.env.UPSTREAM ?? 'http://127.0.0.1:19001');

/** Without pseudo-header fields (`:path`…) and connection-specific ones (RFC 9113 §8.2.2). */
function strip(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP.has(k) && !k.startsWith(':')) out[k] = v;
  return out;
}

http2.createSecureServer({ cert: readFileSync(process.env.CERT!), key: readFileSync(process.env.KEY!), allowHTTP1: true }, (req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  const host = req.headers[':authority'] ?? req.headers.host ?? 'localhost';
  pool.stream(
    { path: req.url ?? '/', method: req.method as 'GET', headers: { ...strip(req.headers), host }, body: hasBody ? req : null },
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
}).listen(Number(process.env.PORT), '127.0.0.1');

const ppid = process.ppid;
setInterval(() => { if (process.ppid !== ppid) process.exit(0); }, 1000).unref();
