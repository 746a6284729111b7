import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Collapser, type WaitOutcome } from './collapse.ts';

describe('Collapser', () => {
  it('wakes every waiter with the outcome, in arrival order, and frees the key first', () => {
    const c = new Collapser();
    const flight = c.lead('k');
    const woken: Array<[number, WaitOutcome, boolean]> = [];
    for (const i of [1, 2, 3]) flight.wait(10_000, (o) => woken.push([i, o, c.get('k') === undefined]));
    assert.equal(flight.waiting, 3);
    assert.equal(c.get('k'), flight);
    flight.done('stored');
    assert.deepEqual(woken, [
      [1, 'stored', true],
      [2, 'stored', true],
      [3, 'stored', true],
    ]);
    assert.equal(c.size, 0);
  });

  it('is idempotent: a second done wakes nobody', () => {
    const c = new Collapser();
    const flight = c.lead('k');
    let n = 0;
    flight.wait(10_000, () => n++);
    flight.done('error');
    flight.done('stored');
    assert.equal(n, 1);
  });

  it('a new flight for the key may start while the old one wakes its waiters', () => {
    const c = new Collapser();
    const old = c.lead('k');
    let next: ReturnType<Collapser['lead']> | undefined;
    old.wait(10_000, () => (next = c.lead('k')));
    old.done('uncacheable');
    assert.ok(next !== undefined);
    old.done('stored'); // must not remove the new flight
    assert.equal(c.get('k'), next);
  });

  it('a waiter times out on its own and is not woken again', async () => {
    const c = new Collapser();
    const flight = c.lead('k');
    const outcomes: WaitOutcome[] = [];
    await new Promise<void>((resolve) => {
      flight.wait(20, (o) => {
        outcomes.push(o);
        resolve();
      });
    });
    assert.equal(flight.waiting, 0);
    flight.done('stored');
    assert.deepEqual(outcomes, ['timeout']);
  });

  it('a cancelled waiter is never woken', () => {
    const c = new Collapser();
    const flight = c.lead('k');
    let n = 0;
    const cancel = flight.wait(10_000, () => n++);
    cancel();
    flight.done('stored');
    assert.equal(n, 0);
    assert.equal(flight.waiting, 0);
  });
});
