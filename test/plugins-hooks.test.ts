/**
 * Plugin hooks end to end: a real proxy (embedded with startProxy) in front of real origins, with
 * plugin modules written to a temp directory as a user would write them.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, startProxy, type ProxyHandle } from '../src/index.ts';
import { request } from './helpers/http.ts';
import { until } from './helpers/load.ts';
import { scrape } from './helpers/metrics.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

let dir = '';

/** Plugin modules, by file name. `globalThis.__seen` collects what hooks observed (same process). */
const PLUGINS: Record<string, string> = {
  'throws.mjs': `export default () => ({
    name: 'thrower',
    onRequest(ctx) { if (ctx.request.path === '/boom') throw new Error('kaput') },
  })`,
  'rejects.mjs': `export default () => ({
    name: 'late-thrower',
    async onResponse(ctx) { await new Promise((r) => setTimeout(r, 5)); if (ctx.request.path === '/boom') throw new Error('late kaput') },
  })`,
  'async-header.mjs': `export default (o) => ({
    name: 'async-header',
    async onRequest(ctx) {
      await new Promise((r) => setTimeout(r, 10));
      ctx.request.headers.set('x-user', o.user);
      ctx.state.set('started', ctx.request.path);
    },
    async onResponse(ctx) {
      await new Promise((r) => setTimeout(r, 10));
      ctx.response.headers.set('x-state', ctx.state.get('started'));
    },
  })`,
  'observe.mjs': `export default () => {
    const seen = (globalThis.__seen = []);
    return {
      name: 'observe',
      onUpstreamRequest(ctx) {
        seen.push({ hook: 'upstream', attempt: ctx.upstream.attempt, instance: ctx.upstream.instance });
        ctx.upstream.headers.set('x-attempt', String(ctx.upstream.attempt));
      },
      onResponse(ctx) {
        seen.push({ hook: 'response', status: ctx.response.status, path: ctx.request.path, service: ctx.service });
        ctx.response.headers.set('x-seen', 'yes');
        ctx.response.headers.delete('x-origin-secret');
      },
      onLog(ctx) {
        seen.push({ hook: 'log', status: ctx.log.status, service: ctx.log.service, cache: ctx.log.cacheStatus, error: ctx.log.errorCause ?? null });
      },
    };
  }`,
  'closing.mjs': `export default (o) => ({ name: 'closing-' + o.n, close() { (globalThis.__closed ??= []).push(o.n) } })`,
  'broken.mjs': `export default () => { throw new Error('cannot start: no key') }`,
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kubeproxy-plugin-hooks-'));
  for (const [name, text] of Object.entries(PLUGINS)) await writeFile(join(dir, name), text, 'utf8');
});
after(() => rm(dir, { recursive: true, force: true }));

function proxyConfig(ports: number[], proxy: Record<string, unknown>, service: Record<string, unknown> = {}) {
  return {
    proxy: {
      listen: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      ...proxy,
      services: [{ name: 'web', domain: 'web.test', hosts: ports.map((port) => ({ address: '127.0.0.1', port })), ...service }],
    },
  };
}

async function proxyWith(t: TestContext, ports: number[], proxy: Record<string, unknown>, service: Record<string, unknown> = {}): Promise<ProxyHandle> {
  const handle = await startProxy(proxyConfig(ports, proxy, service), { baseDir: dir });
  t.after(() => handle.stop());
  return handle;
}

async function origin(t: TestContext, handler?: Parameters<typeof startOrigin>[0]): Promise<Origin> {
  const o = await startOrigin(
    handler ??
      ((req, res) => {
        req.resume();
        res.setHeader('x-origin-secret', 'hidden');
        res.end(`${req.url} user=${String(req.headers['x-user'] ?? '')} attempt=${String(req.headers['x-attempt'] ?? '')}`);
      }),
  );
  t.after(() => o.close());
  return o;
}

const seen = () => (globalThis as { __seen?: Array<Record<string, unknown>> }).__seen ?? [];

test('a throwing hook gives that request a 500 naming the plugin, counted in metrics, and the next request is served', async (t) => {
  const o = await origin(t);
  const proxy = await proxyWith(t, [o.port], { plugins: [{ module: './throws.mjs' }] });
  const labels = { plugin: 'thrower', hook: 'onRequest' };
  const before = (await scrape(proxy.adminPort!)).get('kubeproxy_plugin_errors_total', labels) ?? 0;
  const r = await request(proxy.port, { host: 'web.test', path: '/boom' });
  assert.equal(r.status, 500);
  assert.match(r.text, /plugin "thrower" failed in onRequest/);
  assert.doesNotMatch(r.text, /kaput/, 'the error text stays in the log');
  assert.equal(o.requests.length, 0);
  const next = await request(proxy.port, { host: 'web.test', path: '/fine' });
  assert.equal(next.status, 200);
  assert.equal((await scrape(proxy.adminPort!)).get('kubeproxy_plugin_errors_total', labels), before + 1);
});

test('a rejecting async onResponse gives a 500 naming the plugin instead of the instance\'s answer', async (t) => {
  const o = await origin(t);
  const proxy = await proxyWith(t, [o.port], { plugins: [{ module: './rejects.mjs' }] });
  const r = await request(proxy.port, { host: 'web.test', path: '/boom' });
  assert.equal(r.status, 500);
  assert.match(r.text, /plugin "late-thrower" failed in onResponse/);
  const next = await request(proxy.port, { host: 'web.test', path: '/ok' });
  assert.equal(next.status, 200);
  assert.equal(next.text, '/ok user= attempt=');
});

test('async hooks are awaited: the origin sees what onRequest set, the client what onResponse set', async (t) => {
  const o = await origin(t);
  const proxy = await proxyWith(t, [o.port], { plugins: [{ module: './async-header.mjs', options: { user: 'ada' } }] });
  const r = await request(proxy.port, { host: 'web.test', path: '/me' });
  assert.equal(r.status, 200);
  assert.equal(r.text, '/me user=ada attempt=');
  assert.equal(r.headers['x-state'], '/me', 'ctx.state carried the path from onRequest to onResponse');
});

test('onUpstreamRequest runs before every attempt, a retry included, and onLog sees the finished request', async (t) => {
  const failing = await origin(t, (req, res) => {
    req.resume();
    res.statusCode = 503;
    res.end('down');
  });
  const healthy = await origin(t);
  const proxy = await proxyWith(t, [failing.port, healthy.port], { loadBalancer: 'round-robin', plugins: [{ module: './observe.mjs' }] });
  // Round robin: one of two requests starts on the failing instance and is retried on the other.
  const replies = [await request(proxy.port, { host: 'web.test', path: '/a' }), await request(proxy.port, { host: 'web.test', path: '/b' })];
  for (const r of replies) {
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-seen'], 'yes');
    assert.equal(r.headers['x-origin-secret'], undefined, 'onResponse removed a header');
  }
  assert.ok(replies.some((r) => r.text.endsWith('attempt=2')), 'the retry was sent with the header set for attempt 2');
  await until(() => seen().filter((s) => s.hook === 'log').length === 2, 'two onLog calls');
  const upstream = seen().filter((s) => s.hook === 'upstream');
  assert.equal(upstream.length, 3);
  assert.deepEqual(upstream.map((s) => s.attempt).sort(), [1, 1, 2]);
  assert.deepEqual(seen().filter((s) => s.hook === 'log').map((s) => [s.status, s.service]), [[200, 'web'], [200, 'web']]);
});

test('onResponse sees cache hits and the proxy\'s own errors; its changes never reach the stored entry', async (t) => {
  let n = 0;
  const o = await origin(t, (req, res) => {
    req.resume();
    res.setHeader('cache-control', 'max-age=300');
    res.setHeader('x-origin-secret', 'hidden');
    res.end(`body ${++n}`);
  });
  const proxy = await proxyWith(t, [o.port], { plugins: [{ module: './observe.mjs' }] });
  const miss = await request(proxy.port, { host: 'web.test', path: '/c' });
  const hit = await request(proxy.port, { host: 'web.test', path: '/c' });
  assert.equal(hit.text, 'body 1');
  assert.equal(o.requests.length, 1);
  for (const r of [miss, hit]) {
    assert.equal(r.headers['x-seen'], 'yes');
    assert.equal(r.headers['x-origin-secret'], undefined);
  }
  await until(() => seen().filter((s) => s.hook === 'log').length === 2, 'two onLog calls');
  assert.match(String(seen().filter((s) => s.hook === 'log')[1]!.cache), /hit/);
  assert.equal(seen().filter((s) => s.hook === 'upstream').length, 1, 'a hit sends no upstream request');
  const noRoute = await request(proxy.port, { host: 'elsewhere.test', path: '/' });
  assert.equal(noRoute.status, 421);
  assert.equal(noRoute.headers['x-seen'], 'yes', 'the proxy\'s own error went through onResponse');
  // The stored entry still holds the origin's headers (a reload keeps the cache): only what those clients got was changed.
  await proxy.reload(proxyConfig([o.port], {}));
  const plain = await request(proxy.port, { host: 'web.test', path: '/c' });
  assert.equal(plain.text, 'body 1');
  assert.equal(plain.headers['x-origin-secret'], 'hidden');
  assert.equal(plain.headers['x-seen'], undefined);
});

test('a broken plugin on reload is refused with the entry named, and the running config keeps serving', async (t) => {
  const o = await origin(t);
  const proxy = await proxyWith(t, [o.port], { plugins: [{ module: './async-header.mjs', options: { user: 'old' } }] });
  await assert.rejects(
    proxy.reload(proxyConfig([o.port], { plugins: [{ module: './broken.mjs' }] })),
    (err: unknown) => err instanceof ConfigError && err.problems[0] === 'proxy.plugins[0].module: the factory of "./broken.mjs" failed: cannot start: no key',
  );
  const r = await request(proxy.port, { host: 'web.test', path: '/still' });
  assert.equal(r.text, '/still user=old attempt=', 'the old plugin still runs');
  await proxy.reload(proxyConfig([o.port], { plugins: [{ module: './async-header.mjs', options: { user: 'new' } }] }));
  assert.equal((await request(proxy.port, { host: 'web.test', path: '/now' })).text, '/now user=new attempt=');
});

test('plugins are closed when a reload replaces them and when the proxy stops', async (t) => {
  const o = await origin(t);
  const closed = () => (globalThis as { __closed?: number[] }).__closed ?? [];
  const proxy = await startProxy(proxyConfig([o.port], { plugins: [{ module: './closing.mjs', options: { n: 1 } }] }), { baseDir: dir });
  await proxy.reload(proxyConfig([o.port], { plugins: [{ module: './closing.mjs', options: { n: 2 } }] }));
  await until(() => closed().includes(1), 'the replaced plugin closed');
  assert.equal(closed().includes(2), false);
  await proxy.stop();
  assert.deepEqual(closed(), [1, 2]);
});
