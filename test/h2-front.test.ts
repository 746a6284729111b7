/**
 * The HTTP/2 front: what the proxy does over HTTP/1.1 it does over h2 on the TLS port. The core
 * cases run over both protocols (helpers/both-protocols.ts); h2-only ones check the protocol's
 * own rules (RFC 9113).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { once } from 'node:events';
import { bothProtocols, protocolClient, type TlsTarget } from './helpers/both-protocols.ts';
import { certDir, makeCertificate, type TestCertificate } from './helpers/certs.ts';
import { scrape } from './helpers/metrics.ts';
import { deadPort, startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

describe('HTTP/2 front', () => {
  let dir: ReturnType<typeof certDir>;
  let cert: TestCertificate;
  let api: Origin;
  let other: Origin;
  let proxy: TestProxy;
  let target: TlsTarget;
  const protocols: string[] = [];

  before(async () => {
    dir = certDir();
    cert = makeCertificate(dir.dir, 'h2', ['*.h2.test']);
    api = await startOrigin((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const cacheable = req.url!.startsWith('/cached/');
        // Connection-specific fields an instance may send: never forwarded over h2 (RFC 9113 §8.2.2).
        res.writeHead(200, {
          'content-type': 'application/json',
          'cache-control': cacheable ? 'max-age=60' : 'no-store',
          connection: 'x-private',
          'x-private': 'hop',
          'keep-alive': 'timeout=5',
        });
        res.end(JSON.stringify({ service: 'api', url: req.url, method: req.method, body: Buffer.concat(chunks).toString(), host: req.headers.host, cookie: req.headers.cookie, proto: req.headers['x-forwarded-proto'] }));
      });
    });
    other = await startOrigin((_req, res) => res.end(JSON.stringify({ service: 'other' })));
    proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }] },
      client: { maxBodySize: '1KiB', maxHeaderSize: '4KiB' },
      retries: { attempts: 2 },
      services: [
        { name: 'api', domain: 'api.h2.test', loadBalancer: 'round-robin', hosts: [{ port: await deadPort() }, { port: api.port }] },
        { name: 'other', domain: 'other.h2.test', hosts: [{ port: other.port }] },
      ],
    });
    proxy.runtime.onRequestEnd((ctx) => protocols.push(ctx.req.httpVersion));
    target = { port: proxy.runtime.tls!.address().port, ca: cert.cert };
  });
  after(async () => {
    await proxy.close();
    await api.close();
    await other.close();
    dir.cleanup();
  });

  bothProtocols('requests are routed by their authority', () => target, async (c) => {
    assert.equal(JSON.parse((await c.request({ host: 'api.h2.test', path: '/a' })).text).service, 'api');
    assert.equal(JSON.parse((await c.request({ host: 'other.h2.test', path: '/a' })).text).service, 'other');
    assert.equal((await c.request({ host: 'nobody.h2.test' })).status, 421);
  });

  bothProtocols('the instance gets the method, path, body, Host and cookies, and is told https', () => target, async (c) => {
    for (const contentLength of [true, false]) {
      const r = await c.request({ host: 'api.h2.test', method: 'POST', path: '/p?q=1', body: 'payload', contentLength, headers: { cookie: 'a=1' } });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.text), { service: 'api', url: '/p?q=1', method: 'POST', body: 'payload', host: 'api.h2.test', cookie: 'a=1', proto: 'https' });
    }
  });

  bothProtocols('a body over client.maxBodySize is refused with 413', () => target, async (c) => {
    for (const contentLength of [true, false]) {
      const r = await c.request({ host: 'api.h2.test', method: 'POST', path: '/big', body: 'x'.repeat(5000), contentLength });
      assert.equal(r.status, 413, `content-length sent: ${contentLength}`);
    }
  });

  bothProtocols('headers over client.maxHeaderSize are refused with 431', () => target, async (c) => {
    const r = await c.request({ host: 'api.h2.test', path: '/h', headers: { 'x-big': 'y'.repeat(6000) } });
    assert.equal(r.status, 431);
  });

  bothProtocols('a GET to a dead instance is retried on the live one', () => target, async (c) => {
    for (let i = 0; i < 4; i++) assert.equal((await c.request({ host: 'api.h2.test', path: `/retry${i}` })).status, 200);
  });

  bothProtocols('connection-specific fields of the instance never reach the client', () => target, async (c) => {
    const r = await c.request({ host: 'api.h2.test', path: '/hop' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-private'], undefined, 'a field the instance named in Connection');
    assert.notEqual(r.headers.connection, 'x-private');
    // Over h2 none at all (RFC 9113 §8.2.2); over HTTP/1.1 the proxy's own Connection may say close.
    if (c.protocol === 'HTTP/2') for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade']) assert.equal(r.headers[name], undefined, name);
  });

  bothProtocols('requests are counted in kubeproxy_requests_total', () => target, async (c) => {
    const labels = { service: 'other', method: 'GET', status_class: '2xx' };
    const before = (await scrape(proxy.adminPort)).get('kubeproxy_requests_total', labels) ?? 0;
    await c.request({ host: 'other.h2.test', path: '/m1' });
    await c.request({ host: 'other.h2.test', path: '/m2' });
    assert.equal((await scrape(proxy.adminPort)).get('kubeproxy_requests_total', labels), before + 2);
  });

  test('an entry stored over HTTP/1.1 is a hit over HTTP/2, and one stored over HTTP/2 a hit over HTTP/1.1', async () => {
    const h1 = protocolClient('HTTP/1.1', target);
    const h2 = protocolClient('HTTP/2', target);
    try {
      for (const [first, second] of [[h1, h2], [h2, h1]] as const) {
        const path = `/cached/${first.protocol}-${Date.now()}`;
        const stored = await first.request({ host: 'api.h2.test', path });
        assert.match(String(stored.headers['cache-status']), /stored/);
        const hit = await second.request({ host: 'api.h2.test', path });
        assert.match(String(hit.headers['cache-status']), /hit/, `${second.protocol} after ${first.protocol}`);
        assert.equal(hit.text, stored.text);
      }
    } finally {
      h1.close();
      h2.close();
    }
  });

  test('ALPN: the TLS port offers h2 and HTTP/1.1, and the request path knows which one it serves', async () => {
    for (const [offer, chosen] of [[['h2', 'http/1.1'], 'h2'], [['http/1.1'], 'http/1.1']] as const) {
      const s = tlsConnect({ host: '127.0.0.1', port: target.port, servername: 'api.h2.test', ca: cert.cert, ALPNProtocols: [...offer] });
      await once(s, 'secureConnect');
      assert.equal(s.alpnProtocol, chosen);
      s.destroy();
    }
    protocols.length = 0;
    const h2 = protocolClient('HTTP/2', target);
    await h2.request({ host: 'other.h2.test' });
    h2.close();
    assert.deepEqual(protocols, ['2.0']);
  });

  test('an h2 session carries many concurrent streams, answered in full', async () => {
    const session = connect(`https://127.0.0.1:${target.port}`, { ca: cert.cert, servername: 'api.h2.test' });
    try {
      const texts = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          new Promise<string>((resolve, reject) => {
            const s = session.request({ ':path': `/c${i}`, ':authority': 'other.h2.test' });
            let t = '';
            s.setEncoding('utf8');
            s.on('data', (d: string) => (t += d));
            s.on('end', () => resolve(t));
            s.on('error', reject);
          }),
        ),
      );
      assert.ok(texts.every((t) => JSON.parse(t).service === 'other'));
    } finally {
      session.close();
    }
  });
});
