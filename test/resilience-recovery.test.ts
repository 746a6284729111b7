/**
 * Recovery after every instance of a service died, on the default config (no health check):
 * origins are processes of their own, SIGKILLed and started again on the same port. Clients keep
 * asking throughout, as they would; the time from "the instance accepts connections" to the first
 * 200 is what a user waits. Run with SHOW_FIGURES=1 for the figures the README quotes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from './helpers/http.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { spawnOrigin, type OriginProcess } from './helpers/origin-process.ts';

const figures = process.env.SHOW_FIGURES !== undefined;

/** Two clients asking in a loop until stopped; every answer kept with its time. */
function keepAsking(proxy: TestProxy) {
  const answers: Array<{ at: number; status: number; text: string }> = [];
  let stopped = false;
  const client = async () => {
    while (!stopped) {
      try {
        const r = await request(proxy.port, { host: 'web.test', timeoutMs: 5_000 });
        answers.push({ at: performance.now(), status: r.status, text: r.text });
      } catch {
        answers.push({ at: performance.now(), status: 0, text: '' });
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const running = Promise.all([client(), client()]);
  return {
    answers,
    /** The first answer at or after `from` that was a 200 from `name`. */
    firstOk: (from: number, name: string) => answers.find((a) => a.at >= from && a.status === 200 && a.text === name),
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(get: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('when every instance died, the first one back serves within 1 s, outage after outage', async (t) => {
  const names = ['a', 'b'];
  const procs: OriginProcess[] = [];
  t.after(() => Promise.all(procs.map((p) => p.kill())));
  for (const n of names) procs.push(await spawnOrigin(n));
  const ports = procs.map((p) => p.port);
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: ports.map((port) => ({ port })) }] });
  t.after(() => proxy.close());
  const clients = keepAsking(proxy);
  t.after(() => clients.stop());

  const waits: number[] = [];
  for (let outage = 0; outage < 3; outage++) {
    await waitFor(() => clients.firstOk(performance.now() - 50, names[0]!) && clients.firstOk(performance.now() - 50, names[1]!), 'both instances to serve');
    await Promise.all(procs.map((p) => p.kill()));
    const downAt = performance.now();
    // The outage lasts long enough for every instance to be taken out, and seen out, several times over.
    await sleep(1_500);
    const during = clients.answers.filter((a) => a.at > downAt + 100);
    assert.ok(during.length > 10 && during.every((a) => a.status === 503), `clients got 503 during the outage (${during.length} answers)`);
    const back = outage % 2;
    procs[back] = await spawnOrigin(names[back]!, ports[back]);
    const first = await waitFor(() => clients.firstOk(procs[back]!.listeningAt, names[back]!), `a 200 from ${names[back]}`);
    const waited = first.at - procs[back]!.listeningAt;
    waits.push(waited);
    assert.ok(waited < 1_000, `outage ${outage + 1}: the first 200 came ${Math.round(waited)} ms after ${names[back]} accepted connections`);
    procs[1 - back] = await spawnOrigin(names[1 - back]!, ports[1 - back]);
  }
  if (figures) console.error(`[figure] every instance killed, then one back (3 outages in a row): first 200 after ${waits.map((w) => Math.round(w)).join(' / ')} ms`);
});

test('an instance ejected for its 503s that comes back healthy while the other is dead gets traffic at once', async (t) => {
  // `a` answers 503 until it is ejected on the timer (30 s by default), `b` serves.
  let a = await spawnOrigin('a', 0, '503');
  let b = await spawnOrigin('b');
  t.after(() => Promise.all([a.kill(), b.kill()]));
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: a.port }, { port: b.port }] }] });
  t.after(() => proxy.close());
  let ejectedForMs = 0;
  proxy.runtime.outliers.addListener({ onEject: (i, _s, ms) => i.id === `127.0.0.1:${a.port}` && (ejectedForMs = ms) });
  for (let i = 0; i < 30 && ejectedForMs === 0; i++) assert.equal((await request(proxy.port, { host: 'web.test' })).status, 200);
  assert.ok(ejectedForMs >= 30_000, `a was ejected on the timer (${ejectedForMs} ms)`);

  // Now b dies and a restarts healthy: both are out of rotation, and a is the one to use.
  const clients = keepAsking(proxy);
  t.after(() => clients.stop());
  await b.kill();
  await a.kill();
  await sleep(500);
  a = await spawnOrigin('a', a.port);
  const first = await waitFor(() => clients.firstOk(a.listeningAt, 'a'), 'a 200 from a');
  const waited = first.at - a.listeningAt;
  assert.ok(waited < 1_000, `the first 200 came ${Math.round(waited)} ms after a accepted connections, inside its ${ejectedForMs} ms ejection`);
  await clients.stop();
  b = await spawnOrigin('b', b.port);
});
