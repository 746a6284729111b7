import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryBudget } from './retry-budget.ts';

test('retries in flight stay within the percentage of the requests that are not retries', () => {
  const budget = new RetryBudget();
  let granted = 0;
  // 50 requests in flight, the granted retries among them.
  for (let k = 0; k < 100; k++) if (budget.tryAcquire(50, 20, 0)) granted++;
  assert.equal(granted, 8, '8 retries: 20 % of the 42 other requests');
  assert.equal(budget.inflight, 8);
  assert.equal(budget.denied, 92);
});

test('a budget of 100 % refuses no retry', () => {
  const budget = new RetryBudget();
  for (let k = 0; k < 50; k++) assert.equal(budget.tryAcquire(50, 100, 0), true);
});

test('a released retry frees its slot', () => {
  const budget = new RetryBudget();
  assert.equal(budget.tryAcquire(15, 20, 0), true);
  assert.equal(budget.tryAcquire(15, 20, 0), true);
  assert.equal(budget.tryAcquire(15, 20, 0), false);
  budget.release();
  assert.equal(budget.tryAcquire(15, 20, 0), true);
});

test('the concurrency floor allows a few retries in flight when the percentage rounds to nothing', () => {
  const budget = new RetryBudget();
  let n = 0;
  for (let k = 0; k < 10; k++) if (budget.tryAcquire(1, 20, 3)) n++;
  assert.equal(n, 3, 'three retries in flight at most');
  budget.release();
  assert.equal(budget.tryAcquire(1, 20, 3), true, 'a finished retry frees its slot');
});

test('sequential retries are never refused, however many there are', () => {
  const budget = new RetryBudget();
  for (let k = 0; k < 1000; k++) {
    assert.equal(budget.tryAcquire(1, 20, 3), true);
    budget.release();
  }
});

test('a budget of 0 % with no floor refuses every retry', () => {
  const budget = new RetryBudget();
  assert.equal(budget.tryAcquire(1000, 0, 0), false);
});

test('release never drives the count below zero', () => {
  const budget = new RetryBudget();
  budget.release();
  assert.equal(budget.inflight, 0);
  assert.equal(budget.tryAcquire(5, 20, 0), true);
  assert.equal(budget.inflight, 1);
});
