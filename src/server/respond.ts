/**
 * Responses the proxy writes itself: a short text body naming the cause, the request id, and
 * `Cache-Control: no-store` so no cache downstream keeps a proxy error.
 */
import { STATUS_CODES } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { RequestContext } from '../context.ts';
import type { ProxyError } from '../errors.ts';

export function sendError(ctx: RequestContext, err: ProxyError, extraHeaders?: string[]): void {
  ctx.errorCause = err.kind;
  ctx.errorMessage = err.message;
  const res = ctx.res;
  if (res.headersSent || res.destroyed) {
    // Bytes already reached the client: cutting the connection is the only honest signal.
    res.destroy();
    return;
  }
  if (err.status === 499) {
    res.destroy();
    return;
  }
  ctx.status = err.status;
  const body = `${err.status} ${STATUS_CODES[err.status] ?? ''}: ${err.message}\n`;
  const headers = [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
    'x-request-id', ctx.id,
  ];
  if (extraHeaders) headers.push(...extraHeaders);
  // A malformed request may leave the connection in an unknown state: close it (RFC 9112 §9.6 allows it).
  if (err.status === 400 || err.status === 413 || err.status === 431) headers.push('connection', 'close');
  writeSimple(res, err.status, headers, ctx.req.method === 'HEAD' ? '' : body);
  ctx.bytesOut = ctx.req.method === 'HEAD' ? 0 : Buffer.byteLength(body);
}

export function writeSimple(res: ServerResponse, status: number, headers: string[], body: string): void {
  res.writeHead(status, headers);
  res.end(body);
}
