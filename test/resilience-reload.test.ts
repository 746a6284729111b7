/**
 * Hot reload end to end: in-flight requests and tunnels finish on the config they started with;
 * a real `kubeproxy` process reloads on file changes (and on SIGHUP) under load without failing a
 * request, and an invalid config is logged while the running one keeps serving; a reload whose
 * snapshot cannot be built leaves every live part (instances, pools, discovery) as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { validateConfig } from '../src/config/load.ts';
import { request } from './helpers/http.ts';
import { namedOrigin, startOrigin } from './helpers/origin.ts';
import { startProxy } from './helpers/proxy.ts';
import { runLoad, statusCounts, until } from './helpers/load.ts';
import { spawnProxy, type ProxyBlock } from './helpers/child.ts';
import { startDns } from './helpers/dns.ts';

test('in-flight requests and open WebSockets finish on the config they started with', async (t) => {
  const held: ServerResponse[] = [];
  const old = await startOrigin((req, res) => {
    req.resume();
    if (req.url === '/slow') held.push(res);
    else res.end('old');
  });
  const tunnels: Socket[] = [];
  old.server.on('upgrade', (_req, socket: Socket) => {
    tunnels.push(socket);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
  });
  const next = await namedOrigin('new');
  t.after(() => {
    for (const s of tunnels) s.destroy();
    return Promise.all([old.close(), next.close()]);
  });
  const config = (port: number) =>
    validateConfig({
      proxy: {
        listen: { address: '127.0.0.1', port: 0 },
        admin: { address: '127.0.0.1', port: 0 },
        services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port }] }],
      },
    });
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: old.port }] }] });
  t.after(() => proxy.close());

  const slow = request(proxy.port, { host: 'web.test', path: '/slow' });
  const ws = connect(proxy.port, '127.0.0.1');
  t.after(() => ws.destroy());
  await once(ws, 'connect');
  let data = '';
  ws.on('data', (d: Buffer) => (data += d));
  ws.write('GET /chat HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  await until(() => data.includes('\r\n\r\n'), 'the 101');
  await until(() => held.length === 1, 'the slow request to reach the old instance');

  // The old instance leaves the config entirely.
  proxy.runtime.reload(config(next.port));
  assert.equal((await request(proxy.port, { host: 'web.test' })).text, 'new', 'new requests use the new config');

  ws.write('still here');
  await until(() => data.endsWith('STILL HERE'), 'the tunnel to keep echoing after the reload');
  held[0]!.end('old finished');
  const r = await slow;
  assert.equal(r.status, 200);
  assert.equal(r.text, 'old finished');
});

/** Valid and invalid configs, in the order they are applied, with the instances each valid one routes to. */
function reloadSteps(a: number, b: number): Array<{ text: ProxyBlock | string; valid: boolean; expect?: string[] }> {
  const web = (hosts: number[], extra: Record<string, unknown> = {}): ProxyBlock => ({
    services: [{ name: 'web', domain: 'web.test', hosts: hosts.map((port) => ({ port })), ...extra }],
  });
  return [
    { text: web([a, b]), valid: true, expect: ['a', 'b'] },
    { text: 'proxy: {services: [', valid: false },
    { text: web([b]), valid: true, expect: ['b'] },
    { text: web([b], { loadBalancer: 'least-request' }), valid: true, expect: ['b'] },
    { text: { services: [{ name: 'web', domain: 'web.test', hosts: [{ port: 'eighty' }] }] }, valid: false },
    { text: web([a]), valid: true, expect: ['a'] },
    { text: web([a, b], { retries: { attempts: 1 } }), valid: true, expect: ['a', 'b'] },
    { text: { services: [] }, valid: false },
    { text: web([b], { timeouts: { response: '5s' } }), valid: true, expect: ['b'] },
    { text: web([a, b]), valid: true, expect: ['a', 'b'] },
  ];
}

test('a real process reloads 10 times under load (valid and invalid configs mixed) without failing a request', async (t) => {
  const a = await namedOrigin('a');
  const b = await namedOrigin('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const steps = reloadSteps(a.port, b.port);
  const proxy = await spawnProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: a.port }] }] });
  t.after(() => proxy.cleanup());

  let done = false;
  const load = runLoad(proxy.port, { total: 1_000_000, concurrency: 6, host: 'web.test', before: () => !done });
  try {
    for (const [i, step] of steps.entries()) {
      const from = proxy.logs.length;
      await proxy.writeConfig(step.text);
      const line = await proxy
        .waitForLog((l) => l.msg === 'config reloaded' || l.msg === 'config reload failed; keeping the running config', from)
        .catch((err: Error) => {
          throw new Error(`step ${i}: ${err.message}`);
        });
      assert.equal(line.msg === 'config reloaded', step.valid, `step ${i}: ${line.msg} ${String(line.err ?? '')}`);
      if (!step.valid) assert.ok(typeof line.err === 'string' && line.err.length > 0, 'the problem is logged');
      // Once applied, a valid step's instances (and only those) answer.
      if (step.expect !== undefined) {
        const want = new Set(step.expect);
        const seen = new Set<string>();
        await until(async () => {
          const r = await request(proxy.port, { host: 'web.test' });
          assert.ok(want.has(r.text), `step ${i}: an instance of the new config answered (${r.text})`);
          seen.add(r.text);
          return seen.size === want.size;
        }, `step ${i} to take effect`);
      }
    }
  } finally {
    done = true;
  }
  const outcomes = await load;
  assert.ok(outcomes.length > 100, `load ran throughout (${outcomes.length} requests)`);
  assert.deepEqual(statusCounts(outcomes), { 200: outcomes.length }, 'zero failed requests');
  if (process.env.SHOW_FIGURES) console.error(`reload under load: ${outcomes.length} requests, 10 reloads, 0 failed`);
});

test('with proxy.watch off, a changed file is applied on SIGHUP, not before', async (t) => {
  const a = await namedOrigin('a');
  const b = await namedOrigin('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const config = (port: number): ProxyBlock => ({ watch: false, services: [{ name: 'web', domain: 'web.test', hosts: [{ port }] }] });
  const proxy = await spawnProxy(config(a.port));
  t.after(() => proxy.cleanup());

  await proxy.writeConfig(config(b.port));
  // Give a (wrongly) running watcher ample time to fire: still the old config.
  await new Promise((r) => setTimeout(r, 600));
  assert.equal((await request(proxy.port, { host: 'web.test' })).text, 'a');
  const from = proxy.logs.length;
  proxy.child.kill('SIGHUP');
  await proxy.waitForLog((l) => l.msg === 'config reloaded', from);
  assert.equal((await request(proxy.port, { host: 'web.test' })).text, 'b');

  // An invalid file on SIGHUP: logged, and the running config keeps serving.
  await proxy.writeConfig('proxy:\n  services: nope\n');
  const from2 = proxy.logs.length;
  proxy.child.kill('SIGHUP');
  const line = await proxy.waitForLog((l) => l.msg === 'config reload failed; keeping the running config', from2);
  assert.match(String(line.err), /proxy\.services/);
  assert.equal((await request(proxy.port, { host: 'web.test' })).text, 'b');
});

test('a reload whose snapshot cannot be built changes nothing: same instances, weights, discovery and routes', async (t) => {
  const origin = await namedOrigin('one');
  const dns = await startDns({ 'pods.test': ['127.0.0.1'] });
  t.after(() => Promise.all([origin.close(), dns.close()]));
  const services = (weight: number, name: string) => [
    { name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: origin.port, weight }] },
    { name: 'found', domain: 'found.test', hosts: [], discovery: { dns: name, port: origin.port, interval: '1h' } },
  ];
  const proxy = await startProxy({ dnsServers: [dns.server], services: services(1, 'pods.test') });
  t.after(() => proxy.close());
  const rt = proxy.runtime;
  const before = rt.snapshot;
  const instances = [...before.services.values()].map((s) => s.instances);
  assert.equal(instances[1]!.length, 1, 'discovery found the pod');

  // Valid by its own types but not buildable: the snapshot step throws (an embedder skipping
  // validation; a plugin that fails to load is the same case).
  const valid = validateConfig({
    proxy: { listen: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 }, dnsServers: [dns.server], services: services(7, 'other.test') },
  });
  const broken = { proxy: { ...valid.proxy, trustedProxies: ['not an address'] } } as typeof valid;
  await assert.rejects(rt.reload(broken));

  assert.equal(rt.snapshot, before, 'the running snapshot stays');
  assert.deepEqual([...rt.snapshot.services.values()].map((s) => s.instances), instances, 'the same Instance objects');
  assert.equal(instances[0]![0]!.weight, 1, 'a kept instance did not take the new weight');
  assert.equal(rt.discovery.status('found')?.dns, 'pods.test', 'discovery still watches the old name');
  assert.equal((await request(proxy.port, { host: 'found.test' })).text, 'one');

  // The same change without the fault applies all of it.
  await rt.reload(valid);
  assert.notEqual(rt.snapshot, before);
  assert.equal(rt.snapshot.services.get('web')!.instances[0]!.weight, 7);
  assert.equal(rt.discovery.status('found')?.dns, 'other.test');
});
