import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProxyError } from '../errors.ts';
import type { Instance } from './instance.ts';
import type { Service } from './service.ts';
import { ServiceState } from './service-state.ts';
import { acquireSlot, isFull, releaseSlot } from './slot.ts';

function fixture(maxConnections: number) {
  const instance = { id: '10.0.0.1:80', inflight: 0, maxConnections } as unknown as Instance;
  const state = new ServiceState();
  const service = { name: 'web', state, get active() { return state.active; }, set active(n: number) { state.active = n; } } as unknown as Service;
  const reports: Array<[number, ProxyError | undefined]> = [];
  const observer = { attemptEnded: (_i: Instance, _s: Service, status: number, failure: ProxyError | undefined) => void reports.push([status, failure]) };
  return { instance, service, state, reports, observer };
}

describe('instance slots', () => {
  it('a slot counts against the instance limit and the service until it is given back', () => {
    const f = fixture(1);
    acquireSlot(f.instance, f.service);
    assert.equal(isFull(f.instance), true);
    assert.equal(f.state.active, 1);
    releaseSlot(f.observer, f.instance, f.service, 101, undefined);
    assert.equal(isFull(f.instance), false);
    assert.equal(f.state.active, 0);
    assert.deepEqual(f.reports, [[101, undefined]], 'the answer goes to passive health');
  });

  it('giving a slot back wakes the oldest request waiting for one', () => {
    const f = fixture(1);
    const woken: string[] = [];
    acquireSlot(f.instance, f.service);
    f.state.pending.add(() => woken.push('first'), () => {}, 0, 10);
    f.state.pending.add(() => woken.push('second'), () => {}, 0, 10);
    releaseSlot(f.observer, f.instance, f.service, 200, undefined);
    assert.deepEqual(woken, ['first']);
  });

  it('an instance without a limit is never full', () => {
    const f = fixture(0);
    for (let i = 0; i < 100; i++) acquireSlot(f.instance, f.service);
    assert.equal(isFull(f.instance), false);
  });
});
