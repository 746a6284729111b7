/**
 * The seam between an Exchange (pick → forward → retry → stream to the client) and a layer that
 * wants a say in the answer, such as the HTTP cache: it sees the final upstream answer (after
 * every retry decision), may add headers, tee the body, or take the answer over entirely, and may
 * answer the client itself instead of the proxy's error response. Retries, health accounting and
 * connection limits stay in the Exchange, so they work the same whether a layer intercepts or not.
 */
import type { ProxyError } from '../errors.ts';

/**
 * 'forward': the Exchange writes the head and streams the body to the client as usual, and hands
 * each chunk to `onData` after writing it (a tee).
 * 'take': the Exchange writes nothing to the client; the body goes to `onData` only (read at full
 * speed, no back-pressure) and the interceptor answers the client itself.
 */
export type InterceptAction = 'forward' | 'take';

export interface ResponseInterceptor {
  /**
   * The answer the Exchange is about to forward. `raw` are the instance's raw headers; `headers`
   * the client-bound list (hop-by-hop removed, Via and X-Request-Id added), which the interceptor
   * may append to before it is written.
   */
  onResponse(status: number, statusText: string, raw: readonly Buffer[], headers: string[]): InterceptAction;
  /** One body chunk: already written to the client ('forward') or instead of it ('take'). */
  onData(chunk: Buffer): void;
  /** The body ended; in 'forward' mode the client response has already been ended. */
  onEnd(): void;
  /**
   * The exchange ends with `err` (no instance, connect failure, timeout, reset, client gone). Return
   * true when the interceptor answered the client itself (or nothing is left to answer); false for
   * the usual error response, with any header pairs the interceptor pushed onto `extraHeaders`.
   */
  onError(err: ProxyError, extraHeaders: string[]): boolean;
}
