// What each upstream path of peers/bun-upstream.ts keeps of KubeProxy's semantics (issue 18), for
// `bench/bun-upstream.ts --semantics`: an origin (in this process) that refuses, resets, hangs or
// stalls; a client that never reads a 500 MiB answer (down-stream back-pressure); a slow upload
// (is the request body streamed?) and a fast one to an origin reading ~1 MB/s (up-stream
// back-pressure). Prints one line per check; the proxy runs with TIMEOUT_MS=2000.
import http from 'node:http';
import net from 'node:net';
import { statusKiB } from '../procstat.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const BIG = 500 * 2 ** 20;

/** The misbehaving origin; `stats` says how much it wrote of /big and read of the last upload. */
export function startCheckOrigin(): Promise<{ port: number; stats: { bigWritten: number; upload: { t0: number; first: number; bytes: number } }; close(): void }> {
  const stats = { bigWritten: 0, upload: { t0: 0, first: -1, bytes: 0 } };
  const chunk = Buffer.alloc(64 * 1024, 'z');
  const server = http.createServer((req, res) => {
    const sock = req.socket as net.Socket & { resetAndDestroy(): void };
    switch (req.url) {
      case '/hang': req.resume(); return;
      case '/reset-before': req.resume(); sock.resetAndDestroy(); return;
      case '/close-before': req.resume(); sock.destroy(); return;
      case '/reset-mid':
        res.writeHead(200, { 'content-length': 1e6 }).write(Buffer.alloc(10_000));
        setTimeout(() => sock.resetAndDestroy(), 200);
        return;
      case '/stall-body': res.writeHead(200, { 'content-length': 1e6 }).write(Buffer.alloc(10_000)); return;
      case '/big': {
        stats.bigWritten = 0;
        res.writeHead(200, { 'content-length': BIG });
        const pump = (): void => {
          while (stats.bigWritten < BIG) {
            stats.bigWritten += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        return pump();
      }
      case '/slow-upload': {
        const u = (stats.upload = { t0: Date.now(), first: -1, bytes: 0 });
        req.on('data', (c: Buffer) => {
          if (u.first < 0) u.first = Date.now();
          u.bytes += c.length;
          req.pause();
          setTimeout(() => req.resume(), 50);
        });
        req.on('end', () => res.end('ok'));
        return;
      }
      default: res.end('ok');
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as net.AddressInfo).port, stats,
    close: () => { server.closeAllConnections(); server.close(); },
  })));
}

/** One GET through the proxy on a connection of its own: status, bytes, how it ended, within `capMs`. */
export function get(port: number, path: string, capMs = 8000): Promise<string> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let bytes = 0;
    let text = '';
    const r = http.get({ port, host: '127.0.0.1', path, agent: false }, (res) => {
      res.on('data', (c: Buffer) => { bytes += c.length; if (text.length < 100) text += c; });
      res.on('end', () => resolve(`${res.statusCode} after ${Date.now() - t0} ms${res.statusCode! >= 500 ? `: ${text.trim()}` : `, ${bytes} bytes`}`));
      res.on('error', (e: Error & { code?: string }) => resolve(`${res.statusCode}, then the body broke off (${e.code}) after ${bytes} bytes, ${Date.now() - t0} ms`));
    });
    r.on('error', (e: Error & { code?: string }) => resolve(`${e.code} after ${Date.now() - t0} ms, ${bytes} bytes`));
    setTimeout(() => { resolve(`still waiting after ${capMs} ms (${bytes} bytes)`); r.destroy(); }, capMs);
  });
}

export async function checkSemantics(port: number, proxyPid: number, origin: Awaited<ReturnType<typeof startCheckOrigin>>, log: (s: string) => void): Promise<void> {
  const rss = () => MiB(statusKiB(proxyPid, 'VmRSS') * 1024);
  for (const p of ['/reset-before', '/close-before', '/reset-mid', '/hang', '/stall-body']) log(`  ${p}: ${await get(port, p)}`);
  {
    const r0 = rss();
    const s = net.connect(port, '127.0.0.1');
    s.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    s.pause();
    await sleep(4000);
    log(`  client never reads /big: origin wrote ${MiB(origin.stats.bigWritten)} of 500 in 4 s; proxy RSS ${r0} -> ${rss()}`);
    s.destroy();
    await sleep(500);
  }
  {
    const t0 = Date.now();
    const req = http.request({ port, host: '127.0.0.1', path: '/slow-upload', method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } });
    const done = new Promise((r) => req.on('response', (res) => res.resume().on('end', r)));
    req.on('error', () => {});
    for (let i = 0; i < 10; i++) { req.write(Buffer.alloc(16384, 'u')); await sleep(300); }
    req.end();
    await Promise.race([done, sleep(8000)]);
    const u = origin.stats.upload;
    log(`  upload 10 x 16 KiB over 3 s: origin had the first body byte ${u.first - t0} ms after the client began (${u.first - t0 < 1000 ? 'streamed' : 'buffered'}), ${u.bytes} bytes`);
  }
  {
    const r0 = rss();
    const req = http.request({ port, host: '127.0.0.1', path: '/slow-upload', method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } });
    req.on('error', () => {});
    const chunk = Buffer.alloc(65536, 'v');
    let sent = 0;
    const end = Date.now() + 4000;
    while (Date.now() < end) {
      sent += chunk.length;
      if (!req.write(chunk)) await Promise.race([new Promise((r) => req.once('drain', r)), sleep(end - Date.now())]);
    }
    log(`  fast upload to an origin reading ~1 MB/s: ${MiB(sent)} accepted from the client in 4 s, origin read ${MiB(origin.stats.upload.bytes)}; proxy RSS ${r0} -> ${rss()}`);
    req.destroy();
  }
}
