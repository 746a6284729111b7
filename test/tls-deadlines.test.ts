/**
 * The client deadlines on the TLS port's HTTP/1.1 connections: slow headers and slow bodies get
 * 408, an idle keep-alive connection is closed, and an answer slower than requestTimeout still
 * arrives. On Bun the TLS port is another server than on Node (src/server/tls-bun.ts keeps these
 * deadlines there), so this file runs on every leg.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type TLSSocket } from 'node:tls';
import { certDir, makeCertificate, type TestCertificate } from './helpers/certs.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

interface Client {
  socket: TLSSocket;
  /** What the client received, once the proxy closed the connection. */
  done: Promise<string>;
  closedAt: () => number;
}

describe('TLS port deadlines (HTTP/1.1)', () => {
  let dir: ReturnType<typeof certDir>;
  let cert: TestCertificate;
  let origin: Origin;
  let proxy: TestProxy;
  let port: number;
  const seen: string[] = [];
  const clients: Client[] = [];

  /** An HTTP/1.1 client over TLS that sends `head`, then `drip` every `everyMs` (if given). */
  async function client(head: string, drip?: string, everyMs = 100): Promise<Client> {
    const socket = connect({ host: '127.0.0.1', port, servername: 'slow.test', ca: cert.cert, ALPNProtocols: ['http/1.1'] });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.write(head);
    const timer = drip === undefined ? undefined : setInterval(() => socket.writable && socket.write(drip), everyMs);
    let closedAt = 0;
    const done = new Promise<string>((resolve) =>
      socket.once('close', () => {
        closedAt = Date.now();
        clearInterval(timer);
        resolve(Buffer.concat(chunks).toString('latin1'));
      }),
    );
    const c = { socket, done, closedAt: () => closedAt };
    clients.push(c);
    return c;
  }

  before(async () => {
    dir = certDir();
    cert = makeCertificate(dir.dir, 'slow', ['slow.test']);
    origin = await startOrigin((req, res) => {
      seen.push(req.url!);
      req.resume();
      req.on('end', () => setTimeout(() => res.end('ok'), req.url === '/late' ? 3000 : 0));
    });
    proxy = await startProxy({
      client: { headerTimeout: '1s', requestTimeout: '2s', keepAliveTimeout: '1s' },
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }] },
      services: [{ name: 'slow', domain: 'slow.test', hosts: [{ port: origin.port }] }],
    });
    port = proxy.runtime.tls!.address().port;
  });
  after(async () => {
    for (const c of clients) c.socket.destroy();
    await proxy.close();
    await origin.close();
    dir.cleanup();
  });

  test('slow headers and a slow body get 408 and a closed connection; the incomplete head never reaches the instance', async () => {
    const headers = await client('GET /slow-head HTTP/1.1\r\nHost: slow.test\r\n', 'X-Pad: a\r\n');
    const body = await client('POST /slow-body HTTP/1.1\r\nHost: slow.test\r\nContent-Length: 100000\r\n\r\n', 'x');
    const started = Date.now();
    assert.match(await headers.done, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(await body.done, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.ok(Date.now() - started < 8000, 'cut within a few seconds of the timeouts');
    assert.ok(!seen.includes('/slow-head'));
  });

  test('a keep-alive connection that stays idle after its answer is closed after keepAliveTimeout', async () => {
    const idle = await client('GET /once HTTP/1.1\r\nHost: slow.test\r\n\r\n');
    const answered = Date.now();
    const text = await idle.done;
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    const idleFor = idle.closedAt() - answered;
    assert.ok(idleFor >= 500 && idleFor < 8000, `closed ${idleFor} ms after the answer`);
  });

  test('an answer slower than requestTimeout still arrives: the request itself was complete', async () => {
    const late = await client('GET /late HTTP/1.1\r\nHost: slow.test\r\nConnection: close\r\n\r\n');
    assert.match(await late.done, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
  });
});
