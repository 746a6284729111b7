/**
 * Background revalidation (RFC 5861 §3, stale-while-revalidate): the client already got the
 * stale response; this refreshes the entry for the next ones. It holds the key's flight for its
 * duration, so one key is refreshed by one background request at a time, whatever the traffic.
 *
 * Outcomes: a 304 that applies to the entry refreshes it (RFC 9111 §4.3.4, headers merged per
 * §3.2); a full storable response replaces it; anything else (5xx, not storable, error) leaves
 * the stale entry as it is, to be served until its stale-while-revalidate window closes.
 */
import { log } from '../log.ts';
import type { ProxyError } from '../errors.ts';
import type { BackgroundSink } from './background.ts';
import type { Flight } from './collapse.ts';
import { Fill, declaredLength, headerStrings } from './fill.ts';
import type { RawHeaders } from './headers.ts';
import { isStorable, notModifiedApplies, refreshEntry, type PolicyOptions } from './policy.ts';
import { isPromise, type CacheEntry, type CacheStore, type MaybePromise } from './store.ts';

export interface RefreshContext {
  readonly store: CacheStore;
  readonly key: string;
  /** The stale entry being refreshed. */
  readonly entry: CacheEntry;
  /** Headers of the client request that found it stale (its Vary selection). */
  readonly requestHeaders: RawHeaders;
  readonly requestTime: number;
  readonly policy: PolicyOptions;
  readonly maxObjectSize: number;
  readonly now: () => number;
  readonly flight: Flight;
}

export class BackgroundRefresh implements BackgroundSink {
  private notModified: string[] | undefined;
  private fill: Fill | undefined;
  private responseTime = 0;

  constructor(private readonly c: RefreshContext) {}

  onResponse(status: number, raw: readonly Buffer[]): boolean {
    const c = this.c;
    this.responseTime = c.now();
    const headers = headerStrings(raw);
    if (status === 304) {
      if (notModifiedApplies(c.entry.headers, headers)) this.notModified = headers;
      return false;
    }
    const s = isStorable('GET', c.requestHeaders, status, headers, c.policy);
    const length = declaredLength(headers);
    if (!s.storable || (length !== undefined && length > c.maxObjectSize)) return false;
    this.fill = new Fill(c.maxObjectSize, {
      key: c.key,
      requestHeaders: c.requestHeaders,
      status,
      responseHeaders: headers,
      requestTime: c.requestTime,
      responseTime: this.responseTime,
      directives: s.directives,
    });
    return true;
  }

  onData(chunk: Buffer): void {
    this.fill?.add(chunk);
  }

  onEnd(): void {
    const c = this.c;
    let write: MaybePromise<unknown> | undefined;
    if (this.notModified !== undefined) {
      const r = refreshEntry(c.entry, this.notModified, { requestHeaders: c.requestHeaders, requestTime: c.requestTime, responseTime: this.responseTime }, c.policy);
      // §5.2.2.5: a 304 that makes the response unstorable (no-store...) removes the entry.
      write = r.storable.storable ? c.store.put(c.key, r.entry) : c.store.delete(c.key);
    } else {
      const entry = this.fill?.entry(c.policy);
      if (entry !== undefined) write = c.store.put(c.key, entry);
    }
    if (write === undefined) return c.flight.done('uncacheable');
    if (!isPromise(write)) return c.flight.done('stored');
    write.then(
      () => c.flight.done('stored'),
      (err: unknown) => {
        log.warn({ err, key: c.key }, 'cache store failed during a background revalidation');
        c.flight.done('error');
      },
    );
  }

  onError(err: ProxyError): void {
    log.debug({ key: this.c.key, err: err.message }, 'background revalidation failed; the stale entry stays');
    this.c.flight.done('error');
  }
}
