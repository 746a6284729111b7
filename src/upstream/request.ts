/**
 * The request as it goes to the instances, built once the request is routed: the client's method
 * and path, its header lines rewritten for the hop (headers.ts: hop-by-hop removed,
 * X-Forwarded-*, Via, X-Request-Id, the Host the cache keys on or the service's upstreamHost),
 * and its body (the size-limited stream for a chunked body, none when the client sent none).
 *
 * The header lines are made when first read (a service-level onRequest, the cache's miss or
 * revalidation, the forward phase): a cache hit no plugin looked at never makes them. What they
 * are made from (the client's lines, host, authority, scheme, id, service) does not change once
 * the request is routed, so they are the same whenever they are made.
 */
import type { Readable } from 'node:stream';
import type { RequestContext } from '../context.ts';
import type { UpstreamRequest } from './client.ts';
import { upstreamRequestHeaders } from './headers.ts';

export function upstreamRequest(ctx: RequestContext): UpstreamRequest {
  return new RoutedRequest(ctx);
}

class RoutedRequest implements UpstreamRequest {
  method: string;
  path: string;
  body: Readable | null;
  private lines: string[] | undefined = undefined;

  constructor(private readonly ctx: RequestContext) {
    const { chunked, contentLength } = ctx.fields!;
    const hasBody = chunked || (contentLength !== undefined && contentLength !== '0');
    this.method = ctx.req.method!;
    this.path = ctx.path;
    this.body = ctx.bodyLimit ?? (hasBody ? ctx.req : null);
  }

  get headers(): string[] {
    return (this.lines ??= hopHeaders(this.ctx));
  }

  set headers(lines: string[]) {
    this.lines = lines;
  }
}

function hopHeaders(ctx: RequestContext): string[] {
  const snapshot = ctx.snapshot!;
  return upstreamRequestHeaders(ctx.requestHeaders, {
    clientIp: ctx.clientIp,
    trust: snapshot,
    host: ctx.host,
    authority: ctx.authority,
    requestId: ctx.id,
    via: snapshot.via,
    upstreamHost: ctx.service!.upstreamHost,
    upgrade: false,
    proto: ctx.scheme,
  });
}
