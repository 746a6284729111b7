/**
 * What the proxy does differently for a gRPC request (content-type application/grpc, over h2):
 * its `grpc-timeout` bounds the request like `timeouts.request` (the shorter wins), and an answer
 * the proxy makes itself is a gRPC status (HTTP 200, `grpc-status`, `grpc-message`) rather than a
 * bare 5xx, as Envoy answers, so a gRPC client reports UNAVAILABLE or DEADLINE_EXCEEDED and
 * not an HTTP error it has no name for (grpc/grpc doc/PROTOCOL-HTTP2.md).
 */
import type { RequestContext } from '../context.ts';
import type { ProxyError } from '../errors.ts';
import { rawHeader } from '../upstream/headers.ts';

/** application/grpc, application/grpc+proto, ...; not gRPC-Web (its errors are its own). */
export function isGrpc(ctx: RequestContext): boolean {
  if (ctx.req.method !== 'POST') return false;
  const type = rawHeader(ctx.requestHeaders, 'content-type');
  if (type === undefined || !type.toLowerCase().startsWith('application/grpc')) return false;
  const next = type.charAt(16);
  return next === '' || next === '+' || next === ';';
}

/** Milliseconds per grpc-timeout unit (Hours, Minutes, Seconds, milli, micro, nano). */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * The request's `grpc-timeout` in milliseconds (at least 1), or undefined when it has none or
 * not a valid one (`1*8DIGIT unit`, PROTOCOL-HTTP2.md). Only read for POSTs: gRPC calls are.
 */
export function grpcTimeout(ctx: RequestContext): number | undefined {
  if (ctx.req.method !== 'POST') return undefined;
  const value = rawHeader(ctx.requestHeaders, 'grpc-timeout');
  if (value === undefined) return undefined;
  const m = /^\s*(\d{1,8})([HMSmun])\s*$/.exec(value);
  if (m === null) return undefined;
  return Math.max(1, Math.ceil(Number(m[1]) * UNIT_MS[m[2]!]!));
}

/**
 * The head of the proxy's own answer to a gRPC request: "Trailers-Only" (status, content type
 * and gRPC status in one HEADERS frame, no body).
 */
export function grpcErrorHead(err: ProxyError, requestId: string): string[] {
  return [
    'content-type', 'application/grpc',
    'grpc-status', String(err.grpcStatus),
    'grpc-message', grpcMessage(err.message),
    'cache-control', 'no-store',
    'x-request-id', requestId,
  ];
}

/** The trailers that end a gRPC answer whose head was already sent (the deadline ran out mid-stream). */
export function grpcErrorTrailers(err: ProxyError): Array<[string, string]> {
  return [
    ['grpc-status', String(err.grpcStatus)],
    ['grpc-message', grpcMessage(err.message)],
  ];
}

/** grpc-message is percent-encoded: bytes outside visible ASCII and space, and "%" (PROTOCOL-HTTP2.md). */
function grpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
