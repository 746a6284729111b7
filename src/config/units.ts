/**
 * Human units in the config: durations (`250ms`, `5s`, `1m30s`) and sizes (`10MiB`, `512KB`).
 * Parsers return the value, or a message naming what was expected, so the schema can report
 * `path: message` without throwing.
 */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/** Milliseconds, or an error message. `0` (number or string) disables a timeout. */
export function parseDuration(value: unknown): number | { error: string } {
  if (value === 0 || value === '0') return 0;
  if (typeof value !== 'string' || value.length === 0) {
    // Bare numbers are refused: `5` could mean seconds (NGINX) or milliseconds (Node).
    return { error: `expected a duration like "250ms", "5s" or "1m30s", got ${show(value)}` };
  }
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < value.length) {
    const start = DURATION_PART.lastIndex;
    const m = DURATION_PART.exec(value);
    if (!m || m.index !== start) {
      return { error: `expected a duration like "250ms", "5s" or "1m30s", got ${show(value)}` };
    }
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  }
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1000, kb: 1000, m: 1000 ** 2, mb: 1000 ** 2, g: 1000 ** 3, gb: 1000 ** 3,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3,
};
const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i;

/** Bytes, or an error message. Integers are bytes; `KiB/MiB/GiB` are binary, `KB/MB/GB` decimal. */
export function parseSize(value: unknown): number | { error: string } {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  const m = typeof value === 'string' ? SIZE.exec(value.trim()) : null;
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    return { error: `expected a size like "512KiB", "10MiB" or a number of bytes, got ${show(value)}` };
  }
  return Math.round(Number(m[1]) * unit);
}

/** Renders a config value the way the user wrote it, for error messages. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (value !== null && typeof value === 'object') return 'a mapping';
  return String(value);
}
