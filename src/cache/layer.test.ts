/**
 * The cache layer's state machine, driven directly: the test plays the pipeline's part (the
 * lookup phase's answers, sending the cache's answer, recording what it asks to forward) and the
 * instance's answer through the interceptor calls the forward phase makes. (End-to-end behaviour
 * with real sockets: test/cache-*.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';
import { sendAnswer, sendError } from '../server/respond.ts';
import type { Snapshot } from '../snapshot.ts';
import type { UpstreamRequest } from '../upstream/client.ts';
import type { Service } from '../upstream/service.ts';
import { formatHttpDate } from './directives.ts';
import { TRANSITIONS, type CachePhase } from './flow.ts';
import { getHeader } from './headers.ts';
import type { AfterError, CacheLookup, ResponseInterceptor } from './interceptor.ts';
import { cacheKey, servicePrefix } from './key.ts';
import { CacheLayer, type CacheConfig } from './layer.ts';
import { lookup } from './lookup.ts';

/** Records what the layer writes to the client. */
class ClientResponse extends EventEmitter {
  statusCode = 0;
  headers: string[] = [];
  chunks: Buffer[] = [];
  headersSent = false;
  destroyed = false;
  writableFinished = false;
  writeHead(status: number, headers: string[]): this {
    this.statusCode = status;
    this.headers = headers;
    this.headersSent = true;
    return this;
  }
  write(chunk: Buffer | string): boolean {
    this.chunks.push(Buffer.from(chunk));
    return true;
  }
  end(chunk?: Buffer | string): this {
    if (chunk !== undefined && chunk.length > 0) this.chunks.push(Buffer.from(chunk));
    this.writableFinished = true;
    return this;
  }
  cork(): void {}
  uncork(): void {}
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString();
  }
  header(name: string): string | undefined {
    return getHeader(this.headers, name);
  }
}

const CONFIG: CacheConfig = {
  enabled: true,
  maxSize: 1024 * 1024,
  maxObjectSize: 64 * 1024,
  targetedFields: ['KubeProxy-Cache-Control', 'CDN-Cache-Control'],
  heuristicMax: 86_400_000,
  collapseTimeout: 10_000,
  staleOnError: 3_600_000,
};

const service = { name: 'web', cacheKeyPrefix: servicePrefix('web'), cacheEnabled: true, hashKey: undefined } as unknown as Service;

interface Forwarded {
  request: UpstreamRequest;
  interceptor: ResponseInterceptor;
  ctx: RequestContext;
}

/** Lets the promises of collapsed requests settle. */
const settled = () => new Promise((r) => setImmediate(r));

function setup(config: CacheConfig = CONFIG) {
  let now = Date.UTC(2030, 0, 1);
  const layer = new CacheLayer({ draining: false, attemptEnded: () => {} }, config, [service]);
  layer.now = () => now;
  const forwarded: Forwarded[] = [];
  /** The pipeline's part after a lookup. */
  const after = (ctx: RequestContext, r: CacheLookup | Promise<CacheLookup>): void => {
    if (typeof r !== 'string') return void r.then((v) => after(ctx, v));
    const cache = ctx.cache!;
    if (r === 'hit' || r === 'stale') return sendAnswer(ctx);
    if (r === 'wait') return void cache.waited().then(() => after(ctx, cache.again()));
    if (r === 'unavailable') return sendError(ctx, cache.error!, ['cache-status', ctx.cacheStatus]);
    forwarded.push({ request: ctx.upstream!, interceptor: cache, ctx });
  };
  const send = (method: string, path: string, headers: string[] = []) => {
    const res = new ClientResponse();
    const rawHeaders = ['Host', 'web.test', ...headers];
    const req = { method, url: path, headers: { host: 'web.test' }, rawHeaders } as unknown as IncomingMessage;
    const ctx = new RequestContext(req, res as unknown as ServerResponse, 'req-1', '127.0.0.1');
    // What the validate and route phases set.
    ctx.host = ctx.authority = 'web.test';
    ctx.path = path;
    ctx.service = service;
    ctx.snapshot = { via: '1.1 kubeproxy' } as Snapshot;
    ctx.upstream = { method, path, headers: [...rawHeaders, 'x-forwarded-proto', 'http'], body: null };
    after(ctx, lookup(layer, ctx));
    return { res, ctx };
  };
  /** Plays an instance's answer into the last forwarded exchange. */
  const answer = (status: number, headers: string[], body = '', f = forwarded[forwarded.length - 1]!) => {
    const clientHeaders = [...headers];
    const action = f.interceptor.onResponse(status, '', headers.map((h) => Buffer.from(h, 'latin1')), clientHeaders);
    if (action === 'answer') sendAnswer(f.ctx);
    if (body !== '') f.interceptor.onData(Buffer.from(body));
    const next = f.interceptor.onEnd();
    if (next === 'serve') sendAnswer(f.ctx);
    if (next === 'forward') forwarded.push({ request: f.ctx.upstream!, interceptor: f.interceptor, ctx: f.ctx });
    return { action, clientHeaders };
  };
  /** Plays a failed forward phase into the last forwarded exchange. */
  const fail = (err: ProxyError, f = forwarded[forwarded.length - 1]!): AfterError => {
    const next = f.interceptor.onError(err, []);
    if (next === 'serve') sendAnswer(f.ctx);
    if (next === 'error') sendError(f.ctx, f.interceptor.error!, ['cache-status', f.ctx.cacheStatus]);
    return next;
  };
  return { layer, forwarded, send, answer, fail, advance: (ms: number) => (now += ms), date: () => formatHttpDate(now) };
}

describe('cache layer state machine', () => {
  it('every phase is reachable from lookup, and the final ones lead nowhere', () => {
    const reach = new Set<CachePhase>(['lookup']);
    for (let changed = true; changed; ) {
      changed = false;
      for (const p of [...reach]) for (const n of TRANSITIONS[p]) if (!reach.has(n)) (reach.add(n), (changed = true));
    }
    assert.deepEqual([...reach].sort(), Object.keys(TRANSITIONS).sort());
    for (const p of ['bypass', 'hit', 'stale', 'miss', 'revalidated', 'unavailable'] as const) assert.deepEqual(TRANSITIONS[p], []);
  });

  it('miss → stored → hit, without the client validators going upstream', () => {
    const t = setup();
    const first = t.send('GET', '/a', ['If-None-Match', '"nope"']);
    assert.equal(t.forwarded.length, 1);
    assert.equal(getHeader(t.forwarded[0]!.request.headers, 'if-none-match'), undefined);
    const { action, clientHeaders } = t.answer(200, ['Cache-Control', 'max-age=60', 'Date', t.date(), 'ETag', '"e"'], 'body');
    assert.equal(action, 'forward');
    assert.equal(getHeader(clientHeaders, 'cache-status'), 'kubeproxy; fwd=uri-miss; stored');
    assert.equal(first.ctx.cacheResult, 'miss');
    t.advance(5_000);
    const second = t.send('GET', '/a');
    assert.equal(t.forwarded.length, 1, 'served from memory');
    assert.equal(second.res.statusCode, 200);
    assert.equal(second.res.text, 'body');
    assert.equal(second.res.header('age'), '5');
    assert.equal(second.res.header('x-request-id'), 'req-1');
    assert.equal(second.res.header('via'), '1.1 kubeproxy');
    assert.equal(second.res.header('cache-status'), 'kubeproxy; hit; ttl=55');
    assert.equal(second.ctx.cacheResult, 'hit');
    assert.equal(second.ctx.cacheStatus, 'kubeproxy; hit; ttl=55');
  });

  it('stale → revalidating → revalidated on a 304 that applies', () => {
    const t = setup();
    t.send('GET', '/r');
    t.answer(200, ['Cache-Control', 'max-age=10', 'Date', t.date(), 'ETag', '"v"', 'X-V', '1'], 'old body');
    t.advance(20_000);
    const r = t.send('GET', '/r');
    assert.equal(t.forwarded.length, 2);
    assert.equal(getHeader(t.forwarded[1]!.request.headers, 'if-none-match'), '"v"');
    const { action } = t.answer(304, ['ETag', '"v"', 'Cache-Control', 'max-age=100', 'X-V', '2', 'Date', t.date()]);
    assert.equal(action, 'take');
    assert.equal(r.res.statusCode, 200);
    assert.equal(r.res.text, 'old body');
    assert.equal(r.res.header('x-v'), '2');
    assert.equal(r.ctx.cacheResult, 'revalidated');
    assert.equal(r.res.header('cache-status'), 'kubeproxy; fwd=stale; fwd-status=304; ttl=100; stored');
  });

  it('a failed revalidation of a must-revalidate entry answers 504', () => {
    const t = setup();
    t.send('GET', '/m');
    t.answer(200, ['Cache-Control', 'max-age=10, must-revalidate', 'Date', t.date(), 'ETag', '"v"'], 'x');
    t.advance(20_000);
    const r = t.send('GET', '/m');
    assert.equal(t.fail(new ProxyError('no_healthy_instance', 'down')), 'error');
    assert.equal(r.res.statusCode, 504);
    assert.equal(r.ctx.errorCause, 'not_cached');
    assert.equal(r.ctx.cacheResult, 'miss');
  });

  it('stale-if-error: a 503 answer to the revalidation is swallowed and the entry served', () => {
    const t = setup();
    t.send('GET', '/e');
    t.answer(200, ['Cache-Control', 'max-age=10, stale-if-error=60', 'Date', t.date()], 'good');
    t.advance(20_000);
    // No validators: the stored entry is dropped at expiry only after its stale-if-error window.
    const r = t.send('GET', '/e');
    const { action } = t.answer(503, ['Content-Type', 'text/plain'], 'broken');
    assert.equal(action, 'take');
    assert.equal(r.res.text, 'good');
    assert.equal(r.ctx.cacheResult, 'stale');
    assert.equal(r.res.header('cache-status'), 'kubeproxy; fwd=stale; fwd-status=503; ttl=-10; detail="stale-if-error"');
  });

  it('collapsed: the waiting request is served from the leader\'s stored answer', async () => {
    const t = setup();
    const leader = t.send('GET', '/c');
    const follower = t.send('GET', '/c');
    assert.equal(t.forwarded.length, 1, 'one upstream request');
    assert.equal(t.layer.flights.get('web GET http://web.test/c')?.waiting, 1);
    assert.equal(follower.res.headersSent, false, 'the follower waits');
    t.answer(200, ['Cache-Control', 'max-age=60', 'Date', t.date()], 'shared');
    await settled();
    assert.equal(follower.res.text, 'shared');
    assert.equal(follower.res.header('cache-status'), 'kubeproxy; fwd=uri-miss; ttl=60; collapsed');
    assert.equal(follower.ctx.cacheResult, 'hit');
    assert.equal(leader.ctx.cacheResult, 'miss');
  });

  it('collapsed requests go upstream when the leader\'s client leaves', async () => {
    const t = setup();
    t.send('GET', '/l');
    const follower = t.send('GET', '/l');
    t.fail(new ProxyError('client_abort', 'gone'), t.forwarded[0]);
    await settled();
    assert.equal(t.forwarded.length, 2, 'the follower forwards itself');
    t.answer(200, ['Cache-Control', 'max-age=60', 'Date', t.date()], 'own');
    assert.equal(follower.ctx.cacheResult, 'miss');
  });

  it('an unsafe method is forwarded and invalidates on a non-error answer', () => {
    const t = setup();
    t.send('GET', '/i');
    t.answer(200, ['Cache-Control', 'max-age=60', 'Date', t.date()], 'x');
    const del = t.send('DELETE', '/i');
    assert.equal(del.ctx.cacheResult, 'bypass');
    const { clientHeaders } = t.answer(204, []);
    assert.equal(getHeader(clientHeaders, 'cache-status'), 'kubeproxy; fwd=method');
    t.send('GET', '/i');
    assert.equal(t.forwarded.length, 3, 'the GET after DELETE goes upstream');
  });

  it('only-if-cached without an entry answers 504 and forwards nothing', () => {
    const t = setup();
    const r = t.send('GET', '/o', ['Cache-Control', 'only-if-cached']);
    assert.equal(t.forwarded.length, 0);
    assert.equal(r.res.statusCode, 504);
    assert.equal(r.res.header('cache-status'), 'kubeproxy; detail="only-if-cached"');
  });
});

describe('cache layer lifecycle', () => {
  it('a URL answered uncacheable stays uncollapsed while such answers keep coming, and collapses again 30 s after the last', async () => {
    const t = setup();
    const key = cacheKey('web', 'GET', { scheme: 'http', authority: 'web.test', target: '/u' })!;
    const uncacheable = () => {
      t.send('GET', '/u');
      t.answer(200, ['Content-Length', '1'], 'x');
    };
    uncacheable();
    assert.ok(t.layer.isUncollapsible(key));
    // Two requests at once are both forwarded: neither waits for the other.
    const before = t.forwarded.length;
    t.send('GET', '/u');
    t.send('GET', '/u');
    assert.equal(t.forwarded.length, before + 2);
    t.answer(200, ['Content-Length', '1'], 'x', t.forwarded[before]);
    t.answer(200, ['Content-Length', '1'], 'x', t.forwarded[before + 1]);
    // An uncacheable answer in the second half of the window renews it.
    t.advance(20_000);
    uncacheable();
    t.advance(20_000);
    assert.ok(t.layer.isUncollapsible(key), 'renewed 20 s in: still marked 40 s in');
    // No more traffic: the mark ends, and the next burst collapses behind one request.
    t.advance(11_000);
    assert.equal(t.layer.isUncollapsible(key), false);
    const n = t.forwarded.length;
    t.send('GET', '/u');
    t.send('GET', '/u');
    assert.equal(t.forwarded.length, n + 1, 'the second request waits for the first');
    // The leader's answer cannot be stored either: the waiting request goes upstream itself.
    t.answer(200, ['Content-Length', '1'], 'x', t.forwarded[n]);
    await settled();
    assert.equal(t.forwarded.length, n + 2);
    t.answer(200, ['Content-Length', '1'], 'x', t.forwarded[n + 1]);
    assert.equal(t.layer.flights.size, 0);
  });

  it('a reload keeps the store unless its size limits change; evictions never go back', async () => {
    const t = setup({ ...CONFIG, maxSize: 4096, maxObjectSize: 2048 });
    for (const p of ['/1', '/2', '/3', '/4', '/5', '/6']) {
      t.send('GET', p);
      t.answer(200, ['Cache-Control', 'max-age=60', 'Date', t.date()], 'x'.repeat(1000));
    }
    const before = await t.layer.stats();
    assert.ok(before.evictions > 0, 'the 4 KiB store evicted');
    const store = t.layer.store;
    t.layer.reload({ ...CONFIG, maxSize: 4096, maxObjectSize: 2048, collapseTimeout: 5 }, [service]);
    assert.equal(t.layer.store, store, 'same limits: same store');
    t.layer.reload({ ...CONFIG, maxSize: 8192, maxObjectSize: 2048 }, [service]);
    assert.notEqual(t.layer.store, store, 'new limits: new store');
    const after = await t.layer.stats();
    assert.equal(after.entries, 0);
    assert.equal(after.evictions, before.evictions);
    t.layer.reload({ ...CONFIG, enabled: false }, [service]);
    assert.equal(t.layer.store, undefined);
  });

  it('purgeUrl removes both schemes\' entries; purgeService all of a service', async () => {
    const t = setup();
    t.send('GET', '/p?a=1');
    t.answer(200, ['Cache-Control', 'max-age=60', 'Date', t.date()], 'x');
    t.send('GET', '/q');
    t.answer(200, ['Cache-Control', 'max-age=60', 'Date', t.date()], 'x');
    assert.equal(await t.layer.purgeUrl('web', 'https://WEB.test:443/p?a=1'), 1);
    assert.equal(await t.layer.purgeUrl('web', 'http://web.test/p?a=1'), 0);
    assert.equal(await t.layer.purgeService('web'), 1);
    assert.equal((await t.layer.stats()).entries, 0);
  });
});
