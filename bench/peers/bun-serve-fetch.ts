// The "Bun ceiling": Bun.serve passing each request to the origin with Bun's fetch (keep-alive
// pool of Bun's own), streaming the answer back; /cacheable from memory when MEMORY=1 (the
// cache-hit ceiling on Bun). Runs on Bun only (bench/bun.ts). Env: PORT, UPSTREAM, MEMORY.
declare const Bun: { serve(o: { port: number; hostname: string; fetch(req: Request): Response | Promise<Response> }): unknown };

const HOP = ['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization'];
const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:19001';
const BODY = new TextEncoder().encode('Hello, World!');
const MEMORY_HEADERS = { 'content-type': 'text/plain', 'cache-control': 'public, max-age=3600' };

Bun.serve({
  port: Number(process.env.PORT),
  hostname: '127.0.0.1',
  async fetch(req) {
    if (process.env.MEMORY === '1') return new Response(BODY, { headers: MEMORY_HEADERS });
    const url = new URL(req.url);
    const headers = new Headers(req.headers);
    for (const h of HOP) headers.delete(h);
    const res = await fetch(upstream + url.pathname + url.search, { method: req.method, headers, body: req.body, redirect: 'manual', decompress: false } as RequestInit);
    const out = new Headers(res.headers);
    for (const h of HOP) out.delete(h);
    return new Response(res.body, { status: res.status, headers: out });
  },
});

const ppid = process.ppid;
setInterval(() => { if (process.ppid !== ppid) process.exit(0); }, 1000).unref();
