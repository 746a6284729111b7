/**
 * The cache lookup phase: for a routed request of a service with the cache on, starts the
 * request's CacheFlow (flow.ts) and returns its decision (hit / stale / revalidate / wait / miss
 * / bypass / unavailable). With the store off (a reload turned the cache off under a request of
 * the old snapshot) the request is forwarded untouched, as a bypass without Cache-Status.
 */
import type { RequestContext } from '../context.ts';
import { CacheFlow } from './flow.ts';
import type { CacheLookup } from './interceptor.ts';
import type { CacheLayer } from './layer.ts';

export function lookup(layer: CacheLayer, ctx: RequestContext): CacheLookup | Promise<CacheLookup> {
  const store = layer.store;
  if (store === undefined) return 'bypass';
  const flow = new CacheFlow(layer, store, ctx, ctx.service!, ctx.snapshot!.via);
  ctx.cache = flow;
  return flow.lookup();
}
