import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestId } from './request-id.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('X-Request-Id', () => {
  it("keeps the client's id when it is 1 to 200 visible characters", () => {
    assert.equal(requestId('abc-123'), 'abc-123');
    assert.equal(requestId('x'.repeat(200)), 'x'.repeat(200));
  });

  it('replaces a missing, empty, spaced, repeated, control-character or over-long id with a UUID', () => {
    for (const bad of [undefined, '', 'a b', 'a, b', 'a\tb', 'x'.repeat(201), 'é']) assert.match(requestId(bad), UUID, String(bad));
  });
});
