import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CACHE_FORWARDED, CACHE_NONE, CACHE_SERVED, RequestWindow, mergeCounts, quantile, summarize } from './window.ts';

const T0 = 1_800_000_000_000;

test('a window counts the last minute: requests per second, error ratio, retries and cache hits', () => {
  const w = new RequestWindow(T0 - 120_000);
  for (let s = 0; s < 60; s++) {
    for (let n = 0; n < 10; n++) w.record(T0 + s * 1000 + n, 4, n === 0, n === 1 ? 2 : 0, n < 5 ? CACHE_SERVED : n < 8 ? CACHE_FORWARDED : CACHE_NONE);
  }
  const sums = w.sums(T0 + 59_500);
  assert.equal(sums.seconds, 60);
  assert.equal(sums.requests, 600);
  const m = summarize(sums);
  assert.equal(m.requestsPerSecond, 10);
  assert.equal(m.errorRatio, 0.1);
  assert.equal(m.retries, 120);
  assert.equal(m.cacheHitRatio, 0.625);
});

test('requests older than a minute leave the window, and a reused second starts from zero', () => {
  const w = new RequestWindow(T0);
  w.record(T0, 1, true, 0, CACHE_NONE);
  assert.equal(w.sums(T0 + 59_999).requests, 1);
  assert.equal(w.sums(T0 + 60_000).requests, 0);
  // Same ring slot a minute later: the old second's counts must not add up with the new one.
  w.record(T0 + 60_000, 1, false, 0, CACHE_NONE);
  const sums = w.sums(T0 + 60_000);
  assert.equal(sums.requests, 1);
  assert.equal(sums.errors, 0);
});

test('a young window divides by the seconds it has lived, not by 60', () => {
  const w = new RequestWindow(T0);
  for (let n = 0; n < 20; n++) w.record(T0 + 1500, 1, false, 0, CACHE_NONE);
  assert.equal(summarize(w.sums(T0 + 1500)).requestsPerSecond, 10);
});

test('p50 and p99 come from the histogram: 99 fast requests and one slow one', () => {
  const w = new RequestWindow(T0);
  for (let n = 0; n < 99; n++) w.record(T0, 8, false, 0, CACHE_NONE);
  w.record(T0, 900, false, 0, CACHE_NONE);
  const m = summarize(w.sums(T0));
  assert.ok(m.p50Ms! > 7.5 && m.p50Ms! <= 10, `p50 ${m.p50Ms}`);
  assert.ok(m.p99Ms! > 7.5 && m.p99Ms! <= 10, `p99 ${m.p99Ms}`);
  for (let n = 0; n < 10; n++) w.record(T0, 900, false, 0, CACHE_NONE);
  assert.ok(summarize(w.sums(T0)).p99Ms! > 750, 'p99 moves to the slow bucket once 1 % of requests are slow');
  assert.equal(quantile([0, 0], 0.5), null);
});

test('two workers merge by adding their counts; quantiles follow the sum', () => {
  const a = new RequestWindow(T0);
  const b = new RequestWindow(T0);
  for (let n = 0; n < 30; n++) a.record(T0, 1, false, 0, CACHE_SERVED);
  for (let n = 0; n < 70; n++) b.record(T0, 400, n < 7, 1, CACHE_FORWARDED);
  const m = summarize(mergeCounts([a.sums(T0), b.sums(T0)]));
  assert.equal(m.requestsPerSecond, 100);
  assert.equal(m.errorRatio, 0.07);
  assert.equal(m.retries, 70);
  assert.equal(m.cacheHitRatio, 0.3);
  assert.ok(m.p50Ms! > 300 && m.p50Ms! <= 500, `p50 ${m.p50Ms}`);
});
