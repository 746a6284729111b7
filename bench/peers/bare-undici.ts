// The "Node ceiling": node:http server + one undici Pool per origin, streaming both ways.
// Env: PORT, UPSTREAM (e.g. http://127.0.0.1:19001).
import http from 'node:http';
import { Pool } from 'undici';

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'expect']);
const pools = new Map<string, Pool>();
const pool = (origin: string) => pools.get(origin) ?? pools.set(origin, new Pool(origin)).get(origin)!;
const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:19001';

function strip(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  return out;
}

http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
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
}).listen(Number(process.env.PORT), '127.0.0.1');

const ppid = process.ppid;
setInterval(() => { if (process.ppid !== ppid) process.exit(0); }, 1000).unref();
