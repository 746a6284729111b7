/**
 * Copies a response body into a cache entry while it streams to the client (the tee's storage
 * side). The chunks are kept by reference (undici hands out fresh Buffers that nobody mutates),
 * never concatenated. Once the body passes `maxObjectSize` the copy is dropped on the spot and
 * the rest of the response streams through untouched: a large body is never buffered whole.
 */
import { createEntry, type NewEntryInput, type PolicyOptions } from './policy.ts';
import type { CacheEntry } from './store.ts';

export class Fill {
  private chunks: Buffer[] = [];
  private size = 0;
  /** True once the body outgrew the limit: nothing will be stored. */
  dropped = false;

  constructor(
    private readonly limit: number,
    private readonly input: Omit<NewEntryInput, 'body'>,
  ) {}

  /** Adds a chunk; returns false when this chunk made the body too large (the copy is gone). */
  add(chunk: Buffer): boolean {
    if (this.dropped) return false;
    this.size += chunk.length;
    if (this.size > this.limit) {
      this.dropped = true;
      this.chunks = [];
      return false;
    }
    this.chunks.push(chunk);
    return true;
  }

  /** The entry for the complete body, or undefined when it was dropped. */
  entry(policy: PolicyOptions): CacheEntry | undefined {
    if (this.dropped) return undefined;
    return createEntry({ ...this.input, body: this.chunks }, policy);
  }
}

/** Response headers as strings (undici gives latin1 Buffers). */
export function headerStrings(raw: readonly (Buffer | string)[]): string[] {
  const out = new Array<string>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const h = raw[i]!;
    out[i] = typeof h === 'string' ? h : h.toString('latin1');
  }
  return out;
}

/** Content-Length of raw response headers when it is one valid number, else undefined. */
export function declaredLength(headers: readonly string[]): number | undefined {
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      const n = Number(headers[i + 1]);
      return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
    }
  }
  return undefined;
}
