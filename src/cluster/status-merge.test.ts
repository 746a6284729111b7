import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestWindow, CACHE_FORWARDED, CACHE_SERVED } from '../observability/window.ts';
import { mergeWorkerStatus } from './status-merge.ts';

const NOW = 1_800_000_000_000;

function window(requests: number, ms: number, cache: typeof CACHE_SERVED | typeof CACHE_FORWARDED) {
  const w = new RequestWindow(NOW - 120_000);
  for (let n = 0; n < requests; n++) w.record(NOW, ms, false, 0, cache);
  return w.sums(NOW);
}

function instance(id: string, extra: Record<string, unknown> = {}) {
  return { id, state: 'healthy', healthy: true, ejected: false, available: true, inflight: 1, ejections: 0, ejection: null, lastError: null, lastProbe: null, lastEjectedAt: null, ...extra };
}

function worker(requests: number, ms: number, cache: typeof CACHE_SERVED | typeof CACHE_FORWARDED, instances: unknown[], purges: number) {
  return {
    pid: 1,
    services: [{ name: 'web', domains: ['web.test'], inflight: 2, active: 2, retryBudget: { granted: 1, refused: 3 }, window: window(requests, ms, cache), instances }],
    cache: { enabled: true, entries: 10, bytes: 1000, evictions: 1, purges, lookups: { hit: requests, miss: 0, stale: 0, revalidated: 0, bypass: 0 }, hitRatio: 1 },
  };
}

test("the cluster's view adds up the workers: counts summed, the last minute merged, the worst instance state", () => {
  const later = new Date(NOW + 30_000).toISOString();
  const merged = mergeWorkerStatus([
    worker(60, 2, CACHE_SERVED, [instance('10.0.0.1:80'), instance('10.0.0.2:80')], 1),
    worker(60, 400, CACHE_FORWARDED, [instance('10.0.0.1:80', { state: 'ejected', ejected: true, ejections: 1, ejection: { reason: 'failures', until: later } }), instance('10.0.0.2:80')], 1),
    { pid: 3, error: 'timed out' },
  ]);
  assert.equal(merged.services.length, 1);
  const web = merged.services[0] as Record<string, any>;
  assert.equal(web.inflight, 4);
  assert.deepEqual(web.retryBudget, { granted: 2, refused: 6 });
  assert.equal(web.lastMinute.requestsPerSecond, 2, '120 requests over 60 s');
  assert.ok(web.lastMinute.p99Ms > 300, 'p99 comes from the summed histogram');
  const [first, second] = web.instances as Array<Record<string, any>>;
  assert.equal(first!.state, 'ejected', 'one worker that ejected it has it out of rotation');
  assert.equal(first!.ejection.until, later);
  assert.equal(first!.inflight, 2);
  assert.equal(first!.ejections, 1);
  assert.equal(second!.state, 'healthy');
  const cache = merged.cache as Record<string, any>;
  assert.equal(cache.entries, 20);
  assert.equal(cache.purges, 1, 'a purge fanned out to every worker is one purge');
  assert.equal(cache.lastMinute.hitRatio, 0.5);
});
