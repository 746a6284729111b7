/**
 * The admit phase: the client limits that apply once the request is routed. A Content-Length
 * over `client.maxBodySize` is a 413 before any instance is contacted; a chunked body, which
 * announces no length, is counted as it streams (body-limit.ts: 413 once over the limit). Only an
 * admitted request gets its `100 Continue`.
 */
import type { RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';
import { BodyLimit } from './body-limit.ts';

/** The error to answer (413) when the announced body is too large. */
export function admit(ctx: RequestContext): ProxyError | undefined {
  const maxBody = ctx.snapshot!.config.proxy.client.maxBodySize;
  const fields = ctx.fields!;
  const contentLength = fields.contentLength;
  if (maxBody > 0 && contentLength !== undefined && Number(contentLength) > maxBody) {
    return new ProxyError('body_too_large', `request body of ${contentLength} bytes is over the limit of ${maxBody}`);
  }
  if (ctx.expectContinue) ctx.res.writeContinue();
  if (fields.chunked && maxBody > 0) ctx.bodyLimit = new BodyLimit(ctx.req, maxBody);
  return undefined;
}
