import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

const SIZE = 256 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

/** A body of `size` bytes produced on demand (never held in memory). */
function generated(size: number): Readable {
  let left = size;
  return new Readable({
    read() {
      if (left <= 0) return this.push(null);
      const n = Math.min(left, CHUNK.length);
      left -= n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  });
}

function rssMiB(): number {
  return process.memoryUsage().rss / 1024 / 1024;
}

describe('streaming', () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await startOrigin((req, res) => {
      if (req.method === 'POST') {
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () => res.end(String(n)));
        return;
      }
      res.writeHead(200, { 'content-length': String(SIZE) });
      generated(SIZE).pipe(res);
    });
    proxy = await startProxy({ services: [{ name: 'big', domain: 'big.test', hosts: [{ port: origin.port }] }] });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  test('a 256 MiB upload streams through without the proxy buffering it', async () => {
    const before = rssMiB();
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB())), 20);
    const received = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ port: proxy.port, host: '127.0.0.1', method: 'POST', path: '/upload', headers: { host: 'big.test', 'content-length': String(SIZE) } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      generated(SIZE).pipe(req);
    });
    clearInterval(sampler);
    assert.equal(Number(received), SIZE);
    // Client, proxy and origin share this process: all three together stay far below the body size.
    assert.ok(peak - before < 96, `RSS grew by ${(peak - before).toFixed(1)} MiB while streaming ${SIZE / 1024 / 1024} MiB`);
  });

  test('a 256 MiB download streams through with back-pressure from a slow reader', async () => {
    const before = rssMiB();
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB())), 20);
    const total = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ port: proxy.port, host: '127.0.0.1', path: '/download', headers: { host: 'big.test' } }, (res) => {
        let n = 0;
        let paused = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          // Reading slower than the origin writes for a while: the proxy must pause the origin, not queue.
          if (paused < 20 && n % (8 * 1024 * 1024) < c.length) {
            paused++;
            res.pause();
            setTimeout(() => res.resume(), 25);
          }
        });
        res.on('end', () => resolve(n));
      });
      req.on('error', reject);
      req.end();
    });
    clearInterval(sampler);
    assert.equal(total, SIZE);
    assert.ok(peak - before < 96, `RSS grew by ${(peak - before).toFixed(1)} MiB while streaming ${SIZE / 1024 / 1024} MiB`);
  });
});
