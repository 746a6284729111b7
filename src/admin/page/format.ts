/** How the page writes numbers, durations and times. */

/** One formatter for all: Number.toLocaleString builds a new one per call (slow at 10,000 rows). */
const GROUPED = new Intl.NumberFormat('en-US');

export function count(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  return n < 1000 && n > -1000 ? String(n) : GROUPED.format(n);
}

export function rate(n: number): string {
  return n === 0 ? '0' : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : count(Math.round(n));
}

export function percent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined) return '–';
  const p = ratio * 100;
  return `${p === 0 || p === 100 ? p.toFixed(0) : p < 10 ? p.toFixed(2) : p.toFixed(1)} %`;
}

export function millis(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  return ms < 10 ? `${ms.toFixed(1)} ms` : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** "3 s", "4 min", "2 h": a span in seconds, rounded to what an operator reads at a glance. */
export function span(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}

/** "12 s ago" / "in 25 s" for an ISO time, from `now` (ms). */
export function relative(iso: string, now: number): string {
  const d = (Date.parse(iso) - now) / 1000;
  return d >= 0 ? `in ${span(d)}` : `${span(-d)} ago`;
}

/** The wall-clock time of an ISO time, HH:MM:SS local. */
export function clock(iso: string): string {
  return new Date(iso).toLocaleTimeString('en-GB', { hour12: false });
}
