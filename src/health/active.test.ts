import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statusMatches } from './active.ts';

test('expectedStatus as a class matches every status of that class and no other', () => {
  assert.equal(statusMatches('2xx', 200), true);
  assert.equal(statusMatches('2xx', 204), true);
  assert.equal(statusMatches('2xx', 299), true);
  assert.equal(statusMatches('2xx', 301), false);
  assert.equal(statusMatches('2xx', 500), false);
  assert.equal(statusMatches('3xx', 302), true);
});

test('expectedStatus as a number or a list matches exactly those statuses', () => {
  assert.equal(statusMatches(204, 204), true);
  assert.equal(statusMatches(204, 200), false);
  assert.equal(statusMatches([200, 204], 204), true);
  assert.equal(statusMatches([200, 204], 201), false);
});
