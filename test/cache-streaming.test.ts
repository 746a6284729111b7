/**
 * Bodies stream through the cache: a miss being stored reaches the client while it arrives (a
 * tee, not store-then-serve), and a body over maxObjectSize streams through without being kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { once } from 'node:events';
import { cacheStatus, cachedService, type CacheSetup } from './helpers/cache.ts';

/** GETs `path` and resolves `firstBytes` as soon as at least `n` body bytes arrived. */
function streamingGet(s: CacheSetup, path: string, n: number) {
  let received = 0;
  let seen!: () => void;
  const firstBytes = new Promise<void>((resolve) => (seen = resolve));
  const done = new Promise<{ body: Buffer; headers: Record<string, unknown> }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: s.proxy.port, path, headers: { host: 'web.test' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        received += c.length;
        if (received >= n) seen();
      });
      res.on('end', () => resolve({ body: Buffer.concat(chunks), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return { firstBytes, done };
}

test('a miss that is being stored is written to the client while it arrives', async (t) => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const s = await cachedService(t, async (_req, res, clock) => {
    res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
    res.write('first part, ');
    await released; // the origin holds the rest until the client has seen the first part
    res.end('second part');
  });
  const get = streamingGet(s, '/stream', 'first part, '.length);
  await get.firstBytes;
  release();
  const { body, headers } = await get.done;
  assert.equal(body.toString(), 'first part, second part');
  assert.equal(headers['cache-status'], 'kubeproxy; fwd=uri-miss; stored');
  const hit = await s.get('/stream');
  assert.equal(hit.text, 'first part, second part');
  assert.match(cacheStatus(hit)!, /; hit;/);
  assert.equal(hit.headers['content-length'], String('first part, second part'.length));
});

test('a body larger than maxObjectSize streams through and is not stored', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 'z');
  const chunks = 16; // 1 MiB, against a 256 KiB limit
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const s = await cachedService(
    t,
    async (_req, res, clock) => {
      res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60', 'content-type': 'application/octet-stream' });
      for (let i = 0; i < chunks; i++) {
        if (i === 8) await released; // half of it must reach the client before the rest is sent
        if (!res.write(chunk)) await once(res, 'drain');
      }
      res.end();
    },
    { cache: { maxObjectSize: '256KiB' } },
  );
  const get = streamingGet(s, '/big', 8 * chunk.length);
  await get.firstBytes;
  release();
  const { body, headers } = await get.done;
  assert.equal(body.length, chunks * chunk.length);
  assert.ok(body.equals(Buffer.alloc(chunks * chunk.length, 'z')));
  // Chunked: the size was unknown when the headers left (see layer.ts), the copy was dropped later.
  assert.equal(headers['cache-status'], 'kubeproxy; fwd=uri-miss; stored');
  const again = await s.get('/big');
  assert.equal(again.body.length, chunks * chunk.length);
  assert.equal(cacheStatus(again), 'kubeproxy; fwd=uri-miss; stored');
  assert.equal(s.hits('/big'), 2);
  assert.equal((await s.proxy.runtime.cache.stats()).entries, 0);
});

test('a body whose Content-Length is over maxObjectSize is announced as not stored', async (t) => {
  const body = Buffer.alloc(300 * 1024, 'y');
  const s = await cachedService(
    t,
    (_req, res, clock) => {
      res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60', 'content-length': String(body.length) });
      res.end(body);
    },
    { cache: { maxObjectSize: '256KiB' } },
  );
  const r = await s.get('/sized');
  assert.equal(r.body.length, body.length);
  assert.equal(cacheStatus(r), 'kubeproxy; fwd=uri-miss; detail="too-large"');
  assert.equal(cacheStatus(await s.get('/sized')), 'kubeproxy; fwd=uri-miss; detail="too-large"');
});

test('a stored body of many chunks is served whole from the cache', async (t) => {
  const s = await cachedService(t, async (_req, res, clock) => {
    res.writeHead(200, { date: clock.httpDate(), 'cache-control': 'max-age=60' });
    for (let i = 0; i < 50; i++) {
      res.write(`${String(i).padStart(3, '0')}|`);
      await new Promise((r) => setImmediate(r));
    }
    res.end();
  });
  const miss = await s.get('/chunks');
  const hit = await s.get('/chunks');
  assert.match(cacheStatus(hit)!, /; hit;/);
  assert.equal(hit.text, miss.text);
  assert.equal(hit.text.length, 200);
});
