/** What the request path needs from the running proxy; implemented by Runtime. */
import type { CacheLayer } from '../cache/layer.ts';
import type { RequestContext } from '../context.ts';
import type { Snapshot } from '../snapshot.ts';
import type { AttemptObserver } from '../upstream/slot.ts';

export interface PipelineHost extends AttemptObserver {
  readonly snapshot: Snapshot;
  /** True once shutdown began: responses carry `Connection: close`. */
  readonly draining: boolean;
  /** Requests in flight; the accept phase counts them up, requestEnded counts them down. */
  inflight: number;
  /** Called exactly once per request, when its response ended or was cut (metrics, access log). */
  requestEnded(ctx: RequestContext): void;
  /** The HTTP cache (src/cache/layer.ts); requests of services with `cacheEnabled` go through it. */
  readonly cache?: CacheLayer | undefined;
}
