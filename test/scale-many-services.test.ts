/**
 * A config of thousands of services, as a cluster-wide ingress has: the proxy starts from it and
 * routes each Host to its own service. (Memory and start time are measured by
 * `npm run bench -- --scale`, not asserted here.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnProxy, type ChildProxy } from './helpers/child.ts';
import { request } from './helpers/http.ts';
import { namedOrigin, type Origin } from './helpers/origin.ts';

const SERVICES = 5000;

let a: Origin;
let b: Origin;
let proxy: ChildProxy;

before(async () => {
  [a, b] = await Promise.all([namedOrigin('a'), namedOrigin('b')]);
  proxy = await spawnProxy({
    services: Array.from({ length: SERVICES }, (_, i) => ({
      name: `svc-${i}`,
      domain: `svc-${i}.example.test`,
      loadBalancer: 'round-robin',
      hosts: [{ port: a.port }, { port: b.port }],
    })),
  });
});

after(async () => {
  await proxy?.cleanup();
  await Promise.all([a?.close(), b?.close()]);
});

test('a config of 5,000 services with 2 instances each starts and serves every Host it names', async () => {
  for (const i of [0, 1, 2499, SERVICES - 1]) {
    const r = await request(proxy.port, { host: `svc-${i}.example.test` });
    assert.equal(r.status, 200, `svc-${i}`);
    assert.ok(['a', 'b'].includes(r.text), `svc-${i} answered by an instance: ${r.text}`);
  }
});

test('each service of a large config balances over both of its instances', async () => {
  const seen = new Set<string>();
  for (let n = 0; n < 4; n++) seen.add((await request(proxy.port, { host: 'svc-4321.example.test' })).text);
  assert.deepEqual([...seen].sort(), ['a', 'b']);
});

test('a Host that no service of a large config names is still refused', async () => {
  const r = await request(proxy.port, { host: `svc-${SERVICES}.example.test` });
  assert.equal(r.status, 421);
});
