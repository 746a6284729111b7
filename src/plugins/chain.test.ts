import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyError } from '../errors.ts';
import type { HookName, Plugin } from './api.ts';
import { HookContext, HookRequest, PluginChain, runHooks, type LoadedPlugin } from './chain.ts';
import { RawHeaderMap } from './header-map.ts';

function chainOf(plugins: Plugin[], options: { timeout?: number; inherited?: number } = {}) {
  const failures: Array<{ plugin: string; hook: HookName; err: unknown }> = [];
  const loaded: LoadedPlugin[] = plugins.map((plugin, i) => ({ plugin, where: `proxy.plugins[${i}]`, timeout: options.timeout ?? 1000 }));
  const chain = new PluginChain(loaded, (p, hook, err) => failures.push({ plugin: p.plugin.name, hook, err }), options.inherited);
  return { chain, failures };
}

function contextFor(headers: string[] = ['Host', 'web.test']): HookContext {
  const { chain } = chainOf([]);
  return new HookContext(new HookRequest('GET', '/a?b=1', 'web.test', new RawHeaderMap(headers), '127.0.0.1', 'req-1'), 'web', chain);
}

test('synchronous hooks run in config order and return no Promise', () => {
  const order: string[] = [];
  const { chain } = chainOf([
    { name: 'one', onRequest: (ctx) => void order.push(`one:${ctx.request.headers.get('host')}`) },
    { name: 'two', onRequest: (ctx) => ctx.request.headers.set('x-team', 'blue') },
    { name: 'three', onRequest: (ctx) => void order.push(`three:${ctx.request.headers.get('X-Team')}`) },
  ]);
  const ctx = contextFor();
  const outcome = runHooks(chain, chain.onRequest, 'onRequest', ctx);
  assert.equal(outcome, undefined);
  assert.deepEqual(order, ['one:web.test', 'three:blue']);
});

test('an async hook is awaited before the next hook runs', async () => {
  const order: string[] = [];
  const { chain } = chainOf([
    { name: 'sync', onRequest: () => void order.push('sync') },
    {
      name: 'async',
      async onRequest(ctx) {
        await new Promise((r) => setTimeout(r, 5));
        ctx.request.headers.set('x-user', 'ada');
        order.push('async');
      },
    },
    { name: 'after', onRequest: (ctx) => void order.push(`after:${ctx.request.headers.get('x-user')}`) },
  ]);
  const outcome = runHooks(chain, chain.onRequest, 'onRequest', contextFor());
  assert.ok(outcome instanceof Promise);
  assert.equal(await outcome, undefined);
  assert.deepEqual(order, ['sync', 'async', 'after:ada']);
});

test('a throwing hook ends the run with a 500 naming the plugin, reported once, later hooks skipped', () => {
  let later = false;
  const { chain, failures } = chainOf([
    { name: 'boom', onRequest: () => { throw new Error('secret detail'); } },
    { name: 'later', onRequest: () => void (later = true) },
  ]);
  const outcome = runHooks(chain, chain.onRequest, 'onRequest', contextFor());
  assert.ok(outcome instanceof ProxyError);
  assert.equal(outcome.kind, 'plugin_error');
  assert.equal(outcome.status, 500);
  assert.equal(outcome.message, 'plugin "boom" failed in onRequest');
  assert.equal(later, false);
  assert.equal(failures.length, 1);
  assert.equal(failures[0]!.plugin, 'boom');
  assert.equal((failures[0]!.err as Error).message, 'secret detail');
});

test('a rejecting async hook gives the same 500 naming the plugin', async () => {
  const { chain, failures } = chainOf([{ name: 'late-boom', onResponse: async () => Promise.reject(new Error('nope')) }]);
  const outcome = await runHooks(chain, chain.onResponse, 'onResponse', contextFor());
  assert.equal(outcome?.message, 'plugin "late-boom" failed in onResponse');
  assert.deepEqual(failures.map((f) => `${f.plugin}/${f.hook}`), ['late-boom/onResponse']);
});

test('an async hook that never settles fails its request after the plugin timeout', async () => {
  const { chain } = chainOf([{ name: 'stuck', onRequest: () => new Promise<void>(() => {}) }], { timeout: 20 });
  const outcome = await runHooks(chain, chain.onRequest, 'onRequest', contextFor());
  assert.equal(outcome?.message, 'plugin "stuck" failed in onRequest (did not finish within 20 ms)');
});

test('respond() answers at once: the following onRequest hooks do not run', () => {
  let after = false;
  const { chain } = chainOf([
    { name: 'auth', onRequest: (ctx) => ctx.respond(401, 'token required\n', { 'WWW-Authenticate': 'Bearer' }) },
    { name: 'after', onRequest: () => void (after = true) },
  ]);
  const ctx = contextFor();
  assert.equal(runHooks(chain, chain.onRequest, 'onRequest', ctx), undefined);
  assert.equal(after, false);
  assert.equal(ctx.answer?.status, 401);
  assert.equal(ctx.answer?.body, 'token required\n');
  assert.deepEqual(ctx.answer?.headers, ['WWW-Authenticate', 'Bearer', 'content-type', 'text/plain; charset=utf-8']);
});

test('respond() outside onRequest, twice, or with a bad status is the plugin\'s error', () => {
  const { chain } = chainOf([{ name: 'late', onResponse: (ctx) => (ctx as unknown as { respond(s: number): void }).respond(403) }]);
  assert.match(String((runHooks(chain, chain.onResponse, 'onResponse', contextFor()) as ProxyError).cause), /only be called in onRequest/);
  const twice = chainOf([{ name: 'twice', onRequest: (ctx) => { ctx.respond(403); ctx.respond(404); } }]);
  assert.match(String((runHooks(twice.chain, twice.chain.onRequest, 'onRequest', contextFor()) as ProxyError).cause), /already called/);
  const bad = chainOf([{ name: 'bad', onRequest: (ctx) => ctx.respond(99) }]);
  assert.match(String((runHooks(bad.chain, bad.chain.onRequest, 'onRequest', contextFor()) as ProxyError).cause), /status must be an integer 200-599, got 99/);
  const framing = chainOf([{ name: 'framing', onRequest: (ctx) => ctx.respond(200, 'x', { 'Content-Length': '99' }) }]);
  assert.match(String((runHooks(framing.chain, framing.chain.onRequest, 'onRequest', contextFor()) as ProxyError).cause), /Content-Length frames the body/);
});

test('request.path is rewritten in onRequest only, and must stay a path', () => {
  const { chain } = chainOf([{ name: 'rewrite', onRequest: (ctx) => void (ctx.request.path = ctx.request.path.replace(/^\/a/, '/v2/a')) }]);
  const ctx = contextFor();
  runHooks(chain, chain.onRequest, 'onRequest', ctx);
  assert.equal(ctx.request.path, '/v2/a?b=1');
  assert.equal(ctx.request.pathChanged, true);
  const bad = chainOf([{ name: 'bad', onRequest: (c) => void (c.request.path = 'no-slash') }]);
  assert.match(String((runHooks(bad.chain, bad.chain.onRequest, 'onRequest', contextFor()) as ProxyError).cause), /must start with "\/"/);
  assert.throws(() => (ctx.request.path = '/x'), /only be changed in onRequest/);
});

test('ctx.state is one Map per plugin, kept from one hook to the next', async () => {
  const seen: unknown[] = [];
  const { chain } = chainOf([
    { name: 'a', onRequest: (ctx) => void ctx.state.set('k', 'a'), onResponse: (ctx) => void seen.push(ctx.state.get('k')) },
    {
      name: 'b',
      async onRequest(ctx) {
        await Promise.resolve();
        ctx.state.set('k', 'b');
      },
      onResponse: (ctx) => void seen.push(ctx.state.get('k')),
    },
  ]);
  const ctx = contextFor();
  await runHooks(chain, chain.onRequest, 'onRequest', ctx);
  runHooks(chain, chain.onResponse, 'onResponse', ctx);
  assert.deepEqual(seen, ['a', 'b']);
});

test('a service chain runs only its own onRequest hooks after routing', () => {
  const { chain } = chainOf([{ name: 'proxy-level', onRequest: () => {} }, { name: 'service-level', onRequest: () => {} }], { inherited: 1 });
  assert.deepEqual(chain.onRequest.map((h) => h.loaded.plugin.name), ['proxy-level', 'service-level']);
  assert.deepEqual(chain.onRoutedRequest.map((h) => h.loaded.plugin.name), ['service-level']);
  assert.equal(chain.onLog.length, 0);
});

test('the request and response views are made when a hook first reads them, once, and not for a hook that does not', () => {
  const made: string[] = [];
  class Lazy extends HookContext {
    protected override makeRequest(): HookRequest {
      made.push('request');
      return new HookRequest('GET', '/a', 'web.test', new RawHeaderMap([]), '127.0.0.1', 'req-1');
    }
    protected override makeResponse() {
      made.push('response');
      return { status: 200, headers: new RawHeaderMap([]) };
    }
  }
  const empty = chainOf([{ name: 'empty', onRequest() {}, onResponse() {} }]).chain;
  const quiet = new Lazy(undefined, 'web', empty);
  runHooks(empty, empty.onRequest, 'onRequest', quiet);
  quiet.offerResponse();
  runHooks(empty, empty.onResponse, 'onResponse', quiet);
  assert.deepEqual(made, []);
  assert.equal(quiet.requestIfMade, undefined);

  const reader = chainOf([
    { name: 'reader', onRequest: (ctx) => void ctx.request.headers.get('host'), onResponse: (ctx) => void ctx.response.headers.get('etag') },
    { name: 'second', onRequest: (ctx) => void ctx.request.path, onResponse: (ctx) => void ctx.response.status },
  ]).chain;
  const looked = new Lazy(undefined, 'web', reader);
  assert.equal(looked.response, undefined, 'no response before onResponse');
  runHooks(reader, reader.onRequest, 'onRequest', looked);
  looked.offerResponse();
  runHooks(reader, reader.onResponse, 'onResponse', looked);
  assert.deepEqual(made, ['request', 'response']);
  assert.equal(looked.requestIfMade, looked.request);
});
