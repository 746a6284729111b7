import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createSecureServer, createServer as createH2cServer, type Http2SecureServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { certDir, makeCertificate, type TestCertificate } from '../../test/helpers/certs.ts';
import type { UpstreamProtocol } from '../config/schema.ts';
import { Instance, type PoolSettings, type UpstreamTls } from '../upstream/instance.ts';
import { probeStatus } from './probe-request.ts';

const base: PoolSettings = { connectTimeout: 2000, responseTimeout: 5000, idleTimeout: 5000, keepAliveTimeout: 100, maxConnections: 0, protocol: 'http1', tls: undefined };

describe('health probes speak the instance protocol', () => {
  let dir: ReturnType<typeof certDir>;
  let api: TestCertificate;
  let other: TestCertificate;
  let https: HttpsServer;
  let h2: Http2SecureServer;
  let h2c: Http2Server;
  const agent = new Agent();
  const seen: string[] = [];
  const answer = (req: { httpVersion: string; url?: string; headers: { host?: string; ':authority'?: string } }, res: { writeHead(s: number): void; end(b: string): void }) => {
    seen.push(`${req.httpVersion} ${req.url} ${req.headers.host ?? req.headers[':authority']}`);
    res.writeHead(req.url === '/down' ? 503 : 204);
    res.end('');
  };

  before(async () => {
    dir = certDir();
    api = makeCertificate(dir.dir, 'api', ['api.internal']);
    other = makeCertificate(dir.dir, 'other', ['other.internal']);
    const key = readFileSync(api.keyFile, 'utf8');
    https = createHttpsServer({ cert: api.cert, key }, answer);
    h2 = createSecureServer({ cert: api.cert, key }, answer);
    h2c = createH2cServer(answer);
    for (const s of [https, h2, h2c]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    for (const s of [https, h2, h2c]) await new Promise((resolve) => s.close(resolve));
    await agent.close();
    dir.cleanup();
  });

  const instance = (server: { address(): unknown }, protocol: UpstreamProtocol, tls?: UpstreamTls) =>
    new Instance('api', '127.0.0.1', (server.address() as AddressInfo).port, 1, { ...base, protocol, tls });
  const probe = (i: Instance, path = '/healthz') => probeStatus(i, agent, { path, host: 'api.test', timeout: 3000, signal: AbortSignal.timeout(3000) });
  const verified = (): UpstreamTls => ({ ca: api.cert, serverName: 'api.internal', verify: true });

  test('an https instance is probed over TLS verified against its CA', async () => {
    assert.equal(await probe(instance(https, 'https', verified())), 204);
    assert.equal(seen.at(-1), '1.1 /healthz api.test');
  });

  test('h2 and h2c instances are probed over HTTP/2, the status read from it', async () => {
    assert.equal(await probe(instance(h2, 'h2', verified())), 204);
    assert.equal(seen.at(-1), '2.0 /healthz api.test');
    assert.equal(await probe(instance(h2c, 'h2c'), '/down'), 503);
    assert.equal(seen.at(-1), '2.0 /down api.test');
  });

  test('a certificate the CA did not sign fails the probe, over https and h2', async () => {
    const wrong: UpstreamTls = { ca: other.cert, serverName: 'api.internal', verify: true };
    await assert.rejects(probe(instance(https, 'https', wrong)), /self-signed|unable to verify/);
    await assert.rejects(probe(instance(h2, 'h2', wrong)), /self-signed|unable to verify/);
  });

  test('an h2c instance that is down fails the probe with the refused connection', async () => {
    const down = new Instance('api', '127.0.0.1', 1, 1, { ...base, protocol: 'h2c' });
    await assert.rejects(probe(down), /ECONNREFUSED/);
  });
});
