/**
 * One request through the cache layer (layer.ts), as an explicit state machine (Pingora's
 * cache phases). The pipeline drives it: `lookup()` answers hit / stale / revalidate / wait /
 * miss / bypass / unavailable (lookup.ts), and the flow is the ResponseInterceptor (the store
 * phase, interceptor.ts) of what the pipeline then forwards. It never calls the pipeline: a
 * served entry is put on the RequestContext (status, head, body) for the respond phase, and a
 * request to forward is put on `ctx.upstream`.
 *
 *   lookup ──┬─ bypass        not cacheable: unsafe or other methods (§4.4 invalidation on the
 *            │                way back), a GET with a body, no usable key
 *            ├─ hit           fresh entry served from memory, Age + Cache-Status; a client
 *            │                conditional is answered 304 when the validator matches (§4.3.2)
 *            ├─ stale         stale entry served: stale-while-revalidate (one background refresh
 *            │                per key, revalidate.ts) or the client's max-stale
 *            ├─ unavailable   only-if-cached and nothing usable: 504 (§5.2.1.7)
 *            ├─ collapsed ──▶ (the key's leader finished or the wait timed out) lookup again,
 *            │                never waiting twice: hit / stale / miss / revalidating / unavailable
 *            ├─ revalidating  stale or no-cache entry: conditional GET (If-None-Match /
 *            │   │            If-Modified-Since from the entry, §4.3.1)
 *            │   ├─ revalidated  304 that applies: headers merged (§3.2, never Content-Length),
 *            │   │               entry re-stored, served from memory
 *            │   ├─ stale        5xx or no answer, and stale-if-error (RFC 5861 §4) or
 *            │   │               proxy.cache.staleOnError (RFC 9111 §4.2.4) allows it
 *            │   ├─ unavailable  no answer and must-revalidate / proxy-revalidate / no-cache /
 *            │   │               s-maxage: 504 (§5.2.2.2), never the stale entry
 *            │   └─ miss         a full response: handled as a miss (stored if allowed)
 *            └─ miss          uri-miss / vary-miss: forwarded; the body streams to the client
 *                             and, when storable, into the entry at the same time (fill.ts)
 *
 * Request collapsing (collapse.ts): a GET miss or a revalidation leads the key's flight; other
 * cacheable requests for the key wait (proxy.cache.collapseTimeout at most) and look up again
 * when it lands. A key whose answer was not storable is marked for UNCOLLAPSIBLE_MS so that a
 * busy uncacheable URL is not serialised behind one request at a time (Varnish's hit-for-miss).
 *
 * Decisions (beyond policy.ts):
 *  - A miss for a GET is sent upstream without the client's If-None-Match / If-Modified-Since
 *    (nginx and Varnish do the same), so a full response comes back to be stored; the client's
 *    conditional is then evaluated against it here and answered 304 when it matches.
 *  - A HEAD miss is forwarded as a HEAD and not stored; HEAD is answered from a stored GET, and
 *    revalidations are always GETs (a full answer can then replace the entry).
 *  - `Cache-Status: kubeproxy; fwd=uri-miss|vary-miss` (RFC 9211 distinguishes them; `miss` is
 *    only for caches that cannot). `stored` on a miss is decided when the headers leave: a
 *    chunked body that turns out larger than maxObjectSize is announced `stored` yet dropped.
 *  - Requests collapsed into another's fetch report `fwd=<their miss>; collapsed` and count as
 *    `hit` for metrics: their answer came from the cache, no upstream request was made for them.
 *  - A failed revalidation of a must-revalidate entry answers 504 with the cause `not_cached`
 *    (the cache could not answer without the origin), as only-if-cached does.
 *  - When a leader's client goes away, its upstream exchange is aborted (as for any request) and
 *    waiting requests go upstream themselves.
 *  - Byte ranges (RFC 9110 §14, range.ts): the Range of a GET is no part of the key. Whatever
 *    answers from an entry (hit, stale, revalidated, collapsed) cuts the client's own range from
 *    a stored 200 (206, multipart, 416; If-Range honoured). A miss or revalidation goes upstream
 *    without Range and If-Range, for the full response (NGINX and Varnish do the same). A 200
 *    that declares a Content-Length of at most maxObjectSize is taken: read whole, stored when it
 *    may be, and the range is cut from it. A larger one, or one without Content-Length, reaches
 *    the client as the full 200 as it streams (§14.2 lets a server ignore Range; stored when it
 *    may be); nothing is cut from a stream. A key whose last
 *    answer could not be stored (the uncollapsible mark: too large, private, a 206...), and a
 *    request with no-store or Authorization, send the client's Range on: the origin's 206 is
 *    passed through; only a 200 to it is stored.
 */
import type { RequestCache, RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';
import { log } from '../log.ts';
import type { UpstreamRequest } from '../upstream/client.ts';
import { forwardedScheme } from '../upstream/forwarded-proto.ts';
import { rawHeader } from '../upstream/headers.ts';
import type { Service } from '../upstream/service.ts';
import type { Flight, FlightOutcome, WaitOutcome } from './collapse.ts';
import { requestDirectives, responseDirectives, type RequestDirectives, type ResponseCacheControl } from './directives.ts';
import { Fill, declaredLength, headerStrings } from './fill.ts';
import { hasHeader, removeHeaders, type RawHeaders } from './headers.ts';
import { isPlainRequest, plainDecision } from './hit.ts';
import type { AfterAnswer, AfterError, CacheLookup, InterceptAction } from './interceptor.ts';
import { cacheKey, keyFor, type RequestTarget } from './key.ts';
import type { CacheLayer } from './layer.ts';
import {
  FORWARD_REASONS,
  STALE_IF_ERROR_STATUSES,
  ageHeaderValue,
  cacheStatus,
  conditionalRequestHeaders,
  currentAge,
  evaluateConditional,
  evaluateReuse,
  freshnessLifetime,
  hasValidators,
  invalidationTargets,
  isStorable,
  mustRevalidate,
  notModifiedApplies,
  onErrorDetail,
  refreshEntry,
  selectVariant,
  storageDeadline,
  type CacheStatusInfo,
  type ForwardReason,
  type OnErrorDetail,
  type PolicyOptions,
  type ReuseDecision,
} from './policy.ts';
import { parseRange, rangeAnswer, rangeFields, type ByteRange, type RangeFields, type RangeSource } from './range.ts';
import {
  bodyless,
  notModifiedResponseHeaders,
  partialForwardedHeaders,
  partialResponseHeaders,
  storedResponseHeaders,
  unsatisfiableResponse,
  type ClientHeaderOptions,
} from './respond.ts';
import { isPromise, type CacheEntry, type CacheObject, type CacheStore, type MaybePromise } from './store.ts';


/** Not-stored reasons that come from the request, not the resource: they say nothing about the next request. */
const REQUEST_REASONS: ReadonlySet<string> = new Set(['method', 'request-no-store', 'authorization']);

export type CachePhase =
  | 'lookup'
  | 'bypass'
  | 'collapsed'
  | 'hit'
  | 'stale'
  | 'miss'
  | 'revalidating'
  | 'revalidated'
  | 'unavailable';

/** Every allowed transition; anything else is a bug (logged, see CacheFlow.to). */
export const TRANSITIONS: Readonly<Record<CachePhase, readonly CachePhase[]>> = {
  lookup: ['bypass', 'hit', 'stale', 'miss', 'collapsed', 'revalidating', 'unavailable'],
  collapsed: ['hit', 'stale', 'miss', 'revalidating', 'unavailable'],
  revalidating: ['revalidated', 'stale', 'miss', 'unavailable'],
  bypass: [],
  hit: [],
  stale: [],
  miss: [],
  revalidated: [],
  unavailable: [],
};

/** ctx.cacheResult (metrics, access log) for each phase; '' while undecided. */
const RESULT: Readonly<Record<CachePhase, RequestContext['cacheResult']>> = {
  lookup: '',
  bypass: 'bypass',
  collapsed: 'miss',
  hit: 'hit',
  stale: 'stale',
  miss: 'miss',
  revalidating: 'miss',
  revalidated: 'revalidated',
  unavailable: 'miss',
};

type BypassReason = 'method' | 'request-body' | 'no-key';

/**
 * What the flow does with an answer it took over: 'refresh' (304 for the entry), 'refetch'
 * (a 304 for some other representation: ask again unconditionally), 'stale' (5xx, serve
 * stale-if-error), 'answered' (the client already got a 304; the body only feeds the store),
 * 'range' (a full response to a Range request's miss: stored, then the range is cut from it).
 */
type Taken = 'none' | 'refresh' | 'refetch' | 'stale' | 'answered' | 'range';

type MustRevalidateDecision = Extract<ReuseDecision, { kind: 'must-revalidate' }>;

/** One request through the cache layer: its lookup, and the store phase of what the pipeline forwards for it. */
export class CacheFlow implements RequestCache {
  phase: CachePhase = 'lookup';
  key = '';
  /** The answer after onError returned 'error', or lookup 'unavailable'. */
  error: ProxyError | undefined = undefined;
  private readonly method: string;
  private readonly reqHeaders: RawHeaders;
  /** The request as the pipeline built it, before the cache changed anything. */
  private readonly upstream: UpstreamRequest;
  private directives: RequestDirectives | undefined;
  /** Cache-Status fwd of the current decision. */
  private fwd: ForwardReason = 'uri-miss';
  private detail: string | undefined;
  /** The fwd this request had when it started waiting for another's fetch. */
  private waitedFor: ForwardReason | undefined;
  private flight: Flight | undefined;
  /** While waiting for another request's fetch: its outcome, and the wait's cancel. */
  private waiting: Promise<void> | undefined;
  private woken: WaitOutcome | undefined;
  private cancelWait: (() => void) | undefined;
  /** The entry being revalidated. */
  private entry: CacheEntry | undefined;
  private decision: MustRevalidateDecision | undefined;
  private taken: Taken = 'none';
  private takenStatus = 0;
  /** Why the stale entry answers a failed revalidation (Cache-Status detail). */
  private staleReason: OnErrorDetail | undefined;
  private notModified: string[] | undefined;
  private fill: Fill | undefined;
  /** A Range request's full answer that is not stored, read whole to cut the range from it. */
  private cut: { headers: string[]; received: string[]; chunks: Buffer[]; size: number } | undefined;
  /** Method sent upstream (a HEAD client's revalidation is a GET). */
  private sentMethod = '';
  /** The client's If-None-Match / If-Modified-Since were removed from the forwarded request. */
  private clientConditional = false;
  /** A GET's Range and If-Range (range.ts); undefined without Range. */
  private range: RangeFields | undefined;
  /** The client's Range went upstream (mayStoreRangeMiss said no): only a 200 to it is stored. */
  private sentRange = false;
  private requestTime = 0;
  private responseTime = 0;

  constructor(
    private readonly layer: CacheLayer,
    private readonly store: CacheStore,
    private readonly ctx: RequestContext,
    private readonly service: Service,
    private readonly via: string | undefined,
  ) {
    this.upstream = ctx.upstream!;
    this.method = this.upstream.method;
    this.reqHeaders = ctx.requestHeaders;
  }

  /** The lookup phase: decides from the request and the store. */
  lookup(): CacheLookup | Promise<CacheLookup> {
    const method = this.method;
    if (method !== 'GET' && method !== 'HEAD') return this.bypass('method');
    // RFC 9110 §9.3.1: content in a GET has no defined semantics; such a request is not cached.
    if (this.upstream.body !== null) return this.bypass('request-body');
    // RFC 9110 §14.2: Range is defined for GET only; a HEAD's is ignored.
    if (method === 'GET') this.range = rangeFields(this.reqHeaders);
    const key = this.requestKey(method);
    if (key === undefined) return this.bypass('no-key');
    this.key = key;
    return this.read(true, undefined);
  }

  /** After 'wait': settles when the key's flight landed or the wait timed out (never once the client left). */
  waited(): Promise<void> {
    return this.waiting!;
  }

  /** After waited(): looks up again, never waiting twice. */
  again(): CacheLookup | Promise<CacheLookup> {
    this.waiting = undefined;
    this.cancelWait = undefined;
    return this.read(false, this.woken);
  }

  /** The client's response closed: a wait is cancelled; a leader that did not finish frees the key. */
  onClientClose(): void {
    this.cancelWait?.();
    if (!this.ctx.res.writableFinished) this.endFlight('abandoned');
  }

  // ---- decisions ------------------------------------------------------------------------------

  private read(mayCollapse: boolean, after: WaitOutcome | undefined): CacheLookup | Promise<CacheLookup> {
    let got: MaybePromise<CacheObject | undefined>;
    try {
      got = this.store.get(this.key);
    } catch (err) {
      log.warn({ err, key: this.key }, 'cache store lookup failed; treating it as a miss');
      got = undefined;
    }
    if (!isPromise(got)) return this.decide(got, mayCollapse, after);
    return got.then(
      (obj) => this.decide(obj, mayCollapse, after),
      (err: unknown) => {
        log.warn({ err, key: this.key }, 'cache store lookup failed; treating it as a miss');
        return this.decide(undefined, false, after);
      },
    );
  }

  private decide(obj: CacheObject | undefined, mayCollapse: boolean, after: WaitOutcome | undefined): CacheLookup {
    if (this.ctx.res.destroyed) return 'gone'; // left while the store or another request was awaited
    const sel = selectVariant(obj, this.reqHeaders);
    const policy = this.layer.policy;
    if (sel.entry !== undefined) {
      const entry = sel.entry;
      const now = this.layer.now();
      if (after === undefined && isPlainRequest(this.reqHeaders)) {
        // The common case, without parsing anything (hit.ts); the same answer evaluateReuse gives.
        const fresh = plainDecision(entry, policy, now);
        if (fresh !== undefined) {
          this.to('hit');
          this.answerFrom(entry, String(Math.floor(fresh.age)), false, cacheStatus({ hit: true, ttl: fresh.ttl }));
          return 'hit';
        }
      }
      const d = evaluateReuse(entry, this.method, this.reqHeaders, now, policy);
      switch (d.kind) {
        case 'fresh':
          return this.serve('hit', entry, now, this.hitStatus({ ttl: d.ttl }, after));
        case 'stale-servable':
          if (d.revalidate) this.layer.refreshInBackground(this.key, entry, this.ctx, this.service, this.fullRequest(), this.store);
          return this.serve('stale', entry, now, this.hitStatus({ ttl: d.ttl, detail: d.reason }, after));
        case 'must-revalidate':
          // The leader just saw the origin fail: no need to try again to serve stale-if-error.
          if (after === 'error' && d.useStoredOnError) {
            return this.serve('stale', entry, now, { fwd: d.fwd, collapsed: true, ttl: d.ttl, detail: onErrorDetail(entry, this.reqHeaders, now, policy) });
          }
          this.fwd = d.fwd;
          if (mayCollapse && this.collapsible()) {
            if (this.join()) return 'wait';
            this.lead();
          }
          return this.revalidate(entry, d);
        case 'unusable':
          // 'method' cannot happen here (GET/HEAD only); only-if-cached forbids forwarding.
          return this.unavailable();
      }
    }
    if (this.requestDirectives().onlyIfCached) return this.unavailable();
    this.fwd = sel.miss;
    if (mayCollapse && this.collapsible()) {
      if (this.join()) return 'wait';
      // A HEAD miss is not stored, so it never leads; it may follow a GET's fetch.
      if (this.method === 'GET') this.lead();
    }
    return this.fetch();
  }

  private hitStatus(info: { ttl: number; detail?: string }, after: WaitOutcome | undefined): CacheStatusInfo {
    // RFC 9211 §2.6: served from another request's forward → fwd + collapsed, not hit.
    if (after !== undefined) return { fwd: this.waitedFor ?? this.fwd, collapsed: true, ttl: info.ttl, detail: info.detail };
    return { hit: true, ttl: info.ttl, detail: info.detail };
  }

  private collapsible(): boolean {
    if (this.layer.collapseTimeout <= 0 || this.layer.isUncollapsible(this.key)) return false;
    const d = this.requestDirectives();
    // Such requests want their own answer: waiting for someone else's gains them nothing.
    return !d.noStore && !d.noCache;
  }

  /** Leads the key's flight; a leader whose client leaves before its answer frees it (onClientClose). */
  private lead(): void {
    this.flight = this.layer.flights.lead(this.key);
  }

  /** Waits for the key's flight when there is one; false when this request must lead. */
  private join(): boolean {
    const flight = this.layer.flights.get(this.key);
    if (flight === undefined) return false;
    this.to('collapsed');
    this.waitedFor = this.fwd;
    this.waiting = new Promise<void>((resolve) => {
      this.cancelWait = flight.wait(this.layer.collapseTimeout, (outcome) => {
        this.woken = outcome;
        resolve();
      });
    });
    return true;
  }

  private bypass(reason: BypassReason): CacheLookup {
    this.to('bypass');
    if (reason === 'method') this.fwd = 'method';
    else {
      this.fwd = 'bypass';
      this.detail = reason;
    }
    this.sentMethod = this.method;
    return 'bypass';
  }

  private fetch(): CacheLookup {
    this.to('miss');
    this.sentMethod = this.method;
    this.requestTime = this.layer.now();
    if (this.method !== 'GET') {
      this.ctx.upstream = this.upstream;
      return 'miss';
    }
    const full = this.range === undefined || this.mayStoreRangeMiss();
    this.sentRange = !full;
    this.ctx.upstream = this.withoutClientConditionals(full);
    return 'miss';
  }

  private revalidate(entry: CacheEntry, d: MustRevalidateDecision): CacheLookup {
    this.to('revalidating');
    this.entry = entry;
    this.decision = d;
    this.sentMethod = 'GET';
    const base = this.withoutClientConditionals(true).headers;
    const headers = d.conditional ? conditionalRequestHeaders(base, entry) : base;
    this.requestTime = this.layer.now();
    this.ctx.upstream = { method: 'GET', path: this.upstream.path, headers, body: null };
    return 'revalidate';
  }

  /**
   * Whether a Range request's miss is worth the full response: not when the key's last answer
   * could not be stored (the uncollapsible mark), nor when the request itself makes storing
   * unlikely (no-store; Authorization, which only public / s-maxage / must-revalidate overrule).
   * Then the Range goes on and the origin's 206 passes through.
   */
  private mayStoreRangeMiss(): boolean {
    if (this.layer.isUncollapsible(this.key) || this.requestDirectives().noStore) return false;
    return !hasHeader(this.reqHeaders, 'authorization');
  }

  /** Nothing usable and forwarding is forbidden (only-if-cached): RFC 9111 §5.2.1.7. */
  private unavailable(): CacheLookup {
    this.to('unavailable');
    this.ctx.cacheStatus = cacheStatus({ detail: 'only-if-cached' });
    this.error = new ProxyError('not_cached', 'only-if-cached: no stored response can answer this request');
    return 'unavailable';
  }

  private serve(phase: 'hit' | 'stale' | 'revalidated', entry: CacheEntry, now: number, info: CacheStatusInfo): 'hit' | 'stale' {
    this.to(phase);
    const notModified = evaluateConditional(this.method, this.reqHeaders, entry) === 304;
    this.answerFrom(entry, ageHeaderValue(entry, now), notModified, cacheStatus(info));
    return phase === 'stale' ? 'stale' : 'hit';
  }

  /**
   * Puts the answer from `entry` on the request for the respond phase: a 304 when
   * `notModified`, else the stored status, headers and body (none for HEAD). `age` is the Age value.
   */
  private answerFrom(entry: CacheEntry, age: string, notModified: boolean, status: string): void {
    const ctx = this.ctx;
    ctx.cacheStatus = status;
    const o = this.clientOptions(status);
    if (notModified) {
      ctx.status = 304;
      ctx.responseHeaders = notModifiedResponseHeaders(entry.headers, age, o, this.layer.policy);
      ctx.responseBody = undefined;
      return;
    }
    if (this.range !== undefined && this.answerRange(entry, o, (part, length) => partialResponseHeaders(entry, age, o, part, length))) return;
    ctx.status = entry.status;
    ctx.responseHeaders = storedResponseHeaders(entry, age, o);
    ctx.responseBody = this.method === 'HEAD' || bodyless(entry.status) ? undefined : entry.body;
  }

  /**
   * Puts the answer to the client's Range from `source` on the request (206 with the head `head`
   * makes, or 416); false when the full response is to be served (range.ts rangeAnswer).
   */
  private answerRange(source: RangeSource, o: ClientHeaderOptions, head: (part: ByteRange | string, length: number) => string[]): boolean {
    const range = rangeAnswer(source, this.range!);
    if (range === undefined) return false;
    const ctx = this.ctx;
    if (range.kind === 'unsatisfiable') {
      const r = unsatisfiableResponse(source.bodySize, o);
      ctx.status = 416;
      ctx.responseHeaders = r.headers;
      ctx.responseBody = r.body;
      return true;
    }
    ctx.status = 206;
    ctx.responseBody = range.body;
    ctx.responseHeaders = range.kind === 'single' ? head(range.range, range.range.end - range.range.start + 1) : head(range.boundary, range.length);
    return true;
  }

  // ---- the store phase: the forwarded request's answer (ResponseInterceptor) ------------------

  onResponse(status: number, _statusText: string, raw: readonly Buffer[], headers: string[]): InterceptAction {
    if (this.phase === 'bypass') {
      // RFC 9111 §4.4: a non-error answer to an unsafe method invalidates the target URI and
      // same-origin Location / Content-Location (invalidationTargets returns none otherwise).
      if (this.fwd === 'method' && status < 400) this.invalidate(status, headerStrings(raw));
      this.appendStatus(headers, { fwd: this.fwd, detail: this.detail });
      return 'forward';
    }
    if (this.phase === 'miss' && this.sentMethod === 'GET' && !this.clientConditional && this.range === undefined && status < 500 && this.layer.zeroTtl.zeroTtl(status, raw, this.reqHeaders)) {
      return this.notWorthStoring(headers);
    }
    const received = headerStrings(raw);
    this.responseTime = this.layer.now();
    if (this.phase === 'revalidating') {
      const entry = this.entry!;
      if (status === 304) {
        this.taken = notModifiedApplies(entry.headers, received) ? 'refresh' : 'refetch';
        this.notModified = received;
        return 'take';
      }
      // 5xx after the forward phase's retries (RFC 5861 §4 statuses): the stale entry may stand in.
      const onError = STALE_IF_ERROR_STATUSES.has(status) ? onErrorDetail(entry, this.reqHeaders, this.responseTime, this.layer.policy) : undefined;
      if (onError !== undefined) {
        this.taken = 'stale';
        this.takenStatus = status;
        this.staleReason = onError;
        return 'take';
      }
      // §4.3.3: a full response replaces the stored one (when it may be stored).
      this.to('miss');
    }
    return this.onFullResponse(status, received, headers);
  }

  private onFullResponse(status: number, received: string[], headers: string[]): InterceptAction {
    const layer = this.layer;
    let detail: string | undefined;
    if (this.sentMethod !== 'GET') {
      detail = 'method';
    } else if (this.sentRange && status !== 200) {
      // The answer to one range (206, 416...) is no answer for the URL.
      detail = status === 206 ? 'partial-content' : 'range';
    } else {
      const s = isStorable('GET', this.reqHeaders, status, received, layer.policy);
      const length = declaredLength(received);
      if (!s.storable) detail = s.reason;
      else if (length !== undefined && length > layer.maxObjectSize) detail = 'too-large';
      else if (!worthStoring(status, received, this.requestTime, this.responseTime, layer.policy, s.directives)) detail = 'zero-ttl';
      else {
        this.fill = new Fill(layer.maxObjectSize, {
          key: this.key,
          requestHeaders: this.reqHeaders,
          status,
          // The id of the request that filled the entry means nothing to later ones.
          responseHeaders: removeHeaders(received, ['x-request-id']),
          requestTime: this.requestTime,
          responseTime: this.responseTime,
          directives: s.directives,
        });
      }
    }
    if (this.fill === undefined) {
      // Waiting requests go upstream now rather than after the body. The key is marked only when
      // the response itself is the reason (not this request's method or headers), and never for
      // a failing instance: collapsing is what protects it.
      if (status < 500 && detail !== undefined && !REQUEST_REASONS.has(detail)) layer.markUncollapsible(this.key);
      this.endFlight(status >= 500 ? 'error' : 'uncacheable');
    } else {
      layer.clearUncollapsible(this.key);
    }
    const info: CacheStatusInfo = { fwd: this.fwd, stored: this.fill !== undefined, detail };
    if (
      this.clientConditional &&
      status === 200 &&
      evaluateConditional(this.method, this.reqHeaders, { status, headers: received, requestTime: this.requestTime, responseTime: this.responseTime }) === 304
    ) {
      // The client's own validator matches the fresh answer: it gets a 304, the body only feeds the store.
      const value = cacheStatus({ ...info, fwdStatus: 200 });
      const ctx = this.ctx;
      ctx.cacheStatus = value;
      ctx.status = 304;
      ctx.responseHeaders = notModifiedResponseHeaders(received, undefined, this.clientOptions(value), layer.policy);
      ctx.responseBody = undefined;
      this.taken = 'answered';
      return 'answer';
    }
    if (this.range !== undefined && status === 200) {
      const length = declaredLength(received);
      if (length !== undefined && length <= layer.maxObjectSize && parseRange(this.range.range) !== undefined) {
        // Read whole (at most maxObjectSize): stored when it may be (the fill), else kept for this
        // request only (the cut); the range is cut from it at the end.
        this.ctx.cacheStatus = cacheStatus(info);
        if (this.fill === undefined) this.cut = { headers, received, chunks: [], size: 0 };
        this.taken = 'range';
        return 'take';
      }
    }
    this.appendStatus(headers, info);
    return 'forward';
  }

  /**
   * The commonest uncacheable answer (no caching field at all, zero-ttl.ts), decided without
   * converting or parsing its headers: what onFullResponse does for 'zero-ttl', step for step.
   */
  private notWorthStoring(headers: string[]): InterceptAction {
    this.responseTime = this.layer.now();
    this.layer.markUncollapsible(this.key);
    this.endFlight('uncacheable');
    const value = ZERO_TTL_STATUS[this.fwd];
    this.ctx.cacheStatus = value;
    headers.push('Cache-Status', value);
    return 'forward';
  }

  onData(chunk: Buffer): void {
    const cut = this.cut;
    if (cut !== undefined) {
      cut.chunks.push(chunk);
      cut.size += chunk.length;
      return;
    }
    const fill = this.fill;
    if (fill !== undefined && !fill.add(chunk)) {
      // Over maxObjectSize: the copy is gone, the response keeps streaming.
      this.fill = undefined;
      this.layer.markUncollapsible(this.key);
      this.endFlight('uncacheable');
    }
  }

  onEnd(): AfterAnswer {
    switch (this.taken) {
      case 'refresh':
        return this.refreshed();
      case 'refetch':
        return this.refetch();
      case 'stale':
        return this.staleOnError(this.takenStatus);
      case 'range':
        return this.cut !== undefined ? this.rangeFromCut() : this.rangeFromFill();
      default:
        this.storeFill();
        return 'done';
    }
  }

  onError(err: ProxyError, extraHeaders: string[]): AfterError {
    this.fill = undefined; // a cut body is never stored
    this.cut = undefined;
    const ctx = this.ctx;
    if (err.kind === 'client_abort' || ctx.res.destroyed) {
      this.endFlight('abandoned');
      return 'done';
    }
    if (this.taken === 'answered') {
      this.endFlight('error');
      return 'done'; // the client already has its 304
    }
    if (this.phase === 'revalidating' && !ctx.res.headersSent) {
      const entry = this.entry!;
      const policy = this.layer.policy;
      // No answer at all (connect failures, resets, timeouts, no instance): the same rule as a 5xx.
      const onError = onErrorDetail(entry, this.reqHeaders, this.layer.now(), policy);
      if (onError !== undefined) {
        this.staleReason = onError;
        return this.staleOnError(undefined);
      }
      if (mustRevalidate(responseDirectives(entry.headers, policy.targetedFields), policy)) {
        // RFC 9111 §5.2.2.2: "MUST generate an error response rather than reuse the stale response ... SHOULD be 504".
        this.endFlight('error');
        this.to('unavailable');
        ctx.cacheStatus = cacheStatus({ fwd: this.fwd, detail: 'must-revalidate' });
        this.error = new ProxyError('not_cached', `the stored response must be revalidated and no instance answered (${err.message})`, false, { cause: err });
        return 'error';
      }
    }
    this.endFlight('error');
    if (!ctx.res.headersSent) {
      const status = cacheStatus({ fwd: this.fwd, detail: this.detail });
      ctx.cacheStatus = status;
      extraHeaders.push('cache-status', status);
    }
    return 'default';
  }

  // ---- endings ----------------------------------------------------------------------------------

  /** A 304 applied to the entry (RFC 9111 §4.3.4): merge, store, serve. */
  private refreshed(): AfterAnswer {
    const policy = this.layer.policy;
    const d = this.decision!;
    const r = refreshEntry(
      this.entry!,
      this.notModified!,
      { requestHeaders: this.reqHeaders, requestTime: this.requestTime, responseTime: this.responseTime },
      policy,
    );
    const stored = r.storable.storable;
    // §5.2.2.5: a 304 that made the response unstorable (no-store, private...) removes it.
    this.settle(stored ? this.store.put(this.key, r.entry) : this.store.delete(this.key), 'stored');
    const now = this.layer.now();
    const ttl = freshnessLifetime(r.entry.status, r.entry.headers, r.entry.responseTime, policy) - currentAge(r.entry, now);
    this.serve('revalidated', r.entry, now, { fwd: d.fwd, fwdStatus: 304, ttl, stored });
    return 'serve';
  }

  /** The 304 matched another representation than the entry: ask for the full response. */
  private refetch(): AfterAnswer {
    this.to('miss');
    this.taken = 'none';
    this.requestTime = this.layer.now();
    const u = this.withoutClientConditionals(!this.sentRange);
    this.ctx.upstream = { method: 'GET', path: u.path, headers: u.headers, body: null };
    return 'forward';
  }

  /**
   * RFC 9111 §4.2.4 / RFC 5861 §4: the instances failed (`status`, or no answer) and the entry may
   * stand in; `detail` says whether stale-if-error or proxy.cache.staleOnError allowed it.
   */
  private staleOnError(status: number | undefined): 'serve' {
    this.endFlight('error');
    const entry = this.entry!;
    const now = this.layer.now();
    const ttl = freshnessLifetime(entry.status, entry.headers, entry.responseTime, this.layer.policy) - currentAge(entry, now);
    this.serve('stale', entry, now, { fwd: this.fwd, fwdStatus: status, ttl, detail: this.staleReason });
    return 'serve';
  }

  /** A Range request's full response is in: stored, and the client's range cut from it. */
  private rangeFromFill(): AfterAnswer {
    const entry = this.storeFill();
    if (entry === undefined) {
      // The body outgrew its Content-Length's promise: ask again, for the range alone.
      this.taken = 'none';
      this.sentRange = true;
      this.ctx.upstream = this.withoutClientConditionals(false);
      return 'forward';
    }
    this.answerFrom(entry, ageHeaderValue(entry, this.layer.now()), false, this.ctx.cacheStatus);
    return 'serve';
  }

  /** A Range request's full response that may not be stored is in: the range is cut from it. */
  private rangeFromCut(): 'serve' {
    const cut = this.cut!;
    this.cut = undefined;
    const ctx = this.ctx;
    const status = ctx.cacheStatus;
    const source: RangeSource = { status: 200, headers: cut.received, body: cut.chunks, bodySize: cut.size };
    const head = (part: ByteRange | string, length: number) => partialForwardedHeaders(cut.headers, cut.size, part, length, status);
    if (!this.answerRange(source, this.clientOptions(status), head)) {
      ctx.status = 200;
      cut.headers.push('Cache-Status', status);
      ctx.responseHeaders = cut.headers;
      ctx.responseBody = cut.chunks;
    }
    return 'serve';
  }

  /** Stores the filled entry (when the body fit); returns it, stored or not. */
  private storeFill(): CacheEntry | undefined {
    const fill = this.fill;
    this.fill = undefined;
    const entry = fill?.entry(this.layer.policy);
    if (entry === undefined) {
      this.endFlight('uncacheable');
      return undefined;
    }
    let put: MaybePromise<boolean>;
    try {
      put = this.store.put(this.key, entry);
    } catch (err) {
      log.warn({ err, key: this.key }, 'cache store refused an entry');
      this.endFlight('error');
      return entry;
    }
    this.settle(put, 'stored');
    return entry;
  }

  /** Ends the flight once a store write settled (at once for the memory store). */
  private settle(write: MaybePromise<unknown>, outcome: FlightOutcome): void {
    if (!isPromise(write)) return this.endFlight(outcome);
    write.then(
      () => this.endFlight(outcome),
      (err: unknown) => {
        log.warn({ err, key: this.key }, 'cache store write failed');
        this.endFlight('error');
      },
    );
  }

  private endFlight(outcome: FlightOutcome): void {
    const flight = this.flight;
    if (flight === undefined) return;
    this.flight = undefined;
    flight.done(outcome);
  }

  // ---- helpers ----------------------------------------------------------------------------------

  private to(next: CachePhase): void {
    if (!TRANSITIONS[this.phase].includes(next)) {
      log.error({ from: this.phase, to: next, key: this.key }, 'cache: unexpected state transition');
    }
    this.phase = next;
    const result = RESULT[next];
    if (result !== '') this.ctx.cacheResult = result;
  }

  private requestDirectives(): RequestDirectives {
    // Most requests carry neither Cache-Control nor Pragma: nothing to parse.
    return (this.directives ??= mayHaveDirectives(this.reqHeaders) ? requestDirectives(this.reqHeaders) : NO_REQUEST_DIRECTIVES);
  }

  /**
   * The request's key. While no plugin changed the request's header lines since the validate
   * phase read them, its Host line, X-Forwarded-Proto and path are the ones validate read: the
   * authority it normalised and that authority's scheme are what cacheKey would compute again
   * from target(). (Lines a proxy-level onRequest changed were read again by validate, hooks.ts;
   * a service-level onRequest's changes are not, so they take target(). A rewritten path is in
   * upstream.path either way.)
   */
  private requestKey(method: string): string | undefined {
    const ctx = this.ctx;
    if (ctx.plugins?.requestIfMade?.headers.changed !== true && ctx.req.url?.charCodeAt(0) === 47 /* / */) {
      return keyFor(this.service.cacheKeyPrefix, method, ctx.targetScheme, ctx.authority, this.upstream.path);
    }
    return cacheKey(this.service.name, method, this.target());
  }

  private target(): RequestTarget {
    const url = this.ctx.req.url ?? '/';
    // Origin-form: the path as it goes upstream (a plugin's rewrite changes the key); absolute-form keeps its own authority and scheme.
    const target = url.charCodeAt(0) === 47 /* / */ ? this.upstream.path : url;
    // The first Host line, as req.headers.host gives it (without building that object).
    // The scheme for keys: X-Forwarded-Proto as the pipeline forwards it (the client's only from trusted peers).
    return { scheme: forwardedScheme(rawHeader(this.upstream.headers, 'x-forwarded-proto')), authority: rawHeader(this.reqHeaders, 'host') ?? '', target };
  }

  /**
   * The forwarded request without the client's validators (see the header), and without its
   * Range and If-Range when `full` (the full response is wanted).
   */
  private withoutClientConditionals(full: boolean): UpstreamRequest {
    const u = this.upstream;
    const drop = full && this.range !== undefined ? RANGE_FIELDS : NO_FIELDS;
    if (!hasHeader(u.headers, 'if-none-match') && !hasHeader(u.headers, 'if-modified-since')) {
      return drop.length === 0 ? u : { method: u.method, path: u.path, headers: removeHeaders(u.headers, drop), body: u.body };
    }
    this.clientConditional = true;
    return { method: u.method, path: u.path, headers: removeHeaders(u.headers, ['if-none-match', 'if-modified-since', ...drop]), body: u.body };
  }

  /** The request for a background refresh: the full response, whatever range the client wants. */
  private fullRequest(): UpstreamRequest {
    const u = this.upstream;
    return this.range !== undefined ? { method: u.method, path: u.path, headers: removeHeaders(u.headers, RANGE_FIELDS), body: u.body } : u;
  }

  private invalidate(status: number, received: string[]): void {
    const store = this.store;
    for (const t of invalidationTargets(this.method, status, this.target(), received)) {
      const key = cacheKey(this.service.name, 'GET', t);
      if (key === undefined) continue;
      const done = store.delete(key);
      if (isPromise(done)) done.catch((err: unknown) => log.warn({ err, key }, 'cache invalidation failed'));
    }
  }

  private appendStatus(headers: string[], info: CacheStatusInfo): void {
    const value = cacheStatus(info);
    this.ctx.cacheStatus = value;
    headers.push('Cache-Status', value);
  }

  private clientOptions(status: string): ClientHeaderOptions {
    return { via: this.via, requestId: this.ctx.id, cacheStatus: status, draining: this.layer.host.draining };
  }
}

/**
 * Whether storing can ever pay off: an entry that is stale on arrival, has no validators and no
 * RFC 5861 window would be dropped at the next lookup (e.g. a 200 without any caching header).
 */
export function worthStoring(
  status: number,
  headers: RawHeaders,
  requestTime: number,
  responseTime: number,
  policy: PolicyOptions,
  directives: ResponseCacheControl,
): boolean {
  if (hasValidators(headers)) return true;
  // Without explicit freshness, a validator or Last-Modified (heuristics) the lifetime is 0:
  // decided without parsing any date, which is what most uncacheable traffic looks like.
  if (directives.source === undefined && !hasHeader(headers, 'expires')) return false;
  return storageDeadline({ status, headers, requestTime, responseTime }, policy) > responseTime;
}

const RANGE_FIELDS: readonly string[] = ['range', 'if-range'];
const NO_FIELDS: readonly string[] = [];

/** Cache-Status of a 'zero-ttl' answer for each fwd, made once. */
const ZERO_TTL_STATUS: Readonly<Record<ForwardReason, string>> = Object.freeze(
  Object.fromEntries(FORWARD_REASONS.map((fwd) => [fwd, cacheStatus({ fwd, stored: false, detail: 'zero-ttl' })])) as Record<ForwardReason, string>,
);

/** What requestDirectives gives for a request without Cache-Control and Pragma. */
const NO_REQUEST_DIRECTIVES: RequestDirectives = Object.freeze(requestDirectives([]));

/** Whether the request has a Cache-Control or Pragma field (the only inputs of requestDirectives). */
function mayHaveDirectives(raw: RawHeaders): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const n = name.length;
    if (n !== 13 && n !== 6) continue;
    const lower = name.toLowerCase();
    if (lower === 'cache-control' || lower === 'pragma') return true;
  }
  return false;
}
