/**
 * The uncacheable-answer fast path. Most answers a cache sees carry no caching field at all
 * (a 200 with Content-Type, Date and Content-Length): RFC 9111 gives them a freshness lifetime
 * of 0 and no validator, so storing them could never pay off ('zero-ttl', flow.ts worthStoring).
 * Deciding that the long way converts every header to a string and parses Cache-Control
 * (isStorable, the length check, worthStoring); here it is decided from the status and one scan
 * of the raw header names, converting only names whose length matches a field that matters.
 * `zeroTtl` says yes only where the long way says 'zero-ttl' (zero-ttl.test.ts checks it).
 */
import { DEFAULT_TARGETED_FIELDS } from './directives.ts';
import type { RawHeaders } from './headers.ts';
import { HEURISTICALLY_CACHEABLE } from './policy.ts';

/** Response fields that may make a GET answer storable or worth storing, or change why it is not. */
const DECISIVE_RESPONSE_FIELDS = ['cache-control', 'expires', 'etag', 'last-modified', 'vary', 'set-cookie'];

/** Built once per cache policy (its targeted fields count as Cache-Control). */
export class ZeroTtlCheck {
  private readonly decisive: ReadonlySet<string>;
  /** Lengths of the decisive names and of content-length: other names are never converted. */
  private readonly lengths: ReadonlySet<number>;

  constructor(
    targetedFields: readonly string[] = DEFAULT_TARGETED_FIELDS,
    private readonly maxObjectSize: number,
  ) {
    this.decisive = new Set([...DECISIVE_RESPONSE_FIELDS, ...targetedFields.map((t) => t.toLowerCase())]);
    this.lengths = new Set([...this.decisive].map((n) => n.length).concat('content-length'.length));
  }

  /**
   * True when a GET answer would not be stored for 'zero-ttl': a heuristically cacheable status
   * (not 206), a request without Cache-Control (no request no-store) or Authorization, a response
   * with none of the decisive fields, and a Content-Length (if any) within maxObjectSize.
   */
  zeroTtl(status: number, raw: readonly (Buffer | string)[], requestHeaders: RawHeaders): boolean {
    if (status === 206 || !HEURISTICALLY_CACHEABLE.has(status)) return false;
    for (let i = 0; i < requestHeaders.length; i += 2) {
      const name = requestHeaders[i]!;
      if (name.length !== 13) continue; // cache-control, authorization
      const lower = name.toLowerCase();
      if (lower === 'cache-control' || lower === 'authorization') return false;
    }
    let lengthSeen = false;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const h = raw[i]!;
      if (!this.lengths.has(h.length)) continue;
      const lower = (typeof h === 'string' ? h : h.toString('latin1')).toLowerCase();
      if (this.decisive.has(lower)) return false;
      if (lower === 'content-length' && !lengthSeen) {
        // declaredLength reads the first Content-Length only.
        lengthSeen = true;
        const v = raw[i + 1]!;
        const n = Number(typeof v === 'string' ? v : v.toString('latin1'));
        if (Number.isSafeInteger(n) && n >= 0 && n > this.maxObjectSize) return false;
      }
    }
    return true;
  }
}
