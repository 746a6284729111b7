/**
 * The package as a user installs it: `kubeproxy` resolved through package.json `exports` to the
 * built dist/ (JavaScript and .d.ts). A TypeScript plugin type-checks against the shipped types,
 * a wrong one does not, and `import { startProxy } from 'kubeproxy'` runs a proxy.
 *
 * Uses dist/ as `npm test` builds it; when dist/ is missing or older than the public sources, the
 * package is built into a scratch directory first.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startOrigin, type Origin } from './helpers/origin.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const PUBLIC_SOURCES = ['src/index.ts', 'src/embed.ts', 'src/plugins/api.ts', 'src/plugins/chain.ts', 'src/plugins/load.ts', 'src/runtime.ts', 'src/server/pipeline.ts'];

let consumer = '';
let scratch: string | undefined;

/** dist/ if it is fresh, otherwise a build of the package into a scratch directory. */
async function builtDist(): Promise<string> {
  const dist = join(ROOT, 'dist');
  const index = join(dist, 'index.d.ts');
  if (existsSync(index)) {
    const built = statSync(index).mtimeMs;
    if (PUBLIC_SOURCES.every((f) => !existsSync(join(ROOT, f)) || statSync(join(ROOT, f)).mtimeMs <= built)) return dist;
  }
  scratch = await mkdtemp(join(tmpdir(), 'kubeproxy-dist-'));
  // Type errors elsewhere do not stop the emit; what this test needs is checked by the consumer below.
  await run(process.execPath, [TSC, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', scratch]).catch(() => {});
  assert.ok(existsSync(join(scratch, 'index.d.ts')), 'the build emitted index.d.ts');
  return scratch;
}

before(async () => {
  const dist = await builtDist();
  consumer = await mkdtemp(join(tmpdir(), 'kubeproxy-consumer-'));
  const pkg = join(consumer, 'node_modules', 'kubeproxy');
  await mkdir(pkg, { recursive: true });
  await copyFile(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  await symlink(dist, join(pkg, 'dist'), 'dir');
  // The package's own dependencies, as npm would install them next to it.
  for (const dep of ['zod', 'undici', 'pino', 'prom-client', 'yaml', 'lru-cache', '@types']) {
    if (existsSync(join(ROOT, 'node_modules', dep))) {
      await mkdir(join(consumer, 'node_modules', dep, '..'), { recursive: true });
      await symlink(join(ROOT, 'node_modules', dep), join(consumer, 'node_modules', dep), 'dir');
    }
  }
  await writeFile(
    join(consumer, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, types: [] } }),
  );
});

after(async () => {
  if (consumer) await rm(consumer, { recursive: true, force: true });
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

let compiled: Promise<string> | undefined;

/** One tsc run over both plugins (tsc is slow to start): its diagnostics, one per line. */
function typecheck(): Promise<string> {
  compiled ??= (async () => {
    await writeFile(join(consumer, 'typed-plugin.ts'), TYPED_PLUGIN);
    await writeFile(join(consumer, 'wrong-plugin.ts'), WRONG_PLUGIN);
    try {
      await run(process.execPath, [TSC, '-p', consumer], { cwd: consumer });
      return '';
    } catch (err) {
      return String((err as { stdout?: string }).stdout ?? err);
    }
  })();
  return compiled;
}

/** The diagnostics of one file. */
async function errorsIn(file: string): Promise<string[]> {
  return (await typecheck()).split('\n').filter((line) => line.startsWith(file));
}

const TYPED_PLUGIN = `
import type { PluginFactory } from 'kubeproxy';

interface Options { team: string; audience?: string }

const factory: PluginFactory<Options> = (options) => ({
  name: 'typed-team',
  async onRequest(ctx) {
    if (ctx.request.headers.get('authorization') === null) return ctx.respond(401, 'token required', { 'www-authenticate': 'Bearer' });
    ctx.request.headers.set('x-team', options.team);
    ctx.request.path = ctx.request.path.replace(/^\\/old\\//, '/new/');
    ctx.state.set('t0', Date.now());
  },
  onUpstreamRequest(ctx) { ctx.upstream.headers.set('x-attempt', String(ctx.upstream.attempt)); },
  onResponse(ctx) { ctx.response.headers.append('x-took', String(Date.now() - Number(ctx.state.get('t0')))); },
  onLog(ctx) { if (ctx.log.status >= 500) console.error(ctx.log.id, ctx.log.errorCause); },
});
export default factory;
`;

const WRONG_PLUGIN = `
import type { PluginFactory } from 'kubeproxy';
const factory: PluginFactory = () => ({
  name: 'wrong',
  onRequest(ctx) { ctx.request.headers.set('x-n', 1); },
  onResponse(ctx) { ctx.respond(403); },
});
export default factory;
`;

test('a plugin written in TypeScript type-checks against the types the package ships', async () => {
  assert.deepEqual(await errorsIn('typed-plugin.ts'), []);
});

test('a plugin that misuses the API does not type-check', async () => {
  const errors = (await errorsIn('wrong-plugin.ts')).join('\n');
  assert.match(errors, /Argument of type 'number' is not assignable to parameter of type 'string'/);
  assert.match(errors, /Property 'respond' does not exist/);
});

test("import { startProxy } from 'kubeproxy' runs a proxy with the bound port, reload(config) and stop()", async (t) => {
  const origin: Origin = await startOrigin((req, res) => {
    req.resume();
    res.end(`hello from ${req.headers['x-team'] ?? 'nobody'}`);
  });
  t.after(() => origin.close());
  const script = `
import http from 'node:http';
import { startProxy } from 'kubeproxy';
const config = (team) => ({ proxy: {
  listen: { address: '127.0.0.1', port: 0 }, admin: { enabled: false }, log: { level: 'silent' },
  plugins: [{ module: '${join(ROOT, 'examples', 'plugins', 'team-header.mjs').replaceAll('\\', '\\\\')}', options: { team } }],
  services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: ${origin.port} }] }],
} });
const get = (port) => new Promise((resolve, reject) => {
  http.get({ host: '127.0.0.1', port, path: '/', headers: { host: 'web.test' } }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d)).on('end', () => resolve(body));
  }).on('error', reject);
});
const proxy = await startProxy(config('red'));
const first = await get(proxy.port);
await proxy.reload(config('green'));
const second = await get(proxy.port);
await proxy.stop();
console.log(JSON.stringify({ port: proxy.port, admin: proxy.adminPort ?? null, first, second }));
`;
  await writeFile(join(consumer, 'embed.mjs'), script);
  const { stdout } = await run(process.execPath, ['embed.mjs'], { cwd: consumer, timeout: 30_000 });
  const out = JSON.parse(stdout.trim().split('\n').pop()!) as { port: number; admin: number | null; first: string; second: string };
  assert.ok(out.port > 0);
  assert.equal(out.admin, null);
  assert.equal(out.first, 'hello from red');
  assert.equal(out.second, 'hello from green');
});
