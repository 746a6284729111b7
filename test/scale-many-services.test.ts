/**
 * A config of thousands of services, as a cluster-wide ingress has: the proxy starts from it and
 * routes each Host to its own service. It starts from JSON (the helper writes JSON, read by
 * config/json.ts) and reloads from YAML. (Memory and start time are measured by
 * `npm run bench -- --scale`, not asserted here.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { configText, spawnProxy, type ChildProxy } from './helpers/child.ts';
import { request } from './helpers/http.ts';
import { namedOrigin, type Origin } from './helpers/origin.ts';

const SERVICES = 5000;

let a: Origin;
let b: Origin;
let proxy: ChildProxy;

const services = (domainOf = (i: number) => `svc-${i}.example.test`) =>
  Array.from({ length: SERVICES }, (_, i) => ({
    name: `svc-${i}`,
    domain: domainOf(i),
    loadBalancer: 'round-robin',
    hosts: [{ port: a.port }, { port: b.port }],
  }));

before(async () => {
  [a, b] = await Promise.all([namedOrigin('a'), namedOrigin('b')]);
  proxy = await spawnProxy({ services: services() });
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

test('the same 5,000 services written as YAML are read on a reload: a renamed domain routes from then on', async () => {
  const renamed = services((i) => (i === SERVICES - 1 ? 'renamed.example.test' : `svc-${i}.example.test`));
  const yaml = stringify(JSON.parse(configText({ services: renamed })));
  assert.ok(!yaml.trimStart().startsWith('{'), 'the reloaded file is block YAML, not JSON');
  const from = proxy.logs.length;
  await proxy.writeConfig(yaml);
  await proxy.waitForLog((l) => l.msg === 'config reloaded', from, 60_000);
  assert.equal((await request(proxy.port, { host: 'renamed.example.test' })).status, 200);
  assert.equal((await request(proxy.port, { host: `svc-${SERVICES - 1}.example.test` })).status, 421);
  assert.equal((await request(proxy.port, { host: 'svc-0.example.test' })).status, 200);
});
