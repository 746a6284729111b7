import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { spawnProxy, type ChildProxy } from './helpers/child.ts';

const SIZE = 512 * 1024 * 1024;
const WARMUP = 32 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');
/**
 * A proxy that buffered the body would grow by at least its 512 MiB; a streaming one stays within
 * GC noise (seen here: 0-51 MiB on Node 20 and 24, after the warm-up).
 */
const MAX_GROWTH_MIB = 128;

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

/** Resident memory of the proxy process (Linux /proc), in MiB. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

function upload(port: number, size: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ port, host: '127.0.0.1', method: 'POST', path: '/upload', headers: { host: 'big.test', 'content-length': String(size) } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve(Number(text)));
    });
    req.on('error', reject);
    generated(size).pipe(req);
  });
}

function download(port: number, size: number, slowReader: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ port, host: '127.0.0.1', path: `/download?size=${size}`, headers: { host: 'big.test' } }, (res) => {
      let n = 0;
      let paused = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        // Reading slower than the origin writes for a while: the proxy must pause the origin, not queue.
        if (slowReader && paused < 20 && n % (16 * 1024 * 1024) < c.length) {
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
}

/** Samples the proxy's RSS while `run` goes on; returns the peak growth over the starting value. */
async function peakGrowth(pid: number, run: () => Promise<unknown>): Promise<number> {
  const start = rssMiB(pid);
  let peak = start;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 20);
  try {
    await run();
  } finally {
    clearInterval(sampler);
  }
  return Math.max(peak, rssMiB(pid)) - start;
}

describe('streaming', { skip: process.platform !== 'linux' ? 'reads /proc' : false }, () => {
  let origin: Origin;
  let proxy: ChildProxy;
  before(async () => {
    origin = await startOrigin((req, res) => {
      if (req.method === 'POST') {
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () => res.end(String(n)));
        return;
      }
      const size = Number(new URL(req.url!, 'http://x').searchParams.get('size'));
      res.writeHead(200, { 'content-length': String(size) });
      generated(size).pipe(res);
    });
    proxy = await spawnProxy({ services: [{ name: 'big', domain: 'big.test', hosts: [{ port: origin.port }] }] });
    // Warm up: pools, JIT and the heap reach their working size before anything is measured.
    assert.equal(await upload(proxy.port, WARMUP), WARMUP);
    assert.equal(await download(proxy.port, WARMUP, false), WARMUP);
  });
  after(async () => {
    await proxy.cleanup();
    await origin.close();
  });

  test('a 512 MiB upload streams through without the proxy buffering it', async () => {
    let received = 0;
    const growth = await peakGrowth(proxy.child.pid!, async () => (received = await upload(proxy.port, SIZE)));
    assert.equal(received, SIZE);
    assert.ok(growth < MAX_GROWTH_MIB, `proxy RSS grew by ${growth.toFixed(1)} MiB while streaming ${SIZE / 1024 / 1024} MiB`);
  });

  test('a 512 MiB download streams through with back-pressure from a slow reader', async () => {
    let total = 0;
    const growth = await peakGrowth(proxy.child.pid!, async () => (total = await download(proxy.port, SIZE, true)));
    assert.equal(total, SIZE);
    assert.ok(growth < MAX_GROWTH_MIB, `proxy RSS grew by ${growth.toFixed(1)} MiB while streaming ${SIZE / 1024 / 1024} MiB`);
  });
});
