import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatHttpDate } from './directives.ts';
import { ageAt, entryFacts, isPlainRequest, plainDecision } from './hit.ts';
import { createEntry, currentAge, evaluateReuse, type PolicyOptions } from './policy.ts';
import type { CacheEntry } from './store.ts';

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);

function entry(headers: string[], opts: { requestTime?: number; responseTime?: number; status?: number } = {}): CacheEntry {
  return createEntry({
    key: 'k',
    requestHeaders: [],
    status: opts.status ?? 200,
    responseHeaders: headers,
    body: [Buffer.from('x')],
    requestTime: opts.requestTime ?? T0,
    responseTime: opts.responseTime ?? T0,
  });
}

describe('fresh-hit fast path', () => {
  const cases: Array<[string, string[]]> = [
    ['max-age', ['Cache-Control', 'max-age=60', 'Date', formatHttpDate(T0)]],
    ['s-maxage over max-age', ['Cache-Control', 'max-age=600, s-maxage=30', 'Date', formatHttpDate(T0)]],
    ['Age from upstream', ['Cache-Control', 'max-age=60', 'Age', '25', 'Date', formatHttpDate(T0)]],
    ['Date in the past (apparent age)', ['Cache-Control', 'max-age=60', 'Date', formatHttpDate(T0 - 20_000)]],
    ['Expires', ['Expires', formatHttpDate(T0 + 40_000), 'Date', formatHttpDate(T0)]],
    ['heuristic', ['Last-Modified', formatHttpDate(T0 - 1_000_000), 'Date', formatHttpDate(T0)]],
    ['targeted field', ['CDN-Cache-Control', 'max-age=50', 'Cache-Control', 'no-store', 'Date', formatHttpDate(T0)]],
    ['no-cache', ['Cache-Control', 'max-age=60, no-cache', 'Date', formatHttpDate(T0)]],
    ['stale-while-revalidate', ['Cache-Control', 'max-age=10, stale-while-revalidate=60', 'Date', formatHttpDate(T0)]],
    ['huge Age', ['Cache-Control', 'max-age=60', 'Age', '99999999999', 'Date', formatHttpDate(T0)]],
  ];
  const policies: PolicyOptions[] = [{}, { targetedFields: [] }, { maxHeuristicLifetime: 10 }];
  for (const [name, headers] of cases) {
    it(`agrees with evaluateReuse for a plain request: ${name}`, () => {
      for (const policy of policies) {
        const e = entry(headers, { requestTime: T0 - 300, responseTime: T0 });
        for (const dt of [0, 999, 5_000, 9_999, 10_000, 29_000, 39_999, 45_000, 59_000, 61_000, 100_000_000]) {
          const now = T0 + dt;
          const full = evaluateReuse(e, 'GET', ['Host', 'x'], now, policy);
          const fast = plainDecision(e, policy, now);
          if (full.kind === 'fresh') {
            assert.ok(fast !== undefined, `${name} +${dt}ms: fast path must hit`);
            assert.equal(fast.ttl, full.ttl);
            assert.equal(fast.age, full.age);
          } else {
            assert.equal(fast, undefined, `${name} +${dt}ms: ${full.kind} must take the full path`);
          }
          assert.equal(ageAt(e, entryFacts(e, policy), now), currentAge(e, now));
        }
      }
    });
  }

  it('recomputes its facts when the policy changes (a reload)', () => {
    const e = entry(['KubeProxy-Cache-Control', 'max-age=100', 'Cache-Control', 'max-age=5', 'Date', formatHttpDate(T0)]);
    assert.equal(entryFacts(e, {}).lifetime, 100);
    assert.equal(entryFacts(e, { targetedFields: [] }).lifetime, 5);
  });

  it('a plain request has no Cache-Control, Pragma or validator fields', () => {
    assert.equal(isPlainRequest(['Host', 'a', 'User-Agent', 'wrk', 'Accept', '*/*']), true);
    assert.equal(isPlainRequest(['Host', 'a', 'Cache-Control', 'max-age=0']), false);
    assert.equal(isPlainRequest(['host', 'a', 'PRAGMA', 'no-cache']), false);
    assert.equal(isPlainRequest(['If-None-Match', '"x"']), false);
    assert.equal(isPlainRequest(['if-modified-since', 'Tue, 01 Jan 2030 00:00:00 GMT']), false);
    assert.equal(isPlainRequest(['If-Match', '"x"', 'X-Cache-Control', 'y']), true);
  });
});
