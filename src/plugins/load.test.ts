import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, validateConfig } from '../config/load.ts';
import { loadPlugins, resolveModule } from './load.ts';

const EXAMPLES = fileURLToPath(new URL('../../examples', import.meta.url));

function config(plugins: unknown[], servicePlugins: unknown[] = []) {
  return validateConfig({
    proxy: {
      plugins,
      services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: 1 }], plugins: servicePlugins }],
    },
  });
}

async function problemsOf(p: Promise<unknown>): Promise<readonly string[]> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('the config was accepted');
}

async function tempDir(t: import('node:test').TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kubeproxy-plugins-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('the example plugins load from paths relative to the config file, with their options', async () => {
  const loaded = await loadPlugins(
    config(
      [{ module: './plugins/team-header.mjs', options: { team: 'blue' } }],
      [{ module: './plugins/path-rewrite.mjs', options: { match: '^/api/', replace: '/' } }],
    ),
    EXAMPLES,
  );
  assert.deepEqual(loaded.proxy.map((p) => [p.plugin.name, p.where]), [['team-header', 'proxy.plugins[0]']]);
  assert.deepEqual(loaded.services.get('web')?.map((p) => [p.plugin.name, p.where]), [['path-rewrite', 'proxy.services[0].plugins[0]']]);
  assert.equal(loaded.size, 2);
});

test('a config without plugins imports nothing', async () => {
  const loaded = await loadPlugins(config([]), EXAMPLES);
  assert.equal(loaded.size, 0);
});

test('a missing module, an import error, a throwing factory and a bad return are each named by their entry', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'syntax.mjs'), 'export default function (', 'utf8');
  await writeFile(join(dir, 'throws.mjs'), 'export default () => { throw new Error("team is required") }', 'utf8');
  await writeFile(join(dir, 'no-default.mjs'), 'export const x = 1', 'utf8');
  await writeFile(join(dir, 'no-name.mjs'), 'export default () => ({ onRequest() {} })', 'utf8');
  await writeFile(join(dir, 'typo.mjs'), 'export default () => ({ name: "t", onReqest() {} })', 'utf8');
  await writeFile(join(dir, 'not-fn.mjs'), 'export default () => ({ name: "t", onResponse: "x" })', 'utf8');
  const problems = await problemsOf(
    loadPlugins(
      config([
        { module: './missing.mjs' },
        { module: './syntax.mjs' },
        { module: './throws.mjs' },
        { module: './no-default.mjs' },
        { module: './no-name.mjs' },
        { module: './typo.mjs' },
        { module: './not-fn.mjs' },
        { module: 'no-such-package-kubeproxy-test' },
      ]),
      dir,
      'config.yaml',
    ),
  );
  assert.equal(problems.length, 8);
  assert.match(problems[0]!, /^proxy\.plugins\[0\]\.module: cannot find "\.\/missing\.mjs": no such file /);
  assert.match(problems[1]!, /^proxy\.plugins\[1\]\.module: cannot import "\.\/syntax\.mjs": /);
  assert.equal(problems[2], 'proxy.plugins[2].module: the factory of "./throws.mjs" failed: team is required');
  assert.equal(problems[3], 'proxy.plugins[3].module: "./no-default.mjs" must export a default function (options) => plugin, got no default export');
  assert.match(problems[4]!, /^proxy\.plugins\[4\]\.module: "\.\/no-name\.mjs" returned a plugin whose name is missing/);
  assert.match(problems[5]!, /^proxy\.plugins\[5\]\.module: "\.\/typo\.mjs" returned a plugin with an unknown key "onReqest"/);
  assert.equal(problems[6], 'proxy.plugins[6].module: "./not-fn.mjs" returned a plugin whose onResponse is string, not a function');
  assert.match(problems[7]!, /^proxy\.plugins\[7\]\.module: cannot find "no-such-package-kubeproxy-test": no package/);
});

test('a service plugin problem names the service entry', async () => {
  const problems = await problemsOf(loadPlugins(config([], [{ module: './plugins/team-header.mjs' }]), EXAMPLES));
  assert.deepEqual(problems, ['proxy.services[0].plugins[0].module: the factory of "./plugins/team-header.mjs" failed: options.team: expected a team name']);
});

test('an async factory is awaited, and one that never returns fails after the timeout', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'slow.mjs'), 'export default async (o) => { await new Promise(r => setTimeout(r, 5)); return { name: o.name } }', 'utf8');
  await writeFile(join(dir, 'never.mjs'), 'export default () => new Promise(() => {})', 'utf8');
  const ok = await loadPlugins(config([{ module: './slow.mjs', options: { name: 'slow' } }]), dir);
  assert.equal(ok.proxy[0]!.plugin.name, 'slow');
  const problems = await problemsOf(loadPlugins(config([{ module: './never.mjs', timeout: '50ms' }]), dir));
  assert.deepEqual(problems, ['proxy.plugins[0].module: the factory of "./never.mjs" failed: did not return a plugin within 50 ms']);
});

test('when one plugin of a config is broken, the ones already made are closed', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'closing.mjs'), 'export default () => ({ name: "c", close() { globalThis.__kubeproxyClosed = (globalThis.__kubeproxyClosed ?? 0) + 1 } })', 'utf8');
  await problemsOf(loadPlugins(config([{ module: './closing.mjs' }, { module: './missing.mjs' }]), dir));
  assert.equal((globalThis as { __kubeproxyClosed?: number }).__kubeproxyClosed, 1);
});

test('an edited plugin file is imported again on the next load; an unchanged one is reused', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'v.mjs');
  await writeFile(file, 'export default () => ({ name: "v1" })', 'utf8');
  const first = resolveModule('./v.mjs', dir);
  assert.equal(resolveModule('./v.mjs', dir), first);
  assert.equal((await loadPlugins(config([{ module: './v.mjs' }]), dir)).proxy[0]!.plugin.name, 'v1');
  await writeFile(file, 'export default () => ({ name: "v2" })', 'utf8');
  await utimes(file, new Date(), new Date(Date.now() + 5000));
  assert.equal((await loadPlugins(config([{ module: './v.mjs' }]), dir)).proxy[0]!.plugin.name, 'v2');
});

test('a package name resolves from the config file\'s node_modules, an import-only package included', async (t) => {
  const dir = await tempDir(t);
  const pkg = join(dir, 'node_modules', '@acme', 'kp-plugin');
  await mkdir(join(pkg, 'lib'), { recursive: true });
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: '@acme/kp-plugin', type: 'module', exports: { '.': { import: './lib/index.js' } } }));
  await writeFile(join(pkg, 'lib', 'index.js'), 'export default (o) => ({ name: `acme-${o.flavour}` })', 'utf8');
  const loaded = await loadPlugins(config([{ module: '@acme/kp-plugin', options: { flavour: 'mint' } }]), join(dir));
  assert.equal(loaded.proxy[0]!.plugin.name, 'acme-mint');
});

test('options are validated as a mapping, and the timeout as a duration', () => {
  assert.throws(() => config([{ module: './x.mjs', options: ['a'] }]), /proxy\.plugins\[0\]\.options: expected a mapping/);
  assert.throws(() => config([{ module: '' }]), /proxy\.plugins\[0\]\.module: expected a module path/);
  assert.throws(() => config([{ module: './x.mjs', timout: '1s' }]), /proxy\.plugins\[0\]\.timout: unknown key \(did you mean "timeout"\?\)/);
});
