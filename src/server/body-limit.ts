/**
 * `client.maxBodySize` for bodies whose length is not announced (`Transfer-Encoding: chunked`):
 * the bytes are counted as they stream to the instance, and the request fails with a 413 the
 * moment the count passes the limit. A Content-Length over the limit never gets this far (the
 * pipeline answers 413 before contacting an instance).
 *
 * The instance reads this stream, not the client's request, so failing it never destroys the
 * client socket (the client still gets its 413) and undici, seeing its body stream fail,
 * discards the half-sent upstream request with its connection: nothing desynchronises the pool.
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { ProxyError } from '../errors.ts';

export class BodyLimit extends Transform {
  private seen = 0;
  /** Called once when the limit is passed, so the exchange can abort the attempt and answer 413. */
  onOverflow: ((err: ProxyError) => void) | undefined;

  constructor(
    req: IncomingMessage,
    private readonly limit: number,
  ) {
    super();
    req.pipe(this);
    // The client going away is handled by the exchange (response 'close'); only stop here.
    req.once('error', () => this.destroy());
    // The failure is reported through onOverflow; an attempt that already ended has no listener.
    this.on('error', () => {});
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) {
      const err = new ProxyError('body_too_large', `request body is over the limit of ${this.limit} bytes`);
      this.onOverflow?.(err);
      done(err);
      return;
    }
    done(null, chunk);
  }
}
