/**
 * `proxy.tls`: HTTPS on its own port with real clients (node:tls, node:https, curl), certificates
 * made at test time. SNI, TLS versions, handshake failures in the metrics, certificate renewal
 * without dropping connections, the http → https redirect, and config errors.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, renameSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { connect, type ConnectionOptions, type SecureVersion } from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, validateConfig } from '../src/config/load.ts';
import { certDir, makeCertificate, type TestCertificate } from './helpers/certs.ts';
import { scrape } from './helpers/metrics.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { request } from './helpers/http.ts';

interface HttpsReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function httpsGet(port: number, host: string, path: string, options: { ca?: string; agent?: Agent } = {}): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, servername: host, headers: { host }, ca: options.ca, rejectUnauthorized: options.ca !== undefined, agent: options.agent ?? false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The served certificate's SAN and the negotiated version, for a handshake with `servername` (none: no SNI). */
async function handshake(port: number, servername: string | undefined, extra: ConnectionOptions = {}): Promise<{ san: string; version: string | null }> {
  const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername === undefined ? {} : { servername }), ...extra });
  await once(socket, 'secureConnect');
  const result = { san: socket.getPeerCertificate().subjectaltname ?? '', version: socket.getProtocol() };
  socket.destroy();
  return result;
}

/** A handshake expected to fail: resolves with the client-side error code. */
async function failedHandshake(port: number, extra: ConnectionOptions): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...extra });
  const [err] = (await once(socket, 'error').catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
  socket.destroy();
  return err.code ?? err.message;
}

async function handshakeErrors(adminPort: number, reason: string): Promise<number> {
  return (await scrape(adminPort)).get('kubeproxy_tls_handshake_errors_total', { reason }) ?? 0;
}

describe('TLS listener', () => {
  let origin: Origin;
  let proxy: TestProxy;
  let tlsPort: number;
  let dir: ReturnType<typeof certDir>;
  let exact: TestCertificate;
  let wildcard: TestCertificate;
  let fallback: TestCertificate;
  let originHits = 0;

  before(async () => {
    dir = certDir();
    fallback = makeCertificate(dir.dir, 'default', ['default.test']);
    exact = makeCertificate(dir.dir, 'exact', ['api.example.test']);
    wildcard = makeCertificate(dir.dir, 'wildcard', ['*.example.test']);
    origin = await startOrigin((req, res) => {
      originHits++;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(JSON.stringify({ url: req.url, proto: req.headers['x-forwarded-proto'], forwarded: req.headers.forwarded }));
    });
    proxy = await startProxy({
      tls: {
        listen: { address: '127.0.0.1', port: 0 },
        certificates: [fallback, exact, wildcard].map((c) => ({ cert: c.certFile, key: c.keyFile })),
      },
      services: [{ name: 'api', domains: ['api.example.test', '*.example.test', 'default.test'], hosts: [{ port: origin.port }] }],
    });
    tlsPort = proxy.runtime.tls!.address().port;
  });
  after(async () => {
    await proxy.close();
    await origin.close();
    dir.cleanup();
  });

  test('an HTTPS request reaches the instance, which is told the client used https', async () => {
    const r = await httpsGet(tlsPort, 'api.example.test', '/hello?x=1', { ca: exact.cert });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.text);
    assert.equal(seen.url, '/hello?x=1');
    assert.equal(seen.proto, 'https');
    assert.match(seen.forwarded, /proto=https/);
  });

  test('the plain listener keeps serving http, and says http', async () => {
    const r = await request(proxy.port, { host: 'api.example.test', path: '/plain' });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.text).proto, 'http');
  });

  test('SNI picks the certificate naming the host exactly, then a wildcard, else the first', async () => {
    assert.equal((await handshake(tlsPort, 'api.example.test')).san, 'DNS:api.example.test');
    assert.equal((await handshake(tlsPort, 'www.example.test')).san, 'DNS:*.example.test');
    assert.equal((await handshake(tlsPort, 'API.Example.Test')).san, 'DNS:api.example.test');
    // A wildcard covers one label only (RFC 6125 §6.4.3).
    assert.equal((await handshake(tlsPort, 'a.b.example.test')).san, 'DNS:default.test');
    assert.equal((await handshake(tlsPort, 'unknown.test')).san, 'DNS:default.test');
    assert.equal((await handshake(tlsPort, undefined)).san, 'DNS:default.test');
  });

  test('TLS 1.2 and TLS 1.3 clients are both served', async () => {
    for (const version of ['TLSv1.2', 'TLSv1.3'] as SecureVersion[]) {
      const h = await handshake(tlsPort, 'api.example.test', { minVersion: version, maxVersion: version });
      assert.equal(h.version, version);
    }
  });

  test('curl over https verifies the certificate and gets the answer', async () => {
    const caFile = join(dir.dir, 'curl-ca.pem');
    writeFileSync(caFile, wildcard.cert);
    const { stdout } = await promisify(execFile)('curl', ['-sS', '--cacert', caFile, '--resolve', `www.example.test:${tlsPort}:127.0.0.1`, `https://www.example.test:${tlsPort}/curl`]);
    assert.equal(JSON.parse(stdout).proto, 'https');
  });

  test('the cache keys on the scheme: an entry stored over https is not served to http', async () => {
    const path = `/cached-${Date.now()}`;
    const hits = originHits;
    assert.equal((await httpsGet(tlsPort, 'api.example.test', path)).status, 200);
    const second = await httpsGet(tlsPort, 'api.example.test', path);
    assert.match(String(second.headers['cache-status']), /hit/);
    assert.equal(originHits, hits + 1);
    const plain = await request(proxy.port, { host: 'api.example.test', path });
    assert.equal(JSON.parse(plain.text).proto, 'http');
    assert.equal(originHits, hits + 2);
  });

  test('failed handshakes are counted by reason and the listener keeps serving', async () => {
    const before = {
      notTls: await handshakeErrors(proxy.adminPort, 'not_tls'),
      version: await handshakeErrors(proxy.adminPort, 'protocol_version'),
    };
    // Plain HTTP sent to the TLS port.
    const plain = netConnect(tlsPort, '127.0.0.1');
    plain.on('error', () => {});
    plain.end('GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n');
    await once(plain, 'close');
    // A client that only speaks TLS 1.1.
    await failedHandshake(tlsPort, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    let after = { notTls: 0, version: 0 };
    for (let i = 0; i < 50; i++) {
      after = { notTls: await handshakeErrors(proxy.adminPort, 'not_tls'), version: await handshakeErrors(proxy.adminPort, 'protocol_version') };
      if (after.notTls > before.notTls && after.version > before.version) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(after.notTls, before.notTls + 1);
    assert.equal(after.version, before.version + 1);
    assert.equal((await httpsGet(tlsPort, 'api.example.test', '/still')).status, 200);
  });
});

describe('TLS listener and upgrades', () => {
  test('an Upgrade (WebSocket) request over TLS tells the instance the client used https', async () => {
    const dir = certDir();
    const cert = makeCertificate(dir.dir, 'ws', ['ws.example.test']);
    const origin = await startOrigin((_req, res) => res.end());
    let seenProto: string | undefined;
    origin.server.on('upgrade', (req, socket) => {
      seenProto = req.headers['x-forwarded-proto'] as string | undefined;
      socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    });
    const proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }] },
      services: [{ name: 'ws', domain: 'ws.example.test', hosts: [{ port: origin.port }] }],
    });
    try {
      const socket = connect({ host: '127.0.0.1', port: proxy.runtime.tls!.address().port, servername: 'ws.example.test', ca: cert.cert });
      await once(socket, 'secureConnect');
      socket.write('GET /chat HTTP/1.1\r\nHost: ws.example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      let head = '';
      socket.setEncoding('utf8');
      for await (const chunk of socket) {
        head += chunk as string;
        if (head.includes('\r\n\r\n')) break;
      }
      socket.destroy();
      assert.match(head, /^HTTP\/1\.1 101 /);
      assert.equal(seenProto, 'https');
    } finally {
      await proxy.close();
      await origin.close();
      dir.cleanup();
    }
  });
});

describe('TLS options', () => {
  test('minVersion TLSv1.3 refuses a TLS 1.2 client and serves a TLS 1.3 one', async () => {
    const dir = certDir();
    const cert = makeCertificate(dir.dir, 'only', ['only.test']);
    const origin = await startOrigin((_req, res) => res.end('ok'));
    const proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }], minVersion: 'TLSv1.3' },
      services: [{ name: 'only', domain: 'only.test', hosts: [{ port: origin.port }] }],
    });
    try {
      const port = proxy.runtime.tls!.address().port;
      const code = await failedHandshake(port, { servername: 'only.test', maxVersion: 'TLSv1.2' });
      assert.match(code, /PROTOCOL_VERSION|UNSUPPORTED|NO_PROTOCOLS/);
      assert.equal((await handshake(port, 'only.test')).version, 'TLSv1.3');
    } finally {
      await proxy.close();
      await origin.close();
      dir.cleanup();
    }
  });

  test('redirectHttp: the plain port answers 308 to the same URL on the https port', async () => {
    const dir = certDir();
    const cert = makeCertificate(dir.dir, 'r', ['r.test']);
    const origin = await startOrigin((_req, res) => res.end('from the instance'));
    const proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }], redirectHttp: true },
      services: [{ name: 'r', domain: 'r.test', hosts: [{ port: origin.port }] }],
    });
    try {
      const tlsPort = proxy.runtime.tls!.address().port;
      const r = await request(proxy.port, { method: 'POST', host: 'R.test:8080', path: '/a/b?c=d', body: 'x' });
      assert.equal(r.status, 308);
      assert.equal(r.headers.location, `https://r.test:${tlsPort}/a/b?c=d`);
      assert.equal((await httpsGet(tlsPort, 'r.test', '/')).text, 'from the instance');
    } finally {
      await proxy.close();
      await origin.close();
      dir.cleanup();
    }
  });

  test('a certificate file that cannot be read or a key of another certificate is a config error naming the key', () => {
    const dir = certDir();
    try {
      const a = makeCertificate(dir.dir, 'a', ['a.test']);
      const b = makeCertificate(dir.dir, 'b', ['b.test']);
      const config = (certificates: unknown) => ({ proxy: { tls: { certificates }, services: [{ name: 's', domain: 's.test', hosts: [{ address: '127.0.0.1', port: 1 }] }] } });
      assert.throws(
        () => validateConfig(config([{ cert: a.certFile, key: b.keyFile }])),
        (err: unknown) => err instanceof ConfigError && /^proxy\.tls\.certificates\[0\]: .*b\.key is not a usable key/.test(err.problems[0]!),
      );
      assert.throws(
        () => validateConfig(config([{ cert: a.certFile, key: a.keyFile }, { cert: join(dir.dir, 'missing.crt'), key: a.keyFile }])),
        (err: unknown) => err instanceof ConfigError && /^proxy\.tls\.certificates\[1\]: cannot read certificate file .*ENOENT/.test(err.problems[0]!),
      );
      assert.throws(
        () => validateConfig(config([])),
        (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.startsWith('proxy.tls.certificates: expected at least one certificate')),
      );
      assert.throws(
        () => validateConfig({ proxy: { tls: { certificates: [{ cert: a.certFile, key: a.keyFile }], minVersion: 'TLSv1.1' }, services: [{ name: 's', domain: 's.test', hosts: [{ address: '127.0.0.1', port: 1 }] }] } }),
        (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.startsWith('proxy.tls.minVersion')),
      );
    } finally {
      dir.cleanup();
    }
  });
});

describe('TLS certificate renewal', () => {
  test('a Secret-style ..data swap serves the new certificate to new connections; open ones keep going; a broken pair is ignored', async () => {
    const dir = certDir();
    // The layout of a mounted Secret: tls.crt -> ..data/tls.crt, ..data -> ..2026_01; a renewal swaps ..data.
    const old = makeCertificate(dir.dir, 'old', ['renew.test', 'old.renew.test']);
    const renewed = makeCertificate(dir.dir, 'new', ['renew.test', 'new.renew.test']);
    const other = makeCertificate(dir.dir, 'other', ['other.test']);
    const mount = join(dir.dir, 'mount');
    const generation = (name: string, cert: TestCertificate, key: TestCertificate): void => {
      mkdirSync(join(mount, name), { recursive: true });
      copyFileSync(cert.certFile, join(mount, name, 'tls.crt'));
      copyFileSync(key.keyFile, join(mount, name, 'tls.key'));
      symlinkSync(name, join(mount, '..data_tmp'));
      renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
    };
    generation('..gen1', old, old);
    symlinkSync('..data/tls.crt', join(mount, 'tls.crt'));
    symlinkSync('..data/tls.key', join(mount, 'tls.key'));
    const origin = await startOrigin((_req, res) => res.end('ok'));
    const proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: join(mount, 'tls.crt'), key: join(mount, 'tls.key') }] },
      services: [{ name: 'renew', domain: 'renew.test', hosts: [{ port: origin.port }] }],
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const port = proxy.runtime.tls!.address().port;
      assert.match((await handshake(port, 'renew.test')).san, /old\.renew\.test/);
      // An open keep-alive connection from before the renewal.
      assert.equal((await httpsGet(port, 'renew.test', '/1', { agent })).status, 200);
      const [socketBefore] = Object.values(agent.freeSockets).flat();
      assert.ok(socketBefore);

      generation('..gen2', renewed, renewed);
      let san = '';
      for (let i = 0; i < 100 && !san.includes('new.renew.test'); i++) {
        await new Promise((r) => setTimeout(r, 50));
        san = (await handshake(port, 'renew.test')).san;
      }
      assert.match(san, /new\.renew\.test/, 'new handshakes get the renewed certificate');
      assert.equal((await httpsGet(port, 'renew.test', '/2', { agent })).status, 200);
      const [socketAfter] = Object.values(agent.freeSockets).flat();
      assert.equal(socketAfter, socketBefore, 'the connection opened before the renewal was not dropped');

      // A broken pair (the key of another certificate): logged, and the renewed one keeps serving.
      generation('..gen3', renewed, other);
      await new Promise((r) => setTimeout(r, 600));
      assert.match((await handshake(port, 'renew.test')).san, /new\.renew\.test/);
      assert.equal((await httpsGet(port, 'renew.test', '/3')).status, 200);
    } finally {
      agent.destroy();
      await proxy.close();
      await origin.close();
      dir.cleanup();
    }
  });
});

describe('TLS port refusals in the metrics', () => {
  test('connections over maxConnections are counted per listener, a handshake that never starts times out into the metrics, a malformed request over TLS counts like on the plain port', async () => {
    const dir = certDir();
    const cert = makeCertificate(dir.dir, 'limit', ['limit.test']);
    const origin = await startOrigin((_req, res) => res.end('ok'));
    const proxy = await startProxy({
      client: { maxConnections: 2, headerTimeout: '1s' },
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }] },
      services: [{ name: 'limit', domain: 'limit.test', hosts: [{ port: origin.port }] }],
    });
    const held: Array<{ destroy(): void }> = [];
    try {
      const tlsPort = proxy.runtime.tls!.address().port;
      const counts = async () => {
        const s = await scrape(proxy.adminPort);
        return {
          https: s.get('kubeproxy_connections_refused_total', { listener: 'https' }) ?? 0,
          http: s.get('kubeproxy_connections_refused_total', { listener: 'http' }) ?? 0,
          timeout: s.get('kubeproxy_tls_handshake_errors_total', { reason: 'timeout' }) ?? 0,
          badRequest: s.get('kubeproxy_errors_total', { service: '_unrouted', cause: 'bad_request' }) ?? 0,
        };
      };
      const before = await counts();

      // A TCP connection that never sends a ClientHello: closed after client.headerTimeout, counted.
      const silent = netConnect(tlsPort, '127.0.0.1');
      const started = Date.now();
      await new Promise((resolve) => silent.on('error', () => {}).once('close', resolve));
      assert.ok(Date.now() - started < 5000, 'closed within a few seconds of headerTimeout');

      // A request with both Content-Length and Transfer-Encoding over TLS: 400, counted as on the plain port.
      const smuggle = connect({ host: '127.0.0.1', port: tlsPort, servername: 'limit.test', ca: cert.cert, ALPNProtocols: ['http/1.1'] });
      await once(smuggle, 'secureConnect');
      smuggle.end('POST / HTTP/1.1\r\nHost: limit.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
      let answer = '';
      for await (const chunk of smuggle) answer += String(chunk);
      assert.match(answer, /^HTTP\/1\.1 400 /);

      // Two connections held open on each port (the limit); a third is closed as soon as accepted.
      for (let i = 0; i < 100 && proxy.runtime.tls!.listener.connections > 0; i++) await new Promise((r) => setTimeout(r, 10));
      for (let i = 0; i < 2; i++) {
        const s = connect({ host: '127.0.0.1', port: tlsPort, servername: 'limit.test', ca: cert.cert });
        await once(s, 'secureConnect');
        held.push(s);
        const p = netConnect(proxy.port, '127.0.0.1');
        await once(p, 'connect');
        held.push(p);
      }
      const third = connect({ host: '127.0.0.1', port: tlsPort, servername: 'limit.test', ca: cert.cert });
      // (events.once would reject on the reset this client sees: wait for 'close' alone.)
      await new Promise((resolve) => third.on('error', () => {}).once('close', resolve));
      assert.equal(third.authorized, false, 'no handshake took place');
      const plainThird = netConnect(proxy.port, '127.0.0.1');
      await new Promise((resolve) => plainThird.on('error', () => {}).once('close', resolve));

      let after = before;
      for (let i = 0; i < 50; i++) {
        after = await counts();
        if (after.https > before.https && after.http > before.http && after.timeout > before.timeout && after.badRequest > before.badRequest) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(
        { https: after.https - before.https, http: after.http - before.http, timeout: after.timeout - before.timeout, badRequest: after.badRequest - before.badRequest },
        { https: 1, http: 1, timeout: 1, badRequest: 1 },
      );

      // Below the limit again, the TLS port serves.
      for (const s of held.splice(0)) s.destroy();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal((await httpsGet(tlsPort, 'limit.test', '/', { ca: cert.cert })).text, 'ok');
    } finally {
      for (const s of held) s.destroy();
      await proxy.close();
      await origin.close();
      dir.cleanup();
    }
  });
});
