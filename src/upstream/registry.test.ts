import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../config/load.ts';
import { InstanceRegistry } from './registry.ts';
import { Service } from './service.ts';

function serviceOf(ports: number[], keepAlive = '4s'): Service {
  const config = parseConfig(`
proxy:
  timeouts: { keepAlive: ${keepAlive} }
  services:
    - name: web
      domain: web.test
      hosts: [${ports.map((p) => `{ address: 127.0.0.1, port: ${p} }`).join(', ')}]
`);
  return new Service(config.proxy.services[0]!, config.proxy);
}

test('a reload keeps the instances that stay, with their ejection and health, and closes the ones that left', async () => {
  const registry = new InstanceRegistry();
  registry.begin();
  const first = serviceOf([9001, 9002]);
  const [a, b] = registry.acquire(first, first.config.hosts);
  assert.ok(a && b);
  a.ejected = true;
  b.healthy = false;
  a.inflight = 3;

  registry.begin();
  const next = serviceOf([9001, 9003], '10s');
  const instances = registry.acquire(next, next.config.hosts);
  const gone = registry.sweep(1000);

  assert.equal(instances[0], a, 'the same Instance object');
  assert.equal(a.ejected, true);
  assert.equal(a.inflight, 3);
  assert.equal(a.draining, false);
  assert.deepEqual(gone, [b]);
  assert.equal(b.draining, true);
  assert.equal(instances[1]!.id, '127.0.0.1:9003');
  await registry.closeAll(1000);
});

test('instances of a large config hold no connection pool until they get a request', async () => {
  const registry = new InstanceRegistry();
  registry.begin();
  const ports = Array.from({ length: 200 }, (_, i) => 10_000 + i);
  const service = serviceOf(ports);
  const instances = registry.acquire(service, service.config.hosts);
  assert.equal(instances.length, 200);
  assert.equal(instances.filter((i) => i.hasPool).length, 0);
  await registry.closeAll(1000);
});

test('service discovery replacing the set keeps the instances that stay and drains the others', async () => {
  const registry = new InstanceRegistry();
  registry.begin();
  const service = serviceOf([9001, 9002]);
  const [a, b] = registry.acquire(service, service.config.hosts);
  a!.ejected = true;
  const { instances, gone } = registry.replace(service, [{ address: '127.0.0.1', port: 9001, weight: 1 }], 1000);
  assert.deepEqual(instances, [a]);
  assert.equal(a!.ejected, true);
  assert.deepEqual(gone, [b]);
  assert.equal(b!.draining, true);
  await registry.closeAll(1000);
});
