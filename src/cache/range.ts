/**
 * Byte ranges answered from a stored complete 200 (RFC 9110 §14): the Range and If-Range fields
 * of a request, the ranges resolved against the stored length, and the bodies of 206 answers
 * (one range: slices of the stored chunks; several: multipart/byteranges, §14.6). Pure: no I/O,
 * no clock; the bytes are the representation as stored (content-coded, §14.1.2).
 *
 * Decisions where RFC 9110 leaves a choice (NGINX's range filter and Apache's byterange filter
 * for precedents):
 *  - A Range with another unit than `bytes`, a syntax error or a range whose last-pos is before
 *    its first-pos is ignored: the full 200 (§14.2 "MUST ignore" / "MAY ignore").
 *  - More than MAX_RANGES range-specs: the full 200, as NGINX `max_ranges` and Apache `MaxRanges`.
 *  - Overlapping or adjacent ranges are coalesced (§15.3.7.2 allows it "regardless of the order");
 *    without any overlap, the parts keep the order of the request.
 *  - Several ranges → multipart/byteranges (NGINX does the same); one range after coalescing → a
 *    single-part 206. A stored response with a Content-Encoding answers several ranges with the
 *    full 200: the multipart body would otherwise be read as coded itself.
 *  - If-Range: an entity-tag matches only by strong comparison; a date only when it is the
 *    stored Last-Modified and that is a strong validator (§8.8.2.2: the stored Date at least one
 *    second later). Anything else (no match, a weak tag, an invalid value) → the full 200 (§13.1.5).
 */
import { randomBytes } from 'node:crypto';
import { parseDateHeader, parseHttpDate, parseLastModified } from './directives.ts';
import { getHeaderLines, type RawHeaders } from './headers.ts';
import { parseEntityTag, strongMatch } from './policy.ts';

/** Range-specs beyond which a Range field is ignored (the full 200 is served). */
export const MAX_RANGES = 64;

/** One range of bytes, both ends included (as Content-Range writes them). */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** A range-spec as written: `first-last`, `first-` (last undefined) or `-suffix`. */
type RangeSpec = { readonly first: number; readonly last: number | undefined } | { readonly suffix: number };

/** The Range and If-Range fields of a request (repeated lines joined, RFC 9110 §5.3). */
export interface RangeFields {
  readonly range: string;
  readonly ifRange: string | undefined;
}

/** What to answer a range request with from a representation of a known length. */
export type RangePlan =
  /** Ignore the Range field: the full 200. */
  | { readonly kind: 'full' }
  /** 416, `Content-Range: bytes *\/length`. */
  | { readonly kind: 'unsatisfiable' }
  /** 206 with these ranges, in the order to send them (one: single part; several: multipart). */
  | { readonly kind: 'ranges'; readonly ranges: readonly ByteRange[] };

/** The request's Range and If-Range fields in one pass, or undefined without a Range field. */
export function rangeFields(raw: RawHeaders): RangeFields | undefined {
  let range: string | undefined;
  let ifRange: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const n = name.length;
    // Length first: most request fields are neither.
    if (n !== 5 && n !== 8) continue;
    const lower = name.toLowerCase();
    if (lower === 'range') range = range === undefined ? raw[i + 1]! : `${range}, ${raw[i + 1]!}`;
    else if (lower === 'if-range') ifRange = ifRange === undefined ? raw[i + 1]! : `${ifRange}, ${raw[i + 1]!}`;
  }
  return range === undefined ? undefined : { range, ifRange };
}

const DIGITS = /^[0-9]+$/;

/**
 * The range-specs of a `bytes` Range value (RFC 9110 §14.1.2), or undefined when the field is to
 * be ignored: another unit, a syntax error, a last-pos before its first-pos, no range at all, or
 * more than MAX_RANGES of them.
 */
export function parseRange(value: string): RangeSpec[] | undefined {
  const s = value.trim();
  const eq = s.indexOf('=');
  // The unit is case-insensitive (§14.1); no whitespace around "=" in the grammar.
  if (eq !== 5 || s.slice(0, 5).toLowerCase() !== 'bytes') return undefined;
  const specs: RangeSpec[] = [];
  for (const member of s.slice(6).split(',')) {
    const m = member.trim();
    if (m === '') continue; // §5.6.1: empty list elements are accepted
    if (specs.length === MAX_RANGES) return undefined;
    const dash = m.indexOf('-');
    if (dash < 0) return undefined;
    const a = m.slice(0, dash);
    const b = m.slice(dash + 1);
    if (a === '') {
      if (!DIGITS.test(b)) return undefined;
      specs.push({ suffix: Number(b) });
      continue;
    }
    if (!DIGITS.test(a) || (b !== '' && !DIGITS.test(b))) return undefined;
    const first = Number(a);
    const last = b === '' ? undefined : Number(b);
    if (last !== undefined && last < first) return undefined; // §14.1.1: invalid
    specs.push({ first, last });
  }
  return specs.length === 0 ? undefined : specs;
}

/** The specs resolved against `length` (§14.1.2): the satisfiable ones, clipped, in request order. */
function resolve(specs: readonly RangeSpec[], length: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (const spec of specs) {
    if ('suffix' in spec) {
      // A suffix-length of 0 is unsatisfiable; a longer one than the representation means all of it.
      if (spec.suffix > 0 && length > 0) out.push({ start: Math.max(0, length - spec.suffix), end: length - 1 });
    } else if (spec.first < length) {
      out.push({ start: spec.first, end: spec.last === undefined ? length - 1 : Math.min(spec.last, length - 1) });
    }
  }
  return out;
}

/**
 * Ranges sorted and merged where they overlap or touch; the request's order when none do
 * (§15.3.7.2: parts SHOULD follow the request, MAY be coalesced).
 */
export function coalesce(ranges: readonly ByteRange[]): ByteRange[] {
  if (ranges.length < 2) return ranges.slice();
  const sorted = ranges.slice().sort((x, y) => x.start - y.start);
  const merged: ByteRange[] = [];
  let cur = sorted[0]!;
  for (let i = 1; i < sorted.length; i++) {
    const next = sorted[i]!;
    if (next.start <= cur.end + 1) cur = { start: cur.start, end: Math.max(cur.end, next.end) };
    else {
      merged.push(cur);
      cur = next;
    }
  }
  merged.push(cur);
  return merged.length === ranges.length ? ranges.slice() : merged;
}

/** What a Range value asks of a representation of `length` bytes. */
export function planRanges(value: string, length: number): RangePlan {
  const specs = parseRange(value);
  if (specs === undefined) return FULL;
  const ranges = resolve(specs, length);
  if (ranges.length === 0) return UNSATISFIABLE;
  return { kind: 'ranges', ranges: coalesce(ranges) };
}

const FULL: RangePlan = Object.freeze({ kind: 'full' });
const UNSATISFIABLE: RangePlan = Object.freeze({ kind: 'unsatisfiable' });

/**
 * Whether an If-Range value lets the Range apply to the stored response with `headers`
 * (RFC 9110 §13.1.5): an entity-tag (its first three characters hold a DQUOTE) by strong
 * comparison with the stored ETag; an HTTP-date when it equals the stored Last-Modified and the
 * stored Date is at least one second later (§8.8.2.2, the only way a date is a strong validator).
 */
export function ifRangeMatches(value: string, headers: RawHeaders): boolean {
  const v = value.trim();
  if (v.slice(0, 3).includes('"')) {
    const tag = parseEntityTag(v);
    const line = getHeaderLines(headers, 'etag')[0];
    const stored = line === undefined ? undefined : parseEntityTag(line);
    return tag !== undefined && stored !== undefined && tag.opaque.length === v.length - (tag.weak ? 2 : 0) && strongMatch(tag, stored);
  }
  const date = parseHttpDate(v);
  if (date === undefined) return false;
  const lastModified = parseLastModified(headers);
  const sent = parseDateHeader(headers);
  return lastModified !== undefined && sent !== undefined && date === lastModified && sent - lastModified >= 1000;
}

/** The stored response a range is cut from (CacheEntry satisfies it). */
export interface RangeSource {
  readonly status: number;
  readonly headers: RawHeaders;
  readonly body: readonly Buffer[];
  readonly bodySize: number;
}

/** A range answer: one part, several (multipart/byteranges, with its boundary), or 416. */
export type RangeAnswer =
  | { readonly kind: 'single'; readonly range: ByteRange; readonly body: Buffer[] }
  | { readonly kind: 'multipart'; readonly boundary: string; readonly body: Buffer[]; readonly length: number }
  | { readonly kind: 'unsatisfiable' };

/**
 * The answer to `fields` from `stored`, or undefined when the full response is to be served: not
 * a 200, an If-Range that does not match, a Range to ignore, or several ranges of a content-coded
 * response (see the header).
 */
export function rangeAnswer(stored: RangeSource, fields: RangeFields): RangeAnswer | undefined {
  if (stored.status !== 200) return undefined;
  if (fields.ifRange !== undefined && !ifRangeMatches(fields.ifRange, stored.headers)) return undefined;
  const plan = planRanges(fields.range, stored.bodySize);
  if (plan.kind === 'full') return undefined;
  if (plan.kind === 'unsatisfiable') return plan;
  const ranges = plan.ranges;
  if (ranges.length === 1) return { kind: 'single', range: ranges[0]!, body: slice(stored.body, ranges[0]!) };
  if (contentCoded(stored.headers)) return undefined;
  const boundary = randomBytes(12).toString('hex');
  const contentType = getHeaderLines(stored.headers, 'content-type')[0];
  return { kind: 'multipart', boundary, ...multipartBody(stored.body, ranges, stored.bodySize, contentType, boundary) };
}

function contentCoded(headers: RawHeaders): boolean {
  for (const line of getHeaderLines(headers, 'content-encoding')) {
    for (const coding of line.split(',')) {
      const c = coding.trim().toLowerCase();
      if (c !== '' && c !== 'identity') return true;
    }
  }
  return false;
}

/** The bytes of `range` out of `chunks`, as views of them (nothing is copied). */
export function slice(chunks: readonly Buffer[], range: ByteRange): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  for (const chunk of chunks) {
    const next = offset + chunk.length;
    if (next > range.start && offset <= range.end) {
      const from = Math.max(0, range.start - offset);
      const to = Math.min(chunk.length, range.end + 1 - offset);
      out.push(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
    }
    if (next > range.end) break;
    offset = next;
  }
  return out;
}

/**
 * A multipart/byteranges body (RFC 9110 §14.6): each part headed by the boundary, the stored
 * Content-Type (when there is one) and its Content-Range; `length` is its size in bytes.
 */
export function multipartBody(
  chunks: readonly Buffer[],
  ranges: readonly ByteRange[],
  total: number,
  contentType: string | undefined,
  boundary: string,
): { body: Buffer[]; length: number } {
  const body: Buffer[] = [];
  let length = 0;
  const type = contentType === undefined ? '' : `Content-Type: ${contentType}\r\n`;
  ranges.forEach((r, i) => {
    const head = Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\n${type}Content-Range: bytes ${r.start}-${r.end}/${total}\r\n\r\n`, 'latin1');
    body.push(head, ...slice(chunks, r));
    length += head.length + r.end - r.start + 1;
  });
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  body.push(tail);
  return { body, length: length + tail.length };
}
