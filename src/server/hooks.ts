/**
 * The plugin hook points of the request path: each runs the hooks of its kind for one request
 * (src/plugins/chain.ts) over the plugins' view of it, and returns undefined when nothing is left
 * to wait for, or a Promise when a hook is async or failed (the phase continues once it settles;
 * a rejection is a `plugin_error` ProxyError naming the plugin, answered by the caller). With no
 * plugin configured each is one check and no allocation; the context is made by the first hook
 * that runs for a request, and its request and response views by the first hook that reads them
 * (an empty hook costs neither, nor a copy of the client's header lines).
 *
 *   requestHooks(ctx, 'proxy')    before routing and the cache: proxy-level onRequest
 *   requestHooks(ctx, 'service')  right after routing, before the cache key: the service's onRequest
 *                                 (ctx.upstream: method, path, headers may still change)
 *   upstreamRequestHooks(ctx)     before each attempt is forwarded (ctx.instance, ctx.attempts, ctx.upstream)
 *   responseHooks(ctx)            before the client sees the head (ctx.status, ctx.responseHeaders):
 *                                 an instance's answer, the cache's, the proxy's own errors
 *   logHooks(ctx)                 once the request ended (after the access log and metrics)
 *   upgradeHooks(...)             an Upgrade request (server/upgrade.ts), once routed: every onRequest
 *                                 of its chain, so a plugin that guards requests guards WebSockets too
 *
 * A request hook may answer at once with ctx.respond(...): the pipeline then skips routing or
 * the cache and the instances and sends that answer.
 */
import type { RequestContext } from '../context.ts';
import type { ProxyError } from '../errors.ts';
import type { PluginLogRecord, PluginResponse } from '../plugins/api.ts';
import { HookContext, HookRequest, runHooks, type HookOutcome, type PluginAnswer, type PluginChain } from '../plugins/chain.ts';
import type { Snapshot } from '../snapshot.ts';
import { FRAMING, MirroredHeaderMap, RawHeaderMap } from '../plugins/header-map.ts';
import { scanRequestHeaders } from './request-fields.ts';
import { validate } from './validate.ts';

export function requestHooks(ctx: RequestContext, level: 'proxy' | 'service'): Promise<void> | undefined {
  const plugins = ctx.snapshot!.plugins;
  if (plugins === undefined) return undefined;
  if (level === 'proxy') {
    const chain = plugins.proxy;
    if (chain === undefined || chain.onRequest.length === 0) return undefined;
    return settle(ctx, runHooks(chain, chain.onRequest, 'onRequest', view(ctx, chain)), proxyRequestDone);
  }
  const service = ctx.service!.name;
  const chain = plugins.forService(service);
  if (chain === undefined) return undefined;
  const h = ctx.plugins;
  if (h !== undefined) {
    h.chain = chain;
    h.service = service;
  }
  if (chain.onRoutedRequest.length === 0) return undefined;
  const v = view(ctx, chain);
  // The request for the instances is built by now: changes reach it and the client's headers (Vary).
  v.request.headers = new MirroredHeaderMap(new ClientHeaders(ctx), new RawHeaderMap(ctx.upstream!.headers, FRAMING));
  v.request.pathChanged = false;
  return settle(ctx, runHooks(chain, chain.onRoutedRequest, 'onRequest', v), serviceRequestDone);
}

export function upstreamRequestHooks(ctx: RequestContext): Promise<void> | undefined {
  const plugins = ctx.snapshot!.plugins;
  if (plugins === undefined) return undefined;
  const chain = ctx.plugins?.chain ?? plugins.forService(ctx.service!.name);
  if (chain === undefined || chain.onUpstreamRequest.length === 0) return undefined;
  const v = view(ctx, chain);
  const u = ctx.upstream!;
  v.upstream = { instance: ctx.instance!.id, attempt: ctx.attempts, method: u.method, path: u.path, headers: new RawHeaderMap(u.headers, FRAMING) };
  return settle(ctx, runHooks(chain, chain.onUpstreamRequest, 'onUpstreamRequest', v), nothing);
}

export function responseHooks(ctx: RequestContext): Promise<void> | undefined {
  const plugins = ctx.snapshot!.plugins;
  if (plugins === undefined) return undefined;
  const h = ctx.plugins;
  // The error answer of a failed hook goes out as it is: a plugin that failed is not run on its own 500.
  if (h?.failed) return undefined;
  const chain = h?.chain ?? (ctx.service === undefined ? plugins.proxy : plugins.forService(ctx.service.name));
  if (chain === undefined || chain.onResponse.length === 0) return undefined;
  const v = view(ctx, chain);
  v.offerResponse();
  return settle(ctx, runHooks(chain, chain.onResponse, 'onResponse', v), nothing);
}

export function logHooks(ctx: RequestContext): void {
  const plugins = ctx.snapshot!.plugins;
  if (plugins === undefined) return;
  const chain = ctx.plugins?.chain ?? (ctx.service === undefined ? plugins.proxy : plugins.forService(ctx.service.name));
  if (chain === undefined || chain.onLog.length === 0) return;
  const v = view(ctx, chain);
  v.log = logRecord(ctx);
  // Nothing reaches the client any more: a failing onLog is only reported (log line, metric) by the chain.
  void runHooks(chain, chain.onLog, 'onLog', v);
}

/** What the onRequest hooks of an Upgrade request decided: an error, an answer, or the tunnel's path and header lines. */
export interface UpgradeDecision {
  error?: ProxyError;
  answer?: PluginAnswer;
  path: string;
  headers: string[];
}

/**
 * The onRequest hooks of an Upgrade request, proxy-level then the service's, run after routing
 * (the upgrade path has routed already: a Host change does not re-route it). undefined when no
 * plugin applies; the decision, or a Promise of it when a hook is async. The tunnel's own
 * answer (101) and bytes pass untouched: no other hook runs for an upgrade.
 */
export function upgradeHooks(
  snapshot: Snapshot,
  service: string,
  request: { method: string; path: string; host: string; rawHeaders: readonly string[]; clientIp: string; id: string },
): UpgradeDecision | Promise<UpgradeDecision> | undefined {
  const chain = snapshot.plugins?.forService(service);
  if (chain === undefined || chain.onRequest.length === 0) return undefined;
  const headers = request.rawHeaders.slice();
  const v = new HookContext(new HookRequest(request.method, request.path, request.host, new RawHeaderMap(headers, FRAMING), request.clientIp, request.id), service, chain);
  const decide = (err: HookOutcome): UpgradeDecision => ({ error: err, answer: v.answer, path: v.request.path, headers });
  const outcome = runHooks(chain, chain.onRequest, 'onRequest', v);
  return outcome instanceof Promise ? outcome.then(decide) : decide(outcome);
}

/** The plugins' context of the request, made once. */
function view(ctx: RequestContext, chain: PluginChain): HookContext {
  return (ctx.plugins ??= new PipelineHookContext(ctx, chain));
}

/**
 * The hook context of a request of the pipeline: its request view is made from the request's
 * record when a hook (or the cache key) first reads it, its response view when an onResponse hook
 * first reads it. ctx.path and ctx.host change only through these views (and validate, before any
 * hook), so a view made late holds what one made at the first hook would.
 */
class PipelineHookContext extends HookContext {
  constructor(
    private readonly source: RequestContext,
    chain: PluginChain,
  ) {
    super(undefined, source.service?.name, chain);
  }

  protected override makeRequest(): HookRequest {
    const ctx = this.source;
    return new HookRequest(ctx.method, ctx.path, ctx.host, new ClientHeaders(ctx), ctx.clientIp, ctx.id);
  }

  protected override makeResponse(): PluginResponse {
    return new ResponseView(this.source, this);
  }
}

/**
 * The client's header lines as plugins see them. node's rawHeaders stay as received: the first
 * change works on a copy, which becomes the request's lines (what the upstream request and the
 * cache read).
 */
class ClientHeaders extends RawHeaderMap {
  constructor(private readonly ctx: RequestContext) {
    super(ctx.requestHeaders, FRAMING, true);
  }

  protected override copied(raw: string[]): void {
    this.ctx.requestHeaders = raw;
  }
}

/** Turns a run's outcome into the hook point's result: undefined (go on) or a Promise. */
function settle(ctx: RequestContext, outcome: HookOutcome | Promise<HookOutcome>, done: (ctx: RequestContext) => ProxyError | undefined): Promise<void> | undefined {
  if (outcome instanceof Promise) {
    return outcome.then((err) => {
      const e = err ?? done(ctx);
      if (e !== undefined) throw failed(ctx, e);
    });
  }
  const e = outcome ?? done(ctx);
  // A failure costs a Promise; success on the sync path does not.
  return e === undefined ? undefined : Promise.reject(failed(ctx, e));
}

function failed(ctx: RequestContext, err: ProxyError): ProxyError {
  if (err.kind === 'plugin_error') ctx.plugins!.failed = true;
  return err;
}

function nothing(): undefined {
  return undefined;
}

/** After the proxy-level onRequest: an answer, a new Host (routing follows it), a rewritten path. */
function proxyRequestDone(ctx: RequestContext): ProxyError | undefined {
  const h = ctx.plugins!;
  if (h.answer !== undefined) {
    ctx.respond(h.answer.status, h.answer.body, h.answer.headers);
    return undefined;
  }
  // No hook read the request: none changed it.
  const request = h.requestIfMade;
  if (request === undefined) return undefined;
  if (request.headers.changed) {
    // Routing and the cache key read the fields and the Host: read again from the changed lines.
    ctx.fields = scanRequestHeaders(ctx.requestHeaders);
    const invalid = validate(ctx);
    if (invalid !== undefined) return invalid;
    request.host = ctx.host;
  }
  if (request.pathChanged) ctx.path = request.path;
  return undefined;
}

/** After the service's onRequest: an answer, or a rewritten path for the instances and the cache key. */
function serviceRequestDone(ctx: RequestContext): ProxyError | undefined {
  const h = ctx.plugins!;
  if (h.answer !== undefined) {
    ctx.respond(h.answer.status, h.answer.body, h.answer.headers);
    return undefined;
  }
  if (h.request.pathChanged) {
    ctx.path = h.request.path;
    ctx.upstream!.path = ctx.path;
  }
  return undefined;
}

/** The response head as onResponse sees it: its status and headers are the request's own. */
class ResponseView implements PluginResponse {
  readonly headers: RawHeaderMap;

  constructor(
    private readonly ctx: RequestContext,
    private readonly hooks: HookContext,
  ) {
    this.headers = new RawHeaderMap((ctx.responseHeaders ??= []), FRAMING);
  }

  get status(): number {
    return this.ctx.status;
  }

  set status(value: number) {
    if (this.hooks.running !== 'onResponse') throw new TypeError('response.status can only be changed in onResponse');
    if (!Number.isInteger(value) || value < 200 || value > 599) throw new TypeError(`response.status must be an integer 200-599, got ${String(value)}`);
    this.ctx.status = value;
  }
}

/** The access-log record of the finished request, for onLog. */
function logRecord(ctx: RequestContext): PluginLogRecord {
  return Object.freeze({
    id: ctx.id,
    method: ctx.method,
    host: ctx.host,
    path: ctx.path,
    status: ctx.status,
    service: ctx.service?.name,
    instance: ctx.instance?.id,
    attempts: ctx.attempts,
    durationMs: performance.now() - ctx.start,
    bytesIn: ctx.bytesIn,
    bytesOut: ctx.bytesOut,
    cacheStatus: ctx.cacheStatus,
    errorCause: ctx.errorCause,
    errorMessage: ctx.errorMessage,
    clientIp: ctx.clientIp,
  });
}
