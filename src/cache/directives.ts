/**
 * Parsing of the fields that drive caching: Cache-Control (RFC 9111 §5.2),
 * targeted cache-control fields such as CDN-Cache-Control (RFC 9213), Age
 * (§5.1), Expires (§5.3), Date / Last-Modified (RFC 9110 §5.6.7, §6.6.1, §8.8.2),
 * plus the RFC 5861 extensions stale-while-revalidate and stale-if-error.
 *
 * Everything here is pure; nothing reads the clock unless a `now` is omitted
 * where one is optional (only two-digit-year dates need it).
 *
 * API
 *   DELTA_SECONDS_MAX = 2147483648                        RFC 9111 §1.2.2
 *   DEFAULT_TARGETED_FIELDS = ['KubeProxy-Cache-Control', 'CDN-Cache-Control']
 *   parseCacheControl(value | lines): Map<name, DirectiveValue[]>
 *   responseDirectives(rawResponseHeaders, targets?): ResponseCacheControl
 *       the directives this cache obeys: the first valid targeted field, else
 *       Cache-Control (RFC 9213 §2.2). `targeted` says which; when targeted,
 *       Expires must be ignored as well.
 *   requestDirectives(rawRequestHeaders): RequestDirectives  (incl. Pragma: no-cache)
 *   parseHttpDate(text, now?): number | undefined         epoch ms, RFC 9110 §5.6.7
 *   formatHttpDate(ms): string                            IMF-fixdate
 *   parseAge(raw): number | undefined                     RFC 9111 §5.1
 *   parseExpires(raw): number | undefined                 RFC 9111 §5.3 (invalid → 0 = already expired)
 *   parseDateHeader(raw) / parseLastModified(raw): number | undefined
 *   parseVary(raw): { star: boolean; names: string[] }    RFC 9110 §12.5.5
 *
 * Decisions where the RFCs leave a choice (each cited again at the code):
 *  - Quoted delta-seconds (`max-age="60"`) are read as 60: senders MUST NOT
 *    generate them, but "recipients ought to accept both forms" (§5.2).
 *  - A delta-seconds directive that is present but invalid (`max-age=abc`,
 *    `max-age=-5`, `max-age=1.5`, `max-age` without a value) reads as 0, i.e.
 *    stale: "Caches are encouraged to consider responses that have invalid
 *    freshness information ... to be stale" (§4.2.1).
 *  - Duplicate directives with different values take the most restrictive
 *    reading: the smallest max-age / s-maxage / stale-* window, the largest
 *    request min-fresh. §4.2.1 offers "the first occurrence" or "stale"; the
 *    smallest value is never fresher than the first occurrence, and keeps
 *    `max-age=60, max-age=3600` usable for 60 s instead of not at all.
 *  - Permissions that are invalid (`stale-while-revalidate=abc`,
 *    `max-stale=abc`) grant nothing; a request `min-fresh=abc` is ignored.
 *  - Values above 2^31 become 2147483648 (§1.2.2).
 *  - Targeted fields are Structured Field Dictionaries (RFC 9213 §2.1): an
 *    empty field or one that fails to parse is ignored as if absent; a value
 *    of the wrong type (`max-age=1.5`, `max-age="60"`, negative) is "not
 *    consumed" (§2.1) and, for a freshness directive, reads as invalid → 0.
 *    SF dictionaries keep the last of duplicate keys (RFC 9651 §4.2.2). The
 *    parsing is structured-headers' (RFC 9651, which obsoletes RFC 8941).
 */

import { parseDictionary, ParseError, Token, type Dictionary } from 'structured-headers';
import { getHeader, getHeaderLines, splitList, type RawHeaders } from './headers.ts';

/** RFC 9111 §1.2.2: the value to use for any delta-seconds overflow. */
export const DELTA_SECONDS_MAX = 2147483648;

/** Target list of RFC 9213 §2.2, most applicable first. */
export const DEFAULT_TARGETED_FIELDS: readonly string[] = ['KubeProxy-Cache-Control', 'CDN-Cache-Control'];

/**
 * One directive argument. `undefined` means "no argument". `numeric` says the
 * text may be read as delta-seconds (always true for Cache-Control, whose
 * recipients accept token and quoted forms alike; only Integers for SF fields).
 */
export type DirectiveValue = undefined | { readonly text: string; readonly numeric: boolean };

/** Lower-case directive name → every occurrence's argument, in order. */
export type DirectiveMap = Map<string, DirectiveValue[]>;

/** Parses `1*DIGIT` (RFC 9111 §1.2.2); overflow → 2^31; anything else → undefined. */
function parseDeltaSeconds(text: string): number | undefined {
  if (text.length === 0) return undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  // More than 10 significant digits is always above 2^31; Number() stays exact below 2^53.
  const trimmed = text.replace(/^0+(?=\d)/, '');
  if (trimmed.length > 10) return DELTA_SECONDS_MAX;
  const n = Number(trimmed);
  return n > DELTA_SECONDS_MAX ? DELTA_SECONDS_MAX : n;
}

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * Parses one or more Cache-Control field lines (RFC 9111 §5.2):
 * `#cache-directive`, `cache-directive = token [ "=" ( token / quoted-string ) ]`.
 * Names are lower-cased ("compared case-insensitively"); quoted-string escapes
 * are undone (RFC 9110 §5.6.4); whitespace around "=" is tolerated; junk after
 * an argument up to the next comma is skipped. Several lines are one list
 * (RFC 9110 §5.3).
 */
export function parseCacheControl(value: string | readonly string[] | undefined): DirectiveMap {
  const map: DirectiveMap = new Map();
  if (value === undefined) return map;
  const s = typeof value === 'string' ? value : value.join(',');
  const n = s.length;
  let i = 0;
  while (i < n) {
    while (i < n && (isWs(s.charCodeAt(i)) || s.charCodeAt(i) === 0x2c)) i++;
    if (i >= n) break;
    const nameStart = i;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x2c || c === 0x3d || isWs(c)) break;
      i++;
    }
    const name = s.slice(nameStart, i).toLowerCase();
    let j = i;
    while (j < n && isWs(s.charCodeAt(j))) j++;
    let arg: DirectiveValue;
    if (j < n && s.charCodeAt(j) === 0x3d /* = */) {
      i = j + 1;
      while (i < n && isWs(s.charCodeAt(i))) i++;
      if (i < n && s.charCodeAt(i) === 0x22 /* " */) {
        i++;
        let text = '';
        while (i < n && s.charCodeAt(i) !== 0x22) {
          if (s.charCodeAt(i) === 0x5c /* \ */ && i + 1 < n) i++;
          text += s[i];
          i++;
        }
        i++; // closing quote (or past the end when unterminated)
        arg = { text, numeric: true };
      } else {
        const start = i;
        while (i < n && s.charCodeAt(i) !== 0x2c) i++;
        arg = { text: s.slice(start, i).trim(), numeric: true };
      }
    } else {
      i = j;
      arg = undefined;
    }
    while (i < n && s.charCodeAt(i) !== 0x2c) i++;
    if (name === '') continue;
    const list = map.get(name);
    if (list) list.push(arg);
    else map.set(name, [arg]);
  }
  return map;
}

// ---------------------------------------------------------------------------
// Response directives
// ---------------------------------------------------------------------------

export interface ResponseDirectives {
  /** max-age (§5.2.2.1); present-but-invalid → 0. */
  readonly maxAge: number | undefined;
  /** s-maxage (§5.2.2.10); present-but-invalid → 0. */
  readonly sMaxage: number | undefined;
  readonly noStore: boolean;
  /** Unqualified no-cache (§5.2.2.4): reuse only after successful validation. */
  readonly noCache: boolean;
  /** Fields of a qualified no-cache="..." (lower-case); these are never stored. */
  readonly noCacheFields: readonly string[];
  /** Unqualified private (§5.2.2.7): a shared cache MUST NOT store the response. */
  readonly private: boolean;
  /** Fields of a qualified private="..." (lower-case); a shared cache never stores them. */
  readonly privateFields: readonly string[];
  readonly public: boolean;
  readonly mustRevalidate: boolean;
  readonly proxyRevalidate: boolean;
  readonly mustUnderstand: boolean;
  readonly noTransform: boolean;
  /** RFC 8246; parsed for completeness, no effect on a shared cache. */
  readonly immutable: boolean;
  /** RFC 5861 §3, seconds; invalid → undefined (no permission). */
  readonly staleWhileRevalidate: number | undefined;
  /** RFC 5861 §4, seconds; invalid → undefined (no permission). */
  readonly staleIfError: number | undefined;
}

export interface ResponseCacheControl extends ResponseDirectives {
  /** Name of the field the directives came from, as listed in the target list or 'Cache-Control'; undefined when neither is present. */
  readonly source: string | undefined;
  /** True when a targeted field (RFC 9213) was used: Cache-Control and Expires are then ignored. */
  readonly targeted: boolean;
}

/** Smallest delta over all occurrences; an invalid occurrence counts as 0 (§4.2.1). */
function restrictiveDelta(values: readonly DirectiveValue[] | undefined): number | undefined {
  if (!values) return undefined;
  let min: number | undefined;
  for (const v of values) {
    const n = v !== undefined && v.numeric ? (parseDeltaSeconds(v.text) ?? 0) : 0;
    min = min === undefined ? n : Math.min(min, n);
  }
  return min;
}

/** Smallest valid delta; invalid occurrences grant nothing. */
function permissionDelta(values: readonly DirectiveValue[] | undefined): number | undefined {
  if (!values) return undefined;
  let min: number | undefined;
  for (const v of values) {
    const n = v !== undefined && v.numeric ? parseDeltaSeconds(v.text) : undefined;
    if (n !== undefined) min = min === undefined ? n : Math.min(min, n);
  }
  return min;
}

/** Qualified/unqualified reading of no-cache / private (#field-name argument). */
function fieldListDirective(values: readonly DirectiveValue[] | undefined): {
  unqualified: boolean;
  fields: string[];
} {
  if (!values) return { unqualified: false, fields: [] };
  const fields = new Set<string>();
  let unqualified = false;
  for (const v of values) {
    const names = v === undefined ? [] : splitList(v.text).map((f) => f.toLowerCase());
    // An empty argument names no field: read it as the unqualified (stricter) form.
    if (names.length === 0) unqualified = true;
    for (const f of names) fields.add(f);
  }
  return { unqualified, fields: unqualified ? [] : [...fields] };
}

/** Builds the typed response view of a directive map. */
function toResponseDirectives(map: DirectiveMap): ResponseDirectives {
  const noCache = fieldListDirective(map.get('no-cache'));
  const priv = fieldListDirective(map.get('private'));
  return {
    maxAge: restrictiveDelta(map.get('max-age')),
    sMaxage: restrictiveDelta(map.get('s-maxage')),
    noStore: map.has('no-store'),
    noCache: noCache.unqualified,
    noCacheFields: noCache.fields,
    private: priv.unqualified,
    privateFields: priv.fields,
    public: map.has('public'),
    mustRevalidate: map.has('must-revalidate'),
    proxyRevalidate: map.has('proxy-revalidate'),
    mustUnderstand: map.has('must-understand'),
    noTransform: map.has('no-transform'),
    immutable: map.has('immutable'),
    staleWhileRevalidate: permissionDelta(map.get('stale-while-revalidate')),
    staleIfError: permissionDelta(map.get('stale-if-error')),
  };
}

/**
 * The response directives this cache obeys (RFC 9213 §2.2): the first field
 * of `targets` present with a valid, non-empty value REPLACES Cache-Control
 * (and Expires) for this cache; otherwise Cache-Control is used.
 */
export function responseDirectives(
  raw: RawHeaders,
  targets: readonly string[] = DEFAULT_TARGETED_FIELDS,
): ResponseCacheControl {
  for (const name of targets) {
    const lines = getHeaderLines(raw, name);
    if (lines.length === 0) continue;
    const text = lines.join(', ').trim();
    if (text === '') continue; // RFC 9213 §2.1: empty → ignored
    const map = targetedDirectives(text);
    if (map === undefined || map.size === 0) continue; // parse error → ignored
    return { ...toResponseDirectives(map), source: name, targeted: true };
  }
  const lines = getHeaderLines(raw, 'cache-control');
  return {
    ...toResponseDirectives(parseCacheControl(lines)),
    source: lines.length > 0 ? 'Cache-Control' : undefined,
    targeted: false,
  };
}

// ---------------------------------------------------------------------------
// Request directives
// ---------------------------------------------------------------------------

export interface RequestDirectives {
  /** max-age (§5.2.1.1); invalid → 0 (the client wants a validated response). */
  readonly maxAge: number | undefined;
  /** max-stale (§5.2.1.2); without a value → Infinity; invalid → undefined. */
  readonly maxStale: number | undefined;
  /** min-fresh (§5.2.1.3); duplicates → the largest; invalid → ignored. */
  readonly minFresh: number | undefined;
  /** no-cache (§5.2.1.4), or `Pragma: no-cache` without Cache-Control. */
  readonly noCache: boolean;
  readonly noStore: boolean;
  readonly onlyIfCached: boolean;
  /** RFC 5861 §4 request form, seconds. */
  readonly staleIfError: number | undefined;
}

/**
 * Request Cache-Control directives. When the request has no Cache-Control
 * field, `Pragma: no-cache` is read as `Cache-Control: no-cache`: RFC 7234
 * §5.4 required this; RFC 9111 §5.4 deprecates Pragma without replacing the
 * rule, and honouring it is the conservative reading for HTTP/1.0 clients.
 */
export function requestDirectives(raw: RawHeaders): RequestDirectives {
  const lines = getHeaderLines(raw, 'cache-control');
  const map = parseCacheControl(lines);
  let noCache = map.has('no-cache');
  if (lines.length === 0) {
    const pragma = getHeader(raw, 'pragma');
    if (pragma !== undefined && splitList(pragma).some((p) => p.toLowerCase() === 'no-cache')) noCache = true;
  }
  let maxStale: number | undefined;
  for (const v of map.get('max-stale') ?? []) {
    const n = v === undefined ? Number.POSITIVE_INFINITY : parseDeltaSeconds(v.text);
    if (n !== undefined) maxStale = maxStale === undefined ? n : Math.min(maxStale, n);
  }
  let minFresh: number | undefined;
  for (const v of map.get('min-fresh') ?? []) {
    const n = v === undefined ? undefined : parseDeltaSeconds(v.text);
    if (n !== undefined) minFresh = minFresh === undefined ? n : Math.max(minFresh, n);
  }
  return {
    maxAge: restrictiveDelta(map.get('max-age')),
    maxStale,
    minFresh,
    noCache,
    noStore: map.has('no-store'),
    onlyIfCached: map.has('only-if-cached'),
    staleIfError: permissionDelta(map.get('stale-if-error')),
  };
}

// ---------------------------------------------------------------------------
// Targeted fields: Structured Field Dictionaries (RFC 9651 §3.2, via structured-headers)
// ---------------------------------------------------------------------------

/**
 * Parses a targeted field's value as a Structured Field Dictionary and maps
 * each member onto a directive value (RFC 9213 §2.1). Undefined when the text
 * fails to parse, as §2.1 needs for "a parsing error is encountered". The
 * last of duplicate keys wins (RFC 9651 §4.2.2); parameters are ignored.
 */
function targetedDirectives(text: string): DirectiveMap | undefined {
  let dict: Dictionary;
  try {
    dict = parseDictionary(text);
  } catch (err) {
    if (err instanceof ParseError) return undefined;
    throw err;
  }
  const map: DirectiveMap = new Map();
  for (const [key, [value]] of dict) {
    let v: DirectiveValue;
    if (value === false) continue; // `?0`: the directive is not asserted
    if (value === true) v = undefined;
    // Only a non-negative Integer satisfies delta-seconds (§2.1 "inferred constraints").
    // structured-headers returns Integer and Decimal alike as numbers, so `1.0` reads as 1.
    else if (typeof value === 'number') v = { text: String(value), numeric: Number.isInteger(value) && value >= 0 };
    else if (typeof value === 'string' || value instanceof Token) v = { text: value.toString(), numeric: false };
    // Inner list, bytes, date, display string: no directive takes them. (structured-headers 2.1
    // rejects a Date that is not the field's last member, so such a field is ignored whole.)
    else v = { text: '', numeric: false };
    map.set(key, [v]);
  }
  return map;
}

// ---------------------------------------------------------------------------
// Dates (RFC 9110 §5.6.7) and the date-valued fields
// ---------------------------------------------------------------------------

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const IMF_FIXDATE = /^(?:mon|tue|wed|thu|fri|sat|sun), (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) gmt$/;
const RFC850_DATE =
  /^(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), (\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) gmt$/;
const ASCTIME_DATE = /^(?:mon|tue|wed|thu|fri|sat|sun) ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

function utc(year: number, monthName: string, day: number, h: number, m: number, s: number): number | undefined {
  const month = MONTHS.indexOf(monthName);
  if (month < 0 || day < 1 || day > 31 || h > 23 || m > 59 || s > 60) return undefined;
  const t = Date.UTC(year, month, day, h, m, s);
  // Reject day overflow such as 31 Feb (a leap second of 60 rolls over, which is fine).
  if (new Date(Date.UTC(year, month, day)).getUTCDate() !== day) return undefined;
  return t;
}

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, obsolete RFC 850 and
 * asctime forms. Matched case-insensitively and only with the zone "GMT"
 * (RFC 9111 §4.2: "SHOULD consider a date with a zone abbreviation other than
 * GMT to be invalid"). Returns epoch milliseconds or undefined. `now` only
 * matters for two-digit RFC 850 years (RFC 9110 §5.6.7: a year more than 50
 * years in the future is the most recent past year with those digits).
 */
export function parseHttpDate(text: string, now: number = Date.now()): number | undefined {
  const s = text.trim().toLowerCase();
  let m = IMF_FIXDATE.exec(s);
  if (m) return utc(Number(m[3]), m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = RFC850_DATE.exec(s);
  if (m) {
    const nowYear = new Date(now).getUTCFullYear();
    let year = nowYear - (nowYear % 100) + Number(m[3]);
    const t = utc(year, m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
    if (t === undefined) return undefined;
    const fiftyYears = 50 * 365.25 * 86_400_000;
    if (t > now + fiftyYears) year -= 100;
    return utc(year, m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  m = ASCTIME_DATE.exec(s);
  if (m) return utc(Number(m[6]), m[1]!, Number(m[2]!.trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  return undefined;
}

/** IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7). */
export function formatHttpDate(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toUTCString();
}

/**
 * The Age value (RFC 9111 §5.1): the first line's first member, which must be
 * a non-negative integer; anything else (e.g. `-5`, `abc`) makes the field
 * ignored ("a cache SHOULD ignore the field") → undefined. Overflow → 2^31 (§1.2.2).
 */
export function parseAge(raw: RawHeaders): number | undefined {
  const lines = getHeaderLines(raw, 'age');
  if (lines.length === 0) return undefined;
  const first = lines[0]!.split(',')[0]!.trim();
  return parseDeltaSeconds(first);
}

/**
 * The Expires time in epoch ms, or undefined when the field is absent. An
 * invalid date, "especially the value 0", means already expired (§5.3): it is
 * returned as 0 (the epoch, a time in the past). Several lines (§4.2.1: "first
 * occurrence ... or stale") → the earliest, any invalid one → 0.
 */
export function parseExpires(raw: RawHeaders, now?: number): number | undefined {
  const lines = getHeaderLines(raw, 'expires');
  if (lines.length === 0) return undefined;
  let min = Number.POSITIVE_INFINITY;
  for (const line of lines) {
    const t = parseHttpDate(line, now);
    if (t === undefined) return 0;
    min = Math.min(min, t);
  }
  return min;
}

/** The first Date line as epoch ms; undefined when absent or invalid. */
export function parseDateHeader(raw: RawHeaders, now?: number): number | undefined {
  const first = getHeaderLines(raw, 'date')[0];
  return first === undefined ? undefined : parseHttpDate(first, now);
}

/** The first Last-Modified line as epoch ms; undefined when absent or invalid. */
export function parseLastModified(raw: RawHeaders, now?: number): number | undefined {
  const first = getHeaderLines(raw, 'last-modified')[0];
  return first === undefined ? undefined : parseHttpDate(first, now);
}

/**
 * The Vary field (RFC 9110 §12.5.5): lower-cased, de-duplicated, sorted field
 * names, and whether a `*` member is present (which never matches, RFC 9111 §4.1).
 */
export function parseVary(raw: RawHeaders): { star: boolean; names: string[] } {
  const value = getHeader(raw, 'vary');
  if (value === undefined) return { star: false, names: [] };
  const names = new Set<string>();
  let star = false;
  for (const member of splitList(value)) {
    if (member === '*') star = true;
    else names.add(member.toLowerCase());
  }
  return { star, names: [...names].sort() };
}
