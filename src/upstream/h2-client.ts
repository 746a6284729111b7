/**
 * HTTP/2 to one instance with node:http2: `h2c` (cleartext, prior knowledge, RFC 9113 §3.3) and
 * `h2` (TLS, ALPN h2). One session carries every request as a stream (the pool of an h2 instance),
 * opened on first use, replaced once the instance sends GOAWAY or the connection ends, closed
 * after `keepAliveTimeout` without a stream. It speaks the handler protocol undici's dispatch
 * speaks (upstream/client.ts's Attempt), so forward() does not know which one it drives.
 *
 * Not undici's HTTP/2 client (7.30), tried against a node:http2 instance: it runs one stream at a
 * time per session for a request with a streamed body (every request from the h2 front and every
 * gRPC call), drops the DATA still buffered behind a paused stream when the trailers arrive (a
 * truncated answer under back-pressure), and never reports 1xx answers (docs/tls.md).
 *
 * Back-pressure both ways is h2 flow control: a paused response stream stops reading, so its
 * window closes; a request body is paused while the stream's write buffer is full. Timeouts are
 * the pool's: `responseTimeout` until the response head, `idleTimeout` between DATA frames (not
 * counted while the client holds the stream paused), `connectTimeout` for the session.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import type { Readable } from 'node:stream';
import { ProxyError, upstreamError } from '../errors.ts';

/** The handler protocol of undici's dispatch (its "legacy" one), as forward()'s Attempt speaks it. */
export interface AttemptHandler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onBodySent(chunk: Buffer | string): void;
  onComplete(trailers: Buffer[] | string[] | null): void;
  onError(err: Error): void;
}

/** A request as an instance's pool takes it (upstream/client.ts's UpstreamRequest). */
export interface DispatchRequest {
  method: string;
  path: string;
  headers: string[];
  body: Readable | null;
}

export interface H2Settings {
  connectTimeout: number;
  responseTimeout: number;
  idleTimeout: number;
  keepAliveTimeout: number;
  /** For `h2`: the TLS client options (instance.ts tlsOptions); undefined for `h2c`. */
  tls: { ca?: string; servername?: string; rejectUnauthorized: boolean } | undefined;
}

/** RFC 9113 §8.2.2: fields an h2 request must not carry (`te` passes only as `trailers`). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te']);
/** Response header pairs a session accepts (node:http2's default of 128 is below NGINX's limits). */
const MAX_HEADER_PAIRS = 1024;

interface SessionState {
  streams: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Request bodies waiting for the session to connect. */
  waiting: Array<() => void>;
}

export class H2Client {
  private current: ClientHttp2Session | undefined;
  private readonly sessions = new Map<ClientHttp2Session, SessionState>();
  private readonly scheme: 'http' | 'https';
  running = 0;

  constructor(
    /** `http://address:port` (h2c) or `https://address:port` (h2). */
    private readonly origin: string,
    /** The instance's id, for error messages. */
    readonly id: string,
    private readonly settings: H2Settings,
  ) {
    this.scheme = settings.tls === undefined ? 'http' : 'https';
  }

  /** The shape of undici's pool stats that Instance's idle check reads. */
  get stats(): { connected: number; pending: number; running: number } {
    return { connected: this.sessions.size, pending: 0, running: this.running };
  }

  dispatch(req: DispatchRequest, handler: AttemptHandler): boolean {
    let stream: ClientHttp2Stream;
    try {
      const headers = requestHeaders(req, this.scheme);
      stream = this.request(headers, req.body === null);
    } catch (err) {
      queueMicrotask(() => handler.onError(err instanceof ProxyError ? err : new ProxyError('upstream_protocol', `request cannot be sent to instance ${this.id} over HTTP/2: ${(err as Error).message}`, true)));
      return false;
    }
    new StreamAttempt(this, stream, req.body, handler, this.settings);
    return true;
  }

  /** A new stream on the current session; a session that went away since is replaced once. */
  private request(headers: OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream {
    let session = this.session();
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'ERR_HTTP2_GOAWAY_SESSION' && code !== 'ERR_HTTP2_INVALID_SESSION' && code !== 'ERR_HTTP2_OUT_OF_STREAMS') throw err;
      if (this.current === session) this.current = undefined;
      session = this.session();
      stream = session.request(headers, { endStream });
    }
    const state = this.sessions.get(session);
    if (state !== undefined) {
      state.streams++;
      clearTimeout(state.idleTimer);
      state.idleTimer = undefined;
    }
    this.running++;
    return stream;
  }

  /** A stream of `session` ended: an idle session closes after keepAliveTimeout. */
  streamClosed(session: ClientHttp2Session): void {
    this.running--;
    const state = this.sessions.get(session);
    if (state === undefined || --state.streams > 0) return;
    state.idleTimer = setTimeout(() => session.close(), Math.max(this.settings.keepAliveTimeout, 1));
    state.idleTimer.unref();
  }

  private session(): ClientHttp2Session {
    const open = this.current;
    if (open !== undefined && !open.closed && !open.destroyed) return open;
    const tls = this.settings.tls;
    const options: SecureClientSessionOptions = {
      settings: { enablePush: false },
      maxHeaderListPairs: MAX_HEADER_PAIRS,
      ...tls,
    };
    const session = connect(this.origin, options);
    const state: SessionState = { streams: 0, idleTimer: undefined, waiting: [] };
    this.sessions.set(session, state);
    this.current = session;
    // Its errors reach its streams (node:http2 destroys them with it); the session only goes away.
    session.on('error', () => {});
    const { connectTimeout } = this.settings;
    const connectTimer =
      connectTimeout > 0
        ? setTimeout(() => session.destroy(coded(`connect to instance ${this.id} timed out`, 'UND_ERR_CONNECT_TIMEOUT')), connectTimeout)
        : undefined;
    session.once('connect', () => {
      clearTimeout(connectTimer);
      for (const send of state.waiting.splice(0)) send();
    });
    // GOAWAY: streams under way finish on it, new ones go to a new session.
    session.once('goaway', () => {
      if (this.current === session) this.current = undefined;
    });
    session.once('close', () => {
      clearTimeout(connectTimer);
      clearTimeout(state.idleTimer);
      this.sessions.delete(session);
      if (this.current === session) this.current = undefined;
    });
    return session;
  }

  /**
   * Runs `send` once `session` is connected. A request body is read only then: when the instance
   * cannot be reached, the body is still unread and the request may go to another instance.
   */
  whenConnected(session: ClientHttp2Session, send: () => void): void {
    const state = this.sessions.get(session);
    if (state === undefined || !session.connecting) return send();
    state.waiting.push(send);
  }

  /** GOAWAY to every session; resolves once their streams are done. */
  close(): Promise<void> {
    this.current = undefined;
    const closing = [...this.sessions.keys()].map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.destroyed) return resolve();
          s.once('close', () => resolve());
          s.close();
        }),
    );
    return Promise.all(closing).then(() => {});
  }

  destroy(): Promise<void> {
    this.current = undefined;
    for (const s of this.sessions.keys()) s.destroy();
    return Promise.resolve();
  }
}

/** One request on one stream, reported to its handler as undici reports a dispatch. */
class StreamAttempt {
  private done = false;
  private responded = false;
  private paused = false;
  private trailers: string[] | null = null;
  private readonly session: ClientHttp2Session;

  constructor(
    private readonly client: H2Client,
    private readonly stream: ClientHttp2Stream,
    private readonly body: Readable | null,
    private readonly handler: AttemptHandler,
    private readonly settings: H2Settings,
  ) {
    this.session = stream.session as ClientHttp2Session;
    stream.on('error', this.onStreamError);
    stream.once('close', this.onClose);
    handler.onConnect(this.abort);
    if (this.done) return;
    stream.on('headers', this.onInformational);
    stream.once('response', this.onResponse);
    stream.on('data', this.onData);
    stream.once('trailers', this.onTrailers);
    stream.once('end', this.onEnd);
    stream.on('timeout', this.onTimeout);
    stream.setTimeout(settings.responseTimeout);
    if (body !== null) client.whenConnected(this.session, () => this.sendBody(body));
  }

  private readonly abort = (err?: Error): void => {
    this.fail(err ?? new ProxyError('client_abort', 'client closed the connection'));
  };

  private readonly resume = (): void => {
    if (this.done || !this.paused) return;
    this.paused = false;
    this.stream.setTimeout(this.settings.idleTimeout);
    this.stream.resume();
  };

  private readonly onInformational = (headers: IncomingHttpHeaders): void => {
    const status = Number(headers[':status']);
    if (status < 200 && !this.done) this.handler.onHeaders(status, rawHeaders(headers), this.resume, '');
  };

  private readonly onResponse = (headers: IncomingHttpHeaders): void => {
    if (this.done) return;
    this.responded = true;
    this.stream.setTimeout(this.settings.idleTimeout);
    const more = this.handler.onHeaders(Number(headers[':status']), rawHeaders(headers), this.resume, '');
    if (more === false && !this.done) this.pause();
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return;
    if (this.handler.onData(chunk) === false && !this.done) this.pause();
  };

  private pause(): void {
    this.paused = true;
    // The client is slow, not the instance: the idle timeout waits for resume.
    this.stream.setTimeout(0);
    this.stream.pause();
  }

  // Kept until 'end': DATA still buffered behind a paused stream comes first.
  private readonly onTrailers = (headers: IncomingHttpHeaders): void => {
    this.trailers = rawStrings(headers);
  };

  private readonly onEnd = (): void => {
    if (this.done) return;
    if (!this.responded) return this.fail(reset(this.client.id, 'ended the stream without a response', false));
    this.finish();
    // The answer came before the whole request body (RFC 9113 §8.1): the rest is not sent.
    if (!this.stream.writableFinished) this.stream.close(constants.NGHTTP2_CANCEL);
    this.handler.onComplete(this.trailers);
  };

  private readonly onTimeout = (): void => {
    const id = this.client.id;
    this.fail(this.responded ? coded(`instance ${id} stopped sending its response body`, 'UND_ERR_BODY_TIMEOUT') : coded(`instance ${id} did not answer in time`, 'UND_ERR_HEADERS_TIMEOUT'));
  };

  private readonly onStreamError = (err: Error): void => {
    if (!this.done) this.fail(streamError(err, this.stream, this.client.id, this.responded));
  };

  private readonly onClose = (): void => {
    this.client.streamClosed(this.session);
    if (this.done) return;
    const code = this.stream.rstCode;
    this.fail(code === constants.NGHTTP2_REFUSED_STREAM ? reset(this.client.id, 'refused the stream (REFUSED_STREAM)', true) : reset(this.client.id, `closed the stream (code ${code ?? 'none'})`, false));
  };

  private fail(err: Error): void {
    if (this.done) return;
    this.finish();
    if (!this.stream.closed) this.stream.close(constants.NGHTTP2_CANCEL);
    this.handler.onError(err);
  }

  private finish(): void {
    this.done = true;
    this.stream.setTimeout(0);
    if (this.body !== null) {
      this.body.off('data', this.onBodyData);
      this.body.off('end', this.onBodyEnd);
      this.body.off('error', this.onBodyError);
      this.stream.off('drain', this.onDrain);
    }
  }

  private sendBody(body: Readable): void {
    if (this.done) return;
    if (body.readableEnded) {
      this.stream.end();
      return;
    }
    body.on('data', this.onBodyData);
    body.once('end', this.onBodyEnd);
    body.once('error', this.onBodyError);
    this.stream.on('drain', this.onDrain);
  }

  private readonly onBodyData = (chunk: Buffer): void => {
    this.handler.onBodySent(chunk);
    if (!this.stream.write(chunk)) this.body!.pause();
  };

  private readonly onDrain = (): void => {
    this.body!.resume();
  };

  private readonly onBodyEnd = (): void => {
    this.body!.off('data', this.onBodyData);
    this.stream.off('drain', this.onDrain);
    this.stream.end();
  };

  private readonly onBodyError = (err: Error): void => {
    this.fail(err instanceof ProxyError ? err : new ProxyError('client_abort', `request body failed: ${err.message}`));
  };
}

/** The client's header lines as h2 fields: Host as :authority (RFC 9113 §8.3.1), connection-specific ones left out. */
function requestHeaders(req: DispatchRequest, scheme: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':method': req.method, ':scheme': scheme, ':path': req.path };
  const lines = req.headers;
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i]!.toLowerCase();
    const value = lines[i + 1]!;
    if (CONNECTION_SPECIFIC.has(name)) {
      if (name === 'host') out[':authority'] = value;
      else if (name === 'te' && value.trim().toLowerCase() === 'trailers') out.te = 'trailers';
      continue;
    }
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
  }
  return out;
}

/** Response fields as undici gives them: latin1 Buffers, name and value, pseudo-fields left out. */
function rawHeaders(headers: IncomingHttpHeaders): Buffer[] {
  const out: Buffer[] = [];
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* : */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    const key = Buffer.from(name, 'latin1');
    if (Array.isArray(value)) for (const v of value) out.push(key, Buffer.from(v, 'latin1'));
    else out.push(key, Buffer.from(String(value), 'latin1'));
  }
  return out;
}

function rawStrings(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name in headers) {
    if (name.charCodeAt(0) === 58) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}

function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

function reset(id: string, what: string, retryable: boolean): ProxyError {
  return new ProxyError('reset', `instance ${id} ${what}`, retryable);
}

/**
 * A stream's error as a ProxyError. Streams that never started when their session failed get
 * node:http2's ERR_HTTP2_STREAM_CANCEL with the session's error as the cause (a refused connect, a
 * TLS refusal): that cause is what happened.
 */
function streamError(err: Error, stream: ClientHttp2Stream, id: string, responded: boolean): ProxyError {
  const e = err as Error & { code?: string; cause?: unknown };
  if (e.code === 'ERR_HTTP2_STREAM_CANCEL' && e.cause instanceof Error) return upstreamError(e.cause, id, responded);
  if (e.code === 'ERR_HTTP2_STREAM_ERROR') {
    // RFC 9113 §8.7: REFUSED_STREAM means nothing of the request was processed.
    if (stream.rstCode === constants.NGHTTP2_REFUSED_STREAM) return reset(id, 'refused the stream (REFUSED_STREAM)', true);
    return reset(id, `reset the stream (${e.message.replace(/^Stream closed with error code /, '')})`, false);
  }
  // Streams past the last one a GOAWAY accepted were never processed either.
  if (e.code === 'ERR_HTTP2_GOAWAY_SESSION') return reset(id, 'went away (GOAWAY) before the stream was processed', true);
  if (e.code === 'ERR_HTTP2_SESSION_ERROR') return reset(id, `ended the session (${e.message})`, false);
  return upstreamError(e, id, responded);
}
