/**
 * Byte ranges from the cache (RFC 9110 §14, issue 15), end to end: a real origin counting its
 * requests and the Range it was sent, a real proxy, curl-style seeks.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bothProtocols, type TlsTarget } from './helpers/both-protocols.ts';
import { certDir, makeCertificate } from './helpers/certs.ts';
import { cacheStatus, cachedService, keyOf, waitersOf, type TestClock } from './helpers/cache.ts';
import { request, type Reply } from './helpers/http.ts';
import { until } from './helpers/load.ts';
import { scrape } from './helpers/metrics.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { startRedis } from './helpers/redis.ts';

/** 1000 bytes where every slice is recognisable. */
const BODY = Buffer.from(Array.from({ length: 1000 }, (_, i) => String.fromCharCode(65 + ((i * 7 + (i >> 5)) % 26))).join(''), 'latin1');
const BIG = Buffer.alloc(5000, 'z');
const LAST_MODIFIED = 'Wed, 01 Jan 2020 00:00:00 GMT';

function part(start: number, end: number): string {
  return BODY.subarray(start, end + 1).toString('latin1');
}

/** An origin answering Range itself (one `a-b` / `a-` range), as most file servers do. */
function originRange(req: IncomingMessage, body: Buffer): { start: number; end: number } | undefined {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (m === null) return undefined;
  const start = Number(m[1]);
  return { start, end: m[2] === '' ? body.length - 1 : Math.min(Number(m[2]), body.length - 1) };
}

/**
 * /video: 1000 bytes, cacheable, ETag + a strong Last-Modified; /chunked: the same without
 * Content-Length; /big: over maxObjectSize, honouring Range; /private: not storable, honouring
 * Range; /slow: held until `release()`.
 */
function handler() {
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const serve = (req: IncomingMessage, res: ServerResponse, clock: TestClock) => {
    const common = { date: clock.httpDate(), 'content-type': 'video/mp4', etag: '"v1"', 'last-modified': LAST_MODIFIED };
    const url = req.url!;
    if (url === '/big' || url === '/private') {
      const body = url === '/big' ? BIG : BODY;
      const cc = url === '/big' ? 'max-age=60' : 'private, max-age=60';
      const r = originRange(req, body);
      if (r !== undefined) {
        res.writeHead(206, { ...common, 'cache-control': cc, 'content-range': `bytes ${r.start}-${r.end}/${body.length}`, 'content-length': r.end - r.start + 1 });
        res.end(body.subarray(r.start, r.end + 1));
        return;
      }
      res.writeHead(200, { ...common, 'cache-control': cc, 'content-length': body.length });
      res.end(body);
      return;
    }
    if (url === '/chunked') {
      res.writeHead(200, { ...common, 'cache-control': 'max-age=60' });
      res.write(BODY.subarray(0, 400));
      res.end(BODY.subarray(400));
      return;
    }
    const send = () => {
      res.writeHead(200, { ...common, 'cache-control': 'max-age=60', 'content-length': BODY.length, 'content-digest': 'sha-256=:d2hvbGU=:' });
      res.end(BODY);
    };
    if (url === '/slow') void held.then(send);
    else send();
  };
  return { serve, release: () => release() };
}

async function setup(t: Parameters<typeof cachedService>[0], cache: Record<string, unknown> = {}) {
  const h = handler();
  const s = await cachedService(t, h.serve, { cache: { maxObjectSize: '2KiB', ...cache } });
  /** The Range headers the origin received for `path`, in order (undefined: none). */
  const sentRanges = (path: string) => s.origin.requests.filter((r) => r.url === path).map((r) => r.headers.range);
  return { ...s, release: h.release, sentRanges };
}

function assertPart(r: Reply, start: number, end: number, message?: string): void {
  assert.equal(r.status, 206, message);
  assert.equal(r.headers['content-range'], `bytes ${start}-${end}/1000`, message);
  assert.equal(r.headers['content-length'], String(end - start + 1), message);
  assert.equal(r.body.toString('latin1'), part(start, end), message);
}

test('curl-style seeks on a stored object are 206 from the cache: bytes=0-99, bytes=100-, bytes=-100', async (t) => {
  const s = await setup(t);
  const full = await s.get('/video');
  assert.equal(full.status, 200);
  const seeks: Array<[string, number, number]> = [['bytes=0-99', 0, 99], ['bytes=100-', 100, 999], ['bytes=-100', 900, 999], ['bytes=990-5000', 990, 999], ['bytes=0-0', 0, 0]];
  for (const [range, start, end] of seeks) {
    const r = await s.get('/video', { headers: { range } });
    assertPart(r, start, end, range);
    assert.match(cacheStatus(r)!, /^kubeproxy; hit; ttl=\d+$/, range);
    // RFC 9110 §15.3.7: what the 200 would carry.
    assert.equal(r.headers['content-type'], 'video/mp4');
    assert.equal(r.headers.etag, '"v1"');
    assert.equal(r.headers['cache-control'], 'max-age=60');
    assert.ok(r.headers.date !== undefined && r.headers.age !== undefined);
    assert.equal(r.headers['content-digest'], undefined, 'the digest of the whole body is not the part\'s');
  }
  const whole = await s.get('/video');
  assert.equal(whole.headers['accept-ranges'], 'bytes', 'a stored 200 advertises ranges');
  assert.equal(whole.headers['content-digest'], 'sha-256=:d2hvbGU=:');
  assert.deepEqual(s.sentRanges('/video'), [undefined], 'one origin request');
  const m = await scrape(s.proxy.adminPort);
  assert.equal(m.get('kubeproxy_cache_requests_total', { service: 'web', result: 'hit' }), seeks.length + 1, 'ranges count as hits');
});

test('a range request on a miss fetches the full object once, stores it and answers its range; the next range is a hit', async (t) => {
  const s = await setup(t);
  const first = await s.get('/video', { headers: { range: 'bytes=500-599' } });
  assertPart(first, 500, 599);
  assert.equal(cacheStatus(first), 'kubeproxy; fwd=uri-miss; stored');
  const second = await s.get('/video', { headers: { range: 'bytes=-10' } });
  assertPart(second, 990, 999);
  assert.match(cacheStatus(second)!, /^kubeproxy; hit;/);
  const whole = await s.get('/video');
  assert.equal(whole.status, 200);
  assert.deepEqual(whole.body, BODY);
  assert.deepEqual(s.sentRanges('/video'), [undefined], 'one origin request, sent without Range');
  // Stale: the revalidation asks for the full response too, and the range is cut from the new one.
  s.clock.advance(61_000);
  const revalidated = await s.get('/video', { headers: { range: 'bytes=0-4', 'if-range': '"v1"' } });
  assertPart(revalidated, 0, 4);
  assert.equal(cacheStatus(revalidated), 'kubeproxy; fwd=stale; stored');
  const sent = s.origin.requests.filter((r) => r.url === '/video')[1]!;
  assert.equal(sent.headers.range, undefined);
  assert.equal(sent.headers['if-range'], undefined);
  assert.equal(sent.headers['if-none-match'], '"v1"');
});

test('a range past the end is 416 with Content-Range bytes */length; an unknown unit or bad syntax gets the full 200', async (t) => {
  const s = await setup(t);
  const miss = await s.get('/video', { headers: { range: 'items=0-9' } });
  assert.equal(miss.status, 200, 'a Range to ignore on a miss: the full response streams, and is stored');
  assert.deepEqual(miss.body, BODY);
  assert.equal(cacheStatus(miss), 'kubeproxy; fwd=uri-miss; stored');
  for (const range of ['bytes=1000-', 'bytes=5000-6000', 'bytes=-0']) {
    const r = await s.get('/video', { headers: { range } });
    assert.equal(r.status, 416, range);
    assert.equal(r.headers['content-range'], 'bytes */1000', range);
    assert.equal(r.headers['cache-control'], 'no-store', 'a 416 answers one Range, never the URL');
    assert.match(cacheStatus(r)!, /^kubeproxy; hit;/);
  }
  for (const range of ['items=0-9', 'bytes=9-0', 'bytes=abc', 'bytes 0-9']) {
    const r = await s.get('/video', { headers: { range } });
    assert.equal(r.status, 200, range);
    assert.deepEqual(r.body, BODY, range);
  }
  const head = await s.get('/video', { method: 'HEAD', headers: { range: 'bytes=0-9' } });
  assert.equal(head.status, 200, 'Range is ignored for HEAD');
  assert.equal(head.headers['content-length'], '1000');
  assert.equal(s.hits('/video'), 1);
});

test('If-Range: a matching strong ETag or strong date gets the range, anything else the full 200', async (t) => {
  const s = await setup(t);
  await s.get('/video');
  const withIfRange = (ifRange: string) => s.get('/video', { headers: { range: 'bytes=10-19', 'if-range': ifRange } });
  assertPart(await withIfRange('"v1"'), 10, 19, 'same ETag');
  assertPart(await withIfRange(LAST_MODIFIED), 10, 19, 'Last-Modified long before Date is strong');
  for (const ifRange of ['"v0"', 'W/"v1"', 'Thu, 02 Jan 2020 00:00:00 GMT', 'not a date']) {
    const r = await withIfRange(ifRange);
    assert.equal(r.status, 200, ifRange);
    assert.deepEqual(r.body, BODY, ifRange);
  }
  assert.equal(s.hits('/video'), 1);
});

test('several ranges are one multipart/byteranges 206; overlapping ones are merged; too many get the full 200', async (t) => {
  const s = await setup(t);
  await s.get('/video');
  const r = await s.get('/video', { headers: { range: 'bytes=900-909,0-9' } });
  assert.equal(r.status, 206);
  const m = /^multipart\/byteranges; boundary=(\S+)$/.exec(r.headers['content-type']!);
  assert.ok(m, r.headers['content-type']);
  const b = m[1]!;
  assert.equal(r.headers['content-range'], undefined);
  assert.equal(Number(r.headers['content-length']), r.body.length);
  const expected =
    `--${b}\r\nContent-Type: video/mp4\r\nContent-Range: bytes 900-909/1000\r\n\r\n${part(900, 909)}` +
    `\r\n--${b}\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/1000\r\n\r\n${part(0, 9)}` +
    `\r\n--${b}--\r\n`;
  assert.equal(r.body.toString('latin1'), expected, 'parts in the order asked');
  assertPart(await s.get('/video', { headers: { range: 'bytes=0-50,10-20,51-60' } }), 0, 60, 'overlapping and adjacent ranges are one');
  const many = `bytes=${Array.from({ length: 65 }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',')}`;
  const tooMany = await s.get('/video', { headers: { range: many } });
  assert.equal(tooMany.status, 200);
  assert.deepEqual(tooMany.body, BODY);
  assert.equal(s.hits('/video'), 1);
});

test('requests for different ranges collapsed on one miss each get their own slice from one origin request', async (t) => {
  const s = await setup(t);
  const ranges: Array<[string, number, number]> = [['bytes=0-9', 0, 9], ['bytes=100-199', 100, 199], ['bytes=-1', 999, 999], ['bytes=0-0,2-2', 0, 0]];
  const replies = ranges.map(([range]) => s.get('/slow', { headers: { range } }));
  await waitersOf(s.proxy, keyOf('web', 'web.test', '/slow'), ranges.length - 1);
  s.release();
  const got = await Promise.all(replies);
  for (let i = 0; i < 3; i++) assertPart(got[i]!, ranges[i]![1], ranges[i]![2], ranges[i]![0]);
  assert.match(got[3]!.headers['content-type']!, /^multipart\/byteranges/);
  assert.equal(got.filter((r) => /collapsed/.test(cacheStatus(r)!)).length, ranges.length - 1);
  assert.deepEqual(s.sentRanges('/slow'), [undefined], 'one origin request');
});

test('a range of a chunked response on a miss gets the full 200 as it streams, stored for the next range', async (t) => {
  const s = await setup(t);
  const first = await s.get('/chunked', { headers: { range: 'bytes=0-9' } });
  assert.equal(first.status, 200);
  assert.deepEqual(first.body, BODY);
  assert.equal(cacheStatus(first), 'kubeproxy; fwd=uri-miss; stored');
  const next = await s.get('/chunked', { headers: { range: 'bytes=0-9' } });
  assertPart(next, 0, 9);
  assert.deepEqual(s.sentRanges('/chunked'), [undefined]);
});

test('an object over maxObjectSize: the first range gets the full 200, later ranges go to the origin and its 206 passes through unstored', async (t) => {
  await overMaxObjectSize(await setup(t));
});

test('the same with collapsing off (collapseTimeout: 0): the not-stored mark is kept all the same', async (t) => {
  await overMaxObjectSize(await setup(t, { collapseTimeout: 0 }));
});

async function overMaxObjectSize(s: Awaited<ReturnType<typeof setup>>): Promise<void> {
  const first = await s.get('/big', { headers: { range: 'bytes=0-9' } });
  assert.equal(first.status, 200);
  assert.equal(first.body.length, BIG.length);
  assert.equal(cacheStatus(first), 'kubeproxy; fwd=uri-miss; detail="too-large"');
  for (let i = 0; i < 2; i++) {
    const r = await s.get('/big', { headers: { range: 'bytes=4990-' } });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], 'bytes 4990-4999/5000');
    assert.equal(r.text, 'z'.repeat(10));
    assert.equal(cacheStatus(r), 'kubeproxy; fwd=uri-miss; detail="partial-content"');
  }
  assert.deepEqual(s.sentRanges('/big'), [undefined, 'bytes=4990-', 'bytes=4990-']);
}

test('a private object within maxObjectSize: the first range is cut from its full answer, later ones go to the origin', async (t) => {
  const s = await setup(t);
  const first = await s.get('/private', { headers: { range: 'bytes=0-9' } });
  assertPart(first, 0, 9, 'cut from the answer, which is not stored');
  assert.equal(cacheStatus(first), 'kubeproxy; fwd=uri-miss; detail="private"');
  assert.equal(first.headers['cache-control'], 'private, max-age=60');
  const multi = await s.get('/private', { headers: { range: 'bytes=0-0,-1' } });
  assert.equal(multi.status, 206);
  const p = await s.get('/private', { headers: { range: 'bytes=990-' } });
  assertPart(p, 990, 999);
  assert.equal(cacheStatus(p), 'kubeproxy; fwd=uri-miss; detail="partial-content"');
  const plain = await s.get('/private');
  assert.equal(plain.status, 200, 'no 206 was stored for the URL');
  assert.deepEqual(s.sentRanges('/private'), [undefined, 'bytes=0-0,-1', 'bytes=990-', undefined]);
});

test('a range request with Authorization or no-store goes to the origin with its Range, and gets its 206', async (t) => {
  const s = await setup(t);
  const auth = await s.get('/big', { headers: { range: 'bytes=0-9', authorization: 'Bearer t' } });
  assert.equal(auth.status, 206);
  assert.equal(auth.headers['content-range'], 'bytes 0-9/5000');
  const noStore = await s.get('/big', { headers: { range: 'bytes=10-19', 'cache-control': 'no-store' } });
  assert.equal(noStore.status, 206);
  assert.equal(noStore.headers['content-range'], 'bytes 10-19/5000');
  assert.deepEqual(s.sentRanges('/big'), ['bytes=0-9', 'bytes=10-19']);
});

test('a range is cut from an entry another proxy stored in the shared tier (Redis), across its 64 KiB chunks', async (t) => {
  const size = 300 * 1024;
  const body = Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + (i >> 8)) & 0xff));
  const redis = await startRedis();
  t.after(() => redis.stop());
  const client = redis.client();
  t.after(() => client.disconnect());
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'public, max-age=600', 'content-length': size });
    res.end(body);
  });
  t.after(() => origin.close());
  const shared = { shared: { redis: { url: redis.url, keyPrefix: 'ranges:', timeout: '2s' } }, maxObjectSize: '1MiB' };
  const services = [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }];
  const [a, b] = await Promise.all([startProxy({ cache: shared, services }), startProxy({ cache: shared, services })]);
  t.after(() => a.close());
  t.after(() => b.close());
  await until(() => a.runtime.cache.sharedStatus()?.connected === true && b.runtime.cache.sharedStatus()?.connected === true, 'both proxies connected to redis');
  const get = (p: TestProxy, range: string) => request(p.port, { host: 'web.test', path: '/clip', headers: { range } });

  const first = await get(a, 'bytes=0-9');
  assert.equal(first.status, 206);
  assert.deepEqual(first.body, body.subarray(0, 10));
  await until(async () => (await client.exists(`ranges:m:${keyOf('web', 'web.test', '/clip')}`)) === 1, '/clip in redis');
  const seek = await get(b, 'bytes=65530-131080');
  assert.equal(seek.status, 206);
  assert.equal(seek.headers['content-range'], `bytes 65530-131080/${size}`);
  assert.ok(seek.body.equals(body.subarray(65530, 131081)), 'the bytes across two chunk boundaries');
  assert.match(cacheStatus(seek)!, /^kubeproxy; hit/);
  const tail = await get(b, 'bytes=-3,0-1');
  assert.equal(tail.status, 206);
  assert.ok(tail.body.includes(body.subarray(size - 3)) && tail.body.includes(`Content-Range: bytes ${size - 3}-${size - 1}/${size}`));
  assert.equal(origin.requests.length, 1, 'one origin request for both proxies');
});

describe('ranges from the cache over HTTP/1.1 and HTTP/2', () => {
  let dir: ReturnType<typeof certDir>;
  let origin: Origin;
  let proxy: TestProxy;
  let target: TlsTarget;

  before(async () => {
    dir = certDir();
    const cert = makeCertificate(dir.dir, 'ranges', ['*.ranges.test']);
    origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'video/mp4', 'content-length': BODY.length });
      res.end(BODY);
    });
    proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: cert.certFile, key: cert.keyFile }] },
      services: [{ name: 'media', domain: 'media.ranges.test', hosts: [{ port: origin.port }] }],
    });
    target = { port: proxy.runtime.tls!.address().port, ca: cert.cert };
  });
  after(async () => {
    await proxy.close();
    await origin.close();
    dir.cleanup();
  });

  bothProtocols('a seek is a 206 from the cache, a multipart answer too', () => target, async (c) => {
    const path = `/clip-${c.protocol === 'HTTP/2' ? 'h2' : 'h1'}`;
    const miss = await c.request({ host: 'media.ranges.test', path, headers: { range: 'bytes=100-199' } });
    assert.equal(miss.status, 206);
    assert.equal(miss.headers['content-range'], 'bytes 100-199/1000');
    assert.equal(miss.text, part(100, 199));
    const hit = await c.request({ host: 'media.ranges.test', path, headers: { range: 'bytes=-5' } });
    assert.equal(hit.status, 206);
    assert.equal(hit.headers['content-range'], 'bytes 995-999/1000');
    assert.equal(hit.text, part(995, 999));
    assert.match(String(hit.headers['cache-status']), /kubeproxy; hit;/);
    const multi = await c.request({ host: 'media.ranges.test', path, headers: { range: 'bytes=0-1,10-11' } });
    assert.equal(multi.status, 206);
    assert.match(String(multi.headers['content-type']), /^multipart\/byteranges; boundary=/);
    assert.equal(Number(multi.headers['content-length']), Buffer.byteLength(multi.text, 'latin1'));
    assert.equal(origin.requests.filter((r) => r.url === path).length, 1);
  });
});
