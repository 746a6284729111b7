/**
 * A Headers-like view over the proxy's raw header arrays (`[name, value, name, value, ...]`, as
 * node:http's rawHeaders and undici's raw responses hold them). Made only when a plugin runs, so a
 * proxy without plugins never builds one. Edits go to the array itself: whoever holds the array
 * (the upstream request, the response head) sends what the plugin left. A borrowed array (the
 * client's rawHeaders, which node keeps as received) is copied on the first change instead, so
 * a plugin that only reads them costs no copy.
 */
import type { HeaderMap } from './api.ts';

/**
 * The fields that frame the message body (RFC 9112 §6): the proxy sets them from the body it
 * really sends, so a plugin may read them but not change them.
 */
export const FRAMING = new Set(['content-length', 'transfer-encoding']);

/** RFC 9110 §5.1: a field name is a token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 9110 §5.5: no CR, LF or NUL in a field value (they would split or end the header block). */
const BAD_VALUE = /[\r\n\0]/;

export class RawHeaderMap implements HeaderMap {
  /** Set by any change: the owner of the array may need to re-read it. */
  changed = false;
  private lines: string[];
  /** The lines are not the proxy's to change (node's rawHeaders): the first change makes a copy. */
  private borrowed: boolean;

  constructor(
    raw: string[],
    /** Lower-case names a plugin may not change (FRAMING). */
    private readonly fixed?: ReadonlySet<string>,
    borrowed = false,
  ) {
    this.lines = raw;
    this.borrowed = borrowed;
  }

  /** The header lines: the array given, or its copy once a borrowed array was changed. */
  get raw(): string[] {
    return this.lines;
  }

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
    const lower = this.changeable(name);
    const raw = this.own();
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
    this.changeable(name);
    this.own().push(name, value);
    this.changed = true;
  }

  delete(name: string): void {
    const lower = this.changeable(name);
    if (!this.has(lower)) return;
    const raw = this.own();
    let w = 0;
    for (let r = 0; r < raw.length; r += 2) {
      if (raw[r]!.toLowerCase() === lower) continue;
      raw[w] = raw[r]!;
      raw[w + 1] = raw[r + 1]!;
      w += 2;
    }
    raw.length = w;
    this.changed = true;
  }

  *entries(): IterableIterator<[string, string]> {
    const raw = this.raw;
    for (let i = 0; i < raw.length; i += 2) yield [raw[i]!, raw[i + 1]!];
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** The lines to change: a borrowed array is copied first, and its owner told (`copied`). */
  private own(): string[] {
    if (this.borrowed) {
      this.borrowed = false;
      this.lines = this.lines.slice();
      this.copied(this.lines);
    }
    return this.lines;
  }

  /** A borrowed array was copied before its first change: whoever sends these lines must take `raw`. */
  protected copied(_raw: string[]): void {}

  private changeable(name: string): string {
    const lower = String(name).toLowerCase();
    if (this.fixed?.has(lower)) throw new TypeError(`header ${name} frames the body and is set by the proxy: a plugin cannot change it`);
    return lower;
  }
}

/**
 * One view over two header arrays: reads come from the first, changes go to both. A service's
 * onRequest runs after the request for the instances was built from the client's headers; its
 * changes must reach both (the instances get them, the cache matches Vary against them).
 */
export class MirroredHeaderMap implements HeaderMap {
  constructor(
    private readonly primary: RawHeaderMap,
    private readonly mirror: RawHeaderMap,
  ) {}

  get changed(): boolean {
    return this.primary.changed;
  }

  get(name: string): string | null {
    return this.primary.get(name);
  }

  getAll(name: string): string[] {
    return this.primary.getAll(name);
  }

  has(name: string): boolean {
    return this.primary.has(name);
  }

  set(name: string, value: string): void {
    this.primary.set(name, value);
    this.mirror.set(name, value);
  }

  append(name: string, value: string): void {
    this.primary.append(name, value);
    this.mirror.append(name, value);
  }

  delete(name: string): void {
    this.primary.delete(name);
    this.mirror.delete(name);
  }

  entries(): IterableIterator<[string, string]> {
    return this.primary.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.primary.entries();
  }
}

/** A plugin's bad header is its own bug: a TypeError naming the field, turned into a 500 naming the plugin. */
function checkField(name: string, value: string): void {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
  if (typeof value !== 'string') throw new TypeError(`header ${name}: value must be a string, got ${typeof value}`);
  if (BAD_VALUE.test(value)) throw new TypeError(`header ${name}: value contains CR, LF or NUL`);
}
