import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestedRuntime, bunCommand, envChoice, BUN_PRELOAD } from './select.ts';
import { bunUpstream } from '../upstream/bun-h1-client.ts';

test('the runtime is taken from --runtime first, then KUBEPROXY_RUNTIME; neither means no choice', () => {
  assert.equal(requestedRuntime('bun', { KUBEPROXY_RUNTIME: 'node' }), 'bun');
  assert.equal(requestedRuntime(undefined, { KUBEPROXY_RUNTIME: 'bun' }), 'bun');
  assert.equal(requestedRuntime(undefined, {}), undefined);
  assert.equal(requestedRuntime(undefined, { KUBEPROXY_RUNTIME: '' }), undefined);
});

test('an unknown runtime is an error naming where it came from and the choices', () => {
  assert.deepEqual(requestedRuntime('deno', {}), { error: '--runtime: "deno" is not a runtime (use node or bun)' });
  assert.deepEqual(requestedRuntime(undefined, { KUBEPROXY_RUNTIME: 'Bun' }), { error: 'KUBEPROXY_RUNTIME: "Bun" is not a runtime (use node or bun)' });
});

test("Bun runs the CLI module with the real undici loaded first, and the user's arguments unchanged", { skip: !hasBun() && 'bun is not installed' }, () => {
  const { args } = bunCommand(['--runtime', 'bun', '--config', 'a.yaml']);
  assert.deepEqual(args.slice(0, 2), ['--preload', BUN_PRELOAD]);
  assert.match(args[2]!, /[/\\]cli\.(ts|js)$/);
  assert.deepEqual(args.slice(3), ['--runtime', 'bun', '--config', 'a.yaml']);
});

function hasBun(): boolean {
  try {
    bunCommand([]);
    return true;
  } catch {
    return false;
  }
}

test('a setting read from the environment: its default when unset or empty, a listed value, or an error naming the variable and the choices', () => {
  const choices = ['a', 'b'] as const;
  assert.equal(envChoice({}, 'X', choices, 'a', 'a letter'), 'a');
  assert.equal(envChoice({ X: '' }, 'X', choices, 'a', 'a letter'), 'a');
  assert.equal(envChoice({ X: 'b' }, 'X', choices, 'a', 'a letter'), 'b');
  assert.throws(() => envChoice({ X: 'c' }, 'X', choices, 'a', 'a letter'), /^Error: X: "c" is not a letter \(use a or b\)$/);
  assert.equal(bunUpstream({}), 'connect');
  assert.throws(() => bunUpstream({ KUBEPROXY_BUN_UPSTREAM: 'bogus' }), /KUBEPROXY_BUN_UPSTREAM: "bogus" is not an upstream client \(use undici or connect\)/);
});
