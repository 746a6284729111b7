/**
 * `proxy.tls` with `proxy.workers: 2`: every worker process serves HTTPS on the shared TLS port,
 * and SIGTERM drains it like the plain one. With `tls.listen.port: 0` the primary picks one port
 * for all workers, replacements included.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { certDir, makeCertificate, type TestCertificate } from './helpers/certs.ts';
import { spawnProxy, type ChildProxy } from './helpers/child.ts';
import { clusterStatus, workerPids } from './helpers/cluster.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

let origin: Origin;
let proxy: ChildProxy;
let dir: ReturnType<typeof certDir>;
let cert: TestCertificate;
let tlsPort: number;

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

function httpsGet(path: string, port = tlsPort): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, servername: 'w.test', headers: { host: 'w.test' }, ca: cert.cert, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  dir = certDir();
  cert = makeCertificate(dir.dir, 'w', ['w.test']);
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'no-store' });
    res.end(String(req.headers['x-forwarded-proto']));
  });
  tlsPort = await freePort();
  proxy = await spawnProxy({
    workers: 2,
    tls: { listen: { address: '127.0.0.1', port: tlsPort }, certificates: [{ cert: cert.certFile, key: cert.keyFile }] },
    services: [{ name: 'w', domain: 'w.test', hosts: [{ port: origin.port }] }],
  });
});

after(async () => {
  await proxy?.cleanup();
  await origin?.close();
  dir?.cleanup();
});

test('with two workers, HTTPS requests on new connections are served by both and say https upstream', async () => {
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => httpsGet(`/r${i}`)));
  for (const r of replies) assert.deepEqual(r, { status: 200, text: 'https' });
  const status = await clusterStatus(proxy.adminPort);
  const served = status.workers.map((w) => w.requests ?? 0);
  assert.equal(served.reduce((a, b) => a + b, 0), 20);
  assert.ok(served.every((n) => n > 0), `both workers served: ${served.join(' + ')}`);
});

test('SIGTERM: the cluster drains and exits 0 with the TLS listener open', async () => {
  proxy.child.kill('SIGTERM');
  const { code } = await proxy.exited;
  assert.equal(code, 0);
});

test('tls.listen.port 0: the workers share the one port the start log names, and workers replaced after all died serve on it again', async () => {
  const zero = await spawnProxy({
    workers: 2,
    tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }] },
    services: [{ name: 'w', domain: 'w.test', hosts: [{ port: origin.port }] }],
  });
  try {
    const started = zero.logs.find((l) => l.msg === 'kubeproxy started')!;
    const port = (started.tls as { port: number } | undefined)?.port;
    assert.ok(port !== undefined && port > 0, `the start log names the TLS port: ${JSON.stringify(started.tls)}`);
    // Batches of 20 new connections until both workers served one: the port is shared with
    // SO_REUSEPORT on Bun, where a worker still binding it right after the start gets none yet.
    let served: number[] = [];
    for (let batch = 0; batch < 5 && !(served.length === 2 && served.every((n) => n > 0)); batch++) {
      const replies: Array<{ status: number; text: string }> = await Promise.all(Array.from({ length: 20 }, (_, i) => httpsGet(`/z${batch}-${i}`, port)));
      for (const r of replies) assert.deepEqual(r, { status: 200, text: 'https' });
      served = (await clusterStatus(zero.adminPort)).workers.map((w) => w.requests ?? 0);
    }
    assert.ok(served.length === 2 && served.every((n) => n > 0), `both workers served: ${served.join(' + ')}`);

    // Every worker killed at once: no process keeps the port open, and the replacements still bind it.
    const from = zero.logs.length;
    for (const pid of await workerPids(zero.adminPort)) process.kill(pid, 'SIGKILL');
    await zero.waitForLog((l) => l.msg === 'worker replaced', from, 20_000);
    const second = zero.logs.findIndex((l, i) => i >= from && l.msg === 'worker replaced');
    await zero.waitForLog((l) => l.msg === 'worker replaced', second + 1, 20_000);
    assert.deepEqual(await httpsGet('/again', port), { status: 200, text: 'https' });
  } finally {
    zero.child.kill('SIGTERM');
    await zero.exited;
    await zero.cleanup();
  }
});
