/**
 * The phases of a request, in order (Pingora's ProxyHttp): route → (cache) → pick → forward →
 * respond → log. Everything a request needs is read from the snapshot it started with.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { RequestContext, type ClientCloseListener } from '../context.ts';
import { ProxyError, errorHeaders, finalAttemptError } from '../errors.ts';
import { normaliseHost } from '../routing/host.ts';
import { normalizeAuthority, type Scheme } from '../cache/key.ts';
import type { Snapshot } from '../snapshot.ts';
import { forward, type Attempt, type UpstreamHandler, type UpstreamRequest } from '../upstream/client.ts';
import { clientResponseHeaders, upstreamRequestHeaders } from '../upstream/headers.ts';
import type { Instance } from '../upstream/instance.ts';
import type { Waiter } from '../upstream/pending.ts';
import type { Service } from '../upstream/service.ts';
import type { CacheLayer } from '../cache/layer.ts';
import { BodyLimit } from './body-limit.ts';
import type { AfterAnswer, CacheLookup, ResponseInterceptor } from '../cache/interceptor.ts';
import { lookup } from '../cache/lookup.ts';
import { sendAnswer, sendError } from './respond.ts';

/** What the pipeline needs from the running proxy; implemented by Runtime. */
export interface PipelineHost {
  readonly snapshot: Snapshot;
  /** True once shutdown began: responses carry `Connection: close`. */
  readonly draining: boolean;
  /** Requests in flight; the pipeline counts them up, requestEnded counts them down. */
  inflight: number;
  /** Called exactly once per request, when its response ended or was cut. */
  requestEnded(ctx: RequestContext): void;
  /** Called when an attempt to an instance ended; `failure` is set for connect errors, resets, timeouts and 5xx. */
  attemptEnded(instance: Instance, service: Service, status: number, failure: ProxyError | undefined): void;
  /** The HTTP cache (src/cache/layer.ts); requests of services with `cacheEnabled` go through it. */
  readonly cache?: CacheLayer | undefined;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** A retried answer's body is drained up to this size to keep its connection; beyond it the connection is cut. */
const MAX_DISCARD = 64 * 1024;
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/** Where the pipeline keeps a response's RequestContext, for the shared 'close' listener. */
const CONTEXT = Symbol('kubeproxy.context');
type TrackedResponse = ServerResponse & { [CONTEXT]?: RequestContext };

export class Pipeline {
  constructor(private readonly host: PipelineHost) {}

  /** The `request` listener of the http.Server. */
  readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    this.handle(req, res, false);
  };

  /** The `checkContinue` listener: 100 Continue is sent only once the request is routed. */
  readonly onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    this.handle(req, res, true);
  };

  /**
   * The 'close' listener of every response, one function for all: it finds the request through
   * the response (no closure per request). 'close' comes once per response; ended() is
   * idempotent anyway.
   */
  private readonly onResponseClose = ((pipeline: Pipeline) =>
    function (this: TrackedResponse): void {
      const ctx = this[CONTEXT];
      if (ctx === undefined) return;
      pipeline.ended(ctx);
      ctx.exchange?.onClientClose();
      ctx.cache?.onClientClose();
    })(this);

  /**
   * Starts an Exchange for `ctx` (routed: its service and snapshot are set) with `interceptor`
   * on its answer: the pipeline's own path, and the cache layer's way to reach the instances.
   */
  readonly run = (ctx: RequestContext, request: UpstreamRequest, interceptor?: ResponseInterceptor): void => {
    const exchange = new Exchange(this.host, ctx.snapshot!, ctx, ctx.service!, request, interceptor);
    const limited = ctx.bodyLimit;
    if (limited !== undefined) limited.onOverflow = (err) => exchange.fail(err);
    exchange.start();
  };

  handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
  /** After the cache lookup: the cache's answer, a wait for another request's fetch, or the forward phase. */
  private cached(ctx: RequestContext, result: CacheLookup | Promise<CacheLookup>): void {
    if (typeof result !== 'string') {
      result.then(
        (r) => this.cached(ctx, r),
        (err: unknown) => sendError(ctx, new ProxyError('upstream_protocol', `internal cache error: ${(err as Error).message}`)),
      );
      return;
    }
    const cache = ctx.cache!;
    switch (result) {
      case 'hit':
      case 'stale':
        return sendAnswer(ctx);
      case 'wait':
        cache.waited().then(() => this.cached(ctx, cache.again()));
        return;
      case 'unavailable':
        return sendError(ctx, cache.error!, ['cache-status', ctx.cacheStatus]);
      case 'gone':
        return;
      default:
        return this.run(ctx, ctx.upstream!, cache);
    }
  }

    const snapshot = this.host.snapshot;
    // One pass over the raw headers: req.headers would build an object of every field.
    const fields = scanRequestHeaders(req.rawHeaders);
    const incomingId = fields.requestId;
    const id = incomingId !== undefined && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    const ctx = new RequestContext(req, res, id, clientIp(req));
    ctx.snapshot = snapshot;
    this.host.inflight++;
    (res as TrackedResponse)[CONTEXT] = ctx;
    // `on`, not `once`: no wrapper.
    res.on('close', this.onResponseClose);
    // Shutting down: every response says `Connection: close`, so keep-alive clients reconnect elsewhere.
    if (this.host.draining) res.shouldKeepAlive = false;

    const trusted = snapshot.isTrusted(ctx.clientIp);
    const target = parseTarget(req, fields, trusted ? forwardedScheme(fields.forwardedProto) : 'http');
    if (typeof target === 'string') return sendError(ctx, new ProxyError('bad_request', target));
    ctx.host = target.host;
    ctx.path = target.path;
    if (req.method === 'CONNECT') {
      return sendError(ctx, new ProxyError('method_not_allowed', 'CONNECT is not supported by this gateway'));
    }
    const service = snapshot.router.match(target.host);
    if (service === undefined) {
      return sendError(ctx, new ProxyError('no_route', `no service is configured for host "${target.host}"`));
    }
    ctx.service = service;
    const maxBody = snapshot.config.proxy.client.maxBodySize;
    const contentLength = fields.contentLength;
    if (maxBody > 0 && contentLength !== undefined && Number(contentLength) > maxBody) {
      return sendError(ctx, new ProxyError('body_too_large', `request body of ${contentLength} bytes is over the limit of ${maxBody}`));
    }
    const chunked = fields.chunked;
    const hasBody = chunked || (contentLength !== undefined && contentLength !== '0');
    if (expectContinue) res.writeContinue();
    // A chunked body announces no length: it is counted as it streams (413 once over the limit).
    const limited = chunked && maxBody > 0 ? new BodyLimit(req, maxBody) : undefined;
    ctx.bodyLimit = limited;

    const traceparent = fields.traceparent;
    if (traceparent !== undefined) ctx.traceparent = traceparent;
    const upstreamReq: UpstreamRequest = {
      method: req.method!,
      path: target.path,
      headers: upstreamRequestHeaders(req.rawHeaders, {
        clientIp: ctx.clientIp,
        trust: snapshot,
        host: target.host,
        authority: target.authority,
        requestId: id,
        via: snapshot.via,
        upstreamHost: service.upstreamHost,
        upgrade: false,
      }),
      body: limited ?? (hasBody ? req : null),
    };
    // The cache answers from storage, or runs the exchange itself with its interceptor on the answer.
    const cache = this.host.cache;
    if (cache !== undefined && service.cacheEnabled) this.cached(ctx, lookup(cache, ctx));
    else this.run(ctx, upstreamReq);
    ctx.upstream = upstreamReq;
  }

  private ended(ctx: RequestContext): void {
    if (ctx.finished) return;
    ctx.finished = true;
    if (ctx.status === 0) ctx.status = ctx.res.statusCode;
    if (!ctx.res.writableFinished && ctx.errorCause === undefined) {
      ctx.errorCause = 'client_abort';
      ctx.errorMessage = 'client closed the connection before the response was complete';
    }
    this.host.requestEnded(ctx);
  }
}

/** The request timer's callback: one function for every exchange (no closure per request). */
function requestTimedOut(exchange: Exchange, service: string, limit: number): void {
  exchange.fail(new ProxyError('timeout', `request to service "${service}" took longer than ${limit} ms`));
}

/**
 * One request's journey to the instances: picks, forwards, retries on another instance when that
 * is safe, and streams the answer to the client with back-pressure.
 *
 * Retries (`retries`): a connect failure (nothing was sent) may go to another instance for any
 * request whose body was not read yet; a reset before the response, or a status listed in
 * `retries.on`, only for a bodiless idempotent request. A retry always goes to an instance not
 * tried yet, at most `retries.attempts` times, and only within the service's retry budget. Nothing
 * is retried once response bytes reached the client: a retried status is never forwarded (its
 * body is drained and dropped), and the last attempt's answer is forwarded as it is.
 *
 * An optional ResponseInterceptor (the cache layer, server/interceptor.ts) sees that final answer
 * only: it may tee the body, take the answer over, or answer a failure itself (stale-if-error).
 */
export class Exchange implements UpstreamHandler, ClientCloseListener {
  private attempt: Attempt | undefined;
  private tried: Set<Instance> | undefined;
  private readonly retryable: boolean;
  /** Bodiless and idempotent (RFC 9110 §9.2.2): safe to replay after a reset or a retriable status. */
  private readonly replayable: boolean;
  /** The instance a planned retry goes to (chosen before the failed answer is dropped). */
  private next: Instance | undefined;
  /** Retry-budget slots held by the planned retry and by the attempt in flight. */
  private budgetNext = false;
  private budgetCurrent = false;
  /** The attempt in flight answered a retriable status: its body is read and dropped. */
  private discarding = false;
  private discarded = 0;
  /** Waiting in the service's pending queue for a connection slot. */
  private waiter: Waiter | undefined;
  /** Set by fail(): the request ends with this error, no retry. */
  private failure: ProxyError | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The interceptor took the answer over: nothing of it is written to the client here. */
  private taken = false;
  /** The client's 'drain' listener, made and attached only once a write was refused (back-pressure). */
  private onDrain: (() => void) | undefined;
  private drainHooked = false;

  constructor(
    private readonly host: PipelineHost,
    private readonly snapshot: Snapshot,
    private readonly ctx: RequestContext,
    private readonly service: Service,
    private readonly request: UpstreamRequest,
    /** Sees the final answer and may tee or take it, or answer an error itself (the cache). */
    private readonly interceptor?: ResponseInterceptor | undefined,
  ) {
    // Retries are off for requests whose body may already be on the wire: it cannot be replayed.
    this.retryable = request.body === null;
    this.replayable = this.retryable && IDEMPOTENT.has(request.method);
    ctx.exchange = this;
    const limit = service.timeouts.request;
    if (limit > 0) {
      this.timer = setTimeout(requestTimedOut, limit, this, service.name, limit);
    }
  }

  /** The client's response closed (the pipeline's 'close' listener). */
  onClientClose(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    if (this.waiter !== undefined) this.service.state.pending.cancel(this.waiter);
    this.releaseNext();
    if (!this.ctx.res.writableFinished) this.attempt?.abort(new ProxyError('client_abort', 'client closed the connection'));
  }

  start(): void {
    if (this.closed || this.failure !== undefined) return this.releaseNext();
    const service = this.service;
    const instance = this.next ?? service.pick({ hashKey: this.hashKey(), exclude: this.tried });
    this.next = undefined;
    if (instance === undefined) {
      // Instances exist but every one is at maxConnections: wait for a slot (bounded), or 503.
      if (service.instances.some((i) => !i.draining)) return this.wait();
      const err = new ProxyError('no_healthy_instance', `no instance of service "${service.name}" is available`);
      return this.answerError(err, ['retry-after', '1']);
    }
    const ctx = this.ctx;
    ctx.instance = instance;
    ctx.attempts++;
    ctx.upstreamStart = performance.now();
    instance.inflight++;
    service.active++;
    this.budgetCurrent = this.budgetNext;
    this.budgetNext = false;
    this.attempt = forward(instance, this.request, this);
  }

  /**
   * Ends the request with `err` (body over the limit, request timeout): the attempt in flight is
   * aborted, and the client gets the error status unless the response has already started.
   */
  fail(err: ProxyError): void {
    if (this.closed || this.failure !== undefined) return;
    this.failure = err;
    if (this.waiter !== undefined) {
      this.service.state.pending.cancel(this.waiter);
      this.waiter = undefined;
      return this.answerError(err);
    }
    if (this.attempt !== undefined && !this.attempt.finished) this.attempt.abort(err);
  }

  private wait(): void {
    const service = this.service;
    const { pending } = service.state;
    const { maxPending, maxConnections } = service.limits;
    // HAProxy's `timeout queue` defaults to `timeout connect`: waiting for a connection is part of connecting.
    const timeout = service.timeouts.connect;
    this.waiter = pending.add(
      () => {
        this.waiter = undefined;
        this.start();
      },
      () => {
        this.waiter = undefined;
        this.overload(`no connection to service "${service.name}" became free within ${timeout} ms`);
      },
      timeout,
      maxPending,
    );
    if (this.waiter === undefined) {
      this.overload(`every instance of service "${service.name}" is at its limit of ${maxConnections} connections and ${pending.size} requests are already waiting`);
    }
  }

  private overload(message: string): void {
    this.answerError(new ProxyError('overload', message), ['retry-after', '1']);
  }

  /** The proxy's error response, unless the interceptor answers instead (the cache's stale-if-error). */
  private answerError(err: ProxyError, extraHeaders: string[] = []): void {
    const interceptor = this.interceptor;
    if (interceptor !== undefined) {
      switch (interceptor.onError(err, extraHeaders)) {
        case 'done':
          return;
        case 'serve':
          return sendAnswer(this.ctx);
        case 'error':
          return sendError(this.ctx, interceptor.error!, ['cache-status', this.ctx.cacheStatus]);
      }
    }
    sendError(this.ctx, err, extraHeaders);
  }

  private hashKey(): string | undefined {
    const source = this.service.hashKey;
    if (source === undefined) return undefined;
    if (source.kind === 'client-ip') return this.ctx.clientIp;
    if (source.kind === 'path') return this.ctx.path;
    const v = this.ctx.req.headers[source.name];
    return Array.isArray(v) ? v.join(',') : v;
  }

  onResponse(status: number, statusText: string, raw: Buffer[]): void {
    const ctx = this.ctx;
    ctx.upstreamHeaders = performance.now();
    ctx.status = status;
    if (status >= 500 && this.replayable && this.failure === undefined && this.service.retries.on.includes(status) && this.planRetry(0)) {
      // Dropped, never forwarded: the body is drained (keeping the connection) and the next attempt starts.
      this.discarding = true;
      this.discarded = 0;
      return;
    }
    const headers = clientResponseHeaders(raw, this.snapshot.via, ctx.id);
    if (this.host.draining) headers.push('connection', 'close');
    if (this.interceptor !== undefined) {
      const action = this.interceptor.onResponse(status, statusText, raw, headers);
      if (action !== 'forward') {
        // 'answer': the cache's own head (a 304 to the client's conditional) instead of this one.
        if (action === 'answer') sendAnswer(ctx);
        this.taken = true;
        return;
      }
    }
    try {
      ctx.res.writeHead(status, statusText || undefined, headers);
    } catch (err) {
      this.attempt?.abort(err as Error);
      return;
    }
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding) {
      this.discarded += chunk.length;
      // A long error body is not worth reading: cutting that connection is cheaper.
      if (this.discarded > MAX_DISCARD) this.attempt?.abort(new ProxyError('upstream_protocol', 'retried response body too long to drain'));
      return true;
    }
    if (this.taken) {
      this.interceptor!.onData(chunk);
      return true;
    }
    const res = this.ctx.res;
    this.ctx.bytesOut += chunk.length;
    const more = res.write(chunk);
    if (!more && !this.drainHooked) {
      // The socket pauses until the client drains ('drain' is emitted later, never synchronously).
      this.drainHooked = true;
      res.on('drain', (this.onDrain ??= () => this.attempt?.resume()));
    }
    this.interceptor?.onData(chunk);
    return more;
  }

  onBodySent(size: number): void {
    this.ctx.bytesIn += size;
  }

  onEnd(trailers: Buffer[] | string[] | null): void {
    if (this.discarding) {
      this.discarding = false;
      this.release(undefined);
      return this.start();
    }
    this.release(undefined);
    if (this.taken) return this.afterTaken(this.interceptor!.onEnd());
    const res = this.ctx.res;
    if (trailers !== null && trailers.length > 0) {
      const pairs: Array<[string, string]> = [];
      for (let i = 0; i < trailers.length; i += 2) pairs.push([trailers[i]!.toString(), trailers[i + 1]!.toString()]);
      try {
        res.addTrailers(pairs);
      } catch {
        // A trailer Node refuses (invalid characters) is dropped rather than failing the response.
      }
    }
    res.end();
    this.interceptor?.onEnd();
  }

  onError(err: ProxyError, responseStarted: boolean): void {
    const discarded = this.discarding;
    this.discarding = false;
    // A dropped answer counts by its status; how its draining ended does not matter.
    this.release(discarded ? undefined : err);
  /** What the cache asked for after an answer it took: its own answer, or the request again. */
  private afterTaken(next: AfterAnswer): void {
    clearTimeout(this.timer);
    this.closed = true;
    if (next === 'serve') return sendAnswer(this.ctx);
    if (next === 'forward') {
      const ctx = this.ctx;
      new Exchange(this.host, this.snapshot, ctx, this.service, ctx.upstream!, this.interceptor).start();
    }
  }

    const ctx = this.ctx;
    if (err.kind === 'client_abort' || ctx.res.destroyed) {
      this.releaseNext();
      ctx.errorCause ??= 'client_abort';
      this.interceptor?.onError(err, []);
      return;
    }
    if (err !== this.failure) {
      if (discarded) return this.start();
      if (!responseStarted && this.mayRetry(err)) return this.start();
    }
    this.releaseNext();
    const final = finalAttemptError(this.service.name, err);
    this.answerError(final, errorHeaders(final));
  }

  private mayRetry(err: ProxyError): boolean {
    // Connect failures sent nothing; resets of a bodiless idempotent request are safe to replay.
    const safe = err.retryable ? this.retryable || !this.request.body!.readableDidRead : err.kind === 'reset' && this.replayable;
    // The failed attempt was already released: the request itself still counts as active.
    return safe && this.planRetry(1);
  }

  /**
   * Chooses an instance not tried yet and takes a retry-budget slot for it; false when no retry
   * may happen. `uncounted` is 1 when this request's attempt was already released from `active`.
   */
  private planRetry(uncounted: number): boolean {
    const { ctx, service } = this;
    if (ctx.attempts > service.retries.attempts) return false;
    const tried = (this.tried ??= new Set());
    tried.add(ctx.instance!);
    const next = service.pick({ hashKey: this.hashKey(), exclude: tried });
    // Balancers fall back to an excluded instance when nothing else is available; a retry must go elsewhere.
    if (next === undefined || tried.has(next)) return false;
    const { state, retries } = service;
    // The attempt that failed is over: a chain of retries holds one slot, not one per retry.
    if (this.budgetCurrent) {
      this.budgetCurrent = false;
      state.budget.release();
    }
    if (!state.budget.tryAcquire(state.active + state.pending.size + uncounted, retries.budgetPercent, retries.minRetryConcurrency)) return false;
    this.next = next;
    this.budgetNext = true;
    return true;
  }

  /** Gives back the budget slot of a retry that was planned but will not happen. */
  private releaseNext(): void {
    this.next = undefined;
    if (this.budgetNext) {
      this.budgetNext = false;
      this.service.state.budget.release();
    }
  }

  private release(err: ProxyError | undefined): void {
    const instance = this.ctx.instance!;
    instance.inflight--;
    const service = this.service;
    service.active--;
    if (this.budgetCurrent) {
      this.budgetCurrent = false;
      service.state.budget.release();
    }
    if (this.drainHooked) {
      this.drainHooked = false;
      this.ctx.res.off('drain', this.onDrain!);
    }
    this.host.attemptEnded(instance, service, err === undefined ? this.ctx.status : 0, err);
    // A connection slot came free: the oldest request waiting for one takes it.
    const { pending } = service.state;
    if (pending.size > 0) pending.wakeOne();
  }
}

interface Target {
  /** The host that routes the request (routing/host.ts: no port). */
  host: string;
  /** The Host header value as received (or the authority of an absolute-form target). */
  hostHeader: string;
  /** `hostHeader` normalised as the cache keys it (cache/key.ts): the Host sent upstream. */
  authority: string;
  path: string;
}

/**
 * The request fields the pipeline reads, as req.headers would give them (Node keeps the first
 * Host, Content-Length and User-Agent, joins repeated X-Request-Id, Transfer-Encoding and
 * traceparent lines with ", "), found in one pass over rawHeaders.
 */
export class RequestFields {
  host: string | undefined = undefined;
  hostCount = 0;
  requestId: string | undefined = undefined;
  contentLength: string | undefined = undefined;
  chunked = false;
  traceparent: string | undefined = undefined;
  /** The first X-Forwarded-Proto line (believed only from a trusted peer). */
  forwardedProto: string | undefined = undefined;
}

export function scanRequestHeaders(raw: readonly string[]): RequestFields {
  const f = new RequestFields();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const n = name.length;
    // Length first: most fields are none of these.
    if (n !== 4 && n !== 11 && n !== 12 && n !== 14 && n !== 17) continue;
    const lower = name.toLowerCase();
    const value = raw[i + 1]!;
    switch (lower) {
      case 'host':
        f.hostCount++;
        f.host ??= value;
        break;
      case 'x-request-id':
        f.requestId = f.requestId === undefined ? value : `${f.requestId}, ${value}`;
        break;
      case 'content-length':
        f.contentLength ??= value;
        break;
      case 'transfer-encoding':
        f.chunked = true;
        break;
      case 'x-forwarded-proto':
        f.forwardedProto ??= value;
        break;
      case 'traceparent':
        f.traceparent = f.traceparent === undefined ? value : `${f.traceparent}, ${value}`;
        break;
    }
  }
  return f;
}

/**
 * Origin-form and absolute-form request targets (RFC 9112 §3.2); an error message otherwise.
 * `scheme` is the one the client used (from a trusted X-Forwarded-Proto): it decides which port
 * is the default one, dropped from the authority as the cache key drops it.
 */
export function parseTarget(req: IncomingMessage, fields: RequestFields = scanRequestHeaders(req.rawHeaders), scheme: Scheme = 'http'): Target | string {
  const url = req.url ?? '';
  let hostHeader = fields.host;
  let path = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    const m = /^(https?):\/\/([^/?#]+)([^#]*)/i.exec(url);
    if (m === null) return `request target "${url.slice(0, 100)}" is neither a path nor an absolute URL`;
    // RFC 9112 §3.2.2: the authority of an absolute-form target replaces the Host header.
    scheme = m[1]!.toLowerCase() as Scheme;
    hostHeader = m[2]!;
    path = m[3] === '' ? '/' : m[3]!.startsWith('/') ? m[3]! : `/${m[3]!}`;
  }
  if (hostHeader === undefined || hostHeader === '') return 'missing Host header';
  // RFC 9112 §3.2: more than one Host field line is a 400; Node would silently keep the first.
  if (fields.hostCount > 1) return 'more than one Host header';
  const host = normaliseHost(hostHeader);
  const authority = normalizeAuthority(hostHeader, scheme);
  if (host === undefined || authority === undefined) return `invalid Host header "${hostHeader.slice(0, 100)}"`;
  return { host, hostHeader, authority, path };
}

/** The scheme a trusted X-Forwarded-Proto names first, as the cache reads it (cache/flow.ts requestScheme). */
function forwardedScheme(proto: string | undefined): Scheme {
  return proto !== undefined && /^\s*https\s*(,|$)/i.test(proto) ? 'https' : 'http';
}

export function clientIp(req: IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
