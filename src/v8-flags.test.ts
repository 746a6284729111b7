import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { V8_FLAGS, withV8Flags } from './v8-flags.ts';

describe('V8 flags of KubeProxy processes', () => {
  it('turns the memory reducer off', () => {
    assert.ok(V8_FLAGS.includes('--no-memory-reducer'));
  });

  it("adds the flags a worker would lack, after the primary's own", () => {
    assert.deepEqual(withV8Flags(['--enable-source-maps']), ['--enable-source-maps', ...V8_FLAGS]);
  });

  it('does not repeat a flag the process already runs with', () => {
    assert.deepEqual(withV8Flags([...V8_FLAGS, '--trace-gc']), [...V8_FLAGS, '--trace-gc']);
  });
});
