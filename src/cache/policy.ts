/**
 * The HTTP caching decisions of KubeProxy's SHARED cache, as pure functions:
 * RFC 9111 (HTTP Caching), RFC 5861 (stale-while-revalidate, stale-if-error),
 * RFC 9211 (Cache-Status), RFC 9213 (targeted cache control). Times are epoch
 * milliseconds passed in explicitly (`now`, `requestTime`, `responseTime`);
 * durations returned are seconds. Nothing here reads a clock or does I/O.
 *
 * How the orchestration layer (layer.ts) is expected to use this module:
 *
 *   MISS / STORE
 *     const s = isStorable(method, reqHeaders, status, resHeaders, opts)
 *     if (s.storable) store.put(key, createEntry({ key, requestHeaders, status,
 *         responseHeaders, body, requestTime, responseTime }, opts))
 *     else Cache-Status detail = s.reason
 *   LOOKUP
 *     const sel = selectVariant(await store.get(key), reqHeaders)   → sel.entry | sel.miss ('uri-miss' | 'vary-miss')
 *     const d = evaluateReuse(sel.entry, method, reqHeaders, now, opts)
 *       'fresh'           serve the entry with Age = ageHeaderValue(entry, now); 304 if evaluateConditional(...) === 304
 *       'stale-servable'  serve the same way; if d.revalidate, revalidate in the background
 *       'must-revalidate' forward with conditionalRequestHeaders(reqHeaders, entry) when d.conditional;
 *                         on a 304 where notModifiedApplies(): r = refreshEntry(...), serve r.entry,
 *                         store it if r.storable.storable, else delete the key;
 *                         on 500/502/503/504 or no answer: serve the entry if d.useStoredOnError
 *                         (re-check with usableOnError() if time has passed), else the error (504 if none)
 *       'unusable'        'method' → forward; 'only-if-cached' → answer 504 (RFC 9111 §5.2.1.7)
 *   UNSAFE METHODS
 *     for (const t of invalidationTargets(method, status, target, resHeaders)) store.delete(cacheKey(...))
 *   HEADER VALUES
 *     cacheStatus({ hit: true, ttl: d.ttl })   fresh and stale-servable hits (ttl < 0 when stale)
 *     cacheStatus({ fwd: d.fwd, fwdStatus, stored })   must-revalidate ('stale' / 'request')
 *     cacheStatus({ fwd: sel.miss ?? 'miss', stored, detail })   misses; 'bypass' / 'method' when not looked up
 *     ageHeaderValue(entry, now) (the Age of a served entry)
 *
 * Exported API (StoredResponse = { status, headers, requestTime, responseTime }; CacheEntry satisfies it)
 *   isStorable(method, reqHeaders, status, resHeaders, opts?): { storable: true; directives } | { storable: false; reason }
 *   storableHeaders(resHeaders, directives, responseTime?): string[]
 *   createEntry({ key, requestHeaders, status, responseHeaders, body, requestTime, responseTime }, opts?): CacheEntry
 *   refreshEntry(entry, notModifiedHeaders, { requestHeaders, requestTime, responseTime }, opts?): { entry; storable }
 *   freshnessLifetime(status, resHeaders, responseTime, opts?): number      seconds
 *   currentAge(stored, now): number / ageHeaderValue(stored, now)
 *   mustRevalidate(directives, opts?): boolean
 *   evaluateReuse(stored, method, reqHeaders, now, opts?): ReuseDecision
 *   usableOnError(stored, reqHeaders, now, opts?): boolean / onErrorDetail(...): 'stale-if-error' | 'stale-on-error' | undefined
 *   storageDeadline(stored, opts?): number
 *   varyKey(varyNames, reqHeaders): string | undefined / normalizeVaryValue(name, value) / selectVariant(object, reqHeaders)
 *   hasValidators(headers) / conditionalRequestHeaders(reqHeaders, stored) / evaluateConditional(method, reqHeaders, stored): 304 | 200
 *   parseEntityTag(text) / strongMatch(a, b) (If-Range, range.ts)
 *   notModifiedHeaders(storedHeaders, opts?) / notModifiedApplies(storedHeaders, notModified) / updateStoredHeaders(stored, notModified, opts?)
 *   invalidationTargets(method, status, target, resHeaders): RequestTarget[]
 *   cacheStatus(info, cacheName = 'kubeproxy'): string / sfString(value): string
 *   PolicyOptions { targetedFields, heuristicFraction (0.1), maxHeuristicLifetime (86400), staleWithSMaxage (false), revalidationGrace (86400), staleOnError (0) }
 *
 * Decisions taken where the RFCs leave a choice (also documented at the code):
 *  - Only GET responses are stored; HEAD is answered from a stored GET (the
 *    key's method class, key.ts). 206 is never stored: ranges are not combined
 *    (RFC 9111 §3.3/§3.4 make that optional); byte ranges are answered from a
 *    stored complete 200 instead (range.ts), and a Range request's miss
 *    fetches the full response (flow.ts). 304 is never stored.
 *  - Set-Cookie (RFC 9111 §7.3, sensitive information): a response carrying it
 *    is stored only when the origin explicitly addressed shared caches
 *    (`public`, `s-maxage`, a targeted field) or excluded the cookie itself
 *    (`no-cache="set-cookie"` / `private="set-cookie"`); and Set-Cookie is
 *    never stored, so a hit never hands one user's cookie to another. This
 *    matches Varnish's builtin VCL / Fastly's default of not caching Set-Cookie
 *    responses, relaxed only on explicit instruction.
 *  - Qualified `no-cache="f"` / `private="f"`: the named fields are removed
 *    before storage (RFC 9111 §3.1 allows it) and the rest is reused normally.
 *  - `s-maxage` carries proxy-revalidate semantics (§5.2.2.10): once stale it
 *    is never served stale, even with stale-while-revalidate / stale-if-error
 *    (§4.2.4 "MUST NOT generate a stale response if it is prohibited by ... an
 *    applicable s-maxage"). `staleWithSMaxage: true` relaxes this for origins
 *    (e.g. Next.js) that send `s-maxage=N, stale-while-revalidate=M` meaning RFC 5861.
 *  - must-revalidate / proxy-revalidate / unqualified no-cache also block both
 *    RFC 5861 windows (§4.2.4, §5.2.2.2: a disconnected cache MUST answer 504).
 *  - stale-if-error may come from the response or the request (RFC 5861 §4);
 *    either permission suffices, so the larger window applies. Without one,
 *    `staleOnError` seconds are allowed (RFC 9111 §4.2.4: a disconnected cache
 *    may serve stale unless forbidden); s-maxage forbids that default.
 *  - Age: corrected_initial_age = max(apparent_age, corrected_age_value), the
 *    conservative form of §4.2.3.
 *  - A 304 without any validator is applied to the entry whose validators the
 *    cache sent (it can only answer that one); §4.3.4 strictly requires a
 *    validator-less stored response for that case.
 *  - On a 304 the stored Content-Length, Content-Encoding and Content-Range are
 *    kept (§3.2: Content-Length always; the stored bytes depend on the coding;
 *    Content-Range is processed by the implementation); Age and Date restart
 *    from the 304 (the response was just validated, §4.2).
 */

import {
  DEFAULT_TARGETED_FIELDS,
  DELTA_SECONDS_MAX,
  formatHttpDate,
  parseAge,
  parseDateHeader,
  parseExpires,
  parseHttpDate,
  parseLastModified,
  parseVary,
  requestDirectives,
  responseDirectives,
  type RequestDirectives,
  type ResponseCacheControl,
} from './directives.ts';
import {
  getHeader,
  getHeaderLines,
  hasHeader,
  removeHeaders,
  setHeader,
  splitList,
  type RawHeaders,
} from './headers.ts';
import { normalizeAuthority, splitAbsoluteTarget, type RequestTarget, type Scheme } from './key.ts';
import type { CacheEntry } from './store.ts';
import { normalizeVaryValue } from './vary.ts';

// Per-field normalisation of selecting values lives in vary.ts (VARY_NORMALISERS).
export { normalizeVaryValue };

// ---------------------------------------------------------------------------
// Options and shared shapes
// ---------------------------------------------------------------------------

export interface PolicyOptions {
  /** RFC 9213 target list, most applicable first. Default DEFAULT_TARGETED_FIELDS. */
  targetedFields?: readonly string[] | undefined;
  /** Fraction of (Date - Last-Modified) used as heuristic freshness (RFC 9111 §4.2.2). Default 0.1. */
  heuristicFraction?: number | undefined;
  /** Cap on heuristic freshness, seconds. Default 86400 (1 day). */
  maxHeuristicLifetime?: number | undefined;
  /** Allow RFC 5861 stale serving on responses with s-maxage. Default false (see header). */
  staleWithSMaxage?: boolean | undefined;
  /** Seconds an entry WITH validators is kept after it stopped being servable, for revalidation (storageDeadline). Default 86400. */
  revalidationGrace?: number | undefined;
  /**
   * Seconds past freshness a stale entry may answer when the origin fails and neither the response
   * nor the request gave a stale-if-error window (RFC 9111 §4.2.4: served stale when disconnected,
   * unless forbidden). Default 0 (only explicit stale-if-error); `proxy.cache.staleOnError`.
   */
  staleOnError?: number | undefined;
}

export const DEFAULT_HEURISTIC_FRACTION = 0.1;
export const DEFAULT_MAX_HEURISTIC_LIFETIME = 86_400;
export const DEFAULT_REVALIDATION_GRACE = 86_400;

/** What the policy needs of a stored response (CacheEntry satisfies it). */
export interface StoredResponse {
  readonly status: number;
  readonly headers: RawHeaders;
  /** Epoch ms the request was sent. */
  readonly requestTime: number;
  /** Epoch ms the response was received. */
  readonly responseTime: number;
}

/** RFC 9110 §15.1: status codes defined as heuristically cacheable. */
export const HEURISTICALLY_CACHEABLE: ReadonlySet<number> = new Set([
  200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501,
]);

/** RFC 5861 §4: "an error is any situation that would result in a 500, 502, 503, or 504". */
export const STALE_IF_ERROR_STATUSES: ReadonlySet<number> = new Set([500, 502, 503, 504]);

/**
 * Final status codes this cache understands, i.e. implements all their caching
 * behaviour (RFC 9111 §3, for must-understand): those of RFC 9110 §15 except
 * 206 (partial content is never stored, range.ts) and 304 (never stored).
 */
export const UNDERSTOOD_STATUSES: ReadonlySet<number> = new Set([
  200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409,
  410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503, 504, 505,
]);

/** RFC 9110 §9.2.1. Everything else (including unknown methods) is unsafe. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * Fields a cache never stores (RFC 9111 §3.1): Connection (and the fields it
 * lists, added per message), hop-by-hop fields of RFC 9110 §7.6.1, the
 * proxy-authentication fields, and Set-Cookie (this cache's policy, see header).
 */
const NEVER_STORED: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authentication-info',
  'proxy-authorization',
  'set-cookie',
];

/**
 * Fields a 304 never updates (RFC 9111 §3.2): Content-Length (MUST NOT),
 * Content-Encoding (the stored body's bytes depend on it: "fields that the
 * cache's stored response depends upon"), Content-Range ("automatically
 * processed"), in addition to NEVER_STORED.
 */
const NOT_UPDATED_BY_304: readonly string[] = ['content-length', 'content-encoding', 'content-range'];

function targetsOf(options: PolicyOptions | undefined): readonly string[] {
  return options?.targetedFields ?? DEFAULT_TARGETED_FIELDS;
}

function cap(seconds: number): number {
  return seconds > DELTA_SECONDS_MAX ? DELTA_SECONDS_MAX : seconds;
}

// ---------------------------------------------------------------------------
// Storing (RFC 9111 §3)
// ---------------------------------------------------------------------------

export type NotStorableReason =
  | 'method'
  | 'request-no-store'
  | 'status'
  | 'partial-content'
  | 'must-understand'
  | 'no-store'
  | 'private'
  | 'authorization'
  | 'vary-star'
  | 'no-freshness-info'
  | 'set-cookie';

export type Storability =
  | { readonly storable: true; readonly directives: ResponseCacheControl }
  | { readonly storable: false; readonly reason: NotStorableReason };

/**
 * RFC 9111 §3 for a shared cache. When not storable, `reason` is a short
 * token suitable for Cache-Status `detail`.
 */
export function isStorable(
  method: string,
  requestHeaders: RawHeaders,
  status: number,
  responseHeaders: RawHeaders,
  options?: PolicyOptions,
): Storability {
  // §3 "the request method is understood": only GET is stored; HEAD responses
  // carry no body and are answered from the stored GET instead.
  if (method !== 'GET') return { storable: false, reason: 'method' };
  // §5.2.1.5: request no-store forbids storing "any response to it".
  if (requestDirectives(requestHeaders).noStore) return { storable: false, reason: 'request-no-store' };
  // §3 "the response status code is final".
  if (!Number.isInteger(status) || status < 200 || status > 599) return { storable: false, reason: 'status' };
  // §3.3/§3.4: partial content is not stored; ranges are cut from a stored complete 200 (range.ts).
  if (status === 206) return { storable: false, reason: 'partial-content' };
  if (status === 304) return { storable: false, reason: 'status' };

  const cc = responseDirectives(responseHeaders, targetsOf(options));
  if (cc.mustUnderstand) {
    // §5.2.2.3: not storable unless the status is understood; if it is, no-store SHOULD be ignored.
    if (!UNDERSTOOD_STATUSES.has(status)) return { storable: false, reason: 'must-understand' };
  } else if (cc.noStore) {
    return { storable: false, reason: 'no-store' }; // §5.2.2.5
  }
  // §5.2.2.7: unqualified private → a shared cache MUST NOT store.
  if (cc.private) return { storable: false, reason: 'private' };
  // §3.5: Authorization → only with must-revalidate, public or s-maxage.
  if (hasHeader(requestHeaders, 'authorization') && !(cc.public || cc.mustRevalidate || cc.sMaxage !== undefined)) {
    return { storable: false, reason: 'authorization' };
  }
  // §4.1: "A Vary header field value containing a member "*" always fails to match": useless to store.
  if (parseVary(responseHeaders).star) return { storable: false, reason: 'vary-star' };
  // §3: explicit freshness, public, or a heuristically cacheable status.
  const explicit =
    cc.public ||
    cc.maxAge !== undefined ||
    cc.sMaxage !== undefined ||
    (!cc.targeted && hasHeader(responseHeaders, 'expires'));
  if (!explicit && !HEURISTICALLY_CACHEABLE.has(status)) return { storable: false, reason: 'no-freshness-info' };
  // §7.3 (sensitive information): see header for the Set-Cookie policy.
  if (hasHeader(responseHeaders, 'set-cookie')) {
    const cookieExcluded = cc.noCacheFields.includes('set-cookie') || cc.privateFields.includes('set-cookie');
    if (!(cookieExcluded || cc.public || cc.sMaxage !== undefined || cc.targeted)) {
      return { storable: false, reason: 'set-cookie' };
    }
  }
  return { storable: true, directives: cc };
}

/**
 * The response headers to store (RFC 9111 §3.1): without Connection and the
 * fields it lists, hop-by-hop and proxy-authentication fields, fields named by
 * qualified no-cache / private, and Set-Cookie. When `responseTime` is given
 * and the response has no Date, one is added (RFC 9110 §6.6.1: a recipient
 * caching a message without Date MUST append one).
 */
export function storableHeaders(
  responseHeaders: RawHeaders,
  directives: Pick<ResponseCacheControl, 'noCacheFields' | 'privateFields'>,
  responseTime?: number,
): string[] {
  const drop = new Set<string>(NEVER_STORED);
  const connection = getHeader(responseHeaders, 'connection');
  if (connection !== undefined) for (const f of splitList(connection)) drop.add(f.toLowerCase());
  for (const f of directives.noCacheFields) drop.add(f);
  for (const f of directives.privateFields) drop.add(f);
  let out = removeHeaders(responseHeaders, drop);
  if (responseTime !== undefined && !hasHeader(out, 'date')) out = setHeader(out, 'Date', formatHttpDate(responseTime));
  return out;
}

// ---------------------------------------------------------------------------
// Freshness and age (RFC 9111 §4.2)
// ---------------------------------------------------------------------------

function lifetimeOf(
  cc: ResponseCacheControl,
  status: number,
  headers: RawHeaders,
  responseTime: number,
  options: PolicyOptions | undefined,
): number {
  // §4.2.1, first match: s-maxage (shared cache), max-age, Expires - Date, heuristic.
  if (cc.sMaxage !== undefined) return cc.sMaxage;
  if (cc.maxAge !== undefined) return cc.maxAge;
  // RFC 9213 §2.2: with a targeted field, Expires is ignored.
  if (!cc.targeted) {
    const expires = parseExpires(headers, responseTime);
    if (expires !== undefined) {
      // §4.2.1: "minus the value of the Date header field (using the time the message was received if it is not present)".
      const date = parseDateHeader(headers, responseTime) ?? responseTime;
      return cap(Math.max(0, Math.floor((expires - date) / 1000)));
    }
  }
  // §4.2.2: heuristics only without explicit expiry, and only for heuristically
  // cacheable statuses or responses explicitly marked cacheable (public).
  if (HEURISTICALLY_CACHEABLE.has(status) || cc.public) {
    const lastModified = parseLastModified(headers, responseTime);
    if (lastModified !== undefined) {
      const date = parseDateHeader(headers, responseTime) ?? responseTime;
      if (lastModified < date) {
        const fraction = options?.heuristicFraction ?? DEFAULT_HEURISTIC_FRACTION;
        const max = options?.maxHeuristicLifetime ?? DEFAULT_MAX_HEURISTIC_LIFETIME;
        return Math.min(max, Math.floor((fraction * (date - lastModified)) / 1000));
      }
    }
  }
  return 0;
}

/**
 * freshness_lifetime in seconds (RFC 9111 §4.2.1, heuristic §4.2.2), for this
 * shared cache (s-maxage first, targeted fields honoured).
 */
export function freshnessLifetime(
  status: number,
  responseHeaders: RawHeaders,
  responseTime: number,
  options?: PolicyOptions,
): number {
  return lifetimeOf(responseDirectives(responseHeaders, targetsOf(options)), status, responseHeaders, responseTime, options);
}

/**
 * current_age in seconds (RFC 9111 §4.2.3), fractional:
 *   apparent_age = max(0, response_time - date_value)
 *   corrected_age_value = age_value + (response_time - request_time)
 *   corrected_initial_age = max(apparent_age, corrected_age_value)
 *   current_age = corrected_initial_age + (now - response_time)
 * A missing/invalid Date counts as response_time (RFC 9110 §6.6.1), an
 * ignored Age as 0 (§5.1). Negative clock differences count as 0; the result
 * is capped at 2^31 (§1.2.2).
 */
export function currentAge(stored: StoredResponse, now: number): number {
  const dateValue = parseDateHeader(stored.headers, stored.responseTime) ?? stored.responseTime;
  const ageValue = parseAge(stored.headers) ?? 0;
  const apparentAge = Math.max(0, stored.responseTime - dateValue) / 1000;
  const responseDelay = Math.max(0, stored.responseTime - stored.requestTime) / 1000;
  const correctedAgeValue = ageValue + responseDelay;
  const correctedInitialAge = Math.max(apparentAge, correctedAgeValue);
  const residentTime = Math.max(0, now - stored.responseTime) / 1000;
  return cap(correctedInitialAge + residentTime);
}

/** The Age header value for a response served from the cache (§4, §5.1): whole seconds, never negative. */
export function ageHeaderValue(stored: StoredResponse, now: number): string {
  return String(Math.max(0, Math.floor(currentAge(stored, now))));
}

/**
 * RFC 9111 §5.2.2.2/.4/.8/.10 and §4.2.4: whether an explicit directive
 * forbids ever serving this response stale (or unvalidated, for no-cache).
 */
export function mustRevalidate(directives: ResponseCacheControl, options?: PolicyOptions): boolean {
  return (
    directives.noCache ||
    directives.mustRevalidate ||
    directives.proxyRevalidate ||
    (directives.sMaxage !== undefined && !(options?.staleWithSMaxage ?? false))
  );
}

// ---------------------------------------------------------------------------
// Reuse decision (RFC 9111 §4, §4.2.4, §5.2.1; RFC 5861)
// ---------------------------------------------------------------------------

export type ReuseDecision =
  /** Serve without contacting the origin. `ttl` = remaining freshness (s). */
  | { readonly kind: 'fresh'; readonly age: number; readonly ttl: number }
  /**
   * Serve stale without waiting for the origin. 'stale-while-revalidate'
   * (RFC 5861 §3): `revalidate` is true, start a background revalidation.
   * 'max-stale' (§5.2.1.2): the client accepts it as is.
   */
  | {
      readonly kind: 'stale-servable';
      readonly reason: 'stale-while-revalidate' | 'max-stale';
      readonly age: number;
      readonly ttl: number;
      readonly revalidate: boolean;
    }
  /**
   * Forward to the origin first. `fwd` is the Cache-Status value to report
   * ('stale' or, when only the request's directives forbade reuse, 'request').
   * `conditional`: the entry has validators (send conditionalRequestHeaders).
   * `useStoredOnError`: on 500/502/503/504 or no answer the entry may be
   * served instead (it is fresh, or within stale-if-error).
   */
  | {
      readonly kind: 'must-revalidate';
      readonly reason: 'stale' | 'no-cache' | 'request-no-cache' | 'request-max-age' | 'request-min-fresh';
      readonly fwd: 'stale' | 'request';
      readonly age: number;
      readonly ttl: number;
      readonly conditional: boolean;
      readonly useStoredOnError: boolean;
    }
  /**
   * The entry cannot serve this request. 'method': not GET/HEAD, forward.
   * 'only-if-cached': the client forbids forwarding; answer 504 (§5.2.1.7).
   */
  | { readonly kind: 'unusable'; readonly reason: 'method' | 'only-if-cached'; readonly age: number; readonly ttl: number };

/**
 * Why a stored entry may answer when the origin failed, or undefined when it may not:
 * 'stale-if-error' within an explicit RFC 5861 §4 window (response or request; the larger wins,
 * and it replaces the default in both directions), else 'stale-on-error' within the configured
 * `staleOnError` (RFC 9111 §4.2.4). A fresh entry (reused after a forced revalidation) reports
 * 'stale-if-error', as it always has.
 */
export type OnErrorDetail = 'stale-if-error' | 'stale-on-error';

function storedUsableOnError(
  status: number,
  cc: ResponseCacheControl,
  req: RequestDirectives,
  ttl: number,
  options: PolicyOptions | undefined,
): OnErrorDetail | undefined {
  // Unqualified no-cache: never used without a successful validation (§5.2.2.4).
  if (cc.noCache) return undefined;
  // Still fresh: §4.3.3 lets the cache "act as if the server failed to respond" and reuse it.
  if (ttl > 0) return 'stale-if-error';
  if (mustRevalidate(cc, options)) return undefined; // §4.2.4, §5.2.2.2 (→ 504)
  const explicit = Math.max(cc.staleIfError ?? -1, req.staleIfError ?? -1);
  if (explicit >= 0) return -ttl <= explicit ? 'stale-if-error' : undefined;
  // s-maxage forbids stale answers (§4.2.4) even where staleWithSMaxage relaxed it for RFC 5861;
  // a stored error (a 503 with max-age) standing in for a new one would only hide the new one.
  if (cc.sMaxage !== undefined || STALE_IF_ERROR_STATUSES.has(status)) return undefined;
  const window = options?.staleOnError ?? 0;
  return window > 0 && -ttl <= window ? 'stale-on-error' : undefined;
}

/**
 * Decides what a stored entry (already selected for the URI and Vary) can do
 * for a new request at `now`.
 */
export function evaluateReuse(
  stored: StoredResponse,
  method: string,
  requestHeaders: RawHeaders,
  now: number,
  options?: PolicyOptions,
): ReuseDecision {
  const cc = responseDirectives(stored.headers, targetsOf(options));
  const req = requestDirectives(requestHeaders);
  const lifetime = lifetimeOf(cc, stored.status, stored.headers, stored.responseTime, options);
  const age = currentAge(stored, now);
  const ttl = lifetime - age;
  if (method !== 'GET' && method !== 'HEAD') return { kind: 'unusable', reason: 'method', age, ttl };

  const forward = (
    reason: 'stale' | 'no-cache' | 'request-no-cache' | 'request-max-age' | 'request-min-fresh',
  ): ReuseDecision => {
    if (req.onlyIfCached) return { kind: 'unusable', reason: 'only-if-cached', age, ttl };
    return {
      kind: 'must-revalidate',
      reason,
      fwd: reason.startsWith('request-') ? 'request' : 'stale',
      age,
      ttl,
      conditional: hasValidators(stored.headers),
      useStoredOnError: storedUsableOnError(stored.status, cc, req, ttl, options) !== undefined,
    };
  };

  // §4 / §5.2.2.4: no-cache → never reused without successful validation.
  if (cc.noCache) return forward('no-cache');
  // §5.2.1.4: the client prefers a validated response.
  if (req.noCache) return forward('request-no-cache');

  if (ttl > 0) {
    // §5.2.1.1: the client wants age <= max-age.
    if (req.maxAge !== undefined && age > req.maxAge) return forward('request-max-age');
    // §5.2.1.3: the client wants to stay fresh for min-fresh more seconds.
    if (req.minFresh !== undefined && ttl < req.minFresh) return forward('request-min-fresh');
    return { kind: 'fresh', age, ttl };
  }

  // Stale. §4.2.4: only with explicit permission, never against must-revalidate & co.
  const staleness = -ttl;
  if (!mustRevalidate(cc, options)) {
    // §5.2.1.2 max-stale (a request max-age still bounds the age; min-fresh asks for freshness).
    if (
      req.maxStale !== undefined &&
      staleness <= req.maxStale &&
      (req.maxAge === undefined || age <= req.maxAge) &&
      req.minFresh === undefined
    ) {
      return { kind: 'stale-servable', reason: 'max-stale', age, ttl, revalidate: false };
    }
    // RFC 5861 §3, unless the client asked for a bounded age or freshness.
    if (
      cc.staleWhileRevalidate !== undefined &&
      staleness <= cc.staleWhileRevalidate &&
      req.maxAge === undefined &&
      req.minFresh === undefined
    ) {
      return { kind: 'stale-servable', reason: 'stale-while-revalidate', age, ttl, revalidate: true };
    }
  }
  return forward('stale');
}

/**
 * Whether the stored entry may answer `requestHeaders` at `now` because the
 * origin failed (500/502/503/504 or no response): fresh and not no-cache, or
 * within the response's or request's stale-if-error window (RFC 5861 §4) and
 * not forbidden by must-revalidate / proxy-revalidate / s-maxage (§4.2.4).
 */
export function usableOnError(
  stored: StoredResponse,
  requestHeaders: RawHeaders,
  now: number,
  options?: PolicyOptions,
): boolean {
  return onErrorDetail(stored, requestHeaders, now, options) !== undefined;
}

/** usableOnError with its reason, for Cache-Status `detail` (OnErrorDetail). */
export function onErrorDetail(
  stored: StoredResponse,
  requestHeaders: RawHeaders,
  now: number,
  options?: PolicyOptions,
): OnErrorDetail | undefined {
  const cc = responseDirectives(stored.headers, targetsOf(options));
  const ttl = lifetimeOf(cc, stored.status, stored.headers, stored.responseTime, options) - currentAge(stored, now);
  return storedUsableOnError(stored.status, cc, requestDirectives(requestHeaders), ttl, options);
}

/**
 * Epoch ms after which the entry can never be served or revalidated usefully:
 * end of freshness plus the larger RFC 5861 window (when allowed), plus
 * `revalidationGrace` when it has validators. For `CacheEntry.expiresAt`.
 */
export function storageDeadline(stored: StoredResponse, options?: PolicyOptions): number {
  const cc = responseDirectives(stored.headers, targetsOf(options));
  const lifetime = lifetimeOf(cc, stored.status, stored.headers, stored.responseTime, options);
  const initialAge = currentAge(stored, stored.responseTime);
  // staleOnError only for a response that arrived fresh: one stale on arrival is not kept for it.
  const onError = cc.sMaxage === undefined && !STALE_IF_ERROR_STATUSES.has(stored.status) && lifetime - initialAge > 0 ? (options?.staleOnError ?? 0) : 0;
  const window = mustRevalidate(cc, options) ? 0 : Math.max(cc.staleWhileRevalidate ?? 0, cc.staleIfError ?? onError);
  const grace = hasValidators(stored.headers) ? (options?.revalidationGrace ?? DEFAULT_REVALIDATION_GRACE) : 0;
  return stored.responseTime + Math.max(0, lifetime - initialAge + window + grace) * 1000;
}

// ---------------------------------------------------------------------------
// Vary (RFC 9111 §4.1)
// ---------------------------------------------------------------------------

/**
 * The secondary key of a request for a stored response's Vary names: one
 * line per name, `name=normalised value` (vary.ts), or just `name` when the request
 * lacks the field (absent only matches absent, §4.1). Returns undefined for
 * `*`, which never matches. Names are lower-case tokens, values cannot hold
 * newlines, so the encoding is unambiguous.
 */
export function varyKey(varyNames: readonly string[], requestHeaders: RawHeaders): string | undefined {
  const names = [...new Set(varyNames.map((n) => n.toLowerCase()))].sort();
  if (names.includes('*')) return undefined;
  const parts: string[] = [];
  for (const name of names) {
    const value = getHeader(requestHeaders, name);
    parts.push(value === undefined ? name : `${name}=${normalizeVaryValue(name, value)}`);
  }
  return parts.join('\n');
}

export type VariantSelection<T> =
  | { readonly entry: T; readonly miss?: undefined }
  | { readonly entry?: undefined; readonly miss: 'uri-miss' | 'vary-miss' };

/**
 * Picks the stored variant whose Vary selection matches the request (§4.1);
 * variants are ordered newest first, so the most recent match wins (§4).
 */
export function selectVariant<T extends { readonly varyNames: readonly string[]; readonly varyKey: string }>(
  object: { readonly variants: readonly T[] } | undefined,
  requestHeaders: RawHeaders,
): VariantSelection<T> {
  if (object === undefined || object.variants.length === 0) return { miss: 'uri-miss' };
  for (const v of object.variants) {
    const k = varyKey(v.varyNames, requestHeaders);
    if (k !== undefined && k === v.varyKey) return { entry: v };
  }
  return { miss: 'vary-miss' };
}

// ---------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------

export interface NewEntryInput {
  readonly key: string;
  /** Headers of the request that produced the response (for the Vary key). */
  readonly requestHeaders: RawHeaders;
  readonly status: number;
  /** Response headers as received. */
  readonly responseHeaders: RawHeaders;
  readonly body: readonly Buffer[];
  readonly requestTime: number;
  readonly responseTime: number;
  /** From isStorable(); recomputed when omitted. */
  readonly directives?: ResponseCacheControl | undefined;
}

/**
 * Builds the CacheEntry to store for a storable response: headers filtered
 * (storableHeaders, Date added if missing), Vary names and key, body size and
 * storage deadline. Throws on `Vary: *` (isStorable refuses those).
 */
export function createEntry(input: NewEntryInput, options?: PolicyOptions): CacheEntry {
  const directives = input.directives ?? responseDirectives(input.responseHeaders, targetsOf(options));
  const headers = storableHeaders(input.responseHeaders, directives, input.responseTime);
  const vary = parseVary(headers);
  const key = varyKey(vary.names, input.requestHeaders);
  if (vary.star || key === undefined) throw new TypeError('a response with Vary: * is never stored');
  const base = {
    key: input.key,
    status: input.status,
    headers,
    body: input.body,
    bodySize: input.body.reduce((n, c) => n + c.length, 0),
    requestTime: input.requestTime,
    responseTime: input.responseTime,
    varyNames: vary.names,
    varyKey: key,
  };
  return { ...base, expiresAt: storageDeadline(base, options) };
}

/** The revalidation exchange that produced a 304. */
export interface RevalidationExchange {
  /** Headers of the client request that triggered the revalidation (Vary, request no-store). */
  readonly requestHeaders: RawHeaders;
  readonly requestTime: number;
  readonly responseTime: number;
}

/**
 * The entry after a 304 (RFC 9111 §4.3.4): headers merged per §3.2
 * (updateStoredHeaders), times reset to the revalidation exchange (age
 * restarts, §4.2), same body. If the merged Vary names differ, the Vary key
 * is recomputed from the revalidating request (which the 304 validated).
 *
 * `storable` re-applies §3 to the merged response: a 304 may add no-store,
 * private, Vary: * ...; the refreshed response can still answer the current
 * request, but when `storable.storable` is false the layer must delete the
 * stored entry instead of writing the refreshed one (no-store: "best-effort
 * attempt to remove", §5.2.2.5).
 */
export function refreshEntry(
  entry: CacheEntry,
  notModifiedHeaders: RawHeaders,
  exchange: RevalidationExchange,
  options?: PolicyOptions,
): { entry: CacheEntry; storable: Storability } {
  const headers = updateStoredHeaders(entry.headers, notModifiedHeaders, { ...options, receivedAt: exchange.responseTime });
  const storable = isStorable('GET', exchange.requestHeaders, entry.status, headers, options);
  const vary = parseVary(headers);
  let varyNames = entry.varyNames;
  let key = entry.varyKey;
  if (!vary.star && !sameNames(vary.names, entry.varyNames)) {
    varyNames = vary.names;
    key = varyKey(vary.names, exchange.requestHeaders) ?? entry.varyKey;
  }
  const base = {
    ...entry,
    headers,
    varyNames,
    varyKey: key,
    requestTime: exchange.requestTime,
    responseTime: exchange.responseTime,
  };
  return { entry: { ...base, expiresAt: storageDeadline(base, options) }, storable };
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

// ---------------------------------------------------------------------------
// Validation (RFC 9111 §4.3, RFC 9110 §13)
// ---------------------------------------------------------------------------

export interface EntityTag {
  readonly weak: boolean;
  /** The opaque-tag including its quotes (or the raw text of a malformed, unquoted tag). */
  readonly opaque: string;
}

export function parseEntityTag(text: string): EntityTag | undefined {
  let s = text.trim();
  let weak = false;
  if (s.startsWith('W/') || s.startsWith('w/')) {
    weak = true;
    s = s.slice(2);
  }
  if (s === '') return undefined;
  if (s.startsWith('"')) {
    const end = s.indexOf('"', 1);
    if (end < 0) return undefined;
    return { weak, opaque: s.slice(0, end + 1) };
  }
  return { weak, opaque: s }; // lenient: some origins send unquoted tags
}

/** RFC 9110 §8.8.3.2 weak comparison: opaque-tags equal. */
function weakMatch(a: EntityTag, b: EntityTag): boolean {
  return a.opaque === b.opaque;
}

/** RFC 9110 §8.8.3.2 strong comparison: both strong and opaque-tags equal (also If-Range's, range.ts). */
export function strongMatch(a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && a.opaque === b.opaque;
}

function storedETag(headers: RawHeaders): EntityTag | undefined {
  const line = getHeaderLines(headers, 'etag')[0];
  return line === undefined ? undefined : parseEntityTag(line);
}

/** Whether the stored response has a validator (ETag or Last-Modified). */
export function hasValidators(headers: RawHeaders): boolean {
  return hasHeader(headers, 'etag') || hasHeader(headers, 'last-modified');
}

/**
 * Request headers for revalidating `stored` (RFC 9111 §4.3.1): the client's
 * If-None-Match / If-Modified-Since are replaced by the stored ETag
 * (If-None-Match, MUST) and Last-Modified (If-Modified-Since, SHOULD). The
 * client's own conditional is evaluated by the cache afterwards, against the
 * refreshed entry (evaluateConditional). Without validators the request is
 * returned unchanged (a plain forward).
 */
export function conditionalRequestHeaders(requestHeaders: RawHeaders, stored: StoredResponse): string[] {
  const etag = getHeaderLines(stored.headers, 'etag')[0];
  const lastModified = getHeaderLines(stored.headers, 'last-modified')[0];
  if (etag === undefined && lastModified === undefined) return [...requestHeaders];
  const out = removeHeaders(requestHeaders, ['if-none-match', 'if-modified-since']);
  if (etag !== undefined) out.push('If-None-Match', etag);
  if (lastModified !== undefined) out.push('If-Modified-Since', lastModified);
  return out;
}

/**
 * Evaluates a client's conditional GET/HEAD against the stored response the
 * cache is about to serve (RFC 9111 §4.3.2, precedence RFC 9110 §13.2.2):
 * If-None-Match first (weak comparison, `*` matches); only without it,
 * If-Modified-Since against Last-Modified, else Date, else the time the
 * response was received. If-Match / If-Unmodified-Since are not evaluated by
 * a cache (§4.3.2). Only stored 200 responses are evaluated. Returns 304 (send
 * Not Modified, see notModifiedHeaders) or 200 (send the stored response as is).
 */
export function evaluateConditional(method: string, requestHeaders: RawHeaders, stored: StoredResponse): 304 | 200 {
  if ((method !== 'GET' && method !== 'HEAD') || stored.status !== 200) return 200;
  const inm = getHeader(requestHeaders, 'if-none-match');
  if (inm !== undefined) {
    if (inm.trim() === '*') return 304;
    const etag = storedETag(stored.headers);
    if (etag === undefined) return 200;
    for (const member of splitList(inm)) {
      const tag = parseEntityTag(member);
      if (tag !== undefined && weakMatch(tag, etag)) return 304;
    }
    return 200;
  }
  // RFC 9110 §13.1.3: ignore an invalid date or a field with more than one member.
  const ims = getHeaderLines(requestHeaders, 'if-modified-since');
  if (ims.length !== 1) return 200;
  const since = parseHttpDate(ims[0]!, stored.responseTime);
  if (since === undefined) return 200;
  const reference =
    parseLastModified(stored.headers, stored.responseTime) ??
    parseDateHeader(stored.headers, stored.responseTime) ??
    stored.responseTime;
  return reference <= since ? 304 : 200;
}

/**
 * Header fields of a 304 generated from a stored response (RFC 9110 §15.4.5):
 * Cache-Control, Content-Location, Date, ETag, Expires, Vary, plus
 * Last-Modified and the targeted cache-control fields, which guide caches
 * downstream. The caller adds Age and Cache-Status.
 */
export function notModifiedHeaders(storedHeaders: RawHeaders, options?: PolicyOptions): string[] {
  const keep = new Set(
    ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified'].concat(
      targetsOf(options).map((t) => t.toLowerCase()),
    ),
  );
  const out: string[] = [];
  for (let i = 0; i + 1 < storedHeaders.length; i += 2) {
    if (keep.has(storedHeaders[i]!.toLowerCase())) out.push(storedHeaders[i]!, storedHeaders[i + 1]!);
  }
  return out;
}

/**
 * Whether a 304 received while revalidating `storedHeaders` applies to it
 * (RFC 9111 §4.3.4): a strong ETag must match strongly, a weak one weakly; a
 * Last-Modified alone must be equal; a 304 with no validator at all is taken
 * as answering the validators the cache sent for this entry (see header).
 */
export function notModifiedApplies(storedHeaders: RawHeaders, notModified: RawHeaders): boolean {
  const line = getHeaderLines(notModified, 'etag')[0];
  if (line !== undefined) {
    const tag = parseEntityTag(line);
    const mine = storedETag(storedHeaders);
    if (tag === undefined || mine === undefined) return false;
    return tag.weak ? weakMatch(tag, mine) : strongMatch(tag, mine);
  }
  const lm = parseLastModified(notModified);
  if (lm !== undefined) return parseLastModified(storedHeaders) === lm;
  return true;
}

/**
 * Merges a 304's header fields into a stored response's (RFC 9111 §3.2,
 * §4.3.4): each field in the 304 replaces all stored lines of that name (at
 * the position of the first one), others are kept, except that:
 *  - fields never stored (§3.1: Connection and the fields it lists,
 *    hop-by-hop, proxy-authentication, Set-Cookie) are not taken;
 *  - Content-Length (§3.2, MUST), Content-Encoding (the stored bytes depend on
 *    it) and Content-Range (automatically processed) keep their stored values;
 *  - Age restarts: the 304's Age, or none (the response was just validated);
 *  - Date: the 304's, or `receivedAt` when it has none (RFC 9110 §6.6.1);
 *  - fields named by the merged no-cache="..." / private="..." are removed.
 */
export function updateStoredHeaders(
  stored: RawHeaders,
  notModified: RawHeaders,
  options?: PolicyOptions & { receivedAt?: number | undefined },
): string[] {
  const excluded = new Set<string>([...NEVER_STORED, ...NOT_UPDATED_BY_304]);
  const connection = getHeader(notModified, 'connection');
  if (connection !== undefined) for (const f of splitList(connection)) excluded.add(f.toLowerCase());

  const updates = new Map<string, string[]>(); // lower name → [name, value, ...] lines from the 304
  for (let i = 0; i + 1 < notModified.length; i += 2) {
    const lower = notModified[i]!.toLowerCase();
    if (excluded.has(lower)) continue;
    let lines = updates.get(lower);
    if (!lines) updates.set(lower, (lines = []));
    lines.push(notModified[i]!, notModified[i + 1]!);
  }

  let out: string[] = [];
  const placed = new Set<string>();
  for (let i = 0; i + 1 < stored.length; i += 2) {
    const lower = stored[i]!.toLowerCase();
    const lines = updates.get(lower);
    if (lines === undefined) {
      if (lower === 'age') continue; // age restarts at validation
      out.push(stored[i]!, stored[i + 1]!);
    } else if (!placed.has(lower)) {
      out.push(...lines);
      placed.add(lower);
    }
  }
  for (const [lower, lines] of updates) if (!placed.has(lower)) out.push(...lines);

  if (options?.receivedAt !== undefined && !hasHeader(notModified, 'date')) {
    out = setHeader(out, 'Date', formatHttpDate(options.receivedAt));
  }
  return storableHeaders(out, responseDirectives(out, targetsOf(options)));
}

// ---------------------------------------------------------------------------
// Invalidation (RFC 9111 §4.4)
// ---------------------------------------------------------------------------

/**
 * The URIs to invalidate after `method` got `status`: none for safe methods or
 * error statuses; otherwise the target URI (MUST) plus Location and
 * Content-Location when they resolve to the same origin (scheme + host + port;
 * other origins MUST NOT be invalidated). Returned as RequestTargets for
 * key.ts `cacheKey` (with a GET method class, since only GET is stored).
 */
export function invalidationTargets(
  method: string,
  status: number,
  target: RequestTarget,
  responseHeaders: RawHeaders,
): RequestTarget[] {
  if (SAFE_METHODS.has(method) || status < 200 || status > 399) return [];
  let scheme: Scheme = target.scheme;
  let authority = target.authority;
  let path = target.target;
  if (!path.startsWith('/')) {
    const abs = splitAbsoluteTarget(path);
    if (!abs) return [];
    ({ scheme, authority, pathAndQuery: path } = abs);
  }
  const origin = normalizeAuthority(authority, scheme);
  const out: RequestTarget[] = [{ scheme, authority, target: path }];
  if (origin === undefined) return out;
  let base: URL;
  try {
    base = new URL(`${scheme}://${origin}${path}`);
  } catch {
    return out;
  }
  const seen = new Set<string>([path]);
  for (const field of ['location', 'content-location']) {
    const value = getHeaderLines(responseHeaders, field)[0];
    if (value === undefined) continue;
    let url: URL;
    try {
      url = new URL(value.trim(), base);
    } catch {
      continue;
    }
    const otherScheme = url.protocol.slice(0, -1);
    if (otherScheme !== scheme) continue;
    if (normalizeAuthority(url.host, scheme) !== origin) continue;
    const otherPath = url.pathname + url.search;
    if (seen.has(otherPath)) continue;
    seen.add(otherPath);
    out.push({ scheme, authority, target: otherPath });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Cache-Status (RFC 9211)
// ---------------------------------------------------------------------------

/** RFC 9211 §2.2 fwd values. */
export const FORWARD_REASONS = ['bypass', 'method', 'uri-miss', 'vary-miss', 'miss', 'request', 'stale', 'partial'] as const;
export type ForwardReason = (typeof FORWARD_REASONS)[number];

export interface CacheStatusInfo {
  /** Served from cache without going forward (§2.1). */
  readonly hit?: boolean | undefined;
  /** Why the request went forward (§2.2). */
  readonly fwd?: ForwardReason | undefined;
  /** Status of the forwarded response (§2.3). */
  readonly fwdStatus?: number | undefined;
  /** Remaining freshness in seconds, negative when stale (§2.4); floored. */
  readonly ttl?: number | undefined;
  /** The forwarded response was stored (§2.5). */
  readonly stored?: boolean | undefined;
  /** The request was collapsed with another one (§2.6). */
  readonly collapsed?: boolean | undefined;
  /** Cache key, for debugging (§2.7). */
  readonly key?: string | undefined;
  /** Implementation-specific detail (§2.8), e.g. a NotStorableReason. */
  readonly detail?: string | undefined;
}

const SF_TOKEN = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/;

/**
 * A Structured Field String (RFC 8941 §3.3.3): quoted, `\` and `"` escaped;
 * characters outside printable ASCII (not representable) become `?`.
 */
export function sfString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c < 0x20 || c > 0x7e) out += '?';
    else out += ch;
  }
  return `${out}"`;
}

/**
 * One Cache-Status list member (RFC 9211 §2), e.g. `kubeproxy; hit; ttl=42`
 * or `kubeproxy; fwd=miss; stored`. The cache name is emitted as a token when
 * it is one, otherwise as a string.
 */
export function cacheStatus(info: CacheStatusInfo, cacheName = 'kubeproxy'): string {
  // Built by concatenation (one per response on the hit path), members joined with "; ".
  let v = cacheName === 'kubeproxy' || SF_TOKEN.test(cacheName) ? cacheName : sfString(cacheName);
  if (info.hit) v += '; hit';
  if (info.fwd !== undefined) v += `; fwd=${info.fwd}`;
  if (info.fwdStatus !== undefined) v += `; fwd-status=${Math.trunc(info.fwdStatus)}`;
  if (info.ttl !== undefined && Number.isFinite(info.ttl)) {
    const ttl = Math.max(-999_999_999_999_999, Math.min(999_999_999_999_999, Math.floor(info.ttl)));
    v += `; ttl=${ttl}`;
  }
  if (info.stored) v += '; stored';
  if (info.collapsed) v += '; collapsed';
  if (info.key !== undefined) v += `; key=${sfString(info.key)}`;
  if (info.detail !== undefined) v += `; detail=${sfString(info.detail)}`;
  return v;
}
