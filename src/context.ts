/**
 * One request's record, filled by each phase of the pipeline and read by the access log and
 * metrics when the response ends. A class with every field set in the constructor keeps one
 * hidden class for all requests (no shape changes on the hot path).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCause } from './errors.ts';
import type { BodyLimit } from './server/body-limit.ts';
import type { Snapshot } from './snapshot.ts';
import type { Instance } from './upstream/instance.ts';
import type { Service } from './upstream/service.ts';

/** Told when the client's response closes (finished or cut), after the request was accounted for. */
export interface ClientCloseHook {
  onClientClose(): void;
}

export class RequestContext {
  /** performance.now() at arrival. */
  readonly start: number;
  /** The configuration the request started with: it keeps it to its end, whatever a reload does. */
  snapshot: Snapshot | undefined = undefined;
  service: Service | undefined = undefined;
  /** Counts a chunked request body against the size limit (set only for such bodies). */
  bodyLimit: BodyLimit | undefined = undefined;
  instance: Instance | undefined = undefined;
  /** Routed host (normalised), path and query as sent upstream. */
  host = '';
  path = '';
  /** Upstream attempts made (1 + retries). */
  attempts = 0;
  status = 0;
  /** Request body bytes received from the client, response body bytes sent to it. */
  bytesIn = 0;
  bytesOut = 0;
  /** performance.now() when the upstream attempt that answered was dispatched, and when its headers came. */
  upstreamStart = 0;
  upstreamHeaders = 0;
  /** RFC 9211 Cache-Status value sent to the client, or '' when the cache was not involved. */
  cacheStatus = '';
  /** Cache result label for metrics: hit | miss | stale | revalidated | bypass, or '' . */
  cacheResult = '';
  errorCause: ErrorCause | undefined = undefined;
  errorMessage = '';
  /** W3C trace context passed through, for the access log. */
  traceparent: string | undefined = undefined;
  finished = false;
  /**
   * The exchange to tell when the response closes: one 'close' listener per request calls it
   * (instead of one closure and listener per exchange). A later exchange chains to the earlier.
   */
  closeHook: ClientCloseHook | undefined = undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly id: string,
    readonly clientIp: string,
  ) {
    this.start = performance.now();
  }
}
