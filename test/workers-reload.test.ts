/**
 * Reloading a `proxy.workers: 2` proxy: the primary validates the file once, then every worker
 * applies it; an invalid file reaches no worker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from './helpers/http.ts';
import { namedOrigin } from './helpers/origin.ts';
import { spawnProxy, type ProxyBlock } from './helpers/child.ts';
import { scrape } from './helpers/metrics.ts';
import { clusterStatus } from './helpers/cluster.ts';

const primaryLine = (msg: string) => (l: { msg?: string; worker?: unknown }) => l.msg === msg && l.worker === undefined;

/** `n` requests, each on a new connection (so both workers get some), answered by origin `name`. */
async function allAnsweredBy(port: number, host: string, name: string, n = 10): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await request(port, { host });
    assert.equal(r.status, 200, `request ${i} to ${host}: ${r.text}`);
    assert.equal(r.text, name);
  }
}

test('SIGHUP reloads every worker; an invalid file or a new worker count changes nothing that runs', async (t) => {
  const [web, api] = await Promise.all([namedOrigin('web'), namedOrigin('api')]);
  t.after(() => Promise.all([web.close(), api.close()]));
  const block = (extra: Partial<ProxyBlock> = {}, withApi = false): ProxyBlock => ({
    workers: 2,
    watch: false,
    services: [
      { name: 'web', domain: 'web.test', hosts: [{ port: web.port }] },
      ...(withApi ? [{ name: 'api', domain: 'api.test', hosts: [{ port: api.port }] }] : []),
    ],
    ...extra,
  });
  const proxy = await spawnProxy(block());
  t.after(() => proxy.cleanup());
  assert.equal((await request(proxy.port, { host: 'api.test' })).status, 421, 'no api service yet');

  await t.test('a new service answers from every worker after SIGHUP', async () => {
    const from = proxy.logs.length;
    await proxy.writeConfig(block({}, true));
    proxy.child.kill('SIGHUP');
    await proxy.waitForLog(primaryLine('config reloaded in every worker'), from);
    // Each worker writes its own lines: one may reach the shared stdout after the primary's.
    const reloaded = new Set<unknown>();
    await proxy.waitForLog((l) => {
      if (l.msg === 'config reloaded') reloaded.add(l.worker);
      return reloaded.size === 2;
    }, from, 5000);
    assert.equal(reloaded.size, 2, 'both workers logged the reload');
    await allAnsweredBy(proxy.port, 'api.test', 'api');
    const status = await clusterStatus(proxy.adminPort);
    for (const w of status.workers) {
      assert.deepEqual(w.services?.map((s) => s.name), ['web', 'api'], `worker ${w.worker} runs the new config`);
      assert.ok((w.requests ?? 0) > 0, `worker ${w.worker} served some of the requests`);
    }
  });

  await t.test('an invalid file is refused by the primary and every worker keeps the running config', async () => {
    const from = proxy.logs.length;
    await proxy.writeConfig('proxy: {services: [');
    proxy.child.kill('SIGHUP');
    const failed = await proxy.waitForLog(primaryLine('config reload failed; keeping the running config'), from);
    assert.match(String(failed.err), /YAML/);
    await allAnsweredBy(proxy.port, 'api.test', 'api');
    await allAnsweredBy(proxy.port, 'web.test', 'web');
    assert.ok(!proxy.logs.slice(from).some((l) => l.msg === 'config reloaded' || (l.worker !== undefined && l.level === 50)), 'no worker saw it');
    const m = await scrape(proxy.adminPort);
    assert.equal(m.get('kubeproxy_config_reloads_total', { result: 'failure' }), 1, 'counted once, not once per worker');
    assert.equal(m.get('kubeproxy_config_reloads_total', { result: 'success' }), 1);
  });

  await t.test('a new proxy.workers is logged as needing a restart; the rest of the config applies', async () => {
    const from = proxy.logs.length;
    await proxy.writeConfig(block({ workers: 3, via: 'edge' }, true));
    proxy.child.kill('SIGHUP');
    const warning = await proxy.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('proxy.workers changed'), from);
    assert.equal(warning.running, 2);
    await proxy.waitForLog(primaryLine('config reloaded in every worker'), from);
    assert.equal((await clusterStatus(proxy.adminPort)).workers.length, 2);
    for (let i = 0; i < 4; i++) {
      const r = await request(proxy.port, { host: 'web.test' });
      assert.match(String(r.headers.via), /edge/, 'the new Via pseudonym is used by every worker');
    }
  });
});

test('a change of the config file reloads every worker without a signal', async (t) => {
  const [web, api] = await Promise.all([namedOrigin('web'), namedOrigin('api')]);
  t.after(() => Promise.all([web.close(), api.close()]));
  const proxy = await spawnProxy({ workers: 2, services: [{ name: 'web', domain: 'web.test', hosts: [{ port: web.port }] }] });
  t.after(() => proxy.cleanup());
  const from = proxy.logs.length;
  await proxy.writeConfig({
    workers: 2,
    services: [
      { name: 'web', domain: 'web.test', hosts: [{ port: web.port }] },
      { name: 'api', domain: 'api.test', hosts: [{ port: api.port }] },
    ],
  });
  await proxy.waitForLog(primaryLine('config reloaded in every worker'), from);
  await allAnsweredBy(proxy.port, 'api.test', 'api');
});
