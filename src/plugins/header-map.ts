/**
 * A Headers-like view over the proxy's raw header arrays (`[name, value, name, value, ...]`, as
 * node:http's rawHeaders and undici's raw responses hold them). Made only when a plugin runs, so a
 * proxy without plugins never builds one. Edits go to the array itself: whoever holds the array
 * (the upstream request, the response head) sends what the plugin left.
 */
import type { HeaderMap } from './api.ts';

/** RFC 9110 §5.1: a field name is a token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 9110 §5.5: no CR, LF or NUL in a field value (they would split or end the header block). */
const BAD_VALUE = /[\r\n\0]/;

export class RawHeaderMap implements HeaderMap {
  /** Set by any change: the owner of the array may need to re-read it. */
  changed = false;

  constructor(readonly raw: string[]) {}

  get(name: string): string | null {
    const lower = name.toLowerCase();
    const raw = this.raw;
    let out: string | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() === lower) out = out === null ? raw[i + 1]! : `${out}, ${raw[i + 1]!}`;
    }
    return out;
  }

  getAll(name: string): string[] {
    const lower = name.toLowerCase();
    const raw = this.raw;
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() === lower) out.push(raw[i + 1]!);
    }
    return out;
  }

  has(name: string): boolean {
    const lower = name.toLowerCase();
    const raw = this.raw;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() === lower) return true;
    }
    return false;
  }

  set(name: string, value: string): void {
    checkField(name, value);
    const lower = name.toLowerCase();
    const raw = this.raw;
    let kept = false;
    let w = 0;
    // One pass: the first field of that name takes the value in place (its position kept), the others go.
    for (let r = 0; r < raw.length; r += 2) {
      if (raw[r]!.toLowerCase() === lower) {
        if (kept) continue;
        kept = true;
        raw[w] = raw[r]!;
        raw[w + 1] = value;
      } else {
        raw[w] = raw[r]!;
        raw[w + 1] = raw[r + 1]!;
      }
      w += 2;
    }
    raw.length = w;
    if (!kept) raw.push(name, value);
    this.changed = true;
  }

  append(name: string, value: string): void {
    checkField(name, value);
    this.raw.push(name, value);
    this.changed = true;
  }

  delete(name: string): void {
    const lower = name.toLowerCase();
    const raw = this.raw;
    let w = 0;
    for (let r = 0; r < raw.length; r += 2) {
      if (raw[r]!.toLowerCase() === lower) continue;
      raw[w] = raw[r]!;
      raw[w + 1] = raw[r + 1]!;
      w += 2;
    }
    if (w !== raw.length) {
      raw.length = w;
      this.changed = true;
    }
  }

  *entries(): IterableIterator<[string, string]> {
    const raw = this.raw;
    for (let i = 0; i < raw.length; i += 2) yield [raw[i]!, raw[i + 1]!];
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/** A plugin's bad header is its own bug: a TypeError naming the field, turned into a 500 naming the plugin. */
function checkField(name: string, value: string): void {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
  if (typeof value !== 'string') throw new TypeError(`header ${name}: value must be a string, got ${typeof value}`);
  if (BAD_VALUE.test(value)) throw new TypeError(`header ${name}: value contains CR, LF or NUL`);
}
