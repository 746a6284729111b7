/**
 * Errors the proxy answers with itself, typed by cause and by whether a retry is safe, and
 * mapped to a status in exactly one place (Caddy's statusError, Pingora's Error{esource, retry}).
 */

export type ErrorCause =
  | 'bad_request'
  | 'method_not_allowed'
  | 'no_route'
  | 'body_too_large'
  | 'no_healthy_instance'
  | 'overload'
  | 'connect'
  | 'reset'
  | 'timeout'
  | 'upstream_protocol'
  | 'client_abort'
  | 'not_cached'
  | 'plugin_error'
  | 'shutdown';

const STATUS: Record<ErrorCause, number> = {
  bad_request: 400,
  method_not_allowed: 405,
  no_route: 421,
  body_too_large: 413,
  no_healthy_instance: 503,
  overload: 503,
  connect: 502,
  reset: 502,
  timeout: 504,
  upstream_protocol: 502,
  // 499 is NGINX's "client closed request": never sent, only logged and counted.
  client_abort: 499,
  not_cached: 504,
  // A plugin's hook threw, rejected or timed out (src/plugins/chain.ts): the proxy's own fault as the client sees it.
  plugin_error: 500,
  // In flight when shutdown.drainTimeout ran out: the connection is closed, nothing more is sent; logged and counted.
  shutdown: 503,
};

export class ProxyError extends Error {
  readonly status: number;
  constructor(
    /** What went wrong; also the `cause` label of kubeproxy_errors_total. */
    readonly kind: ErrorCause,
    message: string,
    /** True when no byte of the request reached the instance, so another instance may be tried. */
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProxyError';
    this.status = STATUS[kind];
  }
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);

/** Maps an error from undici or the socket layer to a ProxyError. */
export function upstreamError(err: unknown, instance: string): ProxyError {
  if (err instanceof ProxyError) return err;
  const e = err as { code?: string; message?: string };
  const code = e.code ?? '';
  if (CONNECT_CODES.has(code)) {
    return new ProxyError('connect', `cannot connect to instance ${instance} (${code})`, true, { cause: err });
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new ProxyError('timeout', `connect to instance ${instance} timed out`, true, { cause: err });
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new ProxyError('timeout', `instance ${instance} did not answer in time`, false, { cause: err });
  }
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new ProxyError('timeout', `instance ${instance} stopped sending its response body`, false, { cause: err });
  }
  if (RESET_CODES.has(code)) {
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

/** Extra headers for an error response: 503s say when to try again. */
export function errorHeaders(err: ProxyError): string[] | undefined {
  return err.status === 503 ? ['retry-after', '1'] : undefined;
}
