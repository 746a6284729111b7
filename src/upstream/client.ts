/**
 * Sends one attempt of a request to one instance with undici's dispatch API and streams the
 * response into an UpstreamHandler with back-pressure. undici's raw handler callbacks are used
 * (not request()/stream()): they hand over raw header arrays and avoid a Readable per response.
 */
import type { Readable } from 'node:stream';
import { ProxyError, upstreamError } from '../errors.ts';
import type { AttemptHandler } from './h2-client.ts';
import type { Instance } from './instance.ts';

export interface UpstreamRequest {
  method: string;
  /** Path and query exactly as the client sent them. */
  path: string;
  headers: string[];
  /** null for a request without a body. */
  body: Readable | null;
}

export interface UpstreamHandler {
  /** Response headers arrived. `raw` are undici's raw header Buffers. Returning false (only) pauses the socket until `resume`. */
  onResponse(status: number, statusText: string, raw: Buffer[]): unknown;
  /** An informational answer (102, 103) arrived before the final one; 100 and 101 never come here. */
  onInformational?(status: number, raw: Buffer[]): void;
  /** Return false to pause the instance's socket until `resume` (given in onResponse's attempt) is called. */
  onData(chunk: Buffer): boolean;
  onEnd(trailers: Buffer[] | string[] | null): void;
  /** A chunk of the request body (`size` bytes) was written to the instance. */
  onBodySent?(size: number): void;
  /** `responseStarted` tells whether onResponse was already called. */
  onError(err: ProxyError, responseStarted: boolean): void;
}

/** A running attempt: lets the caller resume after back-pressure or abort it (client went away). */
export class Attempt implements AttemptHandler {
  private abortFn: ((err?: Error) => void) | undefined;
  private resumeFn: (() => void) | undefined;
  private aborted = false;
  /** Why the attempt was aborted: reported instead of whatever error undici surfaces afterwards. */
  private abortReason: ProxyError | undefined;
  responseStarted = false;
  /** Status of the final response, once its headers arrived. */
  status = 0;
  finished = false;
  /** performance.now() when the response headers arrived. */
  headersAt = 0;

  constructor(
    readonly instance: Instance,
    private readonly handler: UpstreamHandler,
  ) {}

  resume(): void {
    this.resumeFn?.();
  }

  abort(reason: Error): void {
    if (this.finished || this.aborted) return;
    this.aborted = true;
    if (reason instanceof ProxyError) this.abortReason = reason;
    if (this.abortFn) this.abortFn(reason);
  }

  // undici's legacy handler protocol (the one its core still speaks, so no wrapper per request).
  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.aborted) abort(this.abortReason ?? new ProxyError('client_abort', 'client closed the connection'));
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (status < 200) {
      // 100 Continue is the proxy's own answer (server/admit.ts) and 101 belongs to upgrades
      // (server/upgrade.ts); other 1xx (102 Processing, 103 Early Hints) go on to the client.
      if (status !== 100 && status !== 101 && !this.aborted) this.handler.onInformational?.(status, raw);
      return true;
    }
    this.resumeFn = resume;
    this.responseStarted = true;
    this.status = status;
    this.headersAt = performance.now();
    return this.handler.onResponse(status, statusText, raw) !== false;
  }

  onData(chunk: Buffer): boolean {
    return this.handler.onData(chunk);
  }

  // undici 7 passes the chunk itself (not the v5 `chunkSize, totalBytesSent` pair).
  onBodySent(chunk: Buffer | string): void {
    this.handler.onBodySent?.(typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length);
  }

  onComplete(trailers: Buffer[] | string[] | null): void {
    this.finished = true;
    this.handler.onEnd(trailers);
  }

  onError(err: Error): void {
    if (this.finished) return;
    // RFC 9110 §8.6: a 304 (or 204) may carry the Content-Length of the representation, with no
    // body. undici 7 counts that as a length mismatch and fails the response after its headers were
    // delivered; the response is complete, so it ends normally (undici closes that connection).
    if ((this.status === 304 || this.status === 204) && (err as { code?: string }).code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
      this.finished = true;
      this.handler.onEnd(null);
      return;
    }
    this.finished = true;
    // Aborted by the proxy (client gone, body over the limit, request timeout): that reason is the
    // cause, even when undici reports something else first (a connect error of a queued request).
    const mapped = this.aborted
      ? (this.abortReason ?? (err instanceof ProxyError ? err : new ProxyError('client_abort', 'client closed the connection')))
      : upstreamError(err, this.instance.id, this.responseStarted);
    // A request whose body stream was already read from cannot be replayed on another instance.
    this.handler.onError(mapped, this.responseStarted);
  }
}

export function forward(instance: Instance, req: UpstreamRequest, handler: UpstreamHandler): Attempt {
  const attempt = new Attempt(instance, handler);
  try {
    instance.dispatch(req, attempt);
  } catch (err) {
    queueMicrotask(() => attempt.onError(err as Error));
  }
  return attempt;
}
