/**
 * HTTP/2 hardening on the TLS port: advertised limits, the rapid-reset attack (CVE-2023-44487)
 * cut off with GOAWAY while another client keeps being served, and SETTINGS/PING floods.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { certDir, makeCertificate, type TestCertificate } from './helpers/certs.ts';
import { scrape } from './helpers/metrics.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { MAX_CONCURRENT_STREAMS, RAPID_RESET_LIMIT } from '../src/server/h2-front.ts';

/** An HTTP/2 frame (RFC 9113 §4.1). */
function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

describe('HTTP/2 hardening', () => {
  let dir: ReturnType<typeof certDir>;
  let cert: TestCertificate;
  let origin: Origin;
  let proxy: TestProxy;
  let port: number;

  const session = (): ClientHttp2Session => {
    const s = connect(`https://127.0.0.1:${port}`, { ca: cert.cert, servername: 'hard.test' });
    s.on('error', () => {});
    return s;
  };
  const get = (s: ClientHttp2Session, path: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const stream = s.request({ ':path': path, ':authority': 'hard.test' });
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.resume();
      stream.on('end', () => resolve(status));
      stream.on('error', reject);
    });
  const cut = async (reason: string): Promise<number> => (await scrape(proxy.adminPort)).get('kubeproxy_http2_sessions_cut_total', { reason }) ?? 0;
  const p99 = (ms: number[]): number => [...ms].sort((a, b) => a - b)[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))]!;

  before(async () => {
    dir = certDir();
    cert = makeCertificate(dir.dir, 'hard', ['hard.test']);
    // A little work per request, as a real instance does: the attack makes the proxy start it for every stream.
    origin = await startOrigin((_req, res) => setTimeout(() => res.end('ok'), 1));
    proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }] },
      client: { maxHeaderSize: '8KiB' },
      services: [{ name: 'hard', domain: 'hard.test', hosts: [{ port: origin.port }] }],
    });
    port = proxy.runtime.tls!.address().port;
  });
  after(async () => {
    await proxy.close();
    await origin.close();
    dir.cleanup();
  });

  test('the server advertises its concurrent-stream and header-list limits', async () => {
    const s = session();
    try {
      await once(s, 'remoteSettings');
      assert.equal(s.remoteSettings.maxConcurrentStreams, MAX_CONCURRENT_STREAMS);
      assert.equal(s.remoteSettings.maxHeaderListSize, 2 * 8192 + 1024);
      assert.equal(s.remoteSettings.enablePush, false);
    } finally {
      s.close();
    }
  });

  test('rapid reset: a client resetting streams as fast as it opens them gets GOAWAY, another client keeps being served', async () => {
    const victim = session();
    const quiet: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      assert.equal(await get(victim, `/quiet${i}`), 200);
      quiet.push(performance.now() - t);
    }
    const cutBefore = await cut('rapid_reset');

    // The attacker speaks raw frames, as attack tools do: HEADERS (GET /, END_STREAM) then RST_STREAM (CANCEL) at once.
    const attacker = tlsConnect({ host: '127.0.0.1', port, servername: 'hard.test', ca: cert.cert, ALPNProtocols: ['h2'] });
    await once(attacker, 'secureConnect');
    attacker.on('error', () => {});
    const frames: Buffer[] = [];
    attacker.on('data', (d: Buffer) => frames.push(d));
    const closed = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
    const authority = Buffer.from('hard.test');
    // HPACK (RFC 7541): :method GET, :scheme https, :path / from the static table; :authority as a literal.
    const block = Buffer.concat([Buffer.from([0x82, 0x87, 0x84, 0x01, authority.length]), authority]);
    attacker.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0, Buffer.alloc(0))]));
    let sent = 0;
    const attack = (async () => {
      for (let id = 1; !attacker.destroyed && sent < 20_000; ) {
        const batch: Buffer[] = [];
        for (let i = 0; i < 100; i++, id += 2, sent++) batch.push(frame(0x1, 0x5, id, block), frame(0x3, 0, id, Buffer.from([0, 0, 0, constants.NGHTTP2_CANCEL])));
        attacker.write(Buffer.concat(batch));
        await new Promise((r) => setImmediate(r));
      }
    })();
    const during: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      assert.equal(await get(victim, `/during${i}`), 200);
      during.push(performance.now() - t);
    }
    await attack;
    await closed;
    victim.close();
    console.log(`# rapid reset: ${sent} streams opened and reset before the cut; victim p99 quiet ${p99(quiet).toFixed(2)} ms, during ${p99(during).toFixed(2)} ms`);
    assert.ok(sent < 20_000, `the attacker was cut off (${sent} streams)`);
    // Among the frames the attacker got: GOAWAY (type 7) with ENHANCE_YOUR_CALM.
    const got = Buffer.concat(frames);
    const goaways: number[] = [];
    for (let at = 0; at + 9 <= got.length; at += 9 + got.readUIntBE(at, 3)) if (got[at + 3] === 0x7) goaways.push(got.readUInt32BE(at + 13));
    assert.ok(goaways.includes(constants.NGHTTP2_ENHANCE_YOUR_CALM), `GOAWAY error codes: ${goaways.join(', ')}`);
    assert.equal(await cut('rapid_reset'), cutBefore + 1);
  });

  test('a PING flood that never reads the answers is cut off, and the listener keeps serving', async () => {
    const floodsBefore = await cut('flood');
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'hard.test', ca: cert.cert, ALPNProtocols: ['h2'] });
    await once(socket, 'secureConnect');
    assert.equal(socket.alpnProtocol, 'h2');
    socket.on('error', () => {});
    socket.pause();
    const preface = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0, Buffer.alloc(0))]);
    const pings = Buffer.concat(Array.from({ length: 1000 }, () => frame(0x6, 0, 0, Buffer.alloc(8))));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(preface);
    let rounds = 0;
    const timeout = setTimeout(() => socket.destroy(new Error('not cut off')), 10_000);
    while (!socket.destroyed && rounds < 200) {
      socket.write(pings);
      rounds++;
      await new Promise((r) => setImmediate(r));
    }
    await closed;
    clearTimeout(timeout);
    console.log(`# PING flood: cut after ${rounds}k PING frames`);
    assert.equal(await cut('flood'), floodsBefore + 1);
    assert.ok(rounds < 200, `the server cut the flooding connection (${rounds}k PINGs written)`);
    const s = session();
    try {
      assert.equal(await get(s, '/after-flood'), 200);
    } finally {
      s.close();
    }
  });
});
