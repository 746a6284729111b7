/**
 * Instances dying under load, on the default config: origins are processes of their own and are
 * SIGKILLed. What is sent where is observed through undici's diagnostics channels (every request
 * the proxy hands to an instance's pool, every connection it opens), in the proxy's process.
 * Run with SHOW_FIGURES=1 to print the figures the README's Reliability section quotes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { startProxy } from './helpers/proxy.ts';
import { runLoad, statusCounts } from './helpers/load.ts';
import { spawnOrigin, type OriginProcess } from './helpers/origin-process.ts';

const figures = process.env.SHOW_FIGURES !== undefined;

/** Every request the proxy handed to a pool and every connection it opened, with the time. */
function watchUpstream() {
  const requests: Array<{ origin: string; at: number }> = [];
  const connects: Array<{ port: number; at: number }> = [];
  const onRequest = (m: unknown) => {
    const r = (m as { request: { origin: string } }).request;
    requests.push({ origin: String(r.origin), at: performance.now() });
  };
  const onConnect = (m: unknown) => {
    const p = (m as { connectParams: { port: string | number } }).connectParams;
    connects.push({ port: Number(p.port), at: performance.now() });
  };
  subscribe('undici:request:create', onRequest);
  subscribe('undici:client:beforeConnect', onConnect);
  return {
    requests,
    connects,
    stop: () => {
      unsubscribe('undici:request:create', onRequest);
      unsubscribe('undici:client:beforeConnect', onConnect);
    },
  };
}

const METHODS = ['GET', 'GET', 'GET', 'HEAD', 'OPTIONS'];

for (const concurrency of [32, 128]) {
  test(`an instance SIGKILLed under load (c=${concurrency}) fails no GET, HEAD or OPTIONS and gets nothing once seen dead`, async (t) => {
    const a = await spawnOrigin('a');
    const b = await spawnOrigin('b');
    t.after(() => Promise.all([a.kill(), b.kill()]));
    const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: a.port }, { port: b.port }] }] });
    t.after(() => proxy.close());
    const aId = `127.0.0.1:${a.port}`;
    let seenDeadAt = Infinity;
    const events: string[] = [];
    proxy.runtime.outliers.addListener({
      onEject: (i, _s, ms, _n, reason) => {
        events.push(`${performance.now().toFixed(1)} eject ${i.id} ${ms} ${reason}`);
        if (i.id === aId && seenDeadAt === Infinity) seenDeadAt = performance.now();
      },
      onReadmit: (i) => events.push(`${performance.now().toFixed(1)} readmit ${i.id}`),
    });
    const watch = watchUpstream();
    t.after(() => watch.stop());
    const total = 10_000;
    const killAt = 3_000;
    let killed: Promise<void> | undefined;
    const outcomes = await runLoad(proxy.port, {
      total,
      concurrency,
      host: 'web.test',
      method: (i) => METHODS[i % METHODS.length]!,
      before: (i) => {
        if (i === killAt) killed = a.kill();
        return true;
      },
    });
    await killed;
    watch.stop();

    assert.deepEqual(statusCounts(outcomes), { 200: total }, 'every request was answered 200');
    assert.ok(seenDeadAt < Infinity, 'the killed instance was taken out');
    const origin = `http://${aId}`;
    const sentBefore = watch.requests.filter((r) => r.origin === origin && r.at < seenDeadAt).length;
    const sentAfter = watch.requests.filter((r) => r.origin === origin && r.at > seenDeadAt).length;
    // Requests handed to its pool just before may still open their connection a moment later.
    const connectsAfter = watch.connects.filter((c) => c.port === a.port && c.at > seenDeadAt + 500).length;
    assert.ok(sentBefore > killAt / 4, `the instance served its share before it died (${sentBefore} requests)`);
    assert.equal(sentAfter, 0, 'no request was sent to the instance after it was seen dead');
    assert.equal(connectsAfter, 0, `no connection to it was tried later (${JSON.stringify(events)})`);
    const attempts = watch.requests.length;
    if (figures) console.error(`[figure] c=${concurrency}: ${total} requests, SIGKILL at #${killAt}: failed ${total - outcomes.filter((o) => o.status === 200).length}, upstream attempts ${attempts}, sent to the dead instance after it was seen dead ${sentAfter}`);
  });
}

test('a request with a body in flight on an instance that dies may fail, and none is sent to it later', async (t) => {
  const a = await spawnOrigin('a');
  const b = await spawnOrigin('b');
  t.after(() => Promise.all([a.kill(), b.kill()]));
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: a.port }, { port: b.port }] }] });
  t.after(() => proxy.close());
  const aId = `127.0.0.1:${a.port}`;
  let seenDeadAt = Infinity;
  proxy.runtime.outliers.addListener({
    onEject: (i) => {
      if (i.id === aId && seenDeadAt === Infinity) seenDeadAt = performance.now();
    },
  });
  const watch = watchUpstream();
  t.after(() => watch.stop());
  let killed: Promise<void> | undefined;
  const outcomes = await runLoad(proxy.port, {
    total: 2_000,
    concurrency: 32,
    host: 'web.test',
    method: 'POST',
    before: (i) => {
      if (i === 500) killed = a.kill();
      return true;
    },
  });
  await killed;
  watch.stop();
  const counts = statusCounts(outcomes);
  const failed = outcomes.filter((o) => o.status !== 200);
  for (const o of failed) assert.equal(o.status, 502, `a failed POST gets a 502 (${JSON.stringify(counts)})`);
  assert.ok(failed.length <= 32, `only requests in flight when it died failed (${JSON.stringify(counts)})`);
  const sentAfter = watch.requests.filter((r) => r.origin === `http://${aId}` && r.at > seenDeadAt).length;
  assert.equal(sentAfter, 0, 'no request was sent to the instance after it was seen dead');
  if (figures) console.error(`[figure] POST c=32: 2000 requests, SIGKILL at #500: ${JSON.stringify(counts)}`);
});

test('with every instance answering 503, upstream attempts stay within 1.25 x the client requests', async (t) => {
  const origins: OriginProcess[] = [];
  t.after(() => Promise.all(origins.map((o) => o.kill())));
  for (const name of ['x', 'y', 'z']) origins.push(await spawnOrigin(name, 0, '503'));
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: origins.map((o) => ({ port: o.port })) }] });
  t.after(() => proxy.close());
  const watch = watchUpstream();
  t.after(() => watch.stop());
  const total = 3_000;
  const outcomes = await runLoad(proxy.port, { total, concurrency: 32, host: 'web.test' });
  watch.stop();
  assert.deepEqual(statusCounts(outcomes), { 503: total });
  const attempts = watch.requests.length;
  assert.ok(attempts <= total * 1.25, `upstream attempts: ${attempts} for ${total} requests`);
  assert.ok(attempts > total, `some retries were still made: ${attempts}`);
  if (figures) console.error(`[figure] every instance 503, c=32: ${attempts} upstream attempts for ${total} requests (${(attempts / total).toFixed(3)}x)`);
});
