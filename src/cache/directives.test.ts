import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DELTA_SECONDS_MAX,
  formatHttpDate,
  parseAge,
  parseCacheControl,
  parseDateHeader,
  parseExpires,
  parseHttpDate,
  parseVary,
  requestDirectives,
  responseDirectives,
} from './directives.ts';

const cc = (...lines: string[]) => responseDirectives(lines.flatMap((l) => ['Cache-Control', l]));

describe('Cache-Control parsing (RFC 9111 §5.2)', () => {
  test('directive names are case-insensitive', () => {
    const d = cc('MAX-AGE=60, No-Store, Public');
    assert.equal(d.maxAge, 60);
    assert.equal(d.noStore, true);
    assert.equal(d.public, true);
  });

  test('max-age="60" is read as 60 (recipients accept the quoted form, §5.2)', () => {
    assert.equal(cc('max-age="60"').maxAge, 60);
  });

  test('max-age=abc makes the response stale (invalid freshness → 0, §4.2.1)', () => {
    assert.equal(cc('max-age=abc').maxAge, 0);
  });

  test('a negative max-age makes the response stale', () => {
    assert.equal(cc('max-age=-5').maxAge, 0);
  });

  test('a decimal or empty max-age makes the response stale', () => {
    assert.equal(cc('max-age=1.5').maxAge, 0);
    assert.equal(cc('max-age').maxAge, 0);
    assert.equal(cc('max-age=').maxAge, 0);
  });

  test('duplicate max-age directives take the smaller value', () => {
    assert.equal(cc('max-age=3600, max-age=60').maxAge, 60);
    assert.equal(cc('max-age=60', 'max-age=3600').maxAge, 60);
  });

  test('duplicate s-maxage directives take the smaller value, an invalid one makes it 0', () => {
    assert.equal(cc('s-maxage=100, s-maxage=10').sMaxage, 10);
    assert.equal(cc('s-maxage=100, s-maxage=x').sMaxage, 0);
  });

  test('a max-age above 2^31 is read as 2147483648 (§1.2.2)', () => {
    assert.equal(cc('max-age=99999999999999999999').maxAge, DELTA_SECONDS_MAX);
    assert.equal(cc('max-age=2147483649').maxAge, DELTA_SECONDS_MAX);
    assert.equal(cc('max-age=2147483647').maxAge, 2147483647);
  });

  test('several Cache-Control lines are one list', () => {
    const d = cc('public', 'max-age=30', 'must-revalidate');
    assert.equal(d.public, true);
    assert.equal(d.maxAge, 30);
    assert.equal(d.mustRevalidate, true);
  });

  test('a quoted field list with commas stays one directive (no-cache="Set-Cookie, X-Foo")', () => {
    const d = cc('no-cache="Set-Cookie, X-Foo", max-age=10');
    assert.equal(d.noCache, false);
    assert.deepEqual(d.noCacheFields, ['set-cookie', 'x-foo']);
    assert.equal(d.maxAge, 10);
  });

  test('an unqualified no-cache wins over a qualified one', () => {
    const d = cc('no-cache="x-a", no-cache');
    assert.equal(d.noCache, true);
  });

  test('private="X-User" limits only that field, unqualified private the whole response', () => {
    assert.deepEqual(cc('private="X-User"').privateFields, ['x-user']);
    assert.equal(cc('private="X-User"').private, false);
    assert.equal(cc('private').private, true);
  });

  test('whitespace around "=" and escaped quotes are tolerated', () => {
    const map = parseCacheControl('max-age = 5, ext="a\\"b", , foo');
    assert.deepEqual(map.get('max-age'), [{ text: '5', numeric: true }]);
    assert.deepEqual(map.get('ext'), [{ text: 'a"b', numeric: true }]);
    assert.deepEqual(map.get('foo'), [undefined]);
  });

  test('stale-while-revalidate and stale-if-error are read; an invalid window grants nothing', () => {
    const d = cc('max-age=1, stale-while-revalidate=30, stale-if-error=600');
    assert.equal(d.staleWhileRevalidate, 30);
    assert.equal(d.staleIfError, 600);
    assert.equal(cc('stale-while-revalidate=abc').staleWhileRevalidate, undefined);
  });
});

describe('targeted cache control (RFC 9213)', () => {
  test('CDN-Cache-Control overrides Cache-Control for this cache', () => {
    const d = responseDirectives(['Cache-Control', 'no-store', 'CDN-Cache-Control', 'max-age=600']);
    assert.equal(d.targeted, true);
    assert.equal(d.source, 'CDN-Cache-Control');
    assert.equal(d.noStore, false);
    assert.equal(d.maxAge, 600);
  });

  test('KubeProxy-Cache-Control takes precedence over CDN-Cache-Control', () => {
    const d = responseDirectives(['CDN-Cache-Control', 'max-age=600', 'KubeProxy-Cache-Control', 'max-age=5']);
    assert.equal(d.source, 'KubeProxy-Cache-Control');
    assert.equal(d.maxAge, 5);
  });

  test('an invalid targeted field is ignored as if absent', () => {
    for (const bad of ['Max-Age=60', 'max-age=60,', 'max-age=60 junk', 'max-age="unterminated']) {
      const d = responseDirectives(['Cache-Control', 'max-age=10', 'CDN-Cache-Control', bad]);
      assert.equal(d.targeted, false, bad);
      assert.equal(d.maxAge, 10, bad);
    }
  });

  test('an empty targeted field is ignored and the next one on the list is used', () => {
    const d = responseDirectives(['KubeProxy-Cache-Control', '  ', 'CDN-Cache-Control', 'max-age=7']);
    assert.equal(d.source, 'CDN-Cache-Control');
    assert.equal(d.maxAge, 7);
  });

  test('CDN-Cache-Control: none still replaces Cache-Control: no-store (RFC 9213 §3.1 example)', () => {
    const d = responseDirectives(['Cache-Control', 'no-store', 'CDN-Cache-Control', 'none']);
    assert.equal(d.targeted, true);
    assert.equal(d.noStore, false);
  });

  test('a targeted max-age of the wrong type is not consumed and reads as stale', () => {
    assert.equal(responseDirectives(['CDN-Cache-Control', 'max-age="60"']).maxAge, 0);
    assert.equal(responseDirectives(['CDN-Cache-Control', 'max-age=1.5']).maxAge, 0);
    assert.equal(responseDirectives(['CDN-Cache-Control', 'max-age=-1']).maxAge, 0);
  });

  test('targeted fields carry qualified no-cache, booleans and ignore parameters', () => {
    const d = responseDirectives(['CDN-Cache-Control', 'no-cache="set-cookie", max-age=60;foo=1, must-revalidate, no-store=?0']);
    assert.deepEqual(d.noCacheFields, ['set-cookie']);
    assert.equal(d.maxAge, 60);
    assert.equal(d.mustRevalidate, true);
    assert.equal(d.noStore, false);
  });

  test('the target list is configurable', () => {
    const d = responseDirectives(['Acme-Cache-Control', 'max-age=9', 'CDN-Cache-Control', 'max-age=1'], ['Acme-Cache-Control']);
    assert.equal(d.maxAge, 9);
    const none = responseDirectives(['CDN-Cache-Control', 'max-age=1', 'Cache-Control', 'max-age=2'], []);
    assert.equal(none.maxAge, 2);
  });
});

describe('targeted fields are Structured Field dictionaries (RFC 9651)', () => {
  test('a targeted field that is not a valid dictionary leaves Cache-Control in charge', () => {
    const bad = ['A=1', 'a=1,', 'a=1234567890123456', 'a="\\x"', 'a=1.2345', 'a=?2', 'a=(1', 'max-age=5 ;'];
    for (const value of bad) {
      const d = responseDirectives(['Cache-Control', 'max-age=10', 'CDN-Cache-Control', value]);
      assert.equal(d.targeted, false, value);
      assert.equal(d.maxAge, 10, value);
    }
  });

  test('members of types no directive takes are still directives that are present', () => {
    const d = responseDirectives(['CDN-Cache-Control', 'public=(1 2);p, no-store=:aGk=:, y=%"z", max-age=60, x=@1234']);
    assert.equal(d.public, true);
    assert.equal(d.noStore, true);
    assert.equal(d.maxAge, 60);
  });

  test('the last of duplicate keys wins', () => {
    assert.equal(responseDirectives(['CDN-Cache-Control', 'max-age=5, max-age=9']).maxAge, 9);
  });
});

describe('request directives (RFC 9111 §5.2.1)', () => {
  test('Pragma: no-cache counts as no-cache only without Cache-Control (§5.4)', () => {
    assert.equal(requestDirectives(['Pragma', 'no-cache']).noCache, true);
    assert.equal(requestDirectives(['Pragma', 'no-cache', 'Cache-Control', 'max-age=5']).noCache, false);
  });

  test('max-stale without a value accepts any staleness, with a value that many seconds', () => {
    assert.equal(requestDirectives(['Cache-Control', 'max-stale']).maxStale, Number.POSITIVE_INFINITY);
    assert.equal(requestDirectives(['Cache-Control', 'max-stale=30']).maxStale, 30);
    assert.equal(requestDirectives(['Cache-Control', 'max-stale, max-stale=30']).maxStale, 30);
    assert.equal(requestDirectives(['Cache-Control', 'max-stale=abc']).maxStale, undefined);
  });

  test('duplicate min-fresh take the larger value; an invalid request max-age asks for revalidation', () => {
    assert.equal(requestDirectives(['Cache-Control', 'min-fresh=5, min-fresh=50']).minFresh, 50);
    assert.equal(requestDirectives(['Cache-Control', 'max-age=abc']).maxAge, 0);
  });

  test('no-store, only-if-cached and stale-if-error are read from requests', () => {
    const d = requestDirectives(['cache-control', 'No-Store, only-if-cached, stale-if-error=60']);
    assert.equal(d.noStore, true);
    assert.equal(d.onlyIfCached, true);
    assert.equal(d.staleIfError, 60);
  });
});

describe('Age, Expires and Date (RFC 9111 §5.1, §5.3; RFC 9110 §5.6.7)', () => {
  test('an Age header of -5 is ignored', () => {
    assert.equal(parseAge(['Age', '-5']), undefined);
  });

  test('a non-numeric Age is ignored, a list uses its first member, a second line is discarded', () => {
    assert.equal(parseAge(['Age', 'abc']), undefined);
    assert.equal(parseAge(['Age', '10, 20']), 10);
    assert.equal(parseAge(['Age', '7', 'Age', '100']), 7);
  });

  test('a huge Age is capped at 2^31', () => {
    assert.equal(parseAge(['Age', '99999999999999']), DELTA_SECONDS_MAX);
  });

  test('Expires: 0 means already expired', () => {
    assert.equal(parseExpires(['Expires', '0']), 0);
  });

  test('an invalid Expires date means already expired; several lines use the earliest', () => {
    assert.equal(parseExpires(['Expires', 'tomorrow']), 0);
    assert.equal(parseExpires(['Expires', 'Thu, 01 Dec 1994 16:00:00 UTC']), 0);
    assert.equal(
      parseExpires(['Expires', 'Thu, 01 Dec 1994 16:00:00 GMT', 'Expires', 'Wed, 30 Nov 1994 16:00:00 GMT']),
      Date.UTC(1994, 10, 30, 16),
    );
    assert.equal(parseExpires([]), undefined);
  });

  test('all three HTTP-date formats are accepted, case-insensitively, only in GMT', () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37);
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), t);
    assert.equal(parseHttpDate('sun, 06 nov 1994 08:49:37 gmt'), t);
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(2024, 0, 1)), t);
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), t);
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 PST'), undefined);
    assert.equal(parseHttpDate('Sun, 31 Feb 1994 08:49:37 GMT'), undefined);
    assert.equal(parseHttpDate('1994-11-06T08:49:37Z'), undefined);
  });

  test('a two-digit year more than 50 years ahead is read in the past century', () => {
    assert.equal(parseHttpDate('Monday, 01-Jan-90 00:00:00 GMT', Date.UTC(2030, 0, 1)), Date.UTC(1990, 0, 1));
    assert.equal(parseHttpDate('Friday, 01-Jan-99 00:00:00 GMT', Date.UTC(2024, 0, 1)), Date.UTC(1999, 0, 1));
    // 46 years ahead is not "more than 50 years in the future": kept as is.
    assert.equal(parseHttpDate('Tuesday, 01-Jan-70 00:00:00 GMT', Date.UTC(2024, 0, 1)), Date.UTC(2070, 0, 1));
  });

  test('formatted dates round-trip as IMF-fixdate', () => {
    const t = Date.UTC(2024, 1, 29, 12, 0, 1);
    assert.equal(formatHttpDate(t + 999), 'Thu, 29 Feb 2024 12:00:01 GMT');
    assert.equal(parseDateHeader(['Date', formatHttpDate(t)]), t);
  });
});

describe('Vary (RFC 9110 §12.5.5)', () => {
  test('names are lower-cased, de-duplicated and sorted; * is flagged', () => {
    assert.deepEqual(parseVary(['Vary', 'Accept-Encoding, accept-language', 'vary', 'ACCEPT-ENCODING']), {
      star: false,
      names: ['accept-encoding', 'accept-language'],
    });
    assert.equal(parseVary(['Vary', 'Accept, *']).star, true);
  });
});
