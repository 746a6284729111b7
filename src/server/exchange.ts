/**
 * The forward phase: one request's journey to the instances. Picks an instance, forwards, retries
 * on another instance when that is safe, and streams the answer to the client with back-pressure.
 * Each attempt holds an instance slot (upstream/slot.ts) from dispatch to its end.
 */
import type { AfterAnswer, ResponseInterceptor } from '../cache/interceptor.ts';
import type { ClientCloseListener, RequestContext } from '../context.ts';
import { ProxyError, finalAttemptError } from '../errors.ts';
import type { Snapshot } from '../snapshot.ts';
import { forward, type Attempt, type UpstreamHandler, type UpstreamRequest } from '../upstream/client.ts';
import { balancerKey } from '../upstream/hash-key.ts';
import { acceptsTrailers, clientResponseHeaders, rawHeader } from '../upstream/headers.ts';
import type { Instance } from '../upstream/instance.ts';
import type { Waiter } from '../upstream/pending.ts';
import type { Service } from '../upstream/service.ts';
import { acquireSlot, releaseSlot } from '../upstream/slot.ts';
import { grpcTimeout } from './grpc.ts';
import { responseHooks, upstreamRequestHooks } from './hooks.ts';
import type { PipelineHost } from './host.ts';
import { sendAnswer, sendError, sendInformational } from './respond.ts';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** A retried answer's body is drained up to this size to keep its connection; beyond it the connection is cut. */
const MAX_DISCARD = 64 * 1024;

/** The request timer's callback: one function for every exchange (no closure per request). */
function requestTimedOut(exchange: Exchange, service: string, limit: number, grpc: boolean): void {
  exchange.fail(new ProxyError('timeout', grpc ? `deadline of ${limit} ms (grpc-timeout) exceeded on service "${service}"` : `request to service "${service}" took longer than ${limit} ms`));
}

/**
 * One request's journey to the instances: picks, forwards, retries on another instance when that
 * is safe, and streams the answer to the client with back-pressure.
 *
 * Retries (`retries`): a connect failure (nothing was sent) may go to another instance for any
 * request whose body was not read yet; a reset before the response, or a status listed in
 * `retries.on`, only for a bodiless idempotent request. A retry always goes to an instance not
 * tried yet, at most `retries.attempts` times, and within the service's retry budget unless the
 * instance was unreachable (refused or dropped the connection before answering: no load on it,
 * see ProxyError.unreachable). Nothing
 * is retried once response bytes reached the client: a retried status is never forwarded (its
 * body is drained and dropped), and the last attempt's answer is forwarded as it is.
 *
 * An optional ResponseInterceptor (the cache's store phase, cache/interceptor.ts) sees that final
 * answer only: it may tee the body, take the answer over, or answer a failure itself
 * (stale-if-error); what it returns says what the request does next.
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
  /** The answer's head waits for async onResponse hooks (the instance's socket is paused). */
  private headPending = false;

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
    // A gRPC call's own deadline bounds it too: the shorter one wins.
    const deadline = grpcTimeout(ctx);
    if (deadline !== undefined && (limit === 0 || deadline < limit)) {
      this.timer = setTimeout(requestTimedOut, deadline, this, service.name, deadline, true);
    } else if (limit > 0) {
      this.timer = setTimeout(requestTimedOut, limit, this, service.name, limit, false);
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
      return this.answerError(new ProxyError('no_healthy_instance', `no instance of service "${service.name}" is available`));
    }
    const ctx = this.ctx;
    ctx.instance = instance;
    ctx.attempts++;
    acquireSlot(instance, service);
    this.budgetCurrent = this.budgetNext;
    this.budgetNext = false;
    const hooked = upstreamRequestHooks(ctx);
    if (hooked === undefined) return this.dispatch(instance);
    hooked.then(
      () => this.dispatch(instance),
      (err: unknown) => this.hookFailed(err),
    );
  }

  /** Sends the attempt (after the onUpstreamRequest hooks). */
  private dispatch(instance: Instance): void {
    if (this.closed || this.failure !== undefined) {
      // The client left (or the request failed) while a hook ran: the slot goes back unused.
      this.release(new ProxyError('client_abort', 'client closed the connection'));
      return this.releaseNext();
    }
    this.ctx.upstreamStart = performance.now();
    this.attempt = forward(instance, this.request, this);
  }

  /** A plugin hook failed: the attempt that was not sent gives its slot back, the client gets the error. */
  private hookFailed(err: unknown): void {
    const e = pluginError(err);
    this.release(e);
    this.releaseNext();
    this.answerError(e);
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
    this.answerError(new ProxyError('overload', message));
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
    const ctx = this.ctx;
    return balancerKey(this.service.hashKey, ctx.clientIp, ctx.path, ctx.req);
  }

  onResponse(status: number, statusText: string, raw: Buffer[]): boolean | void {
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
    ctx.responseHeaders = headers;
    const hooked = responseHooks(ctx);
    if (hooked === undefined) return this.writeHead(status, statusText);
    // The instance's socket pauses (false) until the hooks settle and the head is written.
    this.headPending = true;
    hooked.then(
      () => this.writeHead(status, statusText),
      (err: unknown) => this.fail(pluginError(err)),
    );
    return false;
  }

  /** 102 / 103 from the instance: passed on at once (hop-by-hop fields removed, Via added). */
  onInformational(status: number, raw: Buffer[]): void {
    if (this.closed || this.failure !== undefined) return;
    sendInformational(this.ctx, status, clientResponseHeaders(raw, this.snapshot.via, this.ctx.id));
  }

  /** The respond phase of an instance's answer: its head, as the onResponse hooks left it. */
  private writeHead(status: number, statusText: string): void {
    const ctx = this.ctx;
    try {
      // A hook that changed the status changes the reason phrase with it (Node's default).
      ctx.res.writeHead(ctx.status, ctx.status === status ? statusText || undefined : undefined, ctx.responseHeaders);
    } catch (err) {
      this.attempt?.abort(err as Error);
      return;
    }
    if (this.headPending) {
      this.headPending = false;
      this.attempt?.resume();
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
    if (trailers !== null && trailers.length > 0 && clientTakesTrailers(this.ctx)) {
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

  onError(err: ProxyError, responseStarted: boolean): void {
    const discarded = this.discarding;
    this.discarding = false;
    // A dropped answer counts by its status; how its draining ended does not matter.
    this.release(discarded ? undefined : err);
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
    this.answerError(final);
  }

  private mayRetry(err: ProxyError): boolean {
    // Connect failures sent nothing; resets of a bodiless idempotent request are safe to replay.
    const safe = err.retryable ? this.retryable || !this.request.body!.readableDidRead : err.kind === 'reset' && this.replayable;
    // The failed attempt was already released: the request itself still counts as active.
    return safe && this.planRetry(1, err.unreachable);
  }

  /**
   * Chooses an instance not tried yet and takes a retry-budget slot for it; false when no retry
   * may happen. `uncounted` is 1 when this request's attempt was already released from `active`.
   * `unreachable`: the instance refused or dropped the connection before answering, which is no
   * load on a struggling service, so the retry takes no budget slot (still bounded by
   * `retries.attempts` and sent to an instance not tried yet).
   */
  private planRetry(uncounted: number, unreachable = false): boolean {
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
    if (!unreachable && !state.budget.tryAcquire(state.active + state.pending.size + uncounted, retries.budgetPercent, retries.minRetryConcurrency)) return false;
    this.next = next;
    this.budgetNext = !unreachable;
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

  /** The attempt ended: its budget and instance slot go back (which wakes a queued request). */
  private release(err: ProxyError | undefined): void {
    const service = this.service;
    if (this.budgetCurrent) {
      this.budgetCurrent = false;
      service.state.budget.release();
    }
    if (this.drainHooked) {
      this.drainHooked = false;
      this.ctx.res.off('drain', this.onDrain!);
    }
    releaseSlot(this.host, this.ctx.instance!, service, err === undefined ? this.ctx.status : 0, err);
  }
}

/**
 * Whether the client takes trailer fields: every h2 client (gRPC needs them), an HTTP/1.1 client
 * only when it said so with `TE: trailers` (RFC 9110 §10.1.4).
 */
function clientTakesTrailers(ctx: RequestContext): boolean {
  return ctx.req.httpVersionMajor === 2 || acceptsTrailers(rawHeader(ctx.requestHeaders, 'te'));
}

/** A hook's failure as the request's error (plugins report their own with the plugin's name). */
function pluginError(err: unknown): ProxyError {
  return err instanceof ProxyError ? err : new ProxyError('plugin_error', err instanceof Error ? err.message : String(err));
}
