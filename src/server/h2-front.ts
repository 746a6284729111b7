/**
 * The HTTP/2 front (RFC 9113): TLS connections that chose `h2` by ALPN (server/tls.ts) become
 * sessions of a node:http2 server whose requests run the same Pipeline as HTTP/1.1 ones. The
 * adaptation lives here, in the request and response classes node:http2 makes for each stream,
 * so the phases see what they see over HTTP/1.1:
 * - request: the header lines without pseudo-header fields, `:authority` as Host (RFC 9113
 *   §8.3.1), cookie crumbs joined into one line (§8.2.3), and a body without Content-Length
 *   marked chunked (h2 frames it by DATA frames and END_STREAM, §8.1) so it is streamed upstream;
 * - response: connection-specific fields never sent (§8.2.2), no reason phrase (§8.3.2),
 *   trailers given as pairs.
 * Hardening: the limits node:http2 enforces per session (SETTINGS, PING and invalid-frame floods,
 * refused streams) and a cut-off for clients that reset streams as fast as they open them
 * (CVE-2023-44487, "rapid reset"): past `RAPID_RESET_LIMIT` resets within a second the session
 * gets GOAWAY (ENHANCE_YOUR_CALM) and is closed.
 */
import { Http2ServerRequest, Http2ServerResponse, constants, createServer, type Http2SecureServer, type Http2Server, type Http2Session, type SecureServerOptions, type ServerHttp2Stream } from 'node:http2';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { ProxyConfig } from '../config/schema.ts';
import type { RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';
import type { RequestHandlers } from './listener.ts';
import { errorBody, errorHead } from './respond.ts';

/** Streams a client may have open at once on one session (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const MAX_CONCURRENT_STREAMS = 128;
/** Client RST_STREAM frames per session per second beyond which the session is cut off. */
export const RAPID_RESET_LIMIT = 200;

/** Label values of kubeproxy_http2_sessions_cut_total. */
export type SessionCutReason = 'rapid_reset' | 'flood';
const FLOOD = /flood|TOO_MANY|ENHANCE_YOUR_CALM|INVALID_FRAMES|REJECTED_STREAMS|SETTINGS|PING/i;

/** RFC 9113 §8.2.2: fields an h2 message must not carry (`te` only as `trailers`). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** A stream's request, as the phases read it: HTTP/1.1-shaped header lines (`rawHeaders`, defined below). */
export class H2Request extends Http2ServerRequest {}

const h2RawHeaders = Object.getOwnPropertyDescriptor(Http2ServerRequest.prototype, 'rawHeaders')!.get!;
const converted = new WeakMap<Http2ServerRequest, string[]>();
// node:http2 declares rawHeaders a field in its types but defines an accessor: it is replaced as one.
Object.defineProperty(H2Request.prototype, 'rawHeaders', {
  get(this: H2Request): string[] {
    let lines = converted.get(this);
    if (lines === undefined) {
      lines = h1HeaderLines(h2RawHeaders.call(this) as string[], (this.stream as ServerHttp2Stream & { endAfterHeaders: boolean }).endAfterHeaders);
      converted.set(this, lines);
    }
    return lines;
  },
  configurable: true,
});

/** A stream's response, taking what the phases write to an HTTP/1.1 response. */
export class H2Response extends Http2ServerResponse {
  /** The request's context (as ProxyResponse carries it over HTTP/1.1). */
  ctx: RequestContext | undefined = undefined;
  /** Written by the accept phase while draining; h2 says so with GOAWAY instead (server/tls.ts drain). */
  shouldKeepAlive = true;

  override writeHead(status: number, reason?: string | OutgoingHttpHeaders | readonly string[], headers?: OutgoingHttpHeaders | readonly string[]): this {
    // RFC 9113 §8.3.2: no reason phrase in h2.
    const fields = typeof reason === 'string' || reason === undefined ? headers : reason;
    if (Array.isArray(fields)) {
      const lines = h2HeaderLines(fields);
      if (isTrailersOnly(lines)) this.respondTrailersOnly(status, lines);
      else super.writeHead(status, lines as unknown as OutgoingHttpHeaders);
    } else super.writeHead(status, fields as OutgoingHttpHeaders | undefined);
    return this;
  }

  /**
   * gRPC's "Trailers-Only" answer (an error status without messages, from the instance or the
   * proxy): one HEADERS frame that ends the stream. Written as a head and then an empty end, gRPC
   * clients would find no status in trailers and report INTERNAL.
   */
  private respondTrailersOnly(status: number, lines: readonly string[]): void {
    const head: OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < lines.length; i += 2) {
      const name = lines[i]!;
      const prev = head[name];
      head[name] = prev === undefined ? lines[i + 1]! : Array.isArray(prev) ? [...prev, lines[i + 1]!] : [String(prev), lines[i + 1]!];
    }
    this.stream.respond(head, { endStream: true });
  }

  /** A 103 with every field the instance sent (node:http2's own requires a Link field). */
  override writeEarlyHints(hints: Record<string, string | string[]>): void {
    this.informational(103, hints);
  }

  /** ServerResponse's 102 Processing, which node:http2's response lacks. */
  writeProcessing(): void {
    this.informational(102, {});
  }

  private informational(status: number, fields: Record<string, string | string[]>): void {
    const stream = this.stream;
    if (stream.headersSent || stream.destroyed) return;
    try {
      stream.additionalHeaders({ ...fields, ':status': status });
    } catch {
      // A field node:http2 refuses: the hint is dropped, never the answer.
    }
  }

  /** The forward phase gives `[name, value]` pairs. */
  override addTrailers(trailers: OutgoingHttpHeaders): void {
    if (!Array.isArray(trailers)) return super.addTrailers(trailers);
    const out: Record<string, string> = {};
    for (const [name, value] of trailers as ReadonlyArray<[string, string]>) {
      const lower = name.toLowerCase();
      if (!CONNECTION_SPECIFIC.has(lower)) out[lower] = lower in out ? `${out[lower]}, ${value}` : value;
    }
    super.addTrailers(out);
  }
}

// The phases ask `res.destroyed` as of a ServerResponse; the stream knows.
Object.defineProperty(H2Response.prototype, 'destroyed', {
  get(this: H2Response): boolean {
    return this.stream.destroyed;
  },
  configurable: true,
});

/** h2 request fields → HTTP/1.1 header lines (see the file comment). */
export function h1HeaderLines(raw: readonly string[], endAfterHeaders: boolean): string[] {
  const out: string[] = [];
  let authority: string | undefined;
  let host = false;
  let cookie: string | undefined;
  let length = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') authority = value;
      continue;
    }
    if (name === 'cookie') {
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    if (name === 'host') host = true;
    else if (name === 'content-length') length = true;
    out.push(name, value);
  }
  // §8.3.1: a Host field and :authority name the same; without Host, :authority is it.
  if (!host && authority !== undefined) out.unshift('host', authority);
  if (cookie !== undefined) out.push('cookie', cookie);
  if (!length && !endAfterHeaders) out.push('transfer-encoding', 'chunked');
  return out;
}

/** HTTP/1.1 response header lines → h2 ones: connection-specific fields left out (§8.2.2). */
export function h2HeaderLines(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i]!.toLowerCase();
    if (CONNECTION_SPECIFIC.has(name)) continue;
    out.push(name, lines[i + 1]!);
  }
  return out;
}

/** A gRPC answer whose head carries its status (grpc-status): nothing may follow it (PROTOCOL-HTTP2.md). */
function isTrailersOnly(lines: readonly string[]): boolean {
  let grpcStatus = false;
  let grpcType = false;
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i]!;
    if (name === 'grpc-status') grpcStatus = true;
    else if (name === 'content-type') grpcType = lines[i + 1]!.toLowerCase().startsWith('application/grpc');
  }
  return grpcStatus && grpcType;
}

/** The total size of a request's header lines as RFC 9113 §6.5.2 counts it (name + value + 32 each). */
function headerListSize(raw: readonly string[]): number {
  let size = 0;
  for (let i = 0; i < raw.length; i++) size += raw[i]!.length;
  return size + 16 * raw.length;
}

/** The settings and per-session limits of the h2 server (node:http2 counts and enforces them). */
export function h2ServerOptions(client: ProxyConfig['client']): SecureServerOptions {
  return {
    Http2ServerRequest: H2Request,
    Http2ServerResponse: H2Response,
    settings: {
      maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
      // Above it node:http2 refuses the headers at once; between maxHeaderSize and it the client gets a 431.
      maxHeaderListSize: 2 * client.maxHeaderSize + 1024,
      enablePush: false,
    },
    // Floods of SETTINGS, PING and invalid frames, and streams refused past the limit, end the session (node:http2 counts them).
    maxSettings: 32,
    maxOutstandingPings: 10,
    maxSessionInvalidFrames: 1000,
    maxSessionRejectedStreams: 100,
    peerMaxConcurrentStreams: MAX_CONCURRENT_STREAMS,
  } as SecureServerOptions;
}

export class H2Front {
  readonly server: Http2Server | Http2SecureServer;
  private readonly pipeline: RequestHandlers;
  private readonly sessions = new Set<Http2Session>();
  private maxHeaderSize: number;
  private accepting: Socket | undefined;
  /** The socket under each session, which node:http2's Proxy hides (rapid reset ends it). */
  private readonly socketOf = new WeakMap<Http2Session, Socket>();
  /** On a shared server: the session made last, whose socket 'secureConnection' gives next. */
  private made: Http2Session | undefined;

  /**
   * `shared`: a server that makes the sessions itself, on the port it listens on (server/tls.ts on
   * Bun, made with h2ServerOptions); its 'request' event is the caller's, which hands h2 streams to
   * `onRequest`. Without it the front has a server of its own and takes sockets by `accept`.
   */
  constructor(pipeline: RequestHandlers, client: ProxyConfig['client'], onCut: (reason: SessionCutReason) => void, shared?: Http2SecureServer) {
    this.maxHeaderSize = client.maxHeaderSize;
    this.pipeline = pipeline;
    this.server = shared ?? createServer(h2ServerOptions(client));
    if (shared === undefined) this.server.on('request', this.onRequest);
    this.server.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', (err: NodeJS.ErrnoException) => {
        // node:http2 ends a session that floods it (nghttp2's own limits and the options above) with an error.
        if (FLOOD.test(`${err.code ?? ''} ${err.message}`)) onCut('flood');
        session.destroy();
      });
      if (this.accepting !== undefined) this.socketOf.set(session, this.accepting);
      else this.made = session;
      watchResets(session, () => this.socketOf.get(session), () => onCut('rapid_reset'));
    });
    // A shared server makes the session in its own 'secureConnection' listener, which runs before this one.
    if (shared !== undefined) {
      shared.on('secureConnection', (socket: Socket) => {
        if (this.made !== undefined && (socket as Socket & { alpnProtocol?: string }).alpnProtocol === 'h2') this.socketOf.set(this.made, socket);
        this.made = undefined;
      });
    }
    // Errors of single streams (a client reset) are the stream's; the session goes on.
    this.server.on('sessionError', () => {});
    this.server.setTimeout(client.keepAliveTimeout > 0 ? Math.max(client.keepAliveTimeout, client.headerTimeout) : 0, (session?: unknown) => {
      (session as Http2Session | undefined)?.close();
    });
  }

  /** A stream's request: refused over the header limit, else the Pipeline's. */
  readonly onRequest = (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    const raw = (req as H2Request).rawHeaders;
    if (headerListSize(raw) > this.maxHeaderSize) return refuse(res, new ProxyError('headers_too_large', 'request headers are larger than the limit'));
    this.pipeline.onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  };

  /** A TLS socket that chose h2 by ALPN. */
  accept(socket: Socket): void {
    // node:http2 makes the session within this call ('session' below); its Proxy hides the socket.
    this.accepting = socket;
    this.server.emit('connection', socket);
    this.accepting = undefined;
  }

  applyClientConfig(client: ProxyConfig['client']): void {
    this.maxHeaderSize = client.maxHeaderSize;
  }

  /** Draining: every session gets GOAWAY (streams under way finish, no new ones); `closeAll` ends what is left. */
  goaway(): void {
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  get busy(): boolean {
    return this.sessions.size > 0;
  }

  closeAll(): void {
    for (const s of this.sessions) s.destroy();
  }
}

/**
 * CVE-2023-44487: a client opens streams and resets each at once, so the server starts work
 * for every one while the client's concurrency limit never fills. Resets the client sends are
 * counted per second; past RAPID_RESET_LIMIT the session gets GOAWAY ENHANCE_YOUR_CALM and closes.
 */
function watchResets(session: Http2Session, socket: () => Socket | undefined, onRapidReset: () => void): void {
  let windowStart = 0;
  let resets = 0;
  session.on('stream', (stream: ServerHttp2Stream) => {
    stream.once('close', () => {
      // Closed by RST_STREAM (mostly the client's CANCEL), not by the end of its response.
      if (stream.rstCode === undefined || stream.rstCode === constants.NGHTTP2_NO_ERROR) return;
      const now = Date.now();
      if (now - windowStart >= 1000) {
        windowStart = now;
        resets = 0;
      }
      if (++resets === RAPID_RESET_LIMIT + 1 && !session.destroyed) {
        onRapidReset();
        session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
        session.destroy();
        // The session's end waits for the socket to flush, which a client still flooding may never let happen.
        setTimeout(() => socket()?.destroy(), 50).unref();
      }
    });
  });
}

function refuse(res: Http2ServerResponse, err: ProxyError): void {
  const body = errorBody(err);
  (res as H2Response).writeHead(err.status, errorHead(err, randomUUID(), body));
  res.end(body);
}
