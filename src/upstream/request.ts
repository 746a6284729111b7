/**
 * The request as it goes to the instances, built once the request is routed: the client's method
 * and path, its header lines rewritten for the hop (headers.ts: hop-by-hop removed,
 * X-Forwarded-*, Via, X-Request-Id, the Host the cache keys on or the service's upstreamHost),
 * and its body (the size-limited stream for a chunked body, none when the client sent none).
 */
import type { RequestContext } from '../context.ts';
import type { UpstreamRequest } from './client.ts';
import { upstreamRequestHeaders } from './headers.ts';

export function upstreamRequest(ctx: RequestContext): UpstreamRequest {
  const snapshot = ctx.snapshot!;
  const { chunked, contentLength } = ctx.fields!;
  const hasBody = chunked || (contentLength !== undefined && contentLength !== '0');
  return {
    method: ctx.req.method!,
    path: ctx.path,
    headers: upstreamRequestHeaders(ctx.requestHeaders, {
      clientIp: ctx.clientIp,
      trust: snapshot,
      host: ctx.host,
      authority: ctx.authority,
      requestId: ctx.id,
      via: snapshot.via,
      upstreamHost: ctx.service!.upstreamHost,
      upgrade: false,
      proto: ctx.scheme,
    }),
    body: ctx.bodyLimit ?? (hasBody ? ctx.req : null),
  };
}
