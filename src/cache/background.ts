/**
 * An upstream exchange without a client, for background revalidation (RFC 5861
 * stale-while-revalidate): the stale response has already been served, so nobody waits for this
 * answer and there is nowhere to stream it.
 *
 * Why not the pipeline's Exchange: that class is built around a client response (back-pressure,
 * error responses, client-abort handling). A background refresh needs much less, and it is
 * best-effort, so this is a small exchange on top of `forward()` that keeps the accounting the
 * proxy depends on: the instance comes from the service's balancer (so health, ejection and
 * connection limits apply) and the attempt holds an instance slot (upstream/slot.ts: counted,
 * reported to passive health, a pending request woken when it is given back), and the
 * service's request timeout bounds it. It makes one attempt and never retries: a failed refresh
 * only means the next stale hit tries again.
 */
import { ProxyError } from '../errors.ts';
import { forward, type Attempt, type UpstreamHandler, type UpstreamRequest } from '../upstream/client.ts';
import type { Instance } from '../upstream/instance.ts';
import type { Service } from '../upstream/service.ts';
import { acquireSlot, isFull, releaseSlot, type AttemptObserver } from '../upstream/slot.ts';

/** Receives the answer of a background exchange. */
export interface BackgroundSink {
  /** Return true to receive the body, false to have it read and dropped. */
  onResponse(status: number, raw: readonly Buffer[]): boolean;
  onData(chunk: Buffer): void;
  onEnd(): void;
  /** No instance, connect failure, timeout, reset: the exchange is over. */
  onError(err: ProxyError): void;
}

/** Used when the service has no request timeout (0): a background refresh must still end. */
const FALLBACK_TIMEOUT_MS = 60_000;

export class BackgroundExchange implements UpstreamHandler {
  private instance: Instance | undefined;
  private attempt: Attempt | undefined;
  private timer: NodeJS.Timeout | undefined;
  private status = 0;
  private wantBody = false;
  private ended = false;

  constructor(
    private readonly observer: AttemptObserver,
    private readonly service: Service,
    private readonly request: UpstreamRequest,
    private readonly sink: BackgroundSink,
    private readonly hashKey: string | undefined,
  ) {}

  start(): void {
    const service = this.service;
    const instance = service.pick({ hashKey: this.hashKey });
    // A full instance is not worth queueing for: the refresh is optional.
    if (instance === undefined || isFull(instance)) {
      this.ended = true;
      const err = new ProxyError('no_healthy_instance', `no instance of service "${service.name}" is available for a background revalidation`);
      queueMicrotask(() => this.sink.onError(err));
      return;
    }
    this.instance = instance;
    acquireSlot(instance, service);
    const limit = service.timeouts.request > 0 ? service.timeouts.request : FALLBACK_TIMEOUT_MS;
    this.timer = setTimeout(
      () => this.attempt?.abort(new ProxyError('timeout', `background revalidation for service "${service.name}" took longer than ${limit} ms`)),
      limit,
    );
    this.timer.unref();
    this.attempt = forward(instance, this.request, this);
  }

  onResponse(status: number, _statusText: string, raw: Buffer[]): void {
    this.status = status;
    this.wantBody = this.sink.onResponse(status, raw);
  }

  onData(chunk: Buffer): boolean {
    if (this.wantBody) this.sink.onData(chunk);
    return true;
  }

  onEnd(): void {
    this.finish(undefined);
    this.sink.onEnd();
  }

  onError(err: ProxyError): void {
    this.finish(err);
    this.sink.onError(err);
  }

  private finish(err: ProxyError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    releaseSlot(this.observer, this.instance!, this.service, err === undefined ? this.status : 0, err);
  }
}
