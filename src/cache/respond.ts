/**
 * The head of a stored response for the client: a full response (hit, stale, revalidated) or a
 * 304 generated from it when the client's own conditional matched (RFC 9111 §4.3.2). The
 * respond phase (server/respond.ts) writes it.
 *
 * Headers are the stored ones, with Age set to the current age (RFC 9111 §4: "MUST generate an
 * Age header field ... replacing any present"), Date kept as the origin sent it, Content-Length
 * added when the origin streamed without one (the cache has the whole body), then the same
 * client-side rewriting a forwarded response gets (Via appended to any stored Via, this
 * request's X-Request-Id) and our Cache-Status member last (RFC 9211 §2: members are appended
 * by each cache that handled the response, origin side first). All but Age, X-Request-Id and
 * Cache-Status is computed once per entry (entries are immutable). A stored 200 says
 * `Accept-Ranges: bytes` unless the origin said otherwise: ranges are cut from it (range.ts).
 *
 * A 206 carries what the 200 would (RFC 9110 §15.3.7: Date, Cache-Control, ETag, Expires,
 * Content-Location, Vary, and the rest), with the part's Content-Length and Content-Range, or
 * multipart/byteranges as its Content-Type. A 416 carries `Content-Range: bytes *\/length`
 * (§15.5.17) and, like the proxy's own errors, `Cache-Control: no-store`: it answers one Range,
 * never the URL.
 */
import { clientResponseHeaders } from '../upstream/headers.ts';
import type { RawHeaders } from './headers.ts';
import type { ByteRange } from './range.ts';
import { notModifiedHeaders, type PolicyOptions } from './policy.ts';
import type { CacheEntry } from './store.ts';

export interface ClientHeaderOptions {
  /** `1.1 kubeproxy`, or undefined when Via is off. */
  readonly via: string | undefined;
  readonly requestId: string;
  /** Our Cache-Status member. */
  readonly cacheStatus: string;
  /** Shutting down: `Connection: close`, as forwarded responses get. */
  readonly draining: boolean;
}

/** RFC 9110 §6.4.1: these never carry content. */
export function bodyless(status: number): boolean {
  return status === 204 || status === 304 || status < 200;
}

interface BaseHeaders {
  readonly via: string | undefined;
  readonly headers: readonly string[];
}

/** Per entry (immutable): the stored headers made client-ready, all but Age, X-Request-Id and Cache-Status. */
const bases = new WeakMap<CacheEntry, BaseHeaders>();

function baseHeaders(entry: CacheEntry, via: string | undefined): readonly string[] {
  let base = bases.get(entry);
  if (base === undefined || base.via !== via) {
    // Hop-by-hop fields were never stored (policy.ts storableHeaders); Age and the id are per response.
    const out: string[] = [];
    const raw = entry.headers;
    let upstreamVia: string | undefined;
    let length = false;
    let ranges = false;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      const lower = name.toLowerCase();
      if (lower === 'age' || lower === 'x-request-id') continue;
      if (lower === 'via') {
        upstreamVia = upstreamVia === undefined ? raw[i + 1]! : `${upstreamVia}, ${raw[i + 1]!}`;
        continue;
      }
      if (lower === 'content-length') length = true;
      else if (lower === 'accept-ranges') ranges = true;
      out.push(name, raw[i + 1]!);
    }
    // The origin may have streamed without a length; the cache has the whole body.
    if (!length && !bodyless(entry.status)) out.push('Content-Length', String(entry.bodySize));
    if (!ranges && entry.status === 200) out.push('Accept-Ranges', 'bytes');
    if (via !== undefined) out.push('Via', upstreamVia === undefined ? via : `${upstreamVia}, ${via}`);
    else if (upstreamVia !== undefined) out.push('Via', upstreamVia);
    base = { via, headers: out };
    bases.set(entry, base);
  }
  return base.headers;
}

/** The head of a full response served from `entry`, `age` being the Age value (whole seconds). */
export function storedResponseHeaders(entry: CacheEntry, age: string, o: ClientHeaderOptions): string[] {
  const headers = baseHeaders(entry, o.via).slice();
  headers.push('Age', age, 'X-Request-Id', o.requestId);
  return finish(headers, o);
}

/**
 * The head of a 206 served from `entry`: `part` is the single part's range, or the
 * multipart/byteranges boundary; `length` the body's length.
 */
export function partialResponseHeaders(entry: CacheEntry, age: string, o: ClientHeaderOptions, part: ByteRange | string, length: number): string[] {
  const headers = partialHead(baseHeaders(entry, o.via), entry.bodySize, part, length);
  headers.push('Age', age, 'X-Request-Id', o.requestId);
  return finish(headers, o);
}

/**
 * The head of a 206 cut from an answer that was not stored: `headers` is its client-bound list
 * (Via, X-Request-Id and a draining Connection: close already in), `total` its length.
 */
export function partialForwardedHeaders(headers: readonly string[], total: number, part: ByteRange | string, length: number, cacheStatus: string): string[] {
  const out = partialHead(headers, total, part, length);
  out.push('Cache-Status', cacheStatus);
  return out;
}

/** Fields of a full body that a part would contradict (RFC 9530 §2: Content-Digest covers the content sent). */
const WHOLE_BODY_FIELDS: ReadonlySet<string> = new Set(['content-length', 'content-range', 'content-digest', 'content-md5']);

/** `base` without its whole-body fields (and type, for multipart), with the part's. */
function partialHead(base: readonly string[], total: number, part: ByteRange | string, length: number): string[] {
  const headers: string[] = [];
  for (let i = 0; i + 1 < base.length; i += 2) {
    const lower = base[i]!.toLowerCase();
    if (WHOLE_BODY_FIELDS.has(lower) || (typeof part === 'string' && lower === 'content-type')) continue;
    headers.push(base[i]!, base[i + 1]!);
  }
  if (typeof part === 'string') headers.push('Content-Type', `multipart/byteranges; boundary=${part}`);
  else headers.push('Content-Range', `bytes ${part.start}-${part.end}/${total}`);
  headers.push('Content-Length', String(length));
  return headers;
}

/** The head and body of a 416 for a representation of `size` bytes (RFC 9110 §15.5.17). */
export function unsatisfiableResponse(size: number, o: ClientHeaderOptions): { headers: string[]; body: string } {
  const body = `416 Range Not Satisfiable: the representation is ${size} bytes long\n`;
  const headers = clientResponseHeaders(
    [
      'Content-Range', `bytes */${size}`,
      'Content-Type', 'text/plain; charset=utf-8',
      'Content-Length', String(body.length),
      'Cache-Control', 'no-store',
    ],
    o.via,
    o.requestId,
  );
  return { headers: finish(headers, o), body };
}

/**
 * The head of a 304 answering a client's conditional from `stored` (RFC 9110 §15.4.5); `age`
 * is the Age value, or undefined for a response that just came from the origin.
 */
export function notModifiedResponseHeaders(stored: RawHeaders, age: string | undefined, o: ClientHeaderOptions, policy: PolicyOptions): string[] {
  let headers = notModifiedHeaders(stored, policy);
  if (age !== undefined) headers.push('Age', age);
  headers = clientResponseHeaders(headers, o.via, o.requestId);
  return finish(headers, o);
}

function finish(headers: string[], o: ClientHeaderOptions): string[] {
  headers.push('Cache-Status', o.cacheStatus);
  if (o.draining) headers.push('connection', 'close');
  return headers;
}
