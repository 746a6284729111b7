/**
 * The access log: one JSON line per client request, in pino's format (`level`, `time` in epoch
 * ms, `name`), written to a pino destination (SonicBoom, asynchronous: stdout by default, the
 * container convention, next to the process log).
 *
 * Cost on the request path: a line is built by a fixed-shape serializer (string concatenation;
 * members of bounded values such as the service made once; JSON.stringify only for a value that
 * needs escaping; no double through number-to-text) and encoded into a batch buffer (timed in
 * place under load, cache hits on the 2-core VM of the benchmark: ~1.6 µs to build a line,
 * ~1.8 µs to flatten and encode it, some 10 % of a hit; in a micro-benchmark, a loop writing
 * bytes straight into the batch was 2-3 times slower than V8's string building), which is handed
 * to the destination when it is full (64 KiB) or 50 ms after its first line; the destination
 * writes it with an asynchronous fs.write. pino's generic logger (per-key serializers, a write
 * per line) costs several times as much per line; the lines are the same.
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
 * Durability: a line waits at most 50 ms in its batch; shutdown (and process exit) writes out
 * what is buffered; a crash loses at most that. When the destination cannot keep up (stdout blocked), it drops lines beyond
 * 16 MiB of backlog rather than growing without bound.
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
/** A batch this large is handed over at once instead of waiting for BATCH_MS. */
const BATCH_BYTES = 64 * 1024;
/** The longest a line waits in a batch. */
const BATCH_MS = 50;
const INFO = 30;
const WARN = 40;
const PREFIX_INFO = '{"level":30,"time":';
const PREFIX_WARN = '{"level":40,"time":';
const NAME = ',"name":"kubeproxy.access"';

/**
 * Encodes lines straight into a batch buffer and hands it to the sink when it is full or
 * BATCH_MS after its first line. Writing per event-loop turn instead costs a thread-pool round
 * trip (two context switches) for every few lines under load; encoding each line into the buffer
 * as it comes costs less than growing one string and encoding it at the end.
 */
class BatchWriter {
  private batch = Buffer.allocUnsafe(BATCH_BYTES);
  private used = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly sink: LineSink) {}

  push(line: string): void {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8: check for room before encoding.
    if (this.used + line.length * 3 > this.batch.length) {
      this.drain();
      if (line.length * 3 > this.batch.length) {
        // Longer than a batch (a long error message): on its own.
        this.sink.write(Buffer.from(line));
        return;
      }
    }
    this.used += this.batch.write(line, this.used);
    if (this.timer === undefined) {
      // Unref'd: a pending batch never keeps the process alive (exit and shutdown flush it).
      this.timer = setTimeout(this.drain, BATCH_MS);
      this.timer.unref();
    }
  }

  readonly drain = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.used === 0) return;
    // The sink keeps the buffer until its asynchronous write is done: the next batch gets a new one.
    const full = this.batch.subarray(0, this.used);
    this.batch = Buffer.allocUnsafe(BATCH_BYTES);
    this.used = 0;
    this.sink.write(full);
  };

  /** Writes out everything, synchronously when the sink can (shutdown, exit). */
  flush(): void {
    this.drain();
    try {
      this.sink.flushSync?.();
    } catch {
      // Nothing written yet, or the stream is gone: nothing to flush.
    }
  }
}

/** Test seam: where lines go instead of stdout, and a level that overrides the settings'. */
let override: { writer: BatchWriter; level: string | undefined } | undefined;
let stdoutWriter: BatchWriter | undefined;

/**
 * Sends the access log of Runtimes started afterwards to `destination` (tests), at `level` when
 * given; `undefined` restores stdout and the configured level.
 */
export function setAccessLogOutput(destination: LineSink | undefined, level?: string): void {
  override = destination === undefined ? undefined : { writer: new BatchWriter(destination), level };
}

function stdout(): BatchWriter {
  if (stdoutWriter === undefined) {
    // One destination for the process, shared by every Runtime; pino's destination flushes its
    // own buffer on exit, the batch is written before it.
    // Buffer mode: SonicBoom's string mode encodes every batch twice (write, then release).
    const destination = pino.destination({ dest: 1, sync: false, contentMode: 'buffer', maxLength: 16 * 1024 * 1024 });
    const writer = new BatchWriter(destination as unknown as LineSink);
    process.once('exit', () => writer.flush());
    stdoutWriter = writer;
  }
  return stdoutWriter;
}

export class AccessLog {
  private readonly writer: BatchWriter;
  private readonly fixedLevel: string | undefined;
  private sampling = 1;
  private infoOn = false;
  private warnOn = false;

  constructor(settings: AccessLogSettings) {
    this.writer = override?.writer ?? stdout();
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
    this.writer.push(formatAccessLogLine(ctx, status, now, failed ? WARN : INFO, Date.now()));
  }

  /** Writes out what is buffered (shutdown). */
  flush(): void {
    this.writer.flush();
  }
}

/**
 * A JSON string literal of `value`: quoted as it is when it holds nothing RFC 8259 §7 makes us
 * escape (", \ and control characters), else through JSON.stringify. A char-code loop: a regex
 * test costs more on these short values, and most of them need no escaping.
 */
function str(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c) return JSON.stringify(value);
  }
  return `"${value}"`;
}

/**
 * `,"key":"value"` members for values of bounded cardinality (method, service, instance, cache
 * result, error cause), made once: a request repeats them, and these strings are the same
 * objects every time (a Map lookup of a string whose hash is already computed). Cleared when it
 * grows past its bound, so odd methods cannot make it grow without limit.
 */
class Members {
  private readonly map = new Map<string, string>();
  constructor(private readonly key: string) {}

  get(value: string): string {
    let member = this.map.get(value);
    if (member === undefined) {
      if (this.map.size >= 256) this.map.clear();
      member = `,"${this.key}":${str(value)}`;
      this.map.set(value, member);
    }
    return member;
  }
}

const METHOD = new Members('method');
const SERVICE = new Members('service');
const INSTANCE = new Members('instance');
const CACHE = new Members('cache');
const CAUSE = new Members('errorCause');

/** The line's opening up to the request id's value, made again only when the millisecond (or level) changes. */
let lastTime = -1;
let lastLevel = -1;
let lastOpening = '';

/**
 * The JSON line for one finished request (with its newline). Keys, in order: level, time, name,
 * requestId, method, host, path, status, service, instance, durationMs, upstreamMs, bytesIn,
 * bytesOut, cache, retries, errorCause, errorMessage, clientIp, userAgent, traceId,
 * parentSpanId. Absent values (no service, no upstream response, no error…) are left out.
 * `upstreamMs` runs from the dispatch of the answering attempt to its response headers.
 */
export function formatAccessLogLine(ctx: RequestContext, status: number, now: number, level: number, time: number): string {
  const req = ctx.req;
  if (time !== lastTime || level !== lastLevel) {
    lastTime = time;
    lastLevel = level;
    lastOpening = (level === WARN ? PREFIX_WARN : level === INFO ? PREFIX_INFO : `{"level":${level},"time":`) + time + NAME + ',"requestId":';
  }
  let line = lastOpening + str(ctx.id) + METHOD.get(req.method ?? '');
  line += ',"host":' + str(ctx.host) + ',"path":' + str(pathOnly(ctx.path !== '' ? ctx.path : (req.url ?? ''))) + ',"status":' + status;
  const service = ctx.service;
  if (service !== undefined) line += SERVICE.get(service.name);
  const instance = ctx.instance;
  if (instance !== undefined) line += INSTANCE.get(instance.id);
  line += ',"durationMs":' + millisText(now - ctx.start);
  const upstreamStart = ctx.upstreamStart;
  if (upstreamStart > 0 && ctx.upstreamHeaders >= upstreamStart) line += ',"upstreamMs":' + millisText(ctx.upstreamHeaders - upstreamStart);
  line += ',"bytesIn":' + ctx.bytesIn + ',"bytesOut":' + ctx.bytesOut;
  if (ctx.cacheResult !== '') line += CACHE.get(ctx.cacheResult);
  line += ',"retries":' + (ctx.attempts > 1 ? ctx.attempts - 1 : 0);
  if (ctx.errorCause !== undefined) line += CAUSE.get(ctx.errorCause);
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

/** `.1` … `.999` by thousandths (trailing zeros dropped), '' for 0: the decimals JSON gives a multiple of 0.001. */
const THOUSANDTHS = Array.from({ length: 1000 }, (_, f) => (f === 0 ? '' : `.${String(f).padStart(3, '0')}`.replace(/0+$/, '')));

/**
 * Milliseconds with microsecond precision, as JSON writes Math.round(ms * 1000) / 1000 (0 for
 * none or a negative): whole microseconds split at the thousand, so no double goes through
 * number-to-text (5 times dearer, and there are two on a forwarded request's line).
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
