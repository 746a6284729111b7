import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryBudget } from './retry-budget.ts';

test('retries in flight stay within the percentage of active requests', () => {
  const budget = new RetryBudget(() => 0);
  let granted = 0;
  for (let k = 0; k < 100; k++) if (budget.tryAcquire(50, 20, 0)) granted++;
  assert.equal(granted, 10, '20 % of 50 active requests');
  assert.equal(budget.inflight, 10);
  assert.equal(budget.denied, 90);
});

test('a released retry frees its slot', () => {
  const budget = new RetryBudget(() => 0);
  assert.equal(budget.tryAcquire(10, 20, 0), true);
  assert.equal(budget.tryAcquire(10, 20, 0), true);
  assert.equal(budget.tryAcquire(10, 20, 0), false);
  budget.release();
  assert.equal(budget.tryAcquire(10, 20, 0), true);
});

test('the per-second floor allows a few retries when the percentage rounds to nothing', () => {
  let now = 0;
  const budget = new RetryBudget(() => now);
  const grants = () => {
    let n = 0;
    for (let k = 0; k < 10; k++) if (budget.tryAcquire(1, 20, 3)) n++;
    return n;
  };
  assert.equal(grants(), 3, 'three in the first second');
  now = 500;
  assert.equal(grants(), 0, 'none more within the same second');
  now = 1000;
  assert.equal(grants(), 3, 'three again in the next second');
});

test('a budget of 0 % with no floor refuses every retry', () => {
  const budget = new RetryBudget(() => 0);
  assert.equal(budget.tryAcquire(1000, 0, 0), false);
});

test('release never drives the count below zero', () => {
  const budget = new RetryBudget(() => 0);
  budget.release();
  assert.equal(budget.inflight, 0);
  assert.equal(budget.tryAcquire(5, 20, 0), true);
  assert.equal(budget.inflight, 1);
});
