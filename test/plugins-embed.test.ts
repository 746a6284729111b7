/**
 * Embedding: startProxy() from a config object or a YAML file, in this process, with real sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, startProxy } from '../src/index.ts';
import { request } from './helpers/http.ts';
import { startOrigin } from './helpers/origin.ts';

test('startProxy from a YAML file: plugin paths relative to it, reload() re-reads it, stop() closes the ports', async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.end(`from ${String(req.headers['x-team'])}`);
  });
  t.after(() => origin.close());
  const dir = await mkdtemp(join(tmpdir(), 'kubeproxy-embed-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'team.mjs'), 'export default (o) => ({ name: "team", onRequest(ctx) { ctx.request.headers.set("x-team", o.team) } })');
  const yaml = (team: string) => `
proxy:
  listen: { address: 127.0.0.1, port: 0 }
  admin: { address: 127.0.0.1, port: 0 }
  plugins: [{ module: ./team.mjs, options: { team: ${team} } }]
  services: [{ name: web, domain: web.test, hosts: [{ address: 127.0.0.1, port: ${origin.port} }] }]
`;
  const file = join(dir, 'kubeproxy.yaml');
  await writeFile(file, yaml('red'));
  const proxy = await startProxy(file);
  let stopped = false;
  t.after(() => (stopped ? undefined : proxy.stop()));
  assert.equal(proxy.address, '127.0.0.1');
  assert.ok(proxy.port > 0 && proxy.adminPort! > 0);
  assert.equal((await request(proxy.port, { host: 'web.test' })).text, 'from red');
  assert.equal((await request(proxy.adminPort!, { path: '/readyz' })).status, 200);

  await writeFile(file, yaml('blue'));
  await proxy.reload();
  assert.equal((await request(proxy.port, { host: 'web.test' })).text, 'from blue');
  assert.equal(proxy.config.proxy.plugins[0]!.options.team, 'blue');

  await proxy.stop();
  stopped = true;
  await assert.rejects(request(proxy.port, { host: 'web.test', timeoutMs: 2000 }), /ECONNREFUSED/);
});

test('startProxy refuses an invalid config with every problem named, and workers (they are processes of the kubeproxy command)', async () => {
  await assert.rejects(
    startProxy({ proxy: { listen: { port: 'x' }, services: [] } } as never),
    (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.startsWith('proxy.listen.port:')) && err.problems.some((p) => p.startsWith('proxy.services:')),
  );
  await assert.rejects(
    startProxy({ proxy: { workers: 2, services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: 1 }] }] } }),
    (err: unknown) => err instanceof ConfigError && /^proxy\.workers: an embedded proxy runs in this process/.test(err.problems[0]!),
  );
});

test('reload() without a config is refused for a proxy started from an object', async (t) => {
  const proxy = await startProxy({
    proxy: {
      listen: { address: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: 1 }] }],
    },
  });
  t.after(() => proxy.stop());
  assert.equal(proxy.adminPort, undefined);
  await assert.rejects(proxy.reload(), /reload\(\) needs a config: this proxy was not started from a file/);
});
