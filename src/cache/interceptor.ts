/**
 * The cache as the pipeline sees it (the flow of one request, flow.ts, implements it): the lookup
 * phase's answers, and the store phase.
 *
 * The store phase as the forward phase sees it: after every retry decision, the final
 * answer of an instance goes through it. It may tee the body into an entry ('forward'), take the
 * answer over ('take': a 304 that refreshes the entry, a 5xx replaced by stale-if-error), or put
 * its own head on the request instead ('answer': a 304 to the client's conditional while the body
 * fills the entry). Retries, health accounting and connection limits stay in the forward phase,
 * so they work the same whether the cache takes part or not. The cache never drives the request:
 * what happens next is what these methods return, and the pipeline does it.
 */
import type { ProxyError } from '../errors.ts';

/**
 * What the lookup decided. hit / stale: the entry's answer is on the RequestContext for the
 * respond phase. revalidate / miss / bypass: `ctx.upstream` is what to forward, with the flow
 * on its answer. wait: another request is fetching the key; `waited()` then `again()`.
 * unavailable: answer `error` (504, only-if-cached). gone: the client left while the store or
 * another request was awaited; nothing to do.
 */
export type CacheLookup = 'hit' | 'stale' | 'revalidate' | 'wait' | 'miss' | 'bypass' | 'unavailable' | 'gone';

/**
 * 'forward': the head and body go to the client as usual; each chunk is handed to `onData` after
 * it was written (a tee).
 * 'take': nothing is written to the client; the body goes to `onData` only (read at full speed).
 * 'answer': the request's own head (RequestContext status and responseHeaders, set by the cache)
 * is sent and ended at once; the body goes to `onData` only.
 */
export type InterceptAction = 'forward' | 'take' | 'answer';

/** After the answer's body ended: nothing more ('done'), send the cache's answer ('serve'), or forward `ctx.upstream` again ('forward'). */
export type AfterAnswer = 'done' | 'serve' | 'forward';

/**
 * After the forward phase failed: nothing left to answer ('done'), the cache's answer ('serve',
 * stale-if-error), the cache's own error (`error`, e.g. 504 for a must-revalidate entry), or the
 * usual error answer with the header pairs pushed onto `extraHeaders` ('default').
 */
export type AfterError = 'done' | 'serve' | 'error' | 'default';

export interface ResponseInterceptor {
  /**
   * The answer about to be forwarded. `raw` are the instance's raw headers; `headers` the
   * client-bound list (hop-by-hop removed, Via and X-Request-Id added), which may be appended to.
   */
  onResponse(status: number, statusText: string, raw: readonly Buffer[], headers: string[]): InterceptAction;
  /** One body chunk: already written to the client ('forward') or instead of it. */
  onData(chunk: Buffer): void;
  /** The body ended; with 'forward' the client response has already been ended. */
  onEnd(): AfterAnswer;
  /** The forward phase ends with `err` (no instance, connect failure, timeout, reset, client gone). */
  onError(err: ProxyError, extraHeaders: string[]): AfterError;
  /** The error to answer after onError returned 'error'. */
  readonly error: ProxyError | undefined;

  /** After lookup said 'wait': settles when the key's flight landed or the wait timed out (never once the client left). */
  waited(): Promise<void>;
  /** After waited(): looks up again, never waiting twice. */
  again(): CacheLookup | Promise<CacheLookup>;
}
