/**
 * The proxy's own answers, made from the ProxyError table (errors.ts): a short text body naming
 * the cause, the request id, `Cache-Control: no-store` so no cache downstream keeps a proxy
 * error, `Retry-After` and `Connection: close` where the kind says so. One shape for both
 * transports: an http.ServerResponse (requests) and a raw socket (upgrades, CONNECT, requests
 * Node's parser refused).
 */
import { STATUS_CODES, type OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';
import { grpcErrorHead, grpcErrorTrailers, isGrpc } from './grpc.ts';
import { responseHooks } from './hooks.ts';

/** `404 Not Found: <message>\n` */
export function errorBody(err: ProxyError): string {
  return `${err.status} ${STATUS_CODES[err.status] ?? ''}: ${err.message}\n`;
}

/** The head of an error answer with `body`; `extra` are more header pairs (Allow, Cache-Status). */
export function errorHead(err: ProxyError, requestId: string, body: string, extra?: readonly string[]): string[] {
  const headers = [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
    'x-request-id', requestId,
  ];
  if (err.retryAfter > 0) headers.push('retry-after', String(err.retryAfter));
  if (extra !== undefined) headers.push(...extra);
  if (err.closesConnection) headers.push('connection', 'close');
  return headers;
}

/**
 * Answers the request with `err`. When bytes already reached the client, or the client is gone
 * (499), the connection is cut instead: that is the only honest signal left.
 */
export function sendError(ctx: RequestContext, err: ProxyError, extraHeaders?: readonly string[]): void {
  ctx.errorCause = err.kind;
  ctx.errorMessage = err.message;
  const res = ctx.res;
  if (res.headersSent || res.destroyed || err.status === 499) {
    if (err.status !== 499 && !res.destroyed && !res.writableEnded && ctx.req.httpVersionMajor === 2 && isGrpc(ctx)) {
      // A gRPC answer under way (a stream whose deadline ran out) ends with its status in trailers.
      res.addTrailers(grpcErrorTrailers(err) as unknown as OutgoingHttpHeaders);
      res.end();
      return;
    }
    res.destroy();
    return;
  }
  if (isGrpc(ctx)) {
    ctx.status = 200;
    ctx.responseHeaders = grpcErrorHead(err, ctx.id);
    ctx.responseBody = undefined;
    return sendAnswer(ctx);
  }
  const body = errorBody(err);
  ctx.status = err.status;
  ctx.responseHeaders = errorHead(err, ctx.id, body, extraHeaders);
  ctx.responseBody = body;
  sendAnswer(ctx);
}

/**
 * An instance's 102 Processing or 103 Early Hints, passed on before its final answer (RFC 9110
 * §15.2, RFC 8297): never to an HTTP/1.0 client (§15.2), never once the head is written. The
 * cache never sees it (it only gets the final answer). Over HTTP/1.1 node:http writes a 103 only
 * with a Link field it accepts; any other 103 is dropped, the final answer is not affected.
 */
export function sendInformational(ctx: RequestContext, status: number, headers: readonly string[]): void {
  const { req, res } = ctx;
  if (res.headersSent || res.destroyed || (req.httpVersionMajor === 1 && req.httpVersionMinor === 0)) return;
  if (status === 102) return res.writeProcessing();
  if (status !== 103) return;
  const hints: Record<string, string | string[]> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    const prev = hints[name];
    hints[name] = prev === undefined ? headers[i + 1]! : [...(Array.isArray(prev) ? prev : [prev]), headers[i + 1]!];
  }
  try {
    res.writeEarlyHints(hints);
  } catch {
    // A Link value node:http refuses: the hint is dropped, never the answer.
  }
}

/** Writes a complete error answer on a raw socket (no http.ServerResponse exists for it) and closes it. */
export function sendRawError(socket: Duplex, err: ProxyError, requestId: string, extraHeaders?: readonly string[]): void {
  if (socket.destroyed) return;
  const body = errorBody(err);
  const headers = errorHead(err, requestId, body, extraHeaders);
  let head = `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  // A raw answer always ends the connection.
  if (!err.closesConnection) head += 'connection: close\r\n';
  socket.end(`${head}\r\n${body}`);
}

/** Writes a plugin's answer (`ctx.respond` in onRequest) to an Upgrade request on its raw socket, and closes it. */
export function sendRawAnswer(socket: Duplex, status: number, headers: readonly string[], body: string | Buffer, requestId: string): void {
  if (socket.destroyed) return;
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  head += `content-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n`;
  socket.write(head);
  socket.end(body);
}

/**
 * The respond phase for an answer the proxy makes itself, from the request's record:
 * `ctx.status`, `ctx.responseHeaders` and `ctx.responseBody` (a cache hit, a plugin's `respond`,
 * a 304 to the client's conditional, an error). The onResponse hooks see the head first. No
 * body for HEAD. Nothing is written once the client is gone.
 */
export function sendAnswer(ctx: RequestContext): void {
  const res = ctx.res;
  if (res.headersSent || res.destroyed) return;
  const hooked = responseHooks(ctx);
  if (hooked === undefined) return writeAnswer(ctx);
  hooked.then(
    () => writeAnswer(ctx),
    (err: unknown) => {
      // The hook failed on this very answer: the error goes out as it is, without hooks.
      const e = err instanceof ProxyError ? err : new ProxyError('plugin_error', (err as Error)?.message ?? String(err));
      ctx.errorCause = e.kind;
      ctx.errorMessage = e.message;
      const body = errorBody(e);
      ctx.status = e.status;
      ctx.responseHeaders = errorHead(e, ctx.id, body);
      ctx.responseBody = body;
      writeAnswer(ctx);
    },
  );
}

function writeAnswer(ctx: RequestContext): void {
  const res = ctx.res;
  if (res.headersSent || res.destroyed) return;
  try {
    res.writeHead(ctx.status, ctx.responseHeaders);
  } catch (err) {
    // A field Node refuses to send (a stored one it accepted from the instance): nothing was written.
    ctx.errorCause = 'upstream_protocol';
    ctx.errorMessage = `response cannot be sent: ${(err as Error).message}`;
    res.destroy();
    return;
  }
  const body = ctx.responseBody;
  if (body === undefined || ctx.req.method === 'HEAD') {
    res.end();
    return;
  }
  if (typeof body === 'string') {
    ctx.bytesOut = Buffer.byteLength(body);
    res.end(body);
    return;
  }
  if (body.length === 1) {
    ctx.bytesOut = body[0]!.length;
    res.end(body[0]);
    return;
  }
  // Shared, immutable Buffers (a cache entry's chunks): queueing them all copies nothing. end() uncorks.
  res.cork();
  let size = 0;
  for (const chunk of body) {
    size += chunk.length;
    res.write(chunk);
  }
  ctx.bytesOut = size;
  res.end();
}
