/**
 * Normalisation of the request fields a response varies on (RFC 9111 §4.1): "the selecting header
 * fields ... match if ... normalizing both header field values in a way that is known to have
 * identical semantics". Requests whose values differ only in such ways share a stored variant.
 *
 * Every value gets the generic rule (whitespace folded, none around commas; field lines are
 * already combined, RFC 9110 §5.3). A field whose grammar allows more has an entry in
 * VARY_NORMALISERS, keyed by its lower-case name: adding a field is adding a line there.
 */

/** A field-specific normaliser: takes the generically normalised value, returns the canonical one. */
export type VaryNormaliser = (value: string) => string;

/**
 * Accept-Encoding: codings are case-insensitive (RFC 9110 §8.4.1) and their order is not
 * significant; members are lower-cased, de-duplicated and sorted (parameters kept).
 */
function acceptEncoding(value: string): string {
  const members = value
    .split(',')
    .filter((m) => m !== '')
    .map((m) => m.replace(/ ?; ?/g, ';').replace(/ ?= ?/g, '=').toLowerCase());
  return [...new Set(members)].sort().join(',');
}

/** RFC 9110 §12.4.2 qvalue: 0 to 1 with at most three decimals. */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/**
 * Accept-Language: language ranges are case-insensitive (RFC 4647 §2.1) and RFC 9110 §12.5.4
 * ranks them by weight only, so ranges of equal weight are an equal preference and their order
 * means nothing. Ranges are lower-cased, grouped by weight (highest first, `q=1` written as no
 * weight), sorted and de-duplicated within a group; weights are kept, so `en;q=0.8` and `en`
 * stay different. A value with a weight outside the grammar is only lower-cased: nothing is
 * guessed about it.
 */
function acceptLanguage(value: string): string {
  const byWeight = new Map<number, Set<string>>();
  for (const member of value.split(',')) {
    if (member === '') continue;
    const [range = '', ...params] = member.split(';').map((p) => p.trim().toLowerCase());
    let weight = 1;
    for (const p of params) {
      const eq = p.indexOf('=');
      const name = p.slice(0, eq).trim();
      const v = p.slice(eq + 1).trim();
      if (eq < 0 || name !== 'q' || !QVALUE.test(v)) return value.toLowerCase();
      weight = Number(v);
    }
    let group = byWeight.get(weight);
    if (group === undefined) byWeight.set(weight, (group = new Set()));
    group.add(range);
  }
  const parts: string[] = [];
  for (const weight of [...byWeight.keys()].sort((a, b) => b - a)) {
    const suffix = weight === 1 ? '' : `;q=${weight}`;
    for (const range of [...byWeight.get(weight)!].sort()) parts.push(range + suffix);
  }
  return parts.join(',');
}

/** Field-specific normalisers, by lower-case field name. */
export const VARY_NORMALISERS: Readonly<Record<string, VaryNormaliser>> = Object.freeze({
  'accept-encoding': acceptEncoding,
  'accept-language': acceptLanguage,
});

/**
 * The canonical form of a selecting field's value: whitespace runs folded to one space, trimmed,
 * none around commas; then the field's own normaliser, if VARY_NORMALISERS has one.
 */
export function normalizeVaryValue(name: string, value: string): string {
  const v = value.replace(/[ \t]+/g, ' ').trim().replace(/ ?, ?/g, ',');
  const normalise = VARY_NORMALISERS[name.toLowerCase()];
  return normalise === undefined ? v : normalise(v);
}
