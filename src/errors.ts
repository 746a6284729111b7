/**
 * Every answer the proxy makes itself, as one table: per kind the status, whether it says when to
 * try again (Retry-After), whether the connection is closed after it, and whether an attempt that
 * failed this way may go to another instance. The status map lives here only (Caddy's
 * statusError, Pingora's Error{esource, retry}); server/respond.ts writes the answer from it.
 */

export interface ErrorKind {
  readonly status: number;
  /** Seconds for `Retry-After`, or 0 for none. */
  readonly retryAfter: number;
  /** `Connection: close` after the answer: the request left the connection in an unknown state (RFC 9112 §9.6). */
  readonly close: boolean;
  /** The default: true when nothing reached the instance, so another instance may be tried. */
  readonly retryable: boolean;
  /** The gRPC status of this answer to a gRPC request (server/grpc.ts): gRPC's mapping of `status` unless the kind says more. */
  readonly grpc: number;
}

/** gRPC status codes the proxy answers with (grpc/grpc doc/statuscodes.md). */
export const GRPC = { CANCELLED: 1, UNKNOWN: 2, DEADLINE_EXCEEDED: 4, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** gRPC's HTTP-to-gRPC status mapping (grpc/grpc doc/http-grpc-status-mapping.md). */
function grpcOf(status: number): number {
  switch (status) {
    case 400:
      return GRPC.INTERNAL;
    case 401:
      return GRPC.UNAUTHENTICATED;
    case 403:
      return GRPC.PERMISSION_DENIED;
    case 404:
      return GRPC.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC.UNAVAILABLE;
    default:
      return GRPC.UNKNOWN;
  }
}

function kind(status: number, extra: Partial<ErrorKind> = {}): ErrorKind {
  return { status, retryAfter: 0, close: false, retryable: false, grpc: grpcOf(status), ...extra };
}

export const ERROR_KINDS = {
  // the client's request
  bad_request: kind(400, { close: true }),
  method_not_allowed: kind(405),
  no_route: kind(421, { grpc: GRPC.UNIMPLEMENTED }),
  body_too_large: kind(413, { close: true, grpc: GRPC.RESOURCE_EXHAUSTED }),
  headers_too_large: kind(431, { close: true, grpc: GRPC.RESOURCE_EXHAUSTED }),
  request_timeout: kind(408, { close: true, grpc: GRPC.DEADLINE_EXCEEDED }),
  http_version: kind(505, { close: true }),
  // What the front in use cannot serve (Upgrade on the Bun.serve front, server/bun-front.ts).
  not_implemented: kind(501, { close: true }),
  // 499 is NGINX's "client closed request": never sent, only logged and counted.
  client_abort: kind(499, { grpc: GRPC.CANCELLED }),
  // the proxy cannot take it now: 503s say when to try again
  no_healthy_instance: kind(503, { retryAfter: 1 }),
  overload: kind(503, { retryAfter: 1 }),
  // An upgrade refused once shutdown has begun: a tunnel would outlive the drain.
  draining: kind(503, { retryAfter: 1, close: true }),
  // In flight when shutdown.drainTimeout ran out: the connection is closed, nothing more is sent; logged and counted.
  drain_timeout: kind(503, { close: true }),
  // the instance failed; only a connect failure sent nothing (a connect timeout is made retryable where it is raised)
  connect: kind(502, { retryable: true }),
  reset: kind(502),
  // For a gRPC request: its grpc-timeout (or the proxy's limit) ran out.
  timeout: kind(504, { grpc: GRPC.DEADLINE_EXCEEDED }),
  upstream_protocol: kind(502),
  // only-if-cached, or a must-revalidate entry no instance could revalidate (RFC 9111 §5.2.2.2)
  not_cached: kind(504),
  // A plugin's hook threw, rejected or timed out (src/plugins/chain.ts): the proxy's own fault as the client sees it.
  plugin_error: kind(500, { grpc: GRPC.INTERNAL }),
} as const satisfies Record<string, ErrorKind>;

export type ErrorCause = keyof typeof ERROR_KINDS;

export class ProxyError extends Error {
  readonly status: number;
  /**
   * The instance could not be reached, or closed the connection before any byte of a response: a
   * sign it is gone, not that it is loaded (Envoy's "locally originated" errors, HAProxy's
   * connection failures). Retrying it elsewhere costs no retry budget, and the instance is taken
   * out at once (health/passive.ts).
   */
  readonly unreachable: boolean;
  constructor(
    /** What went wrong; also the `cause` label of kubeproxy_errors_total. */
    readonly kind: ErrorCause,
    message: string,
    /** True when no byte of the request reached the instance, so another instance may be tried. */
    readonly retryable: boolean = ERROR_KINDS[kind].retryable,
    options?: { cause?: unknown; unreachable?: boolean },
  ) {
    super(message, options);
    this.name = 'ProxyError';
    this.status = ERROR_KINDS[kind].status;
    this.unreachable = options?.unreachable ?? false;
  }

  /** Seconds for Retry-After, 0 for none. */
  get retryAfter(): number {
    return ERROR_KINDS[this.kind].retryAfter;
  }

  /** The gRPC status of this answer to a gRPC request. */
  get grpcStatus(): number {
    return ERROR_KINDS[this.kind].grpc;
  }

  /** Whether the connection closes after this answer. */
  get closesConnection(): boolean {
    return ERROR_KINDS[this.kind].close;
  }
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);
/** OpenSSL's certificate verification results (node:tls error codes) besides the ERR_TLS_* / ERR_SSL_* ones. */
const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'CERT_REVOKED', 'CERT_UNTRUSTED',
  'CERT_REJECTED', 'CERT_CHAIN_TOO_LONG', 'INVALID_CA', 'INVALID_PURPOSE', 'PATH_LENGTH_EXCEEDED', 'HOSTNAME_MISMATCH',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** OpenSSL's reason out of its error line (`...:error:0A000460:SSL routines:ssl3_read_bytes:<reason>:file:line:...`). */
function tlsReason(message: string): string {
  return /:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):/.exec(message)?.[1] ?? message.trim();
}

/** Whether `code` is a failed TLS handshake with an instance (its certificate refused, no common protocol). */
function isTlsFailure(code: string): boolean {
  return TLS_VERIFY_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_');
}

/**
 * Maps an error from undici or the socket layer to a ProxyError. `responseStarted` tells whether
 * any response byte had arrived: a reset before that means the instance is unreachable.
 */
export function upstreamError(err: unknown, instance: string, responseStarted = true): ProxyError {
  if (err instanceof ProxyError) return err;
  const e = err as { code?: string; message?: string };
  const code = e.code ?? '';
  if (CONNECT_CODES.has(code)) {
    return new ProxyError('connect', `cannot connect to instance ${instance} (${code})`, true, { cause: err, unreachable: true });
  }
  if (isTlsFailure(code)) {
    // Like a connect failure nothing was sent, so another instance may be tried (Envoy counts a
    // handshake failure as a connect failure); but the instance answered, so it is not "unreachable",
    // and the request ends with a 502 naming the reason rather than a 503.
    return new ProxyError('upstream_protocol', `upstream TLS: ${tlsReason(e.message ?? code)} (instance ${instance}, ${code})`, true, { cause: err });
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new ProxyError('timeout', `connect to instance ${instance} timed out`, true, { cause: err, unreachable: true });
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new ProxyError('timeout', `instance ${instance} did not answer in time`, false, { cause: err });
  }
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new ProxyError('timeout', `instance ${instance} stopped sending its response body`, false, { cause: err });
  }
  if (RESET_CODES.has(code)) {
    if (!responseStarted) {
      return new ProxyError('reset', `instance ${instance} closed the connection before answering (${code || 'reset'})`, false, { cause: err, unreachable: true });
    }
    return new ProxyError('reset', `instance ${instance} closed the connection (${code || 'reset'})`, false, { cause: err });
  }
  return new ProxyError('upstream_protocol', `bad response from instance ${instance}: ${e.message ?? String(err)}`, false, { cause: err });
}

/**
 * The error a request ends with once its last attempt failed with `err`. When nothing could reach
 * an instance (connect failure), the service is unavailable: 503, as Envoy and HAProxy answer, not
 * a bad gateway; anything else stays as it is.
 */
export function finalAttemptError(serviceName: string, err: ProxyError): ProxyError {
  if (err.kind !== 'connect') return err;
  return new ProxyError('no_healthy_instance', `no instance of service "${serviceName}" could be reached (${err.message})`, false, { cause: err });
}
