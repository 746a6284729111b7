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
 *   parseDeltaSeconds(text): number | undefined           1*DIGIT, capped at 2^31
 *   parseCacheControl(value | lines): Map<name, DirectiveValue[]>
 *   responseDirectives(rawResponseHeaders, targets?): ResponseCacheControl
 *       the directives this cache obeys: the first valid targeted field, else
 *       Cache-Control (RFC 9213 §2.2). `targeted` says which; when targeted,
 *       Expires must be ignored as well.
 *   requestDirectives(rawRequestHeaders): RequestDirectives  (incl. Pragma: no-cache)
 *   parseStructuredDictionary(text): Map<key, SfMember> | undefined   RFC 8941 §4.2.2
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
 *    SF dictionaries keep the last of duplicate keys (RFC 8941 §4.2.2).
 */

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
export function parseDeltaSeconds(text: string): number | undefined {
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
export function toResponseDirectives(map: DirectiveMap): ResponseDirectives {
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

/** Maps a targeted field's SF dictionary onto directive values (RFC 9213 §2.1). */
function sfToDirectiveMap(dict: Map<string, SfMember>): DirectiveMap {
  const map: DirectiveMap = new Map();
  for (const [key, member] of dict) {
    let v: DirectiveValue;
    switch (member.type) {
      case 'boolean':
        if (!member.value) continue; // `?0`: the directive is not asserted
        v = undefined;
        break;
      case 'integer':
        // Only a non-negative Integer satisfies delta-seconds (§2.1 "inferred constraints").
        v = { text: String(member.value), numeric: member.value >= 0 };
        break;
      case 'string':
      case 'token':
        v = { text: member.value, numeric: false };
        break;
      default:
        v = { text: '', numeric: false };
    }
    map.set(key, [v]);
  }
  return map;
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
    const dict = parseStructuredDictionary(text);
    if (dict === undefined || dict.size === 0) continue; // parse error → ignored
    return { ...toResponseDirectives(sfToDirectiveMap(dict)), source: name, targeted: true };
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
// Structured Field Dictionary (RFC 8941 §4.2.2, with RFC 9651 Date / Display String)
// ---------------------------------------------------------------------------

export type SfMember =
  | { readonly type: 'integer' | 'decimal' | 'date'; readonly value: number }
  | { readonly type: 'string' | 'token' | 'bytes' | 'displaystring'; readonly value: string }
  | { readonly type: 'boolean'; readonly value: boolean }
  | { readonly type: 'inner-list' };

class SfError extends Error {}

function isLcAlpha(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}
function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || isLcAlpha(c);
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
const TCHAR_EXTRA = "!#$%&'*+-.^_`|~";
function isTchar(c: number): boolean {
  return isAlpha(c) || isDigit(c) || TCHAR_EXTRA.includes(String.fromCharCode(c));
}

class SfParser {
  i = 0;
  constructor(readonly s: string) {}

  peek(): number {
    return this.i < this.s.length ? this.s.charCodeAt(this.i) : -1;
  }
  fail(): never {
    throw new SfError('invalid structured field');
  }

  dictionary(): Map<string, SfMember> {
    const dict = new Map<string, SfMember>();
    while (this.i < this.s.length) {
      const key = this.key();
      let member: SfMember;
      if (this.peek() === 0x3d /* = */) {
        this.i++;
        member = this.itemOrInnerList();
      } else {
        member = { type: 'boolean', value: true };
        this.parameters();
      }
      dict.set(key, member); // last duplicate wins (RFC 8941 §4.2.2)
      while (isWs(this.peek())) this.i++;
      if (this.i >= this.s.length) return dict;
      if (this.peek() !== 0x2c) this.fail();
      this.i++;
      while (isWs(this.peek())) this.i++;
      if (this.i >= this.s.length) this.fail(); // trailing comma
    }
    return dict;
  }

  key(): string {
    const c = this.peek();
    if (!isLcAlpha(c) && c !== 0x2a /* * */) this.fail();
    const start = this.i;
    for (;;) {
      const d = this.peek();
      if (isLcAlpha(d) || isDigit(d) || d === 0x5f || d === 0x2d || d === 0x2e || d === 0x2a) this.i++;
      else break;
    }
    return this.s.slice(start, this.i);
  }

  parameters(): void {
    while (this.peek() === 0x3b /* ; */) {
      this.i++;
      while (this.peek() === 0x20) this.i++;
      this.key();
      if (this.peek() === 0x3d) {
        this.i++;
        this.bareItem();
      }
    }
  }

  itemOrInnerList(): SfMember {
    if (this.peek() !== 0x28 /* ( */) {
      const item = this.bareItem();
      this.parameters(); // parameters on directives are ignored (RFC 9213 §2.1)
      return item;
    }
    this.i++;
    for (;;) {
      while (this.peek() === 0x20) this.i++;
      if (this.peek() === 0x29 /* ) */) {
        this.i++;
        this.parameters();
        return { type: 'inner-list' };
      }
      if (this.i >= this.s.length) this.fail();
      this.bareItem();
      this.parameters();
      const c = this.peek();
      if (c !== 0x20 && c !== 0x29) this.fail();
    }
  }

  bareItem(): SfMember {
    const c = this.peek();
    if (c === 0x2d || isDigit(c)) return this.number();
    if (c === 0x22) return { type: 'string', value: this.string() };
    if (c === 0x2a || isAlpha(c)) return { type: 'token', value: this.token() };
    if (c === 0x3a /* : */) return { type: 'bytes', value: this.bytes() };
    if (c === 0x3f /* ? */) {
      this.i++;
      const b = this.peek();
      if (b !== 0x30 && b !== 0x31) this.fail();
      this.i++;
      return { type: 'boolean', value: b === 0x31 };
    }
    if (c === 0x40 /* @ */) {
      this.i++;
      const n = this.number();
      if (n.type !== 'integer') this.fail();
      return { type: 'date', value: n.value };
    }
    if (c === 0x25 /* % */) {
      this.i++;
      if (this.peek() !== 0x22) this.fail();
      return { type: 'displaystring', value: this.string() };
    }
    return this.fail();
  }

  number(): { type: 'integer' | 'decimal'; value: number } {
    const start = this.i;
    if (this.peek() === 0x2d) this.i++;
    if (!isDigit(this.peek())) this.fail();
    let intDigits = 0;
    while (isDigit(this.peek())) {
      this.i++;
      intDigits++;
    }
    if (this.peek() !== 0x2e /* . */) {
      if (intDigits > 15) this.fail();
      return { type: 'integer', value: Number(this.s.slice(start, this.i)) };
    }
    if (intDigits > 12) this.fail();
    this.i++;
    let frac = 0;
    while (isDigit(this.peek())) {
      this.i++;
      frac++;
    }
    if (frac === 0 || frac > 3) this.fail();
    return { type: 'decimal', value: Number(this.s.slice(start, this.i)) };
  }

  string(): string {
    this.i++; // opening quote
    let out = '';
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i++);
      if (c === 0x5c) {
        const e = this.peek();
        if (e !== 0x22 && e !== 0x5c) this.fail();
        out += String.fromCharCode(e);
        this.i++;
      } else if (c === 0x22) {
        return out;
      } else if (c < 0x20 || c > 0x7e) {
        this.fail();
      } else {
        out += String.fromCharCode(c);
      }
    }
    return this.fail(); // unterminated
  }

  token(): string {
    const start = this.i;
    this.i++;
    for (;;) {
      const c = this.peek();
      if (c >= 0 && (isTchar(c) || c === 0x3a || c === 0x2f)) this.i++;
      else break;
    }
    return this.s.slice(start, this.i);
  }

  bytes(): string {
    this.i++;
    const start = this.i;
    while (this.i < this.s.length && this.peek() !== 0x3a) {
      const c = this.peek();
      if (!(isAlpha(c) || isDigit(c) || c === 0x2b || c === 0x2f || c === 0x3d)) this.fail();
      this.i++;
    }
    if (this.peek() !== 0x3a) this.fail();
    const value = this.s.slice(start, this.i);
    this.i++;
    return value;
  }
}

/**
 * Parses a Structured Field Dictionary (RFC 8941 §4.2: leading/trailing SP
 * discarded, anything left unparsed is a failure). Returns undefined on any
 * parse error, as RFC 9213 §2.1 needs for "a parsing error is encountered".
 */
export function parseStructuredDictionary(text: string): Map<string, SfMember> | undefined {
  const trimmed = text.replace(/^ +| +$/g, '');
  try {
    return new SfParser(trimmed).dictionary();
  } catch (err) {
    if (err instanceof SfError) return undefined;
    throw err;
  }
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
