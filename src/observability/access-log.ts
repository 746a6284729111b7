/**
 * The access log: one JSON line per client request, written with pino to an asynchronous
 * destination (stdout by default, the container convention, next to the process log), so the
 * request path only serialises the line and appends it to a buffer; the write happens later.
 *
 * What is logged, and why
 * - Path without the query string: queries carry tokens and personal data (RFC 6750 §2.3 allows
 *   `access_token` there), and the access log is kept longer and read by more people than the
 *   traffic itself. Paths are cut at 2048 characters.
 * - No request header except User-Agent (cut at 256 characters): never Authorization, Cookie or
 *   any other credential.
 * - The W3C trace context (Trace Context §3.2): the trace id and the caller's span id of a valid
 *   `traceparent`, so a line can be joined to a distributed trace. The header itself is passed
 *   upstream unchanged by the pipeline; the proxy opens no span of its own.
 *
 * Levels and sampling
 * - A request the proxy failed or rejected (an error cause is set) or answered with a 5xx is
 *   logged at `warn`, always. Any other request is logged at `info`, for a share
 *   `proxy.accessLog.sampling` of them (random, 1 = all, 0 = none).
 * - The access log follows the process log level (`proxy.log.level`, or KUBEPROXY_LOG_LEVEL):
 *   `warn` keeps only the failed requests, `error` or `silent` turn the access log off.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { RequestContext } from '../context.ts';

export interface AccessLogSettings {
  /** Share of successful requests logged, 0..1. */
  sampling: number;
  /** pino level name; lines are written at info (successful) and warn (failed). */
  level: string;
}

/** One access-log line; every key is always present (undefined ones are left out of the JSON). */
export interface AccessLogLine {
  requestId: string;
  method: string;
  host: string;
  path: string;
  status: number;
  service: string | undefined;
  /** The instance (`address:port`) that answered or was tried last. */
  instance: string | undefined;
  durationMs: number;
  /** From dispatch to the instance until its response headers (the answering attempt). */
  upstreamMs: number | undefined;
  bytesIn: number;
  bytesOut: number;
  /** Cache result (hit, miss, stale, revalidated, bypass) when the cache was involved. */
  cache: string | undefined;
  retries: number;
  errorCause: string | undefined;
  errorMessage: string | undefined;
  clientIp: string;
  userAgent: string | undefined;
  traceId: string | undefined;
  parentSpanId: string | undefined;
}

const MAX_PATH = 2048;
const MAX_USER_AGENT = 256;
const NAME = 'kubeproxy.access';

/** Test seam: where lines go instead of stdout, and a level that overrides the settings'. */
let override: { destination: DestinationStream; level: string | undefined } | undefined;
let stdoutDestination: ReturnType<typeof pino.destination> | undefined;

/**
 * Sends the access log of Runtimes started afterwards to `destination` (tests), at `level` when
 * given; `undefined` restores stdout and the configured level.
 */
export function setAccessLogOutput(destination: DestinationStream | undefined, level?: string): void {
  override = destination === undefined ? undefined : { destination, level };
}

function stdout(): ReturnType<typeof pino.destination> {
  // One buffer for the process, shared by every Runtime; pino flushes it on exit.
  stdoutDestination ??= pino.destination({ dest: 1, sync: false });
  return stdoutDestination;
}

export class AccessLog {
  private readonly logger: Logger;
  private readonly destination: DestinationStream;
  private readonly fixedLevel: string | undefined;
  private sampling = 1;
  private infoOn = false;
  private warnOn = false;

  constructor(settings: AccessLogSettings) {
    this.destination = override?.destination ?? stdout();
    this.fixedLevel = override?.level;
    // No pid/hostname: the container runtime adds where a line came from.
    this.logger = pino({ name: NAME, base: undefined, level: 'info' }, this.destination);
    this.configure(settings);
  }

  configure(settings: AccessLogSettings): void {
    this.sampling = settings.sampling;
    this.logger.level = this.fixedLevel ?? settings.level;
    this.infoOn = this.logger.isLevelEnabled('info') && settings.sampling > 0;
    this.warnOn = this.logger.isLevelEnabled('warn');
  }

  /**
   * Logs one finished request. `status` is the status the client saw (499 when it left before
   * any response), `now` the performance.now() of the end.
   */
  write(ctx: RequestContext, status: number, now: number): void {
    const failed = ctx.errorCause !== undefined || status >= 500;
    if (failed) {
      if (!this.warnOn) return;
    } else if (!this.infoOn || (this.sampling < 1 && Math.random() >= this.sampling)) {
      return;
    }
    const line = accessLogLine(ctx, status, now);
    if (failed) this.logger.warn(line);
    else this.logger.info(line);
  }

  /** Writes out what is buffered (shutdown). */
  flush(): void {
    const d = this.destination as DestinationStream & { flushSync?: () => void };
    try {
      d.flushSync?.();
    } catch {
      // Not ready yet (nothing written) or the stream is gone: nothing to flush.
    }
  }
}

/** The line for one finished request. */
export function accessLogLine(ctx: RequestContext, status: number, now: number): AccessLogLine {
  const req = ctx.req;
  const upstreamStart = ctx.upstreamStart;
  const traceparent = ctx.traceparent ?? req.headers.traceparent;
  const trace = typeof traceparent === 'string' ? parseTraceparent(traceparent) : undefined;
  const ua = req.headers['user-agent'];
  return {
    requestId: ctx.id,
    method: req.method ?? '',
    host: ctx.host,
    path: pathOnly(ctx.path !== '' ? ctx.path : (req.url ?? '')),
    status,
    service: ctx.service?.name,
    instance: ctx.instance?.id,
    durationMs: millis(now - ctx.start),
    upstreamMs: upstreamStart > 0 && ctx.upstreamHeaders >= upstreamStart ? millis(ctx.upstreamHeaders - upstreamStart) : undefined,
    bytesIn: ctx.bytesIn,
    bytesOut: ctx.bytesOut,
    cache: ctx.cacheResult === '' ? undefined : ctx.cacheResult,
    retries: ctx.attempts > 1 ? ctx.attempts - 1 : 0,
    errorCause: ctx.errorCause,
    errorMessage: ctx.errorMessage === '' ? undefined : ctx.errorMessage,
    clientIp: ctx.clientIp,
    userAgent: ua === undefined ? undefined : ua.length > MAX_USER_AGENT ? ua.slice(0, MAX_USER_AGENT) : ua,
    traceId: trace?.traceId,
    parentSpanId: trace?.parentId,
  };
}

/** Milliseconds with microsecond precision. */
function millis(ms: number): number {
  return ms > 0 ? Math.round(ms * 1000) / 1000 : 0;
}

/** The path of a request target, without its query (see the header) and bounded. */
export function pathOnly(target: string): string {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  return path.length > MAX_PATH ? path.slice(0, MAX_PATH) : path;
}

// W3C Trace Context §3.2.2: version-traceid-parentid-flags, lower-case hex.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(?:-|$)/;
const ALL_ZERO = /^0+$/;

/**
 * The trace id and parent (caller's span) id of a `traceparent` value, or undefined when it is
 * invalid: version ff, an all-zero id, or a version-00 value of another length than 55
 * (§3.2.4: later versions may append fields after a dash).
 */
export function parseTraceparent(value: string): { traceId: string; parentId: string } | undefined {
  const v = value.trim();
  const m = TRACEPARENT.exec(v);
  if (m === null) return undefined;
  const [, version, traceId, parentId] = m as unknown as [string, string, string, string];
  if (version === 'ff' || (version === '00' && v.length !== 55)) return undefined;
  if (ALL_ZERO.test(traceId) || ALL_ZERO.test(parentId)) return undefined;
  return { traceId, parentId };
}
