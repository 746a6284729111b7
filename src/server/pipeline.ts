/**
 * The phases every request passes, in order (Pingora's ProxyHttp, Envoy's filter chain), over
 * one RequestContext (context.ts). Each phase is a small function in the folder named for it;
 * this file only says in which order they run and where a request leaves the path:
 *
 *   accept            server/accept.ts      id, client address, snapshot, counted in flight
 *   validate          server/validate.ts    target and Host → host, path, authority     (400)
 *   plugins.onRequest server/hooks.ts       proxy-level: before routing and the cache   (ctx.respond)
 *   route             routing/route.ts      Host → service                              (421)
 *   admit             server/admit.ts       body size, 100 Continue                     (413)
 *   upstream request  upstream/request.ts   method, path, header lines, body for the instances
 *   plugins.onRequest server/hooks.ts       service-level: before the cache key is made (ctx.respond)
 *   cache lookup      cache/lookup.ts       hit / stale ─────────────────────────────▶ respond
 *                                           wait (collapsed) ─▶ lookup again
 *                                           unavailable (504) ───────────────────────▶ respond
 *                                           miss / revalidate / bypass ─▶ forward
 *   forward           server/exchange.ts    pick an instance (slot, queue), plugins.onUpstreamRequest,
 *                                           attempt, retries on another instance
 *   cache store       cache/flow.ts         the final answer teed into an entry, or taken over
 *   respond           server/respond.ts     plugins.onResponse, then the head and body  (or the error)
 *   log               ended() below         metrics and access log (Runtime), plugins.onLog
 *
 * A phase that can wait (an async plugin hook, a store lookup, a collapsed request) returns a
 * Promise only when it has to; the path then continues in the next method of this class.
 * Everything a request needs is read from the snapshot it started with.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { lookup } from '../cache/lookup.ts';
import type { CacheLookup, ResponseInterceptor } from '../cache/interceptor.ts';
import type { RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';
import { route } from '../routing/route.ts';
import { upstreamRequest } from '../upstream/request.ts';
import { accept, type ProxyResponse } from './accept.ts';
import { admit } from './admit.ts';
import { Exchange } from './exchange.ts';
import { logHooks, requestHooks } from './hooks.ts';
import type { PipelineHost } from './host.ts';
import { sendAnswer, sendError } from './respond.ts';
import { validate } from './validate.ts';

export type { PipelineHost } from './host.ts';

export class Pipeline {
  constructor(private readonly host: PipelineHost) {}

  /** The `request` listener of the http.Server. */
  readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    this.handle(req, res, false);
  };

  /** The `checkContinue` listener: 100 Continue is sent only once the request is admitted. */
  readonly onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    this.handle(req, res, true);
  };

  /**
   * The 'close' listener of every response, one function for all (no closure per request): it
   * finds the request through the response. The log phase, then the phases still running are
   * told (the forward phase aborts its attempt, the cache frees a key it was fetching).
   */
  private readonly onResponseClose = ((pipeline: Pipeline) =>
    function (this: ProxyResponse): void {
      const ctx = this.ctx;
      if (ctx === undefined) return;
      pipeline.ended(ctx);
      ctx.exchange?.onClientClose();
      ctx.cache?.onClientClose();
    })(this);

  handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    const ctx = accept(this.host, req, res, expectContinue, this.onResponseClose);
    const invalid = validate(ctx);
    if (invalid !== undefined) return sendError(ctx, invalid);
    const hooked = requestHooks(ctx, 'proxy');
    if (hooked === undefined) return this.routed(ctx);
    hooked.then(
      () => this.routed(ctx),
      (err: unknown) => this.hookFailed(ctx, err),
    );
  }

  /** route → admit → the upstream request → the service's onRequest hooks. */
  private routed(ctx: RequestContext): void {
    if (ctx.answered) return sendAnswer(ctx);
    const err = route(ctx) ?? admit(ctx);
    if (err !== undefined) return sendError(ctx, err);
    ctx.upstream = upstreamRequest(ctx);
    const hooked = requestHooks(ctx, 'service');
    if (hooked === undefined) return this.lookedUp(ctx);
    hooked.then(
      () => this.lookedUp(ctx),
      (e: unknown) => this.hookFailed(ctx, e),
    );
  }

  /** The cache lookup for services with the cache on; the forward phase for the others. */
  private lookedUp(ctx: RequestContext): void {
    if (ctx.answered) return sendAnswer(ctx);
    const cache = this.host.cache;
    if (cache !== undefined && ctx.service!.cacheEnabled) return this.cached(ctx, lookup(cache, ctx));
    this.forward(ctx, undefined);
  }

  /** After the cache lookup: the cache's answer, a wait for another request's fetch, or the forward phase. */
  private cached(ctx: RequestContext, result: CacheLookup | Promise<CacheLookup>): void {
    if (typeof result !== 'string') {
      result.then(
        (r) => this.cached(ctx, r),
        (err: unknown) => this.cacheFailed(ctx, err),
      );
      return;
    }
    const cache = ctx.cache;
    switch (result) {
      case 'hit':
      case 'stale':
        return sendAnswer(ctx);
      case 'wait':
        // A failure while waiting or looking up again is an error answer, never a hanging request.
        cache!
          .waited()
          .then(() => cache!.again())
          .then(
            (r) => this.cached(ctx, r),
            (err: unknown) => this.cacheFailed(ctx, err),
          );
        return;
      case 'unavailable':
        return sendError(ctx, cache!.error!, ['cache-status', ctx.cacheStatus]);
      case 'gone':
        return;
      default:
        // miss / revalidate / bypass: ctx.upstream is what to send; the cache (if on) takes the answer.
        return this.forward(ctx, cache);
    }
  }

  /** The forward phase: pick, attempts and retries, the answer streamed (and stored) to the client. */
  private forward(ctx: RequestContext, cache: ResponseInterceptor | undefined): void {
    const exchange = new Exchange(this.host, ctx.snapshot!, ctx, ctx.service!, ctx.upstream!, cache);
    const limited = ctx.bodyLimit;
    if (limited !== undefined) limited.onOverflow = (err) => exchange.fail(err);
    exchange.start();
  }

  /** The cache lookup failed (a bug, or a store that threw where it should not): a 502 naming it. */
  private cacheFailed(ctx: RequestContext, err: unknown): void {
    sendError(ctx, new ProxyError('upstream_protocol', `internal cache error: ${err instanceof Error ? err.message : String(err)}`));
  }

  /** A request hook threw or rejected: the request's answer is that error. */
  private hookFailed(ctx: RequestContext, err: unknown): void {
    sendError(ctx, err instanceof ProxyError ? err : new ProxyError('plugin_error', err instanceof Error ? err.message : String(err)));
  }

  /** The log phase: the request ended (its response finished or was cut); once per request. */
  private ended(ctx: RequestContext): void {
    if (ctx.finished) return;
    ctx.finished = true;
    ctx.end = performance.now();
    if (ctx.status === 0) ctx.status = ctx.res.statusCode;
    if (!ctx.res.writableFinished && ctx.errorCause === undefined) {
      ctx.errorCause = 'client_abort';
      ctx.errorMessage = 'client closed the connection before the response was complete';
    }
    this.host.requestEnded(ctx);
    logHooks(ctx);
  }
}
