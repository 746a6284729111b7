/**
 * The client-facing http.Server: limits that keep slow or abusive clients from holding the proxy
 * (header and request timeouts, header size, connection cap), clear 4xx answers to malformed
 * requests, and a graceful drain.
 */
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createSecureServer, type ServerOptions as SecureServerOptions } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ProxyConfig } from '../config/schema.ts';
import { randomUUID } from 'node:crypto';
import { ProxyError, type ErrorCause } from '../errors.ts';
import type { ClientFront } from './client-front.ts';
import type { Pipeline } from './pipeline.ts';
import type { UpgradeHandler } from './upgrade.ts';
import { ProxyResponse } from './accept.ts';
import { boundAddress, listenOn } from './bind.ts';
import { RefusalLog } from './refusal-log.ts';
import { errorBody, errorHead, sendRawError } from './respond.ts';

type ClientConfig = ProxyConfig['client'];

/** What answers requests: the Pipeline's two listeners. */
export type RequestHandlers = Pick<Pipeline, 'onRequest' | 'onCheckContinue'>;

/** Makes the TLS server from the listener's options and the TLS ones: https.Server unless told otherwise (server/tls.ts, on Bun). */
export type SecureServerFactory = (options: ServerOptions & SecureServerOptions) => Server;

/** Logs and counts a request refused before the pipeline; gives the request id its answer carries. */
type Report = (refusal: ProxyError, socket: Duplex) => string;

const CLIENT_ERRORS: Record<string, [ErrorCause, string]> = {
  HPE_HEADER_OVERFLOW: ['headers_too_large', 'request headers are larger than the limit'],
  ERR_HTTP_REQUEST_TIMEOUT: ['request_timeout', 'request was not received in time'],
  ERR_HTTP_HEADERS_TIMEOUT: ['request_timeout', 'request headers were not received in time'],
  HPE_UNEXPECTED_CONTENT_LENGTH: ['bad_request', 'both Content-Length and Transfer-Encoding were sent'],
  HPE_INVALID_CONTENT_LENGTH: ['bad_request', 'invalid Content-Length'],
  HPE_INVALID_TRANSFER_ENCODING: ['bad_request', 'invalid Transfer-Encoding'],
  HPE_INVALID_HEADER_TOKEN: ['bad_request', 'invalid character in a header'],
  HPE_INVALID_METHOD: ['bad_request', 'invalid method'],
  HPE_INVALID_URL: ['bad_request', 'invalid request target'],
  HPE_INVALID_VERSION: ['bad_request', 'invalid HTTP version'],
  HPE_INVALID_CHUNK_SIZE: ['bad_request', 'invalid chunk size'],
};

export class Listener implements ClientFront {
  readonly server: Server;
  /** Which port this is in the metrics: `http` (the plain listener) or `https` (the TLS one). */
  readonly name: 'http' | 'https';
  /** Open client connections (saturation metric). */
  connections = 0;
  private readonly sockets = new Set<Socket>();
  /** Told of every request refused here, as the access log never sees them (Observability counts them). */
  private readonly refusalListeners: Array<(refusal: ProxyError) => void> = [];
  /** Told of every connection closed at accept over client.maxConnections (Node answers nothing: there is no request yet). */
  private readonly dropListeners: Array<() => void> = [];
  private readonly refusalLog = new RefusalLog();

  /**
   * `secure`: TLS options (server/tls.ts) make this the HTTPS listener: the same server, limits
   * and handlers over TLS. `pipeline` is the Pipeline, or what answers instead (a redirect).
   */
  constructor(pipeline: RequestHandlers, upgrade: UpgradeHandler, client: ClientConfig, secure?: SecureServerOptions, secureServer: SecureServerFactory = httpsServer) {
    const options: ServerOptions = {
      maxHeaderSize: client.maxHeaderSize,
      headersTimeout: client.headerTimeout,
      requestTimeout: client.requestTimeout,
      keepAliveTimeout: client.keepAliveTimeout,
      // How often Node checks the two timeouts above; 1 s bounds how long a slowloris connection lives past them.
      connectionsCheckingInterval: 1000,
      // HTTP/1.1 requests without Host are answered 400 by Node itself (RFC 9112 §3.2).
      requireHostHeader: true,
      // Responses carry their request's context (server/accept.ts) as a declared field.
      ServerResponse: ProxyResponse,
    };
    // https.Server is an http.Server over TLS sockets (same options, events and connection tracking).
    this.server = secure === undefined ? createServer(options) : secureServer({ ...options, ...secure });
    this.name = secure === undefined ? 'http' : 'https';
    this.applyClientConfig(client);
    // Framing llhttp accepts but a gateway must not forward is refused before the pipeline sees it.
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (admitted(req, res, this.report)) pipeline.onRequest(req, res);
    });
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      if (admitted(req, res, this.report)) pipeline.onCheckContinue(req, res);
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const refusal = framingError(req) ?? http10UpgradeError(req);
      if (refusal === undefined) return upgrade.onUpgrade(req, socket, head);
      socket.on('error', () => socket.destroy());
      sendRawError(socket, refusal, this.report(refusal, socket));
    });
    // A reverse proxy is no forward proxy: CONNECT tunnels are refused (Node emits them apart from requests).
    this.server.on('connect', (_req: unknown, socket: Duplex) => {
      socket.on('error', () => socket.destroy());
      const refusal = new ProxyError('method_not_allowed', 'CONNECT is not supported by this gateway');
      sendRawError(socket, refusal, this.report(refusal, socket), ['allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS']);
    });
    this.server.on('connection', (socket: Socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.once('close', () => {
        this.connections--;
        this.sockets.delete(socket);
      });
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => onClientError(err, socket, this.report));
    // net.Server closes a connection past maxConnections before any byte is read, and says so here.
    this.server.on('drop', () => {
      for (const fn of this.dropListeners) fn();
    });
  }

  /** Subscribes to the requests refused here (before the pipeline); returns the unsubscribe. */
  onRefused(fn: (refusal: ProxyError) => void): () => void {
    return subscribe(this.refusalListeners, fn);
  }

  /** Subscribes to the connections closed over client.maxConnections; returns the unsubscribe. */
  onConnectionRefused(fn: () => void): () => void {
    return subscribe(this.dropListeners, fn);
  }

  private readonly report: Report = (refusal, socket) => {
    const id = randomUUID();
    this.refusalLog.write(refusal, id, (socket as Partial<Socket>).remoteAddress);
    for (const fn of this.refusalListeners) fn(refusal);
    return id;
  };

  get listening(): boolean {
    return this.server.listening;
  }

  applyClientConfig(client: ClientConfig): void {
    this.server.headersTimeout = client.headerTimeout;
    this.server.requestTimeout = client.requestTimeout;
    this.server.keepAliveTimeout = client.keepAliveTimeout;
    this.server.maxConnections = client.maxConnections === 0 ? Infinity : client.maxConnections;
  }

  listen(address: string, port: number): Promise<void> {
    return listenOn(this.server, address, port, 4096);
  }

  address(): { address: string; port: number } {
    return boundAddress(this.server, 'listener');
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to `timeoutMs`, then closes what is left.
   * `busy()` tells whether requests (or tunnels) are still in flight.
   */
  async drain(timeoutMs: number, busy: () => boolean): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + timeoutMs;
    while (busy() && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      // Keep-alive connections that finished their last response close now, not at their timeout.
      this.server.closeIdleConnections();
    }
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

function httpsServer(options: ServerOptions & SecureServerOptions): Server {
  return createSecureServer(options) as unknown as Server;
}

/** Adds `fn` to `list`; returns what removes it. */
function subscribe<F>(list: F[], fn: F): () => void {
  list.push(fn);
  return () => {
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  };
}

/**
 * Requests Node's parser (llhttp, strict mode) refuses never reach the pipeline: conflicting
 * Content-Length and Transfer-Encoding (RFC 9112 §6.3), duplicate or invalid Content-Length, a
 * Transfer-Encoding whose last coding is not chunked (`chunked, identity`), obs-fold (§5.2), control
 * characters in fields. They get a 400 naming the problem and the connection is closed (§9.6): what
 * follows on it cannot be framed reliably, and nothing of it was sent to an instance.
 */
function onClientError(err: NodeJS.ErrnoException & { reason?: string }, socket: Duplex, report: Report): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const pending = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (pending) {
    if (pending.req?.complete) {
      // The error is in a later pipelined request: a status line now would be read as the answer
      // to the earlier one. That answer finishes with `Connection: close`, then the connection ends.
      if (!pending.headersSent) pending.shouldKeepAlive = false;
      pending.once('finish', () => socket.end());
      report(clientErrorRefusal(err), socket);
      return;
    }
    if (pending.headersSent) {
      // This request's response is under way (its body timed out): a second status line would corrupt it.
      socket.destroy();
      return;
    }
  }
  const refusal = clientErrorRefusal(err);
  sendRawError(socket, refusal, report(refusal, socket));
}

/** The answer to what Node's parser refused: the kind CLIENT_ERRORS names, with llhttp's precise reason where there is one. */
function clientErrorRefusal(err: NodeJS.ErrnoException & { reason?: string }): ProxyError {
  const known = CLIENT_ERRORS[err.code ?? ''];
  // llhttp's reason is the precise one ("Transfer-Encoding can't be present with Content-Length").
  const detail = err.code?.startsWith('HPE_') && typeof err.reason === 'string' && err.reason !== '' ? err.reason : undefined;
  const [cause, message] = known !== undefined && (known[0] !== 'bad_request' || detail === undefined) ? known : (['bad_request', detail ?? known?.[1] ?? 'malformed request'] as const);
  return new ProxyError(cause, message);
}

/**
 * Request framing Node's parser accepts but RFC 9112 does not let a gateway forward, as the error
 * it is answered with; undefined for a request that may go on.
 * - A request line without a version (`GET /a`) is HTTP/0.9 to llhttp, and the lines after it are
 *   still parsed as header fields: `GET /a\r\nX-Injected: 1 HTTP/1.1` would be forwarded as HTTP/1.1
 *   with a header the client never sent as one. HTTP/0.9 is not served (NGINX and Envoy refuse it too).
 * - Transfer-Encoding in an HTTP/1.0 request: RFC 9112 §6.1 says the framing must be treated as
 *   faulty (an HTTP/1.0 hop may not understand it: a smuggling vector), so the server closes.
 * - A major version other than 1 (llhttp takes `HTTP/2.0`): 505 (RFC 9110 §15.6.6).
 */
function framingError(req: IncomingMessage): ProxyError | undefined {
  if (req.httpVersionMajor === 1) {
    if (req.httpVersionMinor !== 0) return undefined;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length === 17 && raw[i]!.toLowerCase() === 'transfer-encoding') {
        return new ProxyError('bad_request', 'Transfer-Encoding in an HTTP/1.0 request: its framing cannot be trusted (RFC 9112 section 6.1)');
      }
    }
    return undefined;
  }
  if (req.httpVersionMajor === 0) return new ProxyError('bad_request', 'request line without an HTTP version (HTTP/0.9 is not supported)');
  return new ProxyError('http_version', `HTTP/${req.httpVersion} is not supported: this port speaks HTTP/1.1`);
}

/**
 * RFC 9110 §7.8: a server must ignore Upgrade in an HTTP/1.0 request, so it is never tunnelled.
 * Serving it as a plain request is not possible here: Node (20) hands any request with
 * `Connection: upgrade` to the 'upgrade' event with the socket already taken from its HTTP parser.
 * So a 400 that says why; the client can send it again without Upgrade, or as HTTP/1.1.
 */
function http10UpgradeError(req: IncomingMessage): ProxyError | undefined {
  if (req.httpVersionMinor !== 0) return undefined;
  return new ProxyError('bad_request', 'Upgrade in an HTTP/1.0 request: it cannot be honoured (RFC 9110 section 7.8); send the request without Upgrade, or as HTTP/1.1');
}

/** Connections on which a request was refused: what the client pipelined after it is not served. */
const refusedSockets = new WeakSet<object>();

/**
 * Whether a request may go to the pipeline. A refused one is answered here with `Connection: close`
 * (queued behind any earlier pipelined response, which Node keeps in order), its body is discarded,
 * and the connection ends once the answer is written: nothing after it on the connection can be
 * framed reliably.
 */
function admitted(req: IncomingMessage, res: ServerResponse, report: Report): boolean {
  const socket = req.socket;
  if (refusedSockets.has(socket)) {
    req.resume();
    return false;
  }
  const refusal = framingError(req);
  if (refusal === undefined) return true;
  refusedSockets.add(socket);
  req.resume();
  const body = errorBody(refusal);
  res.shouldKeepAlive = false;
  res.writeHead(refusal.status, errorHead(refusal, report(refusal, socket), body));
  res.end(req.method === 'HEAD' ? '' : body);
  return false;
}
