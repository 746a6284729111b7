/**
 * The access log: one JSON line per client request, in pino's format (`level`, `time` in epoch
 * ms, `name`), written to a pino destination (SonicBoom, asynchronous: stdout by default, the
 * container convention, next to the process log).
 *
 * Writes: a line is built by string concatenation in a fixed shape (pino's generic logger, with
 * per-key serializers, builds the same line at several times the cost) and handed to the
 * destination, which buffers it: SonicBoom writes once `minLength` (64 KiB) is buffered, and
 * `periodicFlush` writes what is buffered every second, so a line waits at most ~1 s under light
 * load (Envoy flushes its access log files every 10 s by default).
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
 *   logged at `warn` (40), always. Any other request is logged at `info` (30), for a share
 *   `proxy.accessLog.sampling` of them (random, 1 = all, 0 = none).
 * - The access log follows the process log level (`proxy.log.level`, or KUBEPROXY_LOG_LEVEL):
 *   `warn` keeps only the failed requests, `error` or `silent` turn the access log off.
 *
 * Durability: shutdown writes out what is buffered (`flush()`), and so does process exit (pino
 * registers a `flushSync()` of its destinations on exit); a crash loses at most the buffer. When
 * the destination cannot keep up (stdout blocked), it drops lines beyond 16 MiB of backlog rather
 * than growing without bound.
 */
import { pino } from 'pino';
import { getHeader } from '../cache/headers.ts';
import type { RequestContext } from '../context.ts';
import { rawHeader } from '../upstream/headers.ts';

export interface AccessLogSettings {
  /** Share of successful requests logged, 0..1. */
  sampling: number;
  /** pino level name; lines are written at info (successful) and warn (failed). */
  level: string;
}

/** Where lines go: a pino destination (buffer content mode), or any writable stream (tests). */
export interface LineSink {
  write(chunk: Buffer): unknown;
  flushSync?(): void;
}

const MAX_PATH = 2048;
const MAX_USER_AGENT = 256;
const INFO = 30;
const WARN = 40;

/** Test seam: where lines go instead of stdout, and a level that overrides the settings'. */
let override: { sink: LineSink; level: string | undefined } | undefined;
let stdoutSink: LineSink | undefined;

/**
 * Sends the access log of Runtimes started afterwards to `destination` (tests), at `level` when
 * given; `undefined` restores stdout and the configured level.
 */
export function setAccessLogOutput(destination: LineSink | undefined, level?: string): void {
  override = destination === undefined ? undefined : { sink: destination, level };
}

/** One destination for the process, shared by every Runtime. */
function stdout(): LineSink {
  // Buffer mode: in string mode SonicBoom measures the byte length of its whole pending buffer
  // on every write. minLength must stay below maxWrite.
  stdoutSink ??= pino.destination({
    dest: 1,
    sync: false,
    contentMode: 'buffer',
    minLength: 64 * 1024,
    maxWrite: 128 * 1024,
    periodicFlush: 1000,
    maxLength: 16 * 1024 * 1024,
  }) as unknown as LineSink;
  return stdoutSink;
}

export class AccessLog {
  private readonly sink: LineSink;
  private readonly fixedLevel: string | undefined;
  private sampling = 1;
  private infoOn = false;
  private warnOn = false;

  constructor(settings: AccessLogSettings) {
    this.sink = override?.sink ?? stdout();
    this.fixedLevel = override?.level;
    this.configure(settings);
  }

  configure(settings: AccessLogSettings): void {
    this.sampling = settings.sampling;
    const name = this.fixedLevel ?? settings.level;
    // 'silent' and unknown names log nothing.
    const threshold = (pino.levels.values as Record<string, number>)[name] ?? Infinity;
    this.infoOn = threshold <= INFO && settings.sampling > 0;
    this.warnOn = threshold <= WARN;
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
    this.sink.write(Buffer.from(formatAccessLogLine(ctx, status, now, failed ? WARN : INFO, Date.now())));
  }

  /** Writes out what is buffered, synchronously (shutdown). */
  flush(): void {
    try {
      this.sink.flushSync?.();
    } catch {
      // Not open yet (nothing written), or the stream is gone: nothing to flush.
    }
  }
}

/**
 * The JSON line for one finished request (with its newline). Keys, in order: level, time, name,
 * requestId, method, host, path, status, service, instance, durationMs, upstreamMs, bytesIn,
 * bytesOut, cache, retries, errorCause, errorMessage, clientIp, userAgent, traceId,
 * parentSpanId. Absent values (no service, no upstream response, no error…) are left out.
 * `upstreamMs` runs from the dispatch of the answering attempt to its response headers.
 */
export function formatAccessLogLine(ctx: RequestContext, status: number, now: number, level: number, time: number): string {
  const req = ctx.req;
  let line = `{"level":${level},"time":${time},"name":"kubeproxy.access","requestId":${str(ctx.id)},"method":${str(req.method ?? '')}`;
  line += ',"host":' + str(ctx.host) + ',"path":' + str(pathOnly(ctx.path !== '' ? ctx.path : (req.url ?? ''))) + ',"status":' + status;
  // "HTTP/1.1", or "HTTP/2.0" from the h2 front (server/h2-front.ts): a field node:http already parsed.
  line += ',"protocol":"HTTP/' + req.httpVersion + '"';
  if (ctx.service !== undefined) line += ',"service":' + str(ctx.service.name);
  if (ctx.instance !== undefined) line += ',"instance":' + str(ctx.instance.id);
  line += ',"durationMs":' + millisText(now - ctx.start);
  const upstreamStart = ctx.upstreamStart;
  if (upstreamStart > 0 && ctx.upstreamHeaders >= upstreamStart) line += ',"upstreamMs":' + millisText(ctx.upstreamHeaders - upstreamStart);
  line += ',"bytesIn":' + ctx.bytesIn + ',"bytesOut":' + ctx.bytesOut;
  if (ctx.cacheResult !== '') line += ',"cache":' + str(ctx.cacheResult);
  line += ',"retries":' + (ctx.attempts > 1 ? ctx.attempts - 1 : 0);
  if (ctx.errorCause !== undefined) line += ',"errorCause":' + str(ctx.errorCause);
  if (ctx.errorMessage !== '') line += ',"errorMessage":' + str(ctx.errorMessage);
  line += ',"clientIp":' + str(ctx.clientIp);
  // Read from rawHeaders: req.headers would build an object of every field for one or two of them.
  // rawHeader keeps the first User-Agent and getHeader joins repeated traceparent lines, as req.headers does.
  const ua = rawHeader(req.rawHeaders, 'user-agent');
  if (ua !== undefined) line += ',"userAgent":' + str(ua.length > MAX_USER_AGENT ? ua.slice(0, MAX_USER_AGENT) : ua);
  const traceparent = ctx.traceparent ?? getHeader(req.rawHeaders, 'traceparent');
  if (traceparent !== undefined) {
    const trace = parseTraceparent(traceparent);
    if (trace !== undefined) line += ',"traceId":"' + trace.traceId + '","parentSpanId":"' + trace.parentId + '"';
  }
  return line + '}\n';
}

/**
 * A JSON string, as JSON.stringify writes it: most values need no escape (no control character,
 * quote, backslash or lone surrogate), and checking for one costs less than JSON.stringify.
 */
function str(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(value);
  }
  return `"${value}"`;
}

/** `.1` … `.999` by thousandths (trailing zeros dropped), '' for 0. */
const THOUSANDTHS = Array.from({ length: 1000 }, (_, f) => (f === 0 ? '' : `.${String(f).padStart(3, '0')}`.replace(/0+$/, '')));

/**
 * Milliseconds rounded to the microsecond, as JSON writes them (0 for none or a negative), from
 * whole microseconds split at the thousand: no double goes through number-to-text, which costs
 * more than the rest of a line's numbers together (`bench/access-log-line.ts`, bench/README.md).
 */
export function millisText(ms: number): string {
  if (!(ms > 0)) return '0';
  const us = Math.round(ms * 1000);
  const whole = Math.floor(us / 1000);
  return whole + THOUSANDTHS[us - whole * 1000]!;
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
