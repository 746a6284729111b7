import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedBreaker, type BreakerState } from './shared-breaker.ts';

function breaker(failures = 3, cooldownMs = 1000) {
  let now = 0;
  const changes: BreakerState[] = [];
  const b = new SharedBreaker({ failures, cooldownMs, now: () => now, onChange: (s) => changes.push(s) });
  return { b, changes, advance: (ms: number) => (now += ms) };
}

test('the tier stays in use until the configured number of failures in a row', () => {
  const { b } = breaker(3);
  b.failure();
  b.failure();
  b.success(); // a success in between starts the count again
  b.failure();
  b.failure();
  assert.equal(b.state, 'closed');
  assert.equal(b.allow(), true);
  b.failure();
  assert.equal(b.state, 'open');
  assert.equal(b.allow(), false);
});

test('after the cool-down one probe goes through; its success closes the breaker', () => {
  const { b, changes, advance } = breaker(1, 1000);
  b.failure();
  advance(999);
  assert.equal(b.allow(), false);
  advance(1);
  assert.equal(b.allow(), true, 'the probe');
  assert.equal(b.state, 'half-open');
  assert.equal(b.allow(), false, 'only one probe at a time');
  assert.equal(b.success(), true, 'the tier is back');
  assert.equal(b.state, 'closed');
  assert.deepEqual(changes, ['open', 'half-open', 'closed']);
});

test('a failed probe opens the breaker for another cool-down', () => {
  const { b, advance } = breaker(1, 1000);
  b.failure();
  advance(1000);
  assert.equal(b.allow(), true);
  b.failure();
  assert.equal(b.state, 'open');
  assert.equal(b.snapshot().opened, 2);
  advance(500);
  assert.equal(b.allow(), false);
  advance(500);
  assert.equal(b.allow(), true);
});

test('an answer to a call made before the breaker opened does not close it', () => {
  const { b } = breaker(1);
  b.failure();
  assert.equal(b.success(), false);
  assert.equal(b.state, 'open');
  assert.match(String(b.snapshot().retryAt), /^\d{4}-/);
});
