/**
 * The plugin hook points of the request path (src/plugins wires them): each runs the hooks of
 * its kind for one request and returns undefined when nothing is left to wait for, or a Promise
 * when a hook is async (the phase continues once it settles; a rejection is the plugin's error,
 * answered by the caller). With no plugin configured each is one check and no allocation.
 *
 *   requestHooks(ctx, 'proxy')    before routing and the cache: proxy-level onRequest
 *   requestHooks(ctx, 'service')  right after routing, before the cache key: the service's onRequest
 *                                 (ctx.upstream: method, path, headers may still change)
 *   upstreamRequestHooks(ctx)     before each attempt is forwarded (ctx.instance, ctx.attempts, ctx.upstream)
 *   responseHooks(ctx)            before the client sees the head (ctx.status, ctx.responseHeaders):
 *                                 an instance's answer, the cache's, the proxy's own errors
 *   logHooks(ctx)                 once the request ended (after the access log and metrics)
 *
 * A request hook may answer at once with ctx.respond(...): the pipeline then skips routing or
 * the cache and the instances and sends that answer.
 */
import type { RequestContext } from '../context.ts';

export function requestHooks(_ctx: RequestContext, _level: 'proxy' | 'service'): Promise<void> | undefined {
  return undefined;
}

export function upstreamRequestHooks(_ctx: RequestContext): Promise<void> | undefined {
  return undefined;
}

export function responseHooks(_ctx: RequestContext): Promise<void> | undefined {
  return undefined;
}

export function logHooks(_ctx: RequestContext): void {}
