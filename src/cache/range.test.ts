import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatHttpDate } from './directives.ts';
import { MAX_RANGES, coalesce, ifRangeMatches, multipartBody, parseRange, planRanges, rangeAnswer, rangeFields, slice, type RangeSource } from './range.ts';

const BODY = 'abcdefghijklmnopqrstuvwxyz';
/** The body in uneven chunks, as a stream would have stored it. */
const CHUNKS = [Buffer.from('abc'), Buffer.from('defghij'), Buffer.from('k'), Buffer.from('lmnopqrstuvwxyz')];

function text(chunks: readonly Buffer[]): string {
  return Buffer.concat(chunks).toString('latin1');
}

function stored(headers: string[] = [], status = 200): RangeSource {
  return { status, headers, body: CHUNKS, bodySize: BODY.length };
}

describe('Range parsing (RFC 9110 §14.1.2)', () => {
  it('reads first-last, first- and -suffix, with spaces around commas and empty members', () => {
    assert.deepEqual(parseRange('bytes=0-99'), [{ first: 0, last: 99 }]);
    assert.deepEqual(parseRange('bytes=100-'), [{ first: 100, last: undefined }]);
    assert.deepEqual(parseRange('bytes=-100'), [{ suffix: 100 }]);
    assert.deepEqual(parseRange('BYTES=0-0 , ,-1'), [{ first: 0, last: 0 }, { suffix: 1 }]);
  });

  it('ignores another unit, bad syntax, a last-pos before its first-pos, and no range at all', () => {
    for (const v of ['items=0-1', 'bytes 0-1', 'bytes =0-1', 'bytes=', 'bytes=,', 'bytes=a-b', 'bytes=1', 'bytes=5-4', 'bytes=-', 'bytes=1-2-3', 'bytes=+1-2', 'bytes=0x1-2', 'bytes=1.5-2']) {
      assert.equal(parseRange(v), undefined, v);
    }
  });

  it(`ignores a field with more than ${MAX_RANGES} ranges (the full 200, as NGINX max_ranges)`, () => {
    const many = (n: number) => `bytes=${Array.from({ length: n }, (_, i) => `${i * 2}-${i * 2}`).join(',')}`;
    assert.equal(parseRange(many(MAX_RANGES))!.length, MAX_RANGES);
    assert.equal(parseRange(many(MAX_RANGES + 1)), undefined);
    assert.deepEqual(planRanges(many(MAX_RANGES + 1), 1000), { kind: 'full' });
  });

  it('finds Range and If-Range in one pass, only when Range is there', () => {
    assert.deepEqual(rangeFields(['Host', 'x', 'RANGE', 'bytes=0-1', 'If-Range', '"a"']), { range: 'bytes=0-1', ifRange: '"a"' });
    assert.deepEqual(rangeFields(['range', 'bytes=0-1']), { range: 'bytes=0-1', ifRange: undefined });
    assert.equal(rangeFields(['If-Range', '"a"', 'Accept', '*/*']), undefined);
  });
});

describe('ranges against a length', () => {
  it('clips last-pos and suffixes to the representation, in request order', () => {
    assert.deepEqual(planRanges('bytes=0-9', 26), { kind: 'ranges', ranges: [{ start: 0, end: 9 }] });
    assert.deepEqual(planRanges('bytes=20-100', 26), { kind: 'ranges', ranges: [{ start: 20, end: 25 }] });
    assert.deepEqual(planRanges('bytes=-5', 26), { kind: 'ranges', ranges: [{ start: 21, end: 25 }] });
    assert.deepEqual(planRanges('bytes=-500', 26), { kind: 'ranges', ranges: [{ start: 0, end: 25 }] });
    assert.deepEqual(planRanges('bytes=20-21,0-1', 26), { kind: 'ranges', ranges: [{ start: 20, end: 21 }, { start: 0, end: 1 }] });
  });

  it('is unsatisfiable when no range starts inside: first-pos at or past the end, -0, an empty body', () => {
    assert.deepEqual(planRanges('bytes=26-', 26), { kind: 'unsatisfiable' });
    assert.deepEqual(planRanges('bytes=30-40,50-60', 26), { kind: 'unsatisfiable' });
    assert.deepEqual(planRanges('bytes=-0', 26), { kind: 'unsatisfiable' });
    assert.deepEqual(planRanges('bytes=0-', 0), { kind: 'unsatisfiable' });
    assert.deepEqual(planRanges('bytes=99999999999999999999-', 26), { kind: 'unsatisfiable' });
    assert.deepEqual(planRanges('bytes=30-40,0-0', 26), { kind: 'ranges', ranges: [{ start: 0, end: 0 }] }, 'the satisfiable ones remain');
  });

  it('coalesces overlapping and adjacent ranges, sorted', () => {
    assert.deepEqual(coalesce([{ start: 10, end: 20 }, { start: 0, end: 5 }, { start: 6, end: 8 }, { start: 15, end: 30 }]), [{ start: 0, end: 8 }, { start: 10, end: 30 }]);
    assert.deepEqual(planRanges('bytes=0-10,0-10,0-10,5-', 26), { kind: 'ranges', ranges: [{ start: 0, end: 25 }] });
  });
});

describe('If-Range (RFC 9110 §13.1.5)', () => {
  const lm = Date.UTC(2030, 0, 1, 12, 0, 0);
  const strongDate = ['ETag', '"v1"', 'Last-Modified', formatHttpDate(lm), 'Date', formatHttpDate(lm + 1000)];

  it('matches an entity-tag only by strong comparison', () => {
    assert.equal(ifRangeMatches('"v1"', strongDate), true);
    assert.equal(ifRangeMatches(' "v1" ', strongDate), true);
    assert.equal(ifRangeMatches('"v2"', strongDate), false);
    assert.equal(ifRangeMatches('W/"v1"', strongDate), false, 'a weak tag in If-Range');
    assert.equal(ifRangeMatches('"v1"', ['ETag', 'W/"v1"']), false, 'a weak stored tag');
    assert.equal(ifRangeMatches('"v1"', []), false, 'no stored ETag');
    assert.equal(ifRangeMatches('"v1", "v2"', strongDate), false, 'a list is not an entity-tag');
  });

  it('matches a date only when it is the stored Last-Modified and the stored Date is a second or more later', () => {
    assert.equal(ifRangeMatches(formatHttpDate(lm), strongDate), true);
    assert.equal(ifRangeMatches(formatHttpDate(lm + 1000), strongDate), false, 'not the exact date');
    assert.equal(ifRangeMatches(formatHttpDate(lm), ['Last-Modified', formatHttpDate(lm), 'Date', formatHttpDate(lm)]), false, 'weak: Date within the second');
    assert.equal(ifRangeMatches(formatHttpDate(lm), ['Last-Modified', formatHttpDate(lm)]), false, 'no Date: cannot be shown strong');
    assert.equal(ifRangeMatches('yesterday', strongDate), false);
  });
});

describe('bodies of range answers', () => {
  it('slices across chunk boundaries without copying', () => {
    for (const [start, end] of [[0, 0], [0, 25], [2, 3], [3, 9], [9, 11], [10, 10], [25, 25], [5, 20]] as const) {
      assert.equal(text(slice(CHUNKS, { start, end })), BODY.slice(start, end + 1), `${start}-${end}`);
    }
    assert.equal(slice(CHUNKS, { start: 3, end: 9 })[0], CHUNKS[1], 'a whole chunk is handed out as it is');
    assert.equal(slice(CHUNKS, { start: 4, end: 5 })[0]!.buffer, CHUNKS[1]!.buffer, 'a part is a view');
  });

  it('builds multipart/byteranges with the stored Content-Type and a Content-Range per part (§14.6)', () => {
    const ranges = [{ start: 0, end: 1 }, { start: 24, end: 25 }];
    const m = multipartBody(CHUNKS, ranges, 26, 'text/plain', 'BOUND');
    const expected =
      '--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/26\r\n\r\nab' +
      '\r\n--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 24-25/26\r\n\r\nyz' +
      '\r\n--BOUND--\r\n';
    assert.equal(text(m.body), expected);
    assert.equal(m.length, Buffer.byteLength(expected));
    assert.doesNotMatch(text(multipartBody(CHUNKS, ranges, 26, undefined, 'B').body), /Content-Type/);
  });

  it('answers a stored 200 only, and serves the full response for a mismatched If-Range', () => {
    const single = rangeAnswer(stored(['ETag', '"v1"']), { range: 'bytes=-3', ifRange: '"v1"' });
    assert.equal(single?.kind, 'single');
    assert.equal(single?.kind === 'single' && text(single.body), 'xyz');
    assert.equal(rangeAnswer(stored(['ETag', '"v1"']), { range: 'bytes=-3', ifRange: '"v0"' }), undefined);
    assert.equal(rangeAnswer(stored([], 404), { range: 'bytes=0-1', ifRange: undefined }), undefined);
    assert.equal(rangeAnswer(stored(), { range: 'lines=1-2', ifRange: undefined }), undefined);
    assert.deepEqual(rangeAnswer(stored(), { range: 'bytes=26-', ifRange: undefined }), { kind: 'unsatisfiable' });
  });

  it('serves several ranges of a content-coded response as the full 200, one range as a 206', () => {
    const gz = stored(['Content-Encoding', 'gzip']);
    assert.equal(rangeAnswer(gz, { range: 'bytes=0-1,5-6', ifRange: undefined }), undefined);
    assert.equal(rangeAnswer(gz, { range: 'bytes=0-1', ifRange: undefined })?.kind, 'single');
    const plain = rangeAnswer(stored(['Content-Encoding', 'identity', 'Content-Type', 'text/plain']), { range: 'bytes=0-1,5-6', ifRange: undefined });
    assert.equal(plain?.kind, 'multipart');
    if (plain?.kind === 'multipart') {
      assert.match(plain.boundary, /^[0-9a-f]{24}$/);
      assert.equal(plain.length, Buffer.concat(plain.body).length);
    }
  });
});
