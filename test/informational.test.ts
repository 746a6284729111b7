/**
 * 1xx answers of an instance (RFC 9110 §15.2): 103 Early Hints (RFC 8297) and 102 Processing reach
 * HTTP/1.1 and HTTP/2 clients before the final answer; the cache never keeps them; 100-continue is
 * still the proxy's own.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, createServer as createH2cServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { certDir, makeCertificate, type TestCertificate } from './helpers/certs.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

const LINK = '</style.css>; rel=preload; as=style';

/** What a client saw, in order: `103`, `102`, then the final status. */
interface Seen {
  events: string[];
  hints: IncomingHttpHeaders[];
  body: string;
}

function viaHttp1(port: number, path: string, tls: { ca: string } | undefined, extra: { headers?: Record<string, string>; body?: string } = {}): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const seen: Seen = { events: [], hints: [], body: '' };
    const opts = { host: '127.0.0.1', port, path, method: extra.body === undefined ? 'GET' : 'POST', headers: { host: 'hints.test', ...extra.headers }, agent: false as const };
    const req = tls ? httpsRequest({ ...opts, ca: tls.ca, servername: 'hints.test' }) : httpRequest(opts);
    req.on('information', (info) => {
      seen.events.push(String(info.statusCode));
      if (info.statusCode === 103) seen.hints.push(info.headers);
    });
    req.on('response', (res) => {
      seen.events.push(String(res.statusCode));
      res.setEncoding('utf8');
      res.on('data', (d: string) => (seen.body += d));
      res.on('end', () => resolve(seen));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(extra.body);
  });
}

function viaHttp2(port: number, path: string, ca: string): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const session = connect(`https://127.0.0.1:${port}`, { ca, servername: 'hints.test' });
    session.on('error', reject);
    const seen: Seen = { events: [], hints: [], body: '' };
    const stream = session.request({ ':path': path, ':authority': 'hints.test' });
    stream.on('headers', (h) => {
      seen.events.push(String(h[':status']));
      if (h[':status'] === 103) seen.hints.push(h);
    });
    stream.on('response', (h) => seen.events.push(String(h[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (seen.body += d));
    stream.on('end', () => {
      session.close();
      resolve(seen);
    });
    stream.on('error', reject);
  });
}

describe('1xx answers of an instance', () => {
  let dir: ReturnType<typeof certDir>;
  let cert: TestCertificate;
  let origin: Origin;
  let h2cOrigin: Http2Server;
  let proxy: TestProxy;
  let tlsPort: number;

  before(async () => {
    dir = certDir();
    cert = makeCertificate(dir.dir, 'hints', ['hints.test']);
    origin = await startOrigin((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeEarlyHints({ link: LINK, 'x-hint': 'early', connection: 'x-secret', 'x-secret': 'hop' });
        res.writeProcessing();
        // The final answer comes later: the hints must not wait for it.
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': req.url!.startsWith('/cached') ? 'max-age=60' : 'no-store' });
          res.end('final');
        }, 50);
      });
    });
    // The same over HTTP/2 without TLS (services[].protocol: h2c).
    h2cOrigin = createH2cServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeEarlyHints({ link: LINK, 'x-hint': 'early' });
        setTimeout(() => res.end('final'), 50);
      });
    });
    await new Promise<void>((resolve) => h2cOrigin.listen(0, '127.0.0.1', resolve));
    proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }] },
      services: [
        { name: 'hints', domain: 'hints.test', hosts: [{ port: origin.port }] },
        { name: 'hints-h2c', domain: 'h2c.hints.test', protocol: 'h2c', hosts: [{ port: (h2cOrigin.address() as AddressInfo).port }] },
      ],
    });
    tlsPort = proxy.runtime.tls!.address().port;
  });
  after(async () => {
    await proxy.close();
    await origin.close();
    await new Promise<void>((resolve) => h2cOrigin.close(() => resolve()));
    dir.cleanup();
  });

  const clients: Array<[string, (path: string) => Promise<Seen>]> = [
    ['HTTP/1.1', (path) => viaHttp1(proxy.port, path, undefined)],
    ['HTTP/1.1 over TLS', (path) => viaHttp1(tlsPort, path, { ca: cert.cert })],
    ['HTTP/2', (path) => viaHttp2(tlsPort, path, cert.cert)],
  ];

  for (const [name, send] of clients) {
    test(`103 Early Hints and 102 Processing reach the client before the 200 (${name})`, async () => {
      const seen = await send('/page');
      assert.deepEqual(seen.events, ['103', '102', '200']);
      assert.equal(seen.body, 'final');
      const hint = seen.hints[0]!;
      assert.equal(hint.link, LINK);
      assert.equal(hint['x-hint'], 'early');
      assert.equal(hint['x-secret'], undefined, 'a field the instance named in Connection');
    });

    test(`a cached answer is served without the instance's 103 (${name})`, async () => {
      const path = `/cached/${name.replace(/\W/g, '')}`;
      assert.deepEqual((await send(path)).events, ['103', '102', '200']);
      const hit = await send(path);
      assert.deepEqual(hit.events, ['200'], 'a hit carries no 1xx');
      assert.equal(hit.body, 'final');
    });
  }

  test('a 103 from an HTTP/2 (h2c) instance reaches the client too', async () => {
    const seen = await viaHttp1(proxy.port, '/page', undefined, { headers: { host: 'h2c.hints.test' } });
    assert.deepEqual(seen.events, ['103', '200']);
    assert.equal(seen.hints[0]!.link, LINK);
    assert.equal(seen.body, 'final');
  });

  test('100-continue is still answered by the proxy, then the hints and the answer follow', async () => {
    const seen = await viaHttp1(proxy.port, '/upload', undefined, { headers: { expect: '100-continue' }, body: 'data' });
    assert.deepEqual(seen.events, ['100', '103', '102', '200']);
  });
});
