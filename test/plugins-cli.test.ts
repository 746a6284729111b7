/**
 * Plugins through the `kubeproxy` command (a real process): `--check` imports them, a broken one
 * is an invalid config (exit 2, the entry named), and a SIGHUP reload re-imports an edited plugin
 * file, keeping the running one when the edit is broken.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnProxy } from './helpers/child.ts';
import { request } from './helpers/http.ts';
import { startOrigin } from './helpers/origin.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-plugins-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function config(plugins: unknown[]): string {
  return JSON.stringify({
    proxy: {
      listen: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      plugins,
      services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: 9 }] }],
    },
  });
}

function kubeproxy(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, KUBEPROXY_LOG_LEVEL: 'silent' },
  });
}

write('plugins-ok.mjs', 'export default (o) => ({ name: "ok", onRequest(ctx) { ctx.request.headers.set("x-ok", String(o.v)) } })');
write('plugins-broken.mjs', 'export default () => { throw new Error("API_KEY is not set") }');

test('kubeproxy --check imports the plugins, named relative to the config file', () => {
  const path = write('check-ok.yaml', config([{ module: './plugins-ok.mjs', options: { v: 1 } }]));
  const r = kubeproxy(['--check', '--config', path]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /is valid/);
});

test('kubeproxy --check refuses a broken plugin with exit 2, naming the entry', () => {
  const path = write('check-broken.yaml', config([{ module: './plugins-ok.mjs' }, { module: './plugins-broken.mjs' }, { module: './nowhere.mjs' }]));
  const r = kubeproxy(['--check', '--config', path]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /proxy\.plugins\[1\]\.module: the factory of "\.\/plugins-broken\.mjs" failed: API_KEY is not set/);
  assert.match(r.stderr, /proxy\.plugins\[2\]\.module: cannot find "\.\/nowhere\.mjs": no such file/);
});

test('kubeproxy does not start with a broken plugin: exit 2, the entry named', () => {
  const path = write('start-broken.yaml', config([{ module: './plugins-broken.mjs' }]));
  const r = kubeproxy(['--config', path]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /proxy\.plugins\[0\]\.module: the factory of "\.\/plugins-broken\.mjs" failed/);
});

test('a SIGHUP reload imports an edited plugin file, and keeps the running one when the edit is broken', async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.end(`version=${String(req.headers['x-version'])}`);
  });
  t.after(() => origin.close());
  const plugin = write('versioned.mjs', 'export default () => ({ name: "versioned", onRequest(ctx) { ctx.request.headers.set("x-version", "1") } })');
  const proxy = await spawnProxy({ plugins: [{ module: plugin }], services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] });
  t.after(() => proxy.cleanup());
  const get = async () => (await request(proxy.port, { host: 'web.test' })).text;
  assert.equal(await get(), 'version=1');

  const edit = (text: string, secondsAhead: number) => {
    writeFileSync(plugin, text);
    // A distinct mtime even on a coarse-grained file system.
    const when = new Date(Date.now() + secondsAhead * 1000);
    utimesSync(plugin, when, when);
  };
  edit('export default () => { throw new Error("half-written edit") }', 2);
  let from = proxy.logs.length;
  proxy.child.kill('SIGHUP');
  const failed = await proxy.waitForLog((l) => l.msg === 'config reload failed; keeping the running config', from);
  assert.match(String(failed.err), /proxy\.plugins\[0\]\.module: the factory of .* failed: half-written edit/);
  assert.equal(await get(), 'version=1', 'the running plugin keeps serving');

  edit('export default () => ({ name: "versioned", onRequest(ctx) { ctx.request.headers.set("x-version", "2") } })', 4);
  from = proxy.logs.length;
  proxy.child.kill('SIGHUP');
  await proxy.waitForLog((l) => l.msg === 'config reloaded', from);
  assert.equal(await get(), 'version=2');
});
