/** Scrapes the admin /metrics endpoint and reads samples of the Prometheus text format. */
import { request } from './http.ts';

export interface Scrape {
  status: number;
  contentType: string | undefined;
  text: string;
  /** Sample value by `name{label="value",...}` with labels sorted by name (no braces without labels). */
  samples: Map<string, number>;
  /** The value of one sample, or undefined when it is not exported. */
  get(name: string, labels?: Record<string, string>): number | undefined;
  /** Every sample of `name` whose labels include `labels`. */
  all(name: string, labels?: Record<string, string>): Array<{ labels: Record<string, string>; value: number }>;
}

export function sampleKey(name: string, labels: Record<string, string> = {}): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return name;
  return `${name}{${names.map((n) => `${n}=${JSON.stringify(labels[n])}`).join(',')}}`;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = JSON.parse(`"${l[2]!}"`) as string;
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]) });
  }
  return out;
}

export async function scrape(adminPort: number): Promise<Scrape> {
  const r = await request(adminPort, { path: '/metrics' });
  const parsed = r.status === 200 ? parseExposition(r.text) : [];
  const samples = new Map(parsed.map((s) => [sampleKey(s.name, s.labels), s.value]));
  return {
    status: r.status,
    contentType: r.headers['content-type'],
    text: r.text,
    samples,
    get: (name, labels) => samples.get(sampleKey(name, labels)),
    all: (name, labels = {}) =>
      parsed
        .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .map((s) => ({ labels: s.labels, value: s.value })),
  };
}
