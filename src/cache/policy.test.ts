import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHttpDate } from './directives.ts';
import { getHeader, getHeaderLines, hasHeader } from './headers.ts';
import {
  ageHeaderValue,
  cacheStatus,
  conditionalRequestHeaders,
  createEntry,
  currentAge,
  evaluateConditional,
  evaluateReuse,
  freshnessLifetime,
  invalidationTargets,
  isStorable,
  mustRevalidate,
  notModifiedApplies,
  notModifiedHeaders,
  refreshEntry,
  selectVariant,
  sfString,
  storableHeaders,
  storageDeadline,
  updateStoredHeaders,
  usableOnError,
  onErrorDetail,
  varyKey,
  type StoredResponse,
} from './policy.ts';
import { responseDirectives } from './directives.ts';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);
const S = 1000;
const date = (ms: number) => formatHttpDate(ms);

/** A response received at T0 for a request sent at T0, Date: T0 unless headers say otherwise. */
function stored(headers: string[], opts: { status?: number; requestTime?: number; responseTime?: number } = {}): StoredResponse {
  const responseTime = opts.responseTime ?? T0;
  const withDate = headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'date')
    ? headers
    : ['Date', date(responseTime), ...headers];
  return { status: opts.status ?? 200, headers: withDate, requestTime: opts.requestTime ?? responseTime, responseTime };
}

const storable = (resHeaders: string[], opts: { method?: string; status?: number; req?: string[] } = {}) =>
  isStorable(opts.method ?? 'GET', opts.req ?? [], opts.status ?? 200, resHeaders);
const reason = (s: ReturnType<typeof isStorable>) => (s.storable ? 'storable' : s.reason);
/** §4.2: response_is_fresh = (freshness_lifetime > current_age). */
const isFresh = (s: StoredResponse, now: number) => freshnessLifetime(s.status, s.headers, s.responseTime) > currentAge(s, now);

describe('storing responses (RFC 9111 §3)', () => {
  test('a response with private is never stored in the shared cache', () => {
    assert.equal(reason(storable(['Cache-Control', 'private, max-age=60'])), 'private');
  });

  test('a response with private="X-User" is stored without the X-User header', () => {
    const res = ['Cache-Control', 'private="X-User", max-age=60', 'X-User', 'alice', 'Content-Type', 'text/plain'];
    const s = storable(res);
    assert.ok(s.storable);
    const headers = storableHeaders(res, s.directives);
    assert.equal(hasHeader(headers, 'x-user'), false);
    assert.equal(getHeader(headers, 'content-type'), 'text/plain');
  });

  test('no-store in the response prevents storage', () => {
    assert.equal(reason(storable(['Cache-Control', 'no-store, max-age=60'])), 'no-store');
  });

  test('no-store in the request prevents storage of the response', () => {
    assert.equal(reason(storable(['Cache-Control', 'max-age=60'], { req: ['Cache-Control', 'no-store'] })), 'request-no-store');
  });

  test('HEAD and POST responses are not stored', () => {
    assert.equal(reason(storable(['Cache-Control', 'max-age=60'], { method: 'HEAD' })), 'method');
    assert.equal(reason(storable(['Cache-Control', 'max-age=60'], { method: 'POST' })), 'method');
  });

  test('a 206 partial response is never stored (ranges are not combined)', () => {
    assert.equal(reason(storable(['Cache-Control', 'max-age=60'], { status: 206 })), 'partial-content');
  });

  test('a 1xx or 304 response is never stored', () => {
    assert.equal(reason(storable(['Cache-Control', 'max-age=60'], { status: 103 })), 'status');
    assert.equal(reason(storable(['Cache-Control', 'max-age=60'], { status: 304 })), 'status');
  });

  test('a 200 without caching headers is storable (heuristically cacheable)', () => {
    assert.equal(reason(storable([])), 'storable');
    assert.equal(reason(storable([], { status: 404 })), 'storable');
    assert.equal(reason(storable([], { status: 301 })), 'storable');
  });

  test('a 302 or 500 is stored only with explicit freshness', () => {
    assert.equal(reason(storable([], { status: 302 })), 'no-freshness-info');
    assert.equal(reason(storable([], { status: 500 })), 'no-freshness-info');
    assert.equal(reason(storable(['Cache-Control', 'max-age=5'], { status: 302 })), 'storable');
    assert.equal(reason(storable(['Expires', date(T0 + 60 * S)], { status: 500 })), 'storable');
    assert.equal(reason(storable(['Cache-Control', 'public'], { status: 307 })), 'storable');
  });

  test('a request with Authorization is stored only with public, s-maxage or must-revalidate (§3.5)', () => {
    const req = ['Authorization', 'Bearer x'];
    assert.equal(reason(storable(['Cache-Control', 'max-age=60'], { req })), 'authorization');
    assert.equal(reason(storable(['Cache-Control', 'public, max-age=60'], { req })), 'storable');
    assert.equal(reason(storable(['Cache-Control', 's-maxage=60'], { req })), 'storable');
    assert.equal(reason(storable(['Cache-Control', 'must-revalidate, max-age=60'], { req })), 'storable');
  });

  test('a response with Vary: * is not stored', () => {
    assert.equal(reason(storable(['Cache-Control', 'max-age=60', 'Vary', 'Accept, *'])), 'vary-star');
  });

  test('a response with Set-Cookie is not stored unless explicitly shared', () => {
    assert.equal(reason(storable(['Cache-Control', 'max-age=60', 'Set-Cookie', 'sid=1'])), 'set-cookie');
    assert.equal(reason(storable(['Set-Cookie', 'sid=1'])), 'set-cookie');
    assert.equal(reason(storable(['Cache-Control', 'public, max-age=60', 'Set-Cookie', 'sid=1'])), 'storable');
    assert.equal(reason(storable(['Cache-Control', 's-maxage=60', 'Set-Cookie', 'sid=1'])), 'storable');
    assert.equal(reason(storable(['CDN-Cache-Control', 'max-age=60', 'Set-Cookie', 'sid=1'])), 'storable');
    assert.equal(reason(storable(['Cache-Control', 'no-cache="Set-Cookie", max-age=60', 'Set-Cookie', 'a=1'])), 'storable');
  });

  test('a stored response never replays a Set-Cookie to other users', () => {
    const res = ['Cache-Control', 'public, max-age=60', 'Set-Cookie', 'sid=1', 'set-cookie', 'b=2'];
    const entry = createEntry({ key: 'k', requestHeaders: [], status: 200, responseHeaders: res, body: [], requestTime: T0, responseTime: T0 });
    assert.equal(hasHeader(entry.headers, 'set-cookie'), false);
  });

  test('must-understand with an understood status overrides no-store; with an unknown status nothing is stored', () => {
    assert.equal(reason(storable(['Cache-Control', 'must-understand, no-store, max-age=60'])), 'storable');
    assert.equal(reason(storable(['Cache-Control', 'must-understand, no-store, max-age=60'], { status: 299 })), 'must-understand');
  });

  test('CDN-Cache-Control lets this cache store what Cache-Control keeps private', () => {
    assert.equal(reason(storable(['Cache-Control', 'private', 'CDN-Cache-Control', 'max-age=600'])), 'storable');
    assert.equal(reason(storable(['Cache-Control', 'max-age=600', 'CDN-Cache-Control', 'no-store'])), 'no-store');
  });

  test('Connection-listed, hop-by-hop and proxy-authentication headers are never stored (§3.1)', () => {
    const res = [
      'Connection', 'keep-alive, X-Hop', 'Keep-Alive', 'timeout=5', 'X-Hop', '1', 'Transfer-Encoding', 'chunked',
      'Proxy-Authenticate', 'Basic', 'Upgrade', 'h2c', 'ETag', '"a"',
    ];
    const headers = storableHeaders(res, responseDirectives(res));
    assert.deepEqual(headers, ['ETag', '"a"']);
  });

  test('a response without Date gets one when stored (RFC 9110 §6.6.1)', () => {
    const headers = storableHeaders(['Cache-Control', 'max-age=1'], responseDirectives([]), T0);
    assert.equal(getHeader(headers, 'date'), date(T0));
  });
});

describe('freshness lifetime (RFC 9111 §4.2.1, §4.2.2)', () => {
  const life = (headers: string[], status = 200, options = {}) =>
    freshnessLifetime(status, ['Date', date(T0), ...headers], T0, options);

  test('s-maxage wins over max-age and Expires', () => {
    assert.equal(life(['Cache-Control', 'max-age=60, s-maxage=600', 'Expires', date(T0 + 5 * S)]), 600);
  });

  test('max-age wins over Expires', () => {
    assert.equal(life(['Cache-Control', 'max-age=60', 'Expires', date(T0 + 3600 * S)]), 60);
  });

  test('Expires minus Date gives the lifetime; without Date the receipt time is used', () => {
    assert.equal(life(['Expires', date(T0 + 120 * S)]), 120);
    assert.equal(freshnessLifetime(200, ['Expires', date(T0 + 120 * S)], T0 - 30 * S), 150);
  });

  test('Expires: 0 means already stale', () => {
    assert.equal(life(['Expires', '0']), 0);
    assert.equal(isFresh(stored(['Expires', '0']), T0), false);
  });

  test('an Expires before Date gives no freshness', () => {
    assert.equal(life(['Expires', date(T0 - 60 * S)]), 0);
  });

  test('with a targeted field, Expires is ignored (RFC 9213 §2.2)', () => {
    assert.equal(life(['CDN-Cache-Control', 'must-revalidate', 'Expires', date(T0 + 3600 * S)], 302), 0);
    assert.equal(life(['CDN-Cache-Control', 'max-age=5', 'Cache-Control', 'max-age=500']), 5);
  });

  test('heuristic freshness is 10% of the time since Last-Modified, capped at one day', () => {
    assert.equal(life(['Last-Modified', date(T0 - 1000 * S)]), 100);
    assert.equal(life(['Last-Modified', date(T0 - 100 * 86_400 * S)]), 86_400);
    assert.equal(life(['Last-Modified', date(T0 - 100 * 86_400 * S)], 200, { maxHeuristicLifetime: 3600 }), 3600);
    assert.equal(life(['Last-Modified', date(T0 - 1000 * S)], 200, { heuristicFraction: 0.5 }), 500);
  });

  test('no heuristic freshness for a status that is not heuristically cacheable, unless public', () => {
    assert.equal(life(['Last-Modified', date(T0 - 1000 * S)], 302), 0);
    assert.equal(life(['Last-Modified', date(T0 - 1000 * S), 'Cache-Control', 'public'], 302), 100);
  });

  test('no heuristic freshness when an explicit expiration is present', () => {
    assert.equal(life(['Last-Modified', date(T0 - 1000 * S), 'Cache-Control', 'max-age=0']), 0);
    assert.equal(life(['Last-Modified', date(T0 - 1000 * S), 'Expires', '0']), 0);
  });
});

describe('age (RFC 9111 §4.2.3)', () => {
  test('the age counts the time the response spent in the cache', () => {
    assert.equal(currentAge(stored([]), T0 + 42 * S), 42);
  });

  test('an upstream Age plus the response delay is the initial age', () => {
    const s = stored(['Age', '100'], { requestTime: T0 - 2 * S, responseTime: T0 });
    assert.equal(currentAge(s, T0), 102);
    assert.equal(currentAge(s, T0 + 10 * S), 112);
  });

  test('a Date older than the receipt time counts when it exceeds the Age header', () => {
    const s = stored(['Date', date(T0 - 300 * S), 'Age', '10']);
    assert.equal(currentAge(s, T0), 300);
  });

  test('a Date in the future never makes the age negative', () => {
    const s = stored(['Date', date(T0 + 3600 * S)]);
    assert.equal(currentAge(s, T0), 0);
    assert.equal(ageHeaderValue(s, T0 - 5 * S), '0');
  });

  test('an Age header of -5 is ignored in the age calculation', () => {
    assert.equal(currentAge(stored(['Age', '-5']), T0 + 3 * S), 3);
  });

  test('the served Age is whole seconds and replaces the upstream Age', () => {
    const s = stored(['Age', '10', 'Cache-Control', 'max-age=60']);
    assert.equal(ageHeaderValue(s, T0 + 2500), '12');
  });

  test('a response is fresh while its lifetime exceeds its age, stale from equality on', () => {
    const s = stored(['Cache-Control', 'max-age=10']);
    assert.equal(isFresh(s, T0 + 9999), true);
    assert.equal(isFresh(s, T0 + 10 * S), false);
  });
});

describe('reusing a stored response (RFC 9111 §4, §4.2.4, §5.2; RFC 5861)', () => {
  const decide = (headers: string[], req: string[] = [], at = T0, method = 'GET', options = {}) =>
    evaluateReuse(stored(headers), method, req, at, options);

  test('a fresh response is served without contacting the origin', () => {
    const d = decide(['Cache-Control', 'max-age=60'], [], T0 + 15 * S);
    assert.equal(d.kind, 'fresh');
    assert.equal(d.age, 15);
    assert.equal(d.ttl, 45);
  });

  test('a HEAD request is answered by the stored GET response', () => {
    assert.equal(decide(['Cache-Control', 'max-age=60'], [], T0, 'HEAD').kind, 'fresh');
  });

  test('a POST request never uses a stored response', () => {
    assert.deepEqual(
      [decide(['Cache-Control', 'max-age=60'], [], T0, 'POST').kind, (decide(['Cache-Control', 'max-age=60'], [], T0, 'POST') as { reason: string }).reason],
      ['unusable', 'method'],
    );
  });

  test('a stale response is revalidated, conditionally when it has validators', () => {
    const d = decide(['Cache-Control', 'max-age=10', 'ETag', '"v1"'], [], T0 + 20 * S);
    assert.equal(d.kind, 'must-revalidate');
    if (d.kind !== 'must-revalidate') return;
    assert.equal(d.reason, 'stale');
    assert.equal(d.fwd, 'stale');
    assert.equal(d.conditional, true);
    assert.equal(d.ttl, -10);
    const noValidator = decide(['Cache-Control', 'max-age=10'], [], T0 + 20 * S);
    assert.equal(noValidator.kind === 'must-revalidate' && noValidator.conditional, false);
  });

  test('no-cache on the response forces revalidation even while fresh', () => {
    const d = decide(['Cache-Control', 'no-cache, max-age=600'], [], T0 + S);
    assert.equal(d.kind, 'must-revalidate');
    assert.equal(d.kind === 'must-revalidate' && d.reason, 'no-cache');
    assert.equal(d.kind === 'must-revalidate' && d.useStoredOnError, false);
  });

  test('a client no-cache forces revalidation of a fresh response (fwd=request)', () => {
    const d = decide(['Cache-Control', 'max-age=600'], ['Cache-Control', 'no-cache'], T0 + S);
    assert.equal(d.kind === 'must-revalidate' && d.fwd, 'request');
  });

  test('a client Pragma: no-cache forces revalidation when it sends no Cache-Control', () => {
    assert.equal(decide(['Cache-Control', 'max-age=600'], ['Pragma', 'no-cache']).kind, 'must-revalidate');
  });

  test('a client max-age=0 forces revalidation of a response with any age', () => {
    const d = decide(['Cache-Control', 'max-age=600'], ['Cache-Control', 'max-age=0'], T0 + S);
    assert.equal(d.kind === 'must-revalidate' && d.reason, 'request-max-age');
    assert.equal(decide(['Cache-Control', 'max-age=600'], ['Cache-Control', 'max-age=5'], T0 + 3 * S).kind, 'fresh');
  });

  test('a client min-fresh refuses a response about to expire', () => {
    const d = decide(['Cache-Control', 'max-age=60'], ['Cache-Control', 'min-fresh=30'], T0 + 40 * S);
    assert.equal(d.kind === 'must-revalidate' && d.reason, 'request-min-fresh');
    assert.equal(decide(['Cache-Control', 'max-age=60'], ['Cache-Control', 'min-fresh=30'], T0 + 10 * S).kind, 'fresh');
  });

  test('a client max-stale accepts a stale response within its limit', () => {
    const h = ['Cache-Control', 'max-age=10'];
    assert.equal(decide(h, ['Cache-Control', 'max-stale=30'], T0 + 30 * S).kind, 'stale-servable');
    assert.equal(decide(h, ['Cache-Control', 'max-stale=30'], T0 + 50 * S).kind, 'must-revalidate');
    const any = decide(h, ['Cache-Control', 'max-stale'], T0 + 86_400 * S);
    assert.equal(any.kind === 'stale-servable' && any.reason, 'max-stale');
  });

  test('must-revalidate, proxy-revalidate and s-maxage refuse max-stale', () => {
    for (const cc of ['max-age=10, must-revalidate', 'max-age=10, proxy-revalidate', 's-maxage=10']) {
      assert.equal(decide(['Cache-Control', cc], ['Cache-Control', 'max-stale'], T0 + 20 * S).kind, 'must-revalidate', cc);
    }
  });

  test('stale-while-revalidate serves a stale response and asks for a background revalidation', () => {
    const d = decide(['Cache-Control', 'max-age=10, stale-while-revalidate=30'], [], T0 + 25 * S);
    assert.equal(d.kind, 'stale-servable');
    assert.equal(d.kind === 'stale-servable' && d.reason, 'stale-while-revalidate');
    assert.equal(d.kind === 'stale-servable' && d.revalidate, true);
    assert.equal(d.ttl, -15);
  });

  test('past the stale-while-revalidate window the response must be revalidated', () => {
    assert.equal(decide(['Cache-Control', 'max-age=10, stale-while-revalidate=30'], [], T0 + 41 * S).kind, 'must-revalidate');
  });

  test('a client asking for a bounded age does not get a stale-while-revalidate response', () => {
    const h = ['Cache-Control', 'max-age=10, stale-while-revalidate=30'];
    assert.equal(decide(h, ['Cache-Control', 'max-age=3600'], T0 + 20 * S).kind, 'must-revalidate');
  });

  test('s-maxage blocks stale-while-revalidate unless staleWithSMaxage is set', () => {
    const h = ['Cache-Control', 's-maxage=10, stale-while-revalidate=30'];
    assert.equal(decide(h, [], T0 + 20 * S).kind, 'must-revalidate');
    assert.equal(decide(h, [], T0 + 20 * S, 'GET', { staleWithSMaxage: true }).kind, 'stale-servable');
    assert.equal(mustRevalidate(responseDirectives(h)), true);
  });

  test('stale-if-error lets a stale response answer when the origin fails, within its window', () => {
    const h = ['Cache-Control', 'max-age=10, stale-if-error=60'];
    const d = decide(h, [], T0 + 30 * S);
    assert.equal(d.kind === 'must-revalidate' && d.useStoredOnError, true);
    assert.equal(usableOnError(stored(h), [], T0 + 70 * S), true);
    assert.equal(usableOnError(stored(h), [], T0 + 71 * S), false);
    assert.equal(usableOnError(stored(['Cache-Control', 'max-age=10']), [], T0 + 30 * S), false);
  });

  test('a client stale-if-error also permits a stale response on origin failure', () => {
    assert.equal(usableOnError(stored(['Cache-Control', 'max-age=10']), ['Cache-Control', 'stale-if-error=100'], T0 + 50 * S), true);
  });

  test('must-revalidate forbids a stale response even when the origin is down (504)', () => {
    const h = ['Cache-Control', 'max-age=10, must-revalidate, stale-if-error=600'];
    assert.equal(usableOnError(stored(h), ['Cache-Control', 'stale-if-error=600'], T0 + 20 * S), false);
  });

  test('staleOnError lets a stale response answer an origin failure when nothing forbids it (RFC 9111 §4.2.4)', () => {
    const o = { staleOnError: 600 };
    const plain = stored(['Cache-Control', 'max-age=10']);
    assert.equal(onErrorDetail(plain, [], T0 + 610 * S, o), 'stale-on-error');
    assert.equal(onErrorDetail(plain, [], T0 + 611 * S, o), undefined, 'past the window');
    assert.equal(onErrorDetail(plain, [], T0 + 20 * S), undefined, 'off by default in the policy');
    for (const cc of ['max-age=10, must-revalidate', 'max-age=10, proxy-revalidate', 's-maxage=10', 'no-cache']) {
      assert.equal(onErrorDetail(stored(['Cache-Control', cc]), [], T0 + 20 * S, { ...o, staleWithSMaxage: true }), undefined, cc);
    }
    assert.equal(onErrorDetail(stored(['Cache-Control', 'max-age=10'], { status: 503 }), [], T0 + 20 * S, o), undefined, 'a stored error never stands in');
    // An explicit stale-if-error replaces the window, longer or shorter.
    assert.equal(onErrorDetail(stored(['Cache-Control', 'max-age=10, stale-if-error=5']), [], T0 + 20 * S, o), undefined);
    assert.equal(onErrorDetail(stored(['Cache-Control', 'max-age=10, stale-if-error=5000']), [], T0 + 1000 * S, o), 'stale-if-error');
    // Kept in the store for it only when the response arrived fresh.
    assert.equal(storageDeadline(plain, o), T0 + 610 * S);
    assert.equal(storageDeadline(stored(['Cache-Control', 'max-age=0']), o), T0);
  });

  test('a still-fresh response may answer when a client-forced revalidation fails', () => {
    const d = decide(['Cache-Control', 'max-age=600'], ['Cache-Control', 'no-cache'], T0 + S);
    assert.equal(d.kind === 'must-revalidate' && d.useStoredOnError, true);
  });

  test('only-if-cached with a response that needs revalidation gets a 504 (unusable)', () => {
    const d = decide(['Cache-Control', 'max-age=10'], ['Cache-Control', 'only-if-cached'], T0 + 20 * S);
    assert.equal(d.kind === 'unusable' && d.reason, 'only-if-cached');
    assert.equal(decide(['Cache-Control', 'max-age=10'], ['Cache-Control', 'only-if-cached'], T0).kind, 'fresh');
  });

  test('an entry is kept for its freshness, the stale windows and, with validators, a revalidation grace', () => {
    assert.equal(storageDeadline(stored(['Cache-Control', 'max-age=60, stale-if-error=300'])), T0 + 360 * S);
    assert.equal(storageDeadline(stored(['Cache-Control', 'max-age=60, must-revalidate, stale-if-error=300'])), T0 + 60 * S);
    assert.equal(storageDeadline(stored(['Cache-Control', 'max-age=60', 'ETag', '"x"']), { revalidationGrace: 100 }), T0 + 160 * S);
    assert.equal(storageDeadline(stored(['Cache-Control', 'max-age=60', 'Age', '100'])), T0);
  });
});

describe('Vary (RFC 9111 §4.1)', () => {
  const entry = (names: string[], req: string[]) => ({ varyNames: names, varyKey: varyKey(names, req)! });

  test('Vary: * never matches', () => {
    assert.equal(varyKey(['*'], []), undefined);
    assert.deepEqual(selectVariant({ variants: [{ varyNames: ['*'], varyKey: '' }] }, []), { miss: 'vary-miss' });
  });

  test('selecting headers match regardless of whitespace, line splitting and Accept-Encoding order or case', () => {
    const k = varyKey(['accept-encoding', 'accept-language'], ['Accept-Encoding', 'gzip, br', 'Accept-Language', 'en,  fr']);
    assert.equal(varyKey(['accept-encoding', 'accept-language'], ['accept-encoding', 'BR,gzip', 'ACCEPT-LANGUAGE', ' en , fr ']), k);
    assert.equal(varyKey(['accept-language', 'accept-encoding'], ['Accept-Encoding', 'br', 'Accept-Encoding', 'gzip', 'Accept-Language', 'en,fr']), k);
    // Equal weights are an equal preference (RFC 9110 §12.5.4, vary.ts); different weights are not.
    assert.equal(varyKey(['accept-language'], ['Accept-Language', 'fr, en']), varyKey(['accept-language'], ['Accept-Language', 'en, fr']));
    assert.notEqual(varyKey(['accept-language'], ['Accept-Language', 'fr, en;q=0.5']), varyKey(['accept-language'], ['Accept-Language', 'en, fr;q=0.5']));
  });

  test('a header absent from both requests matches, absent from one does not', () => {
    assert.equal(varyKey(['origin'], []), varyKey(['origin'], ['X', '1']));
    assert.notEqual(varyKey(['origin'], []), varyKey(['origin'], ['Origin', '']));
  });

  test('a different selecting header is a vary-miss, an unknown URI a uri-miss', () => {
    const obj = { variants: [entry(['accept-language'], ['Accept-Language', 'en']), entry(['accept-language'], ['Accept-Language', 'de'])] };
    assert.equal(selectVariant(obj, ['accept-language', 'de']).entry, obj.variants[1]);
    assert.deepEqual(selectVariant(obj, ['Accept-Language', 'fr']), { miss: 'vary-miss' });
    assert.deepEqual(selectVariant(undefined, []), { miss: 'uri-miss' });
  });
});

describe('conditional requests (RFC 9111 §4.3, RFC 9110 §13)', () => {
  const entry = stored(['ETag', 'W/"v1"', 'Last-Modified', date(T0 - 3600 * S), 'Cache-Control', 'max-age=60']);

  test('revalidation sends the stored ETag and Last-Modified instead of the client\'s validators', () => {
    const h = conditionalRequestHeaders(['Host', 'a', 'If-None-Match', '"mine"', 'If-Modified-Since', date(T0)], entry);
    assert.deepEqual(getHeaderLines(h, 'if-none-match'), ['W/"v1"']);
    assert.deepEqual(getHeaderLines(h, 'if-modified-since'), [date(T0 - 3600 * S)]);
    assert.equal(getHeader(h, 'host'), 'a');
  });

  test('a stored response without validators is forwarded unconditionally, unchanged', () => {
    const req = ['Host', 'a', 'If-None-Match', '"mine"'];
    assert.deepEqual(conditionalRequestHeaders(req, stored(['Cache-Control', 'max-age=1'])), req);
  });

  test('a client If-None-Match that matches weakly gets a 304, * always does', () => {
    assert.equal(evaluateConditional('GET', ['If-None-Match', '"x", "v1"'], entry), 304);
    assert.equal(evaluateConditional('HEAD', ['If-None-Match', '*'], entry), 304);
    assert.equal(evaluateConditional('GET', ['If-None-Match', '"v2"'], entry), 200);
  });

  test('If-Modified-Since is ignored when If-None-Match is present', () => {
    assert.equal(evaluateConditional('GET', ['If-None-Match', '"v2"', 'If-Modified-Since', date(T0)], entry), 200);
  });

  test('If-Modified-Since compares with Last-Modified, else Date, else the receipt time', () => {
    assert.equal(evaluateConditional('GET', ['If-Modified-Since', date(T0 - 3600 * S)], entry), 304);
    assert.equal(evaluateConditional('GET', ['If-Modified-Since', date(T0 - 3601 * S)], entry), 200);
    const noLm = stored(['Cache-Control', 'max-age=60']);
    assert.equal(evaluateConditional('GET', ['If-Modified-Since', date(T0)], noLm), 304);
    assert.equal(evaluateConditional('GET', ['If-Modified-Since', date(T0 - S)], noLm), 200);
  });

  test('an invalid If-Modified-Since is ignored; only stored 200s are evaluated', () => {
    assert.equal(evaluateConditional('GET', ['If-Modified-Since', 'yesterday'], entry), 200);
    assert.equal(evaluateConditional('GET', ['If-None-Match', '*'], stored([], { status: 404 })), 200);
    assert.equal(evaluateConditional('POST', ['If-None-Match', '*'], entry), 200);
  });

  test('a generated 304 carries the validators and caching fields, not the representation metadata', () => {
    const h = notModifiedHeaders(['Content-Type', 'text/html', 'Content-Length', '10', 'ETag', '"a"', 'Cache-Control', 'max-age=1', 'CDN-Cache-Control', 'max-age=9', 'Vary', 'Accept']);
    assert.deepEqual(h, ['ETag', '"a"', 'Cache-Control', 'max-age=1', 'CDN-Cache-Control', 'max-age=9', 'Vary', 'Accept']);
  });
});

describe('updating a stored response from a 304 (RFC 9111 §3.2, §4.3.4)', () => {
  const base = [
    'Date', date(T0), 'Content-Type', 'text/html', 'Content-Length', '1234', 'Content-Encoding', 'gzip',
    'ETag', '"v1"', 'Cache-Control', 'max-age=60', 'X-Old', 'kept', 'Age', '30',
  ];

  test('a 304 never replaces the stored Content-Length', () => {
    const h = updateStoredHeaders(base, ['Content-Length', '0', 'ETag', '"v1"']);
    assert.deepEqual(getHeaderLines(h, 'content-length'), ['1234']);
  });

  test('a 304 keeps the stored Content-Encoding and Content-Range but updates Content-Type', () => {
    const h = updateStoredHeaders(base, ['Content-Encoding', 'br', 'Content-Range', 'bytes 0-1/2', 'Content-Type', 'text/html; charset=utf-8']);
    assert.equal(getHeader(h, 'content-encoding'), 'gzip');
    assert.equal(hasHeader(h, 'content-range'), false);
    assert.equal(getHeader(h, 'content-type'), 'text/html; charset=utf-8');
  });

  test('fields from the 304 replace all stored lines of that name, other fields are kept', () => {
    const h = updateStoredHeaders([...base, 'Cache-Control', 'public'], ['Cache-Control', 'max-age=300', 'X-New', '1', 'Date', date(T0 + 5 * S)]);
    assert.deepEqual(getHeaderLines(h, 'cache-control'), ['max-age=300']);
    assert.equal(getHeader(h, 'x-old'), 'kept');
    assert.equal(getHeader(h, 'x-new'), '1');
    assert.equal(getHeader(h, 'date'), date(T0 + 5 * S));
  });

  test('hop-by-hop, Connection-listed and Set-Cookie fields of a 304 are not stored', () => {
    const h = updateStoredHeaders(base, ['Connection', 'X-Hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=1', 'Set-Cookie', 'sid=9']);
    assert.equal(hasHeader(h, 'x-hop'), false);
    assert.equal(hasHeader(h, 'keep-alive'), false);
    assert.equal(hasHeader(h, 'connection'), false);
    assert.equal(hasHeader(h, 'set-cookie'), false);
  });

  test('the age restarts after a 304: the old Age is dropped and a missing Date becomes the receipt time', () => {
    const h = updateStoredHeaders(base, ['ETag', '"v1"'], { receivedAt: T0 + 500 * S });
    assert.equal(hasHeader(h, 'age'), false);
    assert.equal(getHeader(h, 'date'), date(T0 + 500 * S));
    assert.deepEqual(getHeaderLines(updateStoredHeaders(base, ['Age', '3']), 'age'), ['3']);
  });

  test('fields named by the 304\'s private="..." are removed from the stored response', () => {
    const h = updateStoredHeaders(base, ['Cache-Control', 'max-age=60, private="X-Old"']);
    assert.equal(hasHeader(h, 'x-old'), false);
  });

  test('a 304 applies only to the stored response its validator identifies', () => {
    assert.equal(notModifiedApplies(['ETag', '"v1"'], ['ETag', '"v1"']), true);
    assert.equal(notModifiedApplies(['ETag', '"v1"'], ['ETag', '"v2"']), false);
    assert.equal(notModifiedApplies(['ETag', 'W/"v1"'], ['ETag', '"v1"']), false); // strong needs strong
    assert.equal(notModifiedApplies(['ETag', '"v1"'], ['ETag', 'W/"v1"']), true); // weak compares weakly
    assert.equal(notModifiedApplies(['Last-Modified', date(T0)], ['Last-Modified', date(T0)]), true);
    assert.equal(notModifiedApplies(['Last-Modified', date(T0)], ['Last-Modified', date(T0 + S)]), false);
    assert.equal(notModifiedApplies(['ETag', '"v1"'], ['Date', date(T0)]), true);
  });

  test('a refreshed entry is fresh again and keeps its body and Vary selection', () => {
    const entry = createEntry({
      key: 'k', requestHeaders: ['Accept-Language', 'en'], status: 200,
      responseHeaders: ['Cache-Control', 'max-age=60', 'ETag', '"v1"', 'Vary', 'Accept-Language', 'Date', date(T0)],
      body: [Buffer.from('hello')], requestTime: T0, responseTime: T0,
    });
    assert.equal(isFresh(entry, T0 + 100 * S), false);
    const exchange = { requestHeaders: ['Accept-Language', 'en'], requestTime: T0 + 100 * S, responseTime: T0 + 100 * S };
    const { entry: refreshed, storable } = refreshEntry(entry, ['ETag', '"v1"', 'Date', date(T0 + 100 * S)], exchange);
    assert.equal(storable.storable, true);
    assert.equal(isFresh(refreshed, T0 + 130 * S), true);
    assert.equal(refreshed.body, entry.body);
    assert.equal(refreshed.varyKey, entry.varyKey);
    assert.ok(refreshed.expiresAt! > entry.expiresAt!);
  });

  test('a 304 that adds no-store makes the refreshed response unstorable', () => {
    const entry = createEntry({
      key: 'k', requestHeaders: [], status: 200, responseHeaders: ['Cache-Control', 'max-age=0', 'ETag', '"v1"'],
      body: [], requestTime: T0, responseTime: T0,
    });
    const exchange = { requestHeaders: [], requestTime: T0 + S, responseTime: T0 + S };
    const r = refreshEntry(entry, ['ETag', '"v1"', 'Cache-Control', 'no-store'], exchange);
    assert.equal(r.storable.storable === false && r.storable.reason, 'no-store');
  });

  test('a 304 that changes Vary re-keys the entry from the revalidating request', () => {
    const entry = createEntry({
      key: 'k', requestHeaders: ['Accept-Language', 'en'], status: 200,
      responseHeaders: ['Cache-Control', 'max-age=0', 'ETag', '"v1"', 'Vary', 'Accept-Language'],
      body: [], requestTime: T0, responseTime: T0,
    });
    const exchange = { requestHeaders: ['Accept-Language', 'en', 'Accept-Encoding', 'gzip'], requestTime: T0, responseTime: T0 };
    const r = refreshEntry(entry, ['ETag', '"v1"', 'Vary', 'Accept-Language, Accept-Encoding'], exchange);
    assert.deepEqual(r.entry.varyNames, ['accept-encoding', 'accept-language']);
    assert.equal(r.entry.varyKey, 'accept-encoding=gzip\naccept-language=en');
  });
});

describe('entries', () => {
  test('an entry records its Vary selection, body size and storage deadline', () => {
    const e = createEntry({
      key: 'k', requestHeaders: ['Accept-Encoding', 'gzip'], status: 200,
      responseHeaders: ['Cache-Control', 'max-age=10', 'Vary', 'Accept-Encoding'],
      body: [Buffer.from('ab'), Buffer.from('cde')], requestTime: T0 - S, responseTime: T0,
    });
    assert.deepEqual(e.varyNames, ['accept-encoding']);
    assert.equal(e.varyKey, 'accept-encoding=gzip');
    assert.equal(e.bodySize, 5);
    assert.equal(getHeader(e.headers, 'date'), date(T0));
    assert.equal(e.expiresAt, T0 + 9 * S); // 10 s lifetime minus the 1 s response delay
  });
});

describe('invalidation (RFC 9111 §4.4)', () => {
  const target = { scheme: 'https' as const, authority: 'Shop.example', target: '/cart?id=1' };

  test('a successful POST invalidates the target URI', () => {
    assert.deepEqual(invalidationTargets('POST', 201, target, []), [target]);
    assert.deepEqual(invalidationTargets('PURGE-ISH', 204, target, []), [target]);
  });

  test('safe methods and error responses invalidate nothing', () => {
    assert.deepEqual(invalidationTargets('GET', 200, target, []), []);
    assert.deepEqual(invalidationTargets('OPTIONS', 200, target, []), []);
    assert.deepEqual(invalidationTargets('DELETE', 404, target, []), []);
    assert.deepEqual(invalidationTargets('PUT', 500, target, []), []);
  });

  test('Location and Content-Location are invalidated only on the same origin', () => {
    const out = invalidationTargets('POST', 303, target, [
      'Location', '/orders/7', 'Content-Location', 'https://shop.example:443/cart',
    ]);
    assert.deepEqual(out.map((t) => t.target), ['/cart?id=1', '/orders/7', '/cart']);
    const foreign = invalidationTargets('POST', 201, target, [
      'Location', 'https://evil.example/cart', 'Content-Location', 'http://shop.example/cart',
    ]);
    assert.deepEqual(foreign.map((t) => t.target), ['/cart?id=1']);
  });

  test('a relative Location is resolved against the target URI', () => {
    const out = invalidationTargets('PUT', 200, { scheme: 'http', authority: 'a.example', target: '/x/y' }, ['Location', 'z?q=1']);
    assert.deepEqual(out.map((t) => t.target), ['/x/y', '/x/z?q=1']);
  });
});

describe('Cache-Status (RFC 9211)', () => {
  test('a hit reports its remaining ttl', () => {
    assert.equal(cacheStatus({ hit: true, ttl: 41.7 }), 'kubeproxy; hit; ttl=41');
    assert.equal(cacheStatus({ hit: true, ttl: -3.2 }), 'kubeproxy; hit; ttl=-4');
  });

  test('forwarded requests report why, and whether the response was stored or collapsed', () => {
    assert.equal(cacheStatus({ fwd: 'miss', stored: true }), 'kubeproxy; fwd=miss; stored');
    assert.equal(cacheStatus({ fwd: 'uri-miss', fwdStatus: 200, stored: true }), 'kubeproxy; fwd=uri-miss; fwd-status=200; stored');
    assert.equal(cacheStatus({ fwd: 'stale', fwdStatus: 304, ttl: 60 }), 'kubeproxy; fwd=stale; fwd-status=304; ttl=60');
    assert.equal(cacheStatus({ fwd: 'vary-miss' }), 'kubeproxy; fwd=vary-miss');
    assert.equal(cacheStatus({ fwd: 'request' }), 'kubeproxy; fwd=request');
    assert.equal(cacheStatus({ fwd: 'miss', collapsed: true }), 'kubeproxy; fwd=miss; collapsed');
  });

  test('detail is a quoted, escaped Structured Field string', () => {
    assert.equal(cacheStatus({ fwd: 'bypass', detail: 'private' }), 'kubeproxy; fwd=bypass; detail="private"');
    assert.equal(sfString('a "b" \\ c\u00e9\n'), '"a \\"b\\" \\\\ c??"');
    assert.equal(cacheStatus({ hit: true, key: 'x y' }, 'edge cache'), '"edge cache"; hit; key="x y"');
  });
});
