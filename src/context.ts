/**
 * One request's record, filled by each phase of the pipeline (server/pipeline.ts) and read by
 * the access log and metrics when the response ends. A class with every field set in the
 * constructor keeps one hidden class for all requests (no shape changes on the hot path).
 *
 * Ownership: the request and response objects of the front (node:http) are `req` and `res`;
 * the forward phase's state is `exchange`, the cache's is `cache`; each is told when the
 * client's response closes through `onClientClose`, by the pipeline's one 'close' listener.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ResponseInterceptor } from './cache/interceptor.ts';
import type { ErrorCause } from './errors.ts';
import type { HookContext } from './plugins/chain.ts';
import type { BodyLimit } from './server/body-limit.ts';
import type { RequestFields } from './server/request-fields.ts';
import type { Snapshot } from './snapshot.ts';
import type { UpstreamRequest } from './upstream/client.ts';
import type { Instance } from './upstream/instance.ts';
import type { Service } from './upstream/service.ts';

/** A phase's per-request state that must hear when the client's response closed (finished or cut). */
export interface ClientCloseListener {
  onClientClose(): void;
}

/** The cache's part of a request (cache/flow.ts). */
export interface RequestCache extends ResponseInterceptor, ClientCloseListener {}

export class RequestContext {
  /** performance.now() at arrival. */
  readonly start: number;
  /** performance.now() when the request ended (set by the log phase, read by the metrics, access log and status page). */
  end = 0;
  /** The configuration the request started with: it keeps it to its end, whatever a reload does. */
  snapshot: Snapshot | undefined = undefined;
  service: Service | undefined = undefined;
  /**
   * The client's request header lines (`[name, value, ...]`, as received): what the upstream
   * request is built from and what the cache matches Vary against. A proxy-level plugin may
   * change them before routing.
   */
  requestHeaders: string[];
  /**
   * The request as it goes to the instances (method, path, raw header array, body), built once
   * the request is routed. Plugins may change it until the cache key is made (service-level
   * onRequest); the cache replaces it for a revalidation or a miss without client validators.
   */
  upstream: UpstreamRequest | undefined = undefined;
  /** The request fields the phases read (server/request-fields.ts), scanned once at accept. */
  fields: RequestFields | undefined = undefined;
  /** The client sent `Expect: 100-continue`: 100 Continue is sent once the request is admitted. */
  expectContinue = false;
  /** Counts a chunked request body against the size limit (set only for such bodies). */
  bodyLimit: BodyLimit | undefined = undefined;
  instance: Instance | undefined = undefined;
  /** Routed host (normalised), path and query as sent upstream. */
  host = '';
  path = '';
  /** The Host header (or the authority of an absolute-form target) normalised as the cache keys it (cache/key.ts): the Host sent upstream. */
  authority = '';
  /** The connection's scheme: `https` on the TLS listener (set by validate; X-Forwarded-Proto, the cache key). */
  scheme: 'http' | 'https' = 'http';
  /**
   * The target URI's scheme, which `authority` was normalised for: an absolute-form target's,
   * else a trusted X-Forwarded-Proto's, else `scheme` (what the X-Forwarded-Proto sent upstream says).
   */
  targetScheme: 'http' | 'https' = 'http';
  /** Upstream attempts made (1 + retries). */
  attempts = 0;
  /** The response status: set before the head is written (a plugin's onResponse may change it). */
  status = 0;
  /**
   * The head of an answer the proxy makes itself (a cache hit, a plugin's `respond`, an error),
   * set before it is written; an instance's answer sets it just before its head is written too.
   */
  responseHeaders: string[] | undefined = undefined;
  /** The body of an answer the proxy makes itself (undefined: none). */
  responseBody: readonly Buffer[] | string | undefined = undefined;
  /** Request body bytes received from the client, response body bytes sent to it. */
  bytesIn = 0;
  bytesOut = 0;
  /** performance.now() when the upstream attempt that answered was dispatched, and when its headers came. */
  upstreamStart = 0;
  upstreamHeaders = 0;
  /** RFC 9211 Cache-Status value sent to the client, or '' when the cache was not involved. */
  cacheStatus = '';
  /** Cache result label for metrics: hit | miss | stale | revalidated | bypass, or '' . */
  cacheResult = '';
  errorCause: ErrorCause | undefined = undefined;
  errorMessage = '';
  /** W3C trace context passed through, for the access log. */
  traceparent: string | undefined = undefined;
  /** The request ended (its response finished or was cut) and was accounted for. */
  finished = false;
  /** Set by `respond`: the proxy answers itself, no instance is contacted. */
  answered = false;
  /** The forward phase (server/exchange.ts) while it runs. */
  exchange: ClientCloseListener | undefined = undefined;
  /** The cache's state for this request (cache/flow.ts), for services with the cache on. */
  cache: RequestCache | undefined = undefined;
  /** The plugins' view of this request (plugins/chain.ts), made by the first hook that runs; none without plugins. */
  plugins: HookContext | undefined = undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly id: string,
    readonly clientIp: string,
  ) {
    this.start = performance.now();
    this.requestHeaders = req.rawHeaders;
  }

  /** The method the client sent. */
  get method(): string {
    return this.req.method!;
  }

  /**
   * Answers the request at once (a plugin's 401, a redirect): the status, header pairs and body
   * are sent by the respond phase; no instance is contacted and the cache is not consulted.
   */
  respond(status: number, body: string | Buffer = '', headers: readonly string[] = []): void {
    this.answered = true;
    this.status = status;
    const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    const out = [...headers, 'content-length', String(length), 'x-request-id', this.id];
    let typed = false;
    for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === 'content-type') typed = true;
    if (!typed && length > 0) out.push('content-type', 'text/plain; charset=utf-8');
    this.responseHeaders = out;
    this.responseBody = typeof body === 'string' ? body : [body];
  }
}
