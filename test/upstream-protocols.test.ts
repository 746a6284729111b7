/**
 * `services[].protocol`: instances spoken to over https (verified against `tls.ca`), h2 (TLS,
 * ALPN h2) and h2c (cleartext HTTP/2), with real node:https and node:http2 servers; the schema's
 * path-precise errors for the keys.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, createSecureServer, createServer as createH2cServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2SecureServer } from 'node:http2';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { ConfigError, loadConfigFile, validateConfig } from '../src/config/load.ts';
import { Runtime } from '../src/runtime.ts';
import { certDir, makeCertificate, type TestCertificate } from './helpers/certs.ts';
import { request } from './helpers/http.ts';
import { deadPort } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

type Handler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void;

/** Echoes what the instance saw as JSON; `/trailers` answers with a trailer field; `/slow` waits 300 ms. */
const echo: Handler = (req, anyRes) => {
  // The calls below are common to both response classes.
  const res = anyRes as ServerResponse;
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.url === '/trailers') {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('body');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
      return;
    }
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ version: req.httpVersion, host: req.headers.host ?? req.headers[':authority'], method: req.method, body: Buffer.concat(chunks).toString() }));
    };
    if (req.url === '/big') {
      // 4 MiB, then a trailer: far more than the h2 flow-control windows hold.
      res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'x-checksum' });
      const chunk = Buffer.alloc(64 * 1024, 120);
      let i = 0;
      const more = (): void => {
        while (i < 64) {
          i++;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.addTrailers({ 'x-checksum': 'big' });
        res.end();
      };
      return more();
    }
    if (req.url === '/goaway') {
      // The instance says GOAWAY on this session once it answered.
      res.end('bye', () => (req as Http2ServerRequest).stream.session?.close());
      return;
    }
    if (req.url === '/slow') setTimeout(answer, 300);
    else answer();
  });
};

async function listen(server: HttpsServer | Http2Server | Http2SecureServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function stop(server: HttpsServer | Http2Server | Http2SecureServer, sessions: Set<{ destroy(): void }>): Promise<void> {
  for (const s of sessions) s.destroy();
  if ('closeAllConnections' in server) server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('instances over https, h2 and h2c', () => {
  let dir: ReturnType<typeof certDir>;
  let api: TestCertificate;
  let other: TestCertificate;
  let front: TestCertificate;
  let httpsOrigin: HttpsServer;
  let h2Origin: Http2SecureServer;
  let h2cOrigin: Http2Server;
  const h2Sessions = new Set<{ destroy(): void }>();
  const h2cSessions = new Set<{ destroy(): void }>();
  let h2cSessionCount = 0;
  let h2cConcurrent = 0;
  let h2cMaxConcurrent = 0;
  let proxy: TestProxy;

  before(async () => {
    dir = certDir();
    api = makeCertificate(dir.dir, 'api', ['api.internal']);
    other = makeCertificate(dir.dir, 'other', ['other.internal']);
    front = makeCertificate(dir.dir, 'front', ['*.proto.test']);
    httpsOrigin = createHttpsServer({ cert: api.cert, key: readKey(api) }, echo);
    // An upgrade over TLS: 101, then bytes echoed upper-cased.
    httpsOrigin.on('upgrade', (_req, socket: Duplex) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
    });
    h2Origin = createSecureServer({ cert: api.cert, key: readKey(api) }, echo);
    h2Origin.on('session', (s) => {
      h2Sessions.add(s);
      s.once('close', () => h2Sessions.delete(s));
    });
    h2cOrigin = createH2cServer((req, res) => {
      h2cMaxConcurrent = Math.max(h2cMaxConcurrent, ++h2cConcurrent);
      res.once('close', () => h2cConcurrent--);
      echo(req, res);
    });
    h2cOrigin.on('session', (s) => {
      h2cSessionCount++;
      h2cSessions.add(s);
      s.once('close', () => h2cSessions.delete(s));
    });
    const [httpsPort, h2Port, h2cPort, dead] = [await listen(httpsOrigin), await listen(h2Origin), await listen(h2cOrigin), await deadPort()];
    const verified = { ca: api.certFile, serverName: 'api.internal' };
    proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: front.certFile, key: front.keyFile }] },
      client: { maxBodySize: '64KiB' },
      services: [
        { name: 'https', domain: 'https.proto.test', protocol: 'https', tls: verified, hosts: [{ port: httpsPort }] },
        { name: 'wrong-ca', domain: 'wrong-ca.proto.test', protocol: 'https', tls: { ca: other.certFile, serverName: 'api.internal' }, hosts: [{ port: httpsPort }] },
        { name: 'wrong-name', domain: 'wrong-name.proto.test', protocol: 'https', tls: { ca: api.certFile, serverName: 'billing.internal' }, hosts: [{ port: httpsPort }] },
        { name: 'unverified', domain: 'unverified.proto.test', protocol: 'https', tls: { ca: other.certFile, verify: false }, hosts: [{ port: httpsPort }] },
        { name: 'h2', domain: 'h2.proto.test', protocol: 'h2', tls: verified, hosts: [{ port: h2Port }] },
        { name: 'h2-wrong-ca', domain: 'h2-wrong-ca.proto.test', protocol: 'h2', tls: { ca: other.certFile, serverName: 'api.internal' }, hosts: [{ port: h2Port }] },
        { name: 'h2-to-h1', domain: 'h2-to-h1.proto.test', protocol: 'h2', tls: verified, hosts: [{ port: httpsPort }] },
        { name: 'h2c', domain: 'h2c.proto.test', protocol: 'h2c', hosts: [{ port: h2cPort }] },
        { name: 'h2c-dead', domain: 'dead.proto.test', protocol: 'h2c', retries: { attempts: 0 }, hosts: [{ port: dead }] },
      ],
    });
  });
  after(async () => {
    await proxy.close();
    await stop(httpsOrigin, new Set());
    await stop(h2Origin, h2Sessions);
    await stop(h2cOrigin, h2cSessions);
    dir.cleanup();
  });

  test('an https instance verified against tls.ca answers over HTTP/1.1', async () => {
    const r = await request(proxy.port, { host: 'https.proto.test', method: 'POST', path: '/p', body: 'payload' });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.text), { version: '1.1', host: 'https.proto.test', method: 'POST', body: 'payload' });
  });

  test('an instance whose certificate tls.ca did not sign: 502 naming the refusal', async () => {
    const r = await request(proxy.port, { host: 'wrong-ca.proto.test' });
    assert.equal(r.status, 502);
    assert.match(r.text, /upstream TLS: self-signed certificate/);
  });

  test('a certificate for another name than tls.serverName: 502 naming the mismatch', async () => {
    const r = await request(proxy.port, { host: 'wrong-name.proto.test' });
    assert.equal(r.status, 502);
    assert.match(r.text, /upstream TLS: .*billing\.internal.*ERR_TLS_CERT_ALTNAME_INVALID/);
  });

  test('an Upgrade request to an https instance is tunnelled over TLS verified against tls.ca', async () => {
    const tunnel = async (host: string) => {
      const socket = netConnect(proxy.port, '127.0.0.1');
      await once(socket, 'connect');
      socket.write(`GET /chat HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n`);
      let data = '';
      socket.on('data', (d: Buffer) => {
        data += d.toString();
        if (data.startsWith('HTTP/1.1 101') && data.endsWith('\r\n\r\n')) socket.write('over tls');
      });
      const deadline = Date.now() + 5000;
      while (!data.includes('OVER TLS') && !/^HTTP\/1\.1 5\d\d[^]*\r\n\r\n/.test(data) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      socket.destroy();
      return data;
    };
    assert.match(await tunnel('https.proto.test'), /^HTTP\/1\.1 101 Switching Protocols[^]*OVER TLS$/);
    assert.match(await tunnel('wrong-ca.proto.test'), /^HTTP\/1\.1 502 /);
  });

  test('verify: false accepts a certificate no CA signed', async () => {
    const r = await request(proxy.port, { host: 'unverified.proto.test' });
    assert.equal(r.status, 200);
  });

  test('h2 over TLS: the instance gets HTTP/2, with the method, Host as authority and the body', async () => {
    const r = await request(proxy.port, { host: 'h2.proto.test', method: 'POST', path: '/p', body: 'payload' });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.text), { version: '2.0', host: 'h2.proto.test', method: 'POST', body: 'payload' });
    const refused = await request(proxy.port, { host: 'h2-wrong-ca.proto.test' });
    assert.equal(refused.status, 502);
    assert.match(refused.text, /upstream TLS: self-signed certificate/);
    const noH2 = await request(proxy.port, { host: 'h2-to-h1.proto.test' });
    assert.equal(noH2.status, 502, 'an instance that does not offer h2 by ALPN');
    assert.match(noH2.text, /upstream TLS: tlsv1 alert no application protocol \(instance 127\.0\.0\.1:\d+, ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL\)/);
  });

  test("an h2 instance's trailers reach an h2 client, and an HTTP/1.1 client only with TE: trailers", async () => {
    const tlsPort = proxy.runtime.tls!.address().port;
    const session = connect(`https://127.0.0.1:${tlsPort}`, { ca: front.cert, servername: 'h2.proto.test' });
    try {
      const trailers = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
        const s = session.request({ ':path': '/trailers', ':authority': 'h2.proto.test' });
        s.on('trailers', resolve);
        s.on('error', reject);
        s.resume();
      });
      assert.equal(trailers['x-checksum'], 'abc123');
    } finally {
      session.close();
    }
    const h1 = (te: boolean) =>
      new Promise<{ body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: '/trailers', headers: { host: 'h2.proto.test', ...(te ? { te: 'trailers' } : {}) }, agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ body, trailers: res.trailers }));
        });
        req.on('error', reject);
        req.end();
      });
    const withTe = await h1(true);
    assert.equal(withTe.body, 'body');
    assert.equal(withTe.trailers['x-checksum'], 'abc123');
    const without = await h1(false);
    assert.equal(without.body, 'body');
    assert.equal(without.trailers['x-checksum'], undefined);
  });

  test('h2c: concurrent requests, streamed bodies too, are streams of one session', async () => {
    const sessionsBefore = h2cSessionCount;
    h2cMaxConcurrent = 0;
    const started = performance.now();
    // Chunked request bodies (no Content-Length): each is streamed to the instance.
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => request(proxy.port, { host: 'h2c.proto.test', method: 'POST', path: '/slow', headers: { 'transfer-encoding': 'chunked' }, body: `body${i}` })),
    );
    const elapsed = performance.now() - started;
    for (const [i, r] of replies.entries()) {
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.text), { version: '2.0', host: 'h2c.proto.test', method: 'POST', body: `body${i}` });
    }
    assert.ok(h2cSessionCount - sessionsBefore <= 1, `sessions opened: ${h2cSessionCount - sessionsBefore}`);
    assert.ok(h2cMaxConcurrent > 1, `the instance saw at most ${h2cMaxConcurrent} stream(s) at once`);
    // One at a time would take 10 × 300 ms.
    assert.ok(elapsed < 2500, `10 calls of 300 ms took ${Math.round(elapsed)} ms`);
  });

  test('a slow client gets every byte and the trailer of a large h2c answer (flow control, no loss)', async () => {
    const { length, trailer } = await new Promise<{ length: number; trailer: string | undefined }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: '/big', headers: { host: 'h2c.proto.test', te: 'trailers' }, agent: false }, (res) => {
        let length = 0;
        // Reads in bursts with pauses, so the proxy's writes back up and the instance's stream is paused.
        const slow = setInterval(() => (res.isPaused() ? res.resume() : res.pause()), 20);
        res.on('data', (d: Buffer) => (length += d.length));
        res.on('end', () => {
          clearInterval(slow);
          resolve({ length, trailer: res.trailers['x-checksum'] });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(length, 64 * 64 * 1024);
    assert.equal(trailer, 'big');
  });

  test('an h2c instance that sends GOAWAY: the next requests go over a new session', async () => {
    const before = h2cSessionCount;
    assert.equal((await request(proxy.port, { host: 'h2c.proto.test', path: '/goaway' })).text, 'bye');
    for (let i = 0; i < 3; i++) assert.equal((await request(proxy.port, { host: 'h2c.proto.test', path: '/after' })).status, 200);
    assert.ok(h2cSessionCount > before, 'a new session was opened');
  });

  test('a chunked body over client.maxBodySize to an h2c instance: 413', async () => {
    const r = await request(proxy.port, { host: 'h2c.proto.test', method: 'POST', path: '/p', headers: { 'transfer-encoding': 'chunked' }, body: Buffer.alloc(100 * 1024, 97) });
    assert.equal(r.status, 413);
    assert.equal((await request(proxy.port, { host: 'h2c.proto.test', path: '/after-413' })).status, 200);
  });

  test('an h2c instance that is down: 503 naming the refused connection', async () => {
    const r = await request(proxy.port, { host: 'dead.proto.test' });
    assert.equal(r.status, 503);
    assert.match(r.text, /ECONNREFUSED/);
  });
});

describe('upstream TLS config', () => {
  let dir: ReturnType<typeof certDir>;
  let api: TestCertificate;
  let other: TestCertificate;

  before(() => {
    dir = certDir();
    api = makeCertificate(dir.dir, 'api', ['api.internal']);
    other = makeCertificate(dir.dir, 'other', ['other.internal']);
  });
  after(() => dir.cleanup());

  const service = (extra: Record<string, unknown>) => ({ proxy: { services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: 1 }], ...extra }] } });
  const problems = (raw: unknown): string[] => {
    try {
      validateConfig(raw);
    } catch (err) {
      if (err instanceof ConfigError) return [...err.problems];
      throw err;
    }
    return [];
  };

  test('every key is checked, with the path of the key in the message', () => {
    assert.deepEqual(problems(service({ protocol: 'http3' })), ['proxy.services[0].protocol: expected one of "http1", "h2c", "https", "h2", got "http3"']);
    assert.deepEqual(problems(service({ protocol: 'h2c', tls: { verify: false } })), ['proxy.services[0].tls: only for protocol "https" or "h2" (protocol is "h2c")']);
    assert.deepEqual(problems(service({ tls: {} })), ['proxy.services[0].tls: only for protocol "https" or "h2" (protocol is "http1")']);
    assert.match(problems(service({ protocol: 'https', tls: { verify: 'yes' } }))[0]!, /^proxy\.services\[0\]\.tls\.verify: /);
    assert.match(problems(service({ protocol: 'https', tls: { serverName: 'not a name' } }))[0]!, /^proxy\.services\[0\]\.tls\.serverName: expected a host name/);
    assert.deepEqual(problems(service({ protocol: 'h2', tls: { cafile: 'x' } })), ['proxy.services[0].tls.cafile: unknown key (expected one of: ca, serverName, verify)']);
    assert.deepEqual(problems(service({ protocol: 'https', tls: { ca: join(dir.dir, 'missing.pem') } })), [`proxy.services[0].tls.ca: ${JSON.stringify(join(dir.dir, 'missing.pem'))} cannot be read: no such file`]);
    assert.deepEqual(problems(service({ protocol: 'https', tls: { ca: api.keyFile } })), [`proxy.services[0].tls.ca: ${JSON.stringify(api.keyFile)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`]);
    assert.deepEqual(problems(service({ protocol: 'https', tls: { ca: api.certFile, serverName: 'api.internal' } })), []);
  });

  test('tls.ca is relative to the config file and read again on reload', async () => {
    const httpsOrigin = createHttpsServer({ cert: api.cert, key: readKey(api) }, echo);
    const port = await listen(httpsOrigin);
    const caFile = join(dir.dir, 'upstream-ca.pem');
    copyFileSync(other.certFile, caFile);
    const configFile = join(dir.dir, 'kubeproxy.yaml');
    writeFileSync(
      configFile,
      `proxy:
  listen: { address: 127.0.0.1, port: 0 }
  admin: { enabled: false }
  watch: false
  services:
    - name: api
      domain: api.test
      protocol: https
      tls: { ca: upstream-ca.pem, serverName: api.internal }
      hosts: [{ address: 127.0.0.1, port: ${port} }]
`,
    );
    const runtime = await Runtime.start(loadConfigFile(configFile), { configPath: configFile });
    try {
      const proxyPort = runtime.listener.address().port;
      assert.equal((await request(proxyPort, { host: 'api.test' })).status, 502, 'the CA file does not sign the instance yet');
      copyFileSync(api.certFile, caFile);
      assert.equal(await runtime.reloadFromFile(), true);
      assert.equal((await request(proxyPort, { host: 'api.test' })).status, 200, 'after the reload');
    } finally {
      await runtime.shutdown();
      await stop(httpsOrigin, new Set());
    }
  });
});

function readKey(c: TestCertificate): string {
  return readFileSync(c.keyFile, 'utf8');
}
