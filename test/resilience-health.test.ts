/**
 * Active health checks end to end: thresholds, probes that never pile up, what a reload keeps,
 * and no probing unless configured.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { validateConfig } from '../src/config/load.ts';
import { request } from './helpers/http.ts';
import { startOrigin } from './helpers/origin.ts';
import { startProxy } from './helpers/proxy.ts';
import { runLoad, statusCounts, until } from './helpers/load.ts';

/** An origin whose /healthz answers `health.status`; every other path answers its name. */
async function checkedOrigin(name: string) {
  const health = { status: 200, probes: [] as IncomingMessage[] };
  const origin = await startOrigin((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (req.url === '/healthz') {
      health.probes.push(req);
      res.writeHead(health.status);
      res.end('health');
      return;
    }
    res.writeHead(200, { 'x-origin': name });
    res.end(name);
  });
  return Object.assign(origin, { health });
}

const HC = { path: '/healthz', interval: '50ms', timeout: '1s', unhealthyThreshold: 3, healthyThreshold: 2 };

test('an instance failing its health check leaves rotation after N probes and comes back after M good ones', async (t) => {
  const a = await checkedOrigin('a');
  const b = await checkedOrigin('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const proxy = await startProxy({
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: a.port }, { port: b.port }], healthCheck: HC }],
  });
  t.after(() => proxy.close());
  const aId = `127.0.0.1:${a.port}`;
  // Probe results and state changes of instance a, in order: ok, ok, fail, fail, fail, unhealthy, ...
  const seq: string[] = [];
  proxy.runtime.health.addListener({
    onProbe: (i, _s, r) => {
      if (i.id === aId) seq.push(r.ok ? 'ok' : 'fail');
    },
    onChange: (i, _s, healthy) => {
      if (i.id === aId) seq.push(healthy ? 'healthy' : 'unhealthy');
    },
  });
  await until(() => seq.length >= 2, 'the first probes');
  assert.deepEqual(new Set(seq), new Set(['ok']));
  assert.equal(a.health.probes[0]!.headers.host, 'web.test', "the probe's Host is the service's domain");
  assert.equal(a.health.probes[0]!.headers['user-agent'], 'kubeproxy-health-check');

  a.health.status = 500;
  await until(() => seq.includes('unhealthy'), 'the instance to leave rotation');
  const out = seq.indexOf('unhealthy');
  assert.deepEqual(seq.slice(out - 4, out), ['ok', 'fail', 'fail', 'fail'], 'out after exactly 3 failed probes');
  const during = await runLoad(proxy.port, { total: 40, concurrency: 4, host: 'web.test' });
  assert.deepEqual(statusCounts(during), { 200: 40 });
  assert.deepEqual(new Set(during.map((o) => o.body)), new Set(['b']), 'no traffic to the unhealthy instance');

  a.health.status = 200;
  await until(() => seq.includes('healthy'), 'the instance to come back');
  const back = seq.indexOf('healthy');
  // The probes since it left rotation end with exactly two good ones after the last failure (there
  // may have been no failed probe at all after the 'unhealthy' event, if the origin recovered first).
  const probesWhileOut = seq.slice(out + 1, back).filter((e) => e === 'ok' || e === 'fail');
  assert.deepEqual(probesWhileOut.slice(probesWhileOut.lastIndexOf('fail') + 1), ['ok', 'ok'], 'back after exactly 2 good probes');
  assert.ok(!seq.slice(out + 1, back).includes('unhealthy'));
  const after = await runLoad(proxy.port, { total: 40, concurrency: 4, host: 'web.test' });
  assert.deepEqual(new Set(after.map((o) => o.body)), new Set(['a', 'b']), 'traffic reaches it again');
});

test('expectedStatus, host and path are honoured: a 204 list and a custom Host', async (t) => {
  const seen: Array<{ url: string | undefined; host: string | undefined }> = [];
  let status = 204;
  const origin = await startOrigin((req, res) => {
    req.resume();
    if (req.url === '/ready') {
      seen.push({ url: req.url, host: req.headers.host });
      res.writeHead(status);
      res.end();
      return;
    }
    res.end('app');
  });
  t.after(() => origin.close());
  const proxy = await startProxy({
    services: [
      {
        name: 'web',
        domain: 'web.test',
        hosts: [{ port: origin.port }],
        healthCheck: { ...HC, path: '/ready', host: 'health.internal', expectedStatus: [204], unhealthyThreshold: 1 },
      },
    ],
  });
  t.after(() => proxy.close());
  const instance = proxy.runtime.snapshot.services.get('web')!.instances[0]!;
  await until(() => seen.length >= 2, 'probes');
  assert.equal(instance.healthy, true);
  assert.deepEqual(seen[0], { url: '/ready', host: 'health.internal' });
  status = 200;
  await until(() => !instance.healthy, 'a 200 to count as a failure when only 204 is expected');
});

test('probes never pile up on an instance that does not answer', async (t) => {
  let open = 0;
  let maxOpen = 0;
  let probes = 0;
  const origin = await startOrigin((req, res) => {
    req.resume();
    if (req.url !== '/healthz') return void res.end('app');
    probes++;
    open++;
    maxOpen = Math.max(maxOpen, open);
    res.on('close', () => open--);
    // Never answers: each probe ends by its timeout.
  });
  t.after(() => origin.close());
  const proxy = await startProxy({
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }], healthCheck: { ...HC, interval: '20ms', timeout: '150ms' } }],
  });
  t.after(() => proxy.close());
  const instance = proxy.runtime.snapshot.services.get('web')!.instances[0]!;
  await until(() => !instance.healthy && probes >= 4, 'the silent instance to be marked unhealthy');
  assert.equal(maxOpen, 1, 'one probe at a time, even with an interval shorter than the timeout');
});

test('a reload keeps the health of instances that stay, and removing the check puts them back', async (t) => {
  const a = await checkedOrigin('a');
  const b = await checkedOrigin('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const service = (extra: Record<string, unknown>) => ({
    name: 'web',
    domain: 'web.test',
    hosts: [
      { address: '127.0.0.1', port: a.port },
      { address: '127.0.0.1', port: b.port },
    ],
    ...extra,
  });
  const proxy = await startProxy({ services: [service({ healthCheck: HC })] });
  t.after(() => proxy.close());
  const instanceA = () => proxy.runtime.snapshot.services.get('web')!.instances.find((i) => i.port === a.port)!;

  a.health.status = 503;
  await until(() => !instanceA().healthy, 'a to be unhealthy');
  const probesBefore = a.health.probes.length;
  const reload = (services: unknown[]) =>
    proxy.runtime.reload(validateConfig({ proxy: { listen: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 }, services } }));

  // Same instances, a new service added: a stays out of rotation, and is still probed.
  reload([service({ healthCheck: HC }), { name: 'other', domain: 'other.test', hosts: [{ address: '127.0.0.1', port: b.port }] }]);
  assert.equal(instanceA().healthy, false, 'health survives the reload');
  const r = await runLoad(proxy.port, { total: 20, concurrency: 2, host: 'web.test' });
  assert.deepEqual(new Set(r.map((o) => o.body)), new Set(['b']));
  await until(() => a.health.probes.length > probesBefore + 2, 'probes to go on after the reload');

  // No more health check for the service: nothing would ever readmit a, so it is healthy again.
  reload([service({})]);
  assert.equal(instanceA().healthy, true);
  const probesAtRemoval = a.health.probes.length;
  const r2 = await runLoad(proxy.port, { total: 20, concurrency: 2, host: 'web.test' });
  assert.ok(r2.some((o) => o.body === 'a'));
  assert.ok(a.health.probes.length <= probesAtRemoval + 1, 'probing stopped (one may have been in flight)');
});

test('services without a healthCheck are never probed', async (t) => {
  const checked = await checkedOrigin('checked');
  const plain = await checkedOrigin('plain');
  t.after(() => Promise.all([checked.close(), plain.close()]));
  const proxy = await startProxy({
    services: [
      { name: 'checked', domain: 'checked.test', hosts: [{ port: checked.port }], healthCheck: HC },
      { name: 'plain', domain: 'plain.test', hosts: [{ port: plain.port }] },
    ],
  });
  t.after(() => proxy.close());
  await until(() => checked.health.probes.length >= 5, 'the checked service to be probed');
  assert.equal(plain.health.probes.length, 0);
  assert.equal((await request(proxy.port, { host: 'plain.test' })).text, 'plain');
});
