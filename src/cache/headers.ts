/**
 * Helpers over "raw" header arrays, the representation the cache works with.
 *
 * A raw header array is what node's `req.rawHeaders` / `res.rawHeaders` give:
 * `[name, value, name, value, ...]`, names in their original case, repeated
 * fields kept as separate lines in the order received. The proxy forwards this
 * representation unchanged, so the cache stores and returns it too.
 *
 * API (all pure, never mutating their input):
 *   type RawHeaders = readonly string[]
 *   getHeader(raw, name): string | undefined      all lines of `name` joined with ", "
 *   getHeaderLines(raw, name): string[]           each line's value, in order
 *   hasHeader(raw, name): boolean
 *   removeHeaders(raw, names): string[]           copy without the named fields
 *   setHeader(raw, name, value): string[]         copy with `name` replaced by one line
 *   splitList(value): string[]                    RFC 9110 §5.6.1 list members (quote-aware)
 *
 * Field names are compared case-insensitively (RFC 9110 §5.1). Joining repeated
 * lines with ", " is the combination RFC 9110 §5.3 allows for list-based fields;
 * callers reading a singleton field that may legitimately contain commas
 * (HTTP-dates in Expires, Date, Last-Modified) use `getHeaderLines` instead.
 */

/** `[name, value, name, value, ...]` as in node's `rawHeaders`. */
export type RawHeaders = readonly string[];

function sameName(a: string, lowerB: string): boolean {
  return a.length === lowerB.length && a.toLowerCase() === lowerB;
}

/** Every value of `name` (case-insensitive), one entry per field line, in order. */
export function getHeaderLines(raw: RawHeaders, name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (sameName(raw[i]!, lower)) out.push(raw[i + 1]!);
  }
  return out;
}

/**
 * The field value of `name` (case-insensitive): repeated lines joined with ", "
 * (RFC 9110 §5.3), or undefined when the field is absent.
 */
export function getHeader(raw: RawHeaders, name: string): string | undefined {
  const lower = name.toLowerCase();
  let value: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (sameName(raw[i]!, lower)) {
      value = value === undefined ? raw[i + 1]! : `${value}, ${raw[i + 1]!}`;
    }
  }
  return value;
}

export function hasHeader(raw: RawHeaders, name: string): boolean {
  const lower = name.toLowerCase();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (sameName(raw[i]!, lower)) return true;
  }
  return false;
}

/** A copy of `raw` without any line whose name is in `names` (case-insensitive). */
export function removeHeaders(raw: RawHeaders, names: Iterable<string>): string[] {
  const drop = new Set<string>();
  for (const n of names) drop.add(n.toLowerCase());
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!drop.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/**
 * A copy of `raw` where every line of `name` is replaced by a single line
 * `name: value`, kept at the position of the first replaced line (appended when absent).
 */
export function setHeader(raw: RawHeaders, name: string, value: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  let placed = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (sameName(raw[i]!, lower)) {
      if (!placed) {
        out.push(raw[i]!, value);
        placed = true;
      }
    } else {
      out.push(raw[i]!, raw[i + 1]!);
    }
  }
  if (!placed) out.push(name, value);
  return out;
}

/**
 * Splits a list-based field value into its members (RFC 9110 §5.6.1): commas
 * inside quoted strings do not split, surrounding whitespace is trimmed and
 * empty members are dropped ("a recipient MUST accept empty list elements").
 */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let inQuote = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (inQuote) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inQuote = false;
    } else if (c === 0x22) {
      inQuote = true;
    } else if (c === 0x2c /* , */) {
      const member = value.slice(start, i).trim();
      if (member !== '') out.push(member);
      start = i + 1;
    }
  }
  const last = value.slice(start).trim();
  if (last !== '') out.push(last);
  return out;
}
