/**
 * A black hole among the instances: it accepts TCP connections and never answers. With the
 * default config (least-request balancing by two random choices), the requests it holds count
 * against it, so it stops being picked after its first few; the clients of those few get a 504
 * once `timeouts.response` runs out. Run with SHOW_FIGURES=1 for the figures the README quotes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startProxy } from './helpers/proxy.ts';
import { request } from './helpers/http.ts';
import { runLoad, statusCounts } from './helpers/load.ts';
import { namedOrigin } from './helpers/origin.ts';

const figures = process.env.SHOW_FIGURES !== undefined;

interface BlackHole {
  server: Server;
  port: number;
  /** performance.now() of every connection it accepted (one per request: none is ever answered). */
  accepted: number[];
  /** Cuts every connection it holds. */
  release(): void;
}

async function blackHole(): Promise<BlackHole> {
  const sockets = new Set<Socket>();
  const accepted: number[] = [];
  const server = createServer((socket) => {
    accepted.push(performance.now());
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    // Reads the request and never writes a byte.
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    accepted,
    release: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

test('a black hole among three instances gets at most 1 % of the requests after its first 5 s', async (t) => {
  const a = await namedOrigin('a');
  const b = await namedOrigin('b');
  const hole = await blackHole();
  t.after(() => Promise.all([a.close(), b.close(), new Promise<void>((r) => hole.server.close(() => r()))]));
  const proxy = await startProxy({
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: a.port }, { port: hole.port }, { port: b.port }] }],
  });
  t.after(() => proxy.close());

  // Runs past the first 5 s until 400 requests were started after them (a 1 % share is then 4
  // requests), however slow the machine; 8 s at least, 60 s at most.
  const startedAt: number[] = [];
  const t0 = performance.now();
  let after5s = 0;
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const load = runLoad(proxy.port, {
    total: 1_000_000,
    concurrency: 32,
    host: 'web.test',
    timeoutMs: 120_000,
    before: (i) => {
      const now = performance.now();
      if ((now - t0 > 8_000 && after5s >= 400) || now - t0 > 60_000) {
        stop();
        return false;
      }
      if (now - t0 > 5_000) after5s++;
      startedAt[i] = now;
      return true;
    },
  });
  // Once no request starts any more, the black hole's are cut loose so that the run can end.
  await stopped;
  const swallowed = hole.accepted.length;
  hole.release();
  const outcomes = await load;

  const after = t0 + 5_000;
  const requestsAfter = startedAt.filter((at) => at > after).length;
  const holeAfter = hole.accepted.filter((at) => at > after).length;
  const share = holeAfter / requestsAfter;
  assert.ok(share <= 0.01, `the black hole got ${holeAfter} of ${requestsAfter} requests after its first 5 s`);
  assert.ok(swallowed > 0, 'the black hole was tried at first');
  const counts = statusCounts(outcomes);
  assert.equal(counts['200'], outcomes.length, `every other request was answered (${JSON.stringify(counts)})`);
  if (figures) {
    console.error(`[figure] black hole among 3, c=32, ${Math.round((performance.now() - t0) / 1000)} s: it took ${swallowed} of ${outcomes.length} requests, ${holeAfter} of ${requestsAfter} (${(share * 100).toFixed(2)} %) after its first 5 s`);
  }
});

test('a request the black hole swallowed gets a 504 naming the instance once timeouts.response runs out', async (t) => {
  const hole = await blackHole();
  t.after(() => new Promise<void>((r) => hole.server.close(() => r())));
  const proxy = await startProxy({
    timeouts: { response: '1s' },
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: hole.port }] }],
  });
  t.after(() => proxy.close());
  const started = performance.now();
  const r = await request(proxy.port, { host: 'web.test' });
  const waited = performance.now() - started;
  assert.equal(r.status, 504);
  assert.match(r.text, new RegExp(`instance 127\\.0\\.0\\.1:${hole.port} did not answer in time`));
  assert.ok(waited >= 950 && waited < 5_000, `answered after ${Math.round(waited)} ms`);
  assert.equal(hole.accepted.length, 1, 'not replayed elsewhere or on the same instance: it may have been processed');
});
