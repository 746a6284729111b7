import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { declaredLength } from './fill.ts';
import { worthStoring } from './flow.ts';
import { isStorable, type PolicyOptions } from './policy.ts';
import { ZeroTtlCheck } from './zero-ttl.ts';

const MAX_OBJECT = 1024;

/** What onFullResponse decides for a GET answer, the long way (isStorable, length, worthStoring). */
function slowDetail(status: number, request: string[], response: string[], policy: PolicyOptions): string | undefined {
  const s = isStorable('GET', request, status, response, policy);
  if (!s.storable) return s.reason;
  const length = declaredLength(response);
  if (length !== undefined && length > MAX_OBJECT) return 'too-large';
  const now = 1_700_000_000_000;
  if (!worthStoring(status, response, now, now, policy, s.directives)) return 'zero-ttl';
  return undefined;
}

const requests: string[][] = [
  ['Host', 'a.test'],
  ['Host', 'a.test', 'User-Agent', 'wrk', 'Accept', '*/*'],
  ['Host', 'a.test', 'Cache-Control', 'no-store'],
  ['Host', 'a.test', 'cache-control', 'max-age=0'],
  ['Host', 'a.test', 'Pragma', 'no-cache'],
  ['Host', 'a.test', 'Authorization', 'Bearer x'],
];

const base = ['Content-Type', 'text/plain', 'Date', 'Thu, 26 Nov 2026 12:00:00 GMT', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=5'];
const responses: string[][] = [
  base,
  [...base, 'Content-Length', '13'],
  [...base, 'Content-Length', '5000'],
  [...base, 'content-length', 'abc'],
  [...base, 'Content-Length', '13', 'Content-Length', '5000'],
  [...base, 'Cache-Control', 'public, max-age=60'],
  [...base, 'Cache-Control', 'no-store'],
  [...base, 'Cache-Control', 'private'],
  [...base, 'CDN-Cache-Control', 'max-age=60'],
  [...base, 'KubeProxy-Cache-Control', 'no-store'],
  [...base, 'Surrogate-Control', 'max-age=60'],
  [...base, 'Expires', 'Thu, 26 Nov 2026 13:00:00 GMT'],
  [...base, 'ETag', '"v1"'],
  [...base, 'Last-Modified', 'Thu, 26 Nov 2026 11:00:00 GMT'],
  [...base, 'Vary', '*'],
  [...base, 'Vary', 'Accept'],
  [...base, 'Set-Cookie', 'a=1'],
  [...base, 'Age', '10', 'Via', '1.1 x'],
];

const statuses = [200, 203, 204, 206, 300, 301, 302, 304, 307, 308, 404, 405, 410, 414, 500, 501, 503];
const policies: PolicyOptions[] = [{}, { targetedFields: ['Surrogate-Control', 'CDN-Cache-Control'] }];

describe('ZeroTtlCheck (the uncacheable fast path)', () => {
  it('says yes only where the full decision is zero-ttl, for every combination', () => {
    let fast = 0;
    for (const policy of policies) {
      const check = new ZeroTtlCheck(policy.targetedFields, MAX_OBJECT);
      for (const status of statuses) {
        for (const request of requests) {
          for (const response of responses) {
            const asBuffers = response.map((h) => Buffer.from(h, 'latin1'));
            if (!check.zeroTtl(status, asBuffers, request)) continue;
            fast++;
            const detail = slowDetail(status, request, response, policy);
            assert.equal(detail, 'zero-ttl', `status ${status}, request ${request.join('|')}, response ${response.join('|')}, policy ${JSON.stringify(policy)}`);
          }
        }
      }
    }
    assert.ok(fast > 0);
  });

  it('takes the common answer: a 200 with no caching field, to a request without Cache-Control', () => {
    const raw = [...base, 'Content-Length', '13'].map((h) => Buffer.from(h, 'latin1'));
    const check = new ZeroTtlCheck(undefined, MAX_OBJECT);
    assert.equal(check.zeroTtl(200, raw, requests[1]!), true);
    assert.equal(check.zeroTtl(404, raw, requests[1]!), true);
  });
});
