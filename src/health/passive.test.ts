import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyError } from '../errors.ts';
import type { OutlierConfig } from '../config/schema.ts';
import { OutlierDetector, type OutlierClock, type OutlierInstance } from './passive.ts';

/** A clock whose time only moves when the test says so. */
class FakeClock implements OutlierClock {
  t = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private seq = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (next === undefined || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
  get pending(): number {
    return this.timers.length;
  }
}

const cfg = (over: Partial<OutlierConfig> = {}): OutlierConfig => ({
  enabled: true,
  consecutiveFailures: 3,
  baseEjectionTime: 1000,
  maxEjectionTime: 5000,
  maxEjectionPercent: 50,
  ...over,
});

function setup(n: number, over: Partial<OutlierConfig> = {}) {
  const clock = new FakeClock();
  /** What the connect probe answers, and how many probes were made. */
  const reach = { up: false, probes: 0 };
  const events: string[] = [];
  const durations: number[] = [];
  const detector = new OutlierDetector<OutlierInstance>(
    {
      onEject: (i, s, ms) => {
        events.push(`eject ${s}/${i.id}`);
        durations.push(ms);
      },
      onReadmit: (i, s) => events.push(`readmit ${s}/${i.id}`),
    },
    clock,
    () => {
      reach.probes++;
      return Promise.resolve(reach.up);
    },
  );
  const instances: OutlierInstance[] = Array.from({ length: n }, (_, k) => ({ id: `10.0.0.${k + 1}:80`, ejected: false }));
  const service = { name: 'web', outlier: cfg(over), instances };
  const fail = (i: OutlierInstance, times = 1) => {
    for (let k = 0; k < times; k++) detector.record(i, service, 0, new ProxyError('connect', 'refused', true));
  };
  const status = (i: OutlierInstance, s: number) => detector.record(i, service, s, undefined);
  const unreachable = (i: OutlierInstance) => detector.record(i, service, 0, new ProxyError('connect', 'refused', true, { unreachable: true }));
  return { clock, detector, instances, service, events, durations, fail, status, reach, unreachable };
}

test('an instance is ejected after the configured number of consecutive failures, not before', () => {
  const { instances, fail, events } = setup(4);
  fail(instances[0]!, 2);
  assert.equal(instances[0]!.ejected, false);
  fail(instances[0]!);
  assert.equal(instances[0]!.ejected, true);
  assert.deepEqual(events, ['eject web/10.0.0.1:80']);
});

test('5xx answers count as failures and a success resets the count', () => {
  const { instances, status, events } = setup(4);
  const i = instances[0]!;
  status(i, 503);
  status(i, 500);
  status(i, 200);
  status(i, 502);
  status(i, 504);
  assert.equal(i.ejected, false, 'the 200 in the middle reset the count');
  status(i, 500);
  assert.equal(i.ejected, true);
  assert.equal(events.length, 1);
});

test('4xx answers, client aborts and oversized bodies are not the instance failing', () => {
  const { instances, detector, service } = setup(4);
  const i = instances[0]!;
  for (let k = 0; k < 10; k++) {
    detector.record(i, service, 404, undefined);
    detector.record(i, service, 0, new ProxyError('client_abort', 'gone'));
    detector.record(i, service, 0, new ProxyError('body_too_large', 'big'));
  }
  assert.equal(i.ejected, false);
  assert.equal(detector.failures(i), 0);
});

test('resets, timeouts and malformed answers count as failures', () => {
  const { instances, detector, service } = setup(4);
  const i = instances[0]!;
  detector.record(i, service, 0, new ProxyError('reset', 'reset'));
  detector.record(i, service, 0, new ProxyError('timeout', 'slow'));
  detector.record(i, service, 0, new ProxyError('upstream_protocol', 'garbage'));
  assert.equal(i.ejected, true);
});

test('an ejected instance is readmitted when its ejection time is over', () => {
  const { instances, fail, clock, events } = setup(4);
  fail(instances[0]!, 3);
  clock.advance(999);
  assert.equal(instances[0]!.ejected, true);
  clock.advance(1);
  assert.equal(instances[0]!.ejected, false);
  assert.deepEqual(events, ['eject web/10.0.0.1:80', 'readmit web/10.0.0.1:80']);
});

test('the ejection time grows while the instance keeps failing, up to the maximum', () => {
  const { instances, fail, clock, durations } = setup(4);
  const i = instances[0]!;
  for (let k = 0; k < 7; k++) {
    fail(i, 3);
    assert.equal(i.ejected, true);
    clock.advance(durations.at(-1)!);
    assert.equal(i.ejected, false);
  }
  assert.deepEqual(durations, [1000, 2000, 3000, 4000, 5000, 5000, 5000]);
});

test('an instance that stayed healthy long enough is ejected for the base time again', () => {
  const { instances, fail, clock, durations } = setup(4);
  const i = instances[0]!;
  fail(i, 3);
  clock.advance(1000);
  fail(i, 3);
  clock.advance(2000);
  assert.deepEqual(durations, [1000, 2000]);
  // Two base periods in rotation take two steps off the multiplier.
  clock.advance(2000);
  fail(i, 3);
  assert.deepEqual(durations, [1000, 2000, 1000]);
});

test('no more than maxEjectionPercent of a service is ejected at once', () => {
  const { instances, fail } = setup(4, { maxEjectionPercent: 50 });
  for (const i of instances) fail(i, 3);
  assert.equal(instances.filter((i) => i.ejected).length, 2);
});

test('at least one instance may be ejected even when the percentage rounds to zero', () => {
  const { instances, fail } = setup(2, { maxEjectionPercent: 10 });
  fail(instances[0]!, 3);
  fail(instances[1]!, 3);
  assert.deepEqual(instances.map((i) => i.ejected), [true, false]);
});

test('an instance held back by the share is ejected at its next failure once room is made', () => {
  const { instances, fail, clock } = setup(2, { maxEjectionPercent: 50 });
  fail(instances[0]!, 3);
  fail(instances[1]!, 3);
  assert.deepEqual(instances.map((i) => i.ejected), [true, false]);
  clock.advance(1000);
  assert.equal(instances[0]!.ejected, false);
  fail(instances[1]!);
  assert.equal(instances[1]!.ejected, true);
});

test('maxEjectionPercent 0 and enabled false eject nothing', () => {
  const a = setup(3, { maxEjectionPercent: 0 });
  a.fail(a.instances[0]!, 10);
  assert.equal(a.instances[0]!.ejected, false);
  const b = setup(3, { enabled: false });
  b.fail(b.instances[0]!, 10);
  assert.equal(b.instances[0]!.ejected, false);
});

test('results arriving while an instance is ejected neither extend nor end its ejection', () => {
  const { instances, fail, status, clock, events } = setup(4);
  const i = instances[0]!;
  fail(i, 3);
  fail(i, 10);
  status(i, 200);
  assert.equal(i.ejected, true);
  clock.advance(1000);
  assert.equal(i.ejected, false);
  assert.deepEqual(events, ['eject web/10.0.0.1:80', 'readmit web/10.0.0.1:80']);
});

test('stop clears every readmission timer', () => {
  const { instances, fail, clock, detector } = setup(4);
  fail(instances[0]!, 3);
  assert.equal(clock.pending, 1);
  detector.stop();
  assert.equal(clock.pending, 0);
  fail(instances[1]!, 3);
  assert.equal(instances[1]!.ejected, false, 'a stopped detector ejects nothing');
});

/** Lets the probe's promise settle after the fake clock fired it. */
const settle = () => new Promise<void>((r) => setImmediate(r));

test('an unreachable instance is out at once, even beyond maxEjectionPercent', () => {
  const { instances, unreachable, events, durations } = setup(2, { maxEjectionPercent: 50 });
  unreachable(instances[0]!);
  unreachable(instances[1]!);
  assert.deepEqual(instances.map((i) => i.ejected), [true, true]);
  assert.deepEqual(events, ['eject web/10.0.0.1:80', 'eject web/10.0.0.2:80']);
  assert.deepEqual(durations, [0, 0], 'no ejection time: out until a probe connects');
});

test('an unreachable instance is readmitted as soon as a connect probe succeeds, however long it was out', async () => {
  const { instances, unreachable, clock, reach, events } = setup(3);
  const i = instances[0]!;
  unreachable(i);
  // Probes keep failing for ten minutes: longer than any ejection time.
  for (let t = 0; t < 600_000; t += 100) {
    clock.advance(100);
    await settle();
  }
  assert.equal(i.ejected, true);
  assert.ok(reach.probes >= 1100 && reach.probes <= 1300, `probed about every 500 ms (${reach.probes} probes)`);
  reach.up = true;
  clock.advance(500);
  await settle();
  assert.equal(i.ejected, false);
  assert.deepEqual(events, ['eject web/10.0.0.1:80', 'readmit web/10.0.0.1:80']);
});

test('an instance that accepts connections but drops every request is ejected on the timer after enough failures', async () => {
  const { instances, unreachable, clock, reach, durations } = setup(4, { consecutiveFailures: 3 });
  const i = instances[0]!;
  reach.up = true;
  for (let k = 0; k < 2; k++) {
    unreachable(i);
    assert.equal(i.ejected, true);
    clock.advance(100);
    await settle();
    assert.equal(i.ejected, false, 'readmitted by the probe');
  }
  unreachable(i);
  assert.deepEqual(durations, [0, 0, 1000], 'the third failure in a row is an ejection with a time');
  clock.advance(100);
  await settle();
  assert.equal(i.ejected, true, 'a probe does not end a timed ejection');
});

test('outlier detection turned off takes no unreachable instance out either', () => {
  const a = setup(2, { enabled: false });
  a.unreachable(a.instances[0]!);
  assert.equal(a.instances[0]!.ejected, false);
  const b = setup(2, { maxEjectionPercent: 0 });
  b.unreachable(b.instances[0]!);
  assert.equal(b.instances[0]!.ejected, false);
});

test('an unreachable instance that leaves the config is no longer probed, and starts afresh if it returns', async () => {
  const { instances, unreachable, clock, reach } = setup(2);
  const i = instances[0]! as OutlierInstance & { draining: boolean };
  unreachable(i);
  i.draining = true;
  clock.advance(100);
  await settle();
  assert.equal(reach.probes, 0, 'no probe once it left');
  assert.equal(clock.pending, 0, 'no timer left behind');
  assert.equal(i.ejected, false);
});
