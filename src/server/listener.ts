/**
 * The client-facing http.Server: limits that keep slow or abusive clients from holding the proxy
 * (header and request timeouts, header size, connection cap), clear 4xx answers to malformed
 * requests, and a graceful drain.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ProxyConfig } from '../config/schema.ts';
import { randomUUID } from 'node:crypto';
import { rawErrorResponse } from '../upstream/tunnel.ts';
import type { Pipeline } from './pipeline.ts';
import type { UpgradeHandler } from './upgrade.ts';
import { boundAddress, listenOn } from './bind.ts';

type ClientConfig = ProxyConfig['client'];

const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'request headers are larger than the limit'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request was not received in time'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'request headers were not received in time'],
  HPE_UNEXPECTED_CONTENT_LENGTH: [400, 'both Content-Length and Transfer-Encoding were sent'],
  HPE_INVALID_CONTENT_LENGTH: [400, 'invalid Content-Length'],
  HPE_INVALID_TRANSFER_ENCODING: [400, 'invalid Transfer-Encoding'],
  HPE_INVALID_HEADER_TOKEN: [400, 'invalid character in a header'],
  HPE_INVALID_METHOD: [400, 'invalid method'],
  HPE_INVALID_URL: [400, 'invalid request target'],
  HPE_INVALID_VERSION: [400, 'invalid HTTP version'],
  HPE_INVALID_CHUNK_SIZE: [400, 'invalid chunk size'],
};

export class Listener {
  readonly server: Server;
  /** Open client connections (saturation metric). */
  connections = 0;
  private readonly sockets = new Set<Socket>();

  constructor(pipeline: Pipeline, upgrade: UpgradeHandler, client: ClientConfig) {
    this.server = createServer({
      maxHeaderSize: client.maxHeaderSize,
      headersTimeout: client.headerTimeout,
      requestTimeout: client.requestTimeout,
      keepAliveTimeout: client.keepAliveTimeout,
      // How often Node checks the two timeouts above; 1 s bounds how long a slowloris connection lives past them.
      connectionsCheckingInterval: 1000,
      // HTTP/1.1 requests without Host are answered 400 by Node itself (RFC 9112 §3.2).
      requireHostHeader: true,
    });
    this.applyClientConfig(client);
    this.server.on('request', pipeline.onRequest);
    this.server.on('checkContinue', pipeline.onCheckContinue);
    this.server.on('upgrade', upgrade.onUpgrade);
    // A reverse proxy is no forward proxy: CONNECT tunnels are refused (Node emits them apart from requests).
    this.server.on('connect', (_req: unknown, socket: Duplex) => {
      socket.on('error', () => socket.destroy());
      rawErrorResponse(socket, 405, 'CONNECT is not supported by this gateway', randomUUID(), ['allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS']);
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
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => onClientError(err, socket));
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

/**
 * Requests Node's parser (llhttp, strict mode) refuses never reach the pipeline: conflicting
 * Content-Length and Transfer-Encoding (RFC 9112 §6.3), duplicate or invalid Content-Length, a
 * Transfer-Encoding whose last coding is not chunked (`chunked, identity`), obs-fold (§5.2), control
 * characters in fields. They get a 400 naming the problem and the connection is closed (§9.6): what
 * follows on it cannot be framed reliably, and nothing of it was sent to an instance.
 */
function onClientError(err: NodeJS.ErrnoException & { reason?: string }, socket: Duplex): void {
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
      return;
    }
    if (pending.headersSent) {
      // This request's response is under way (its body timed out): a second status line would corrupt it.
      socket.destroy();
      return;
    }
  }
  const known = CLIENT_ERRORS[err.code ?? ''];
  // llhttp's reason is the precise one ("Transfer-Encoding can't be present with Content-Length").
  const detail = err.code?.startsWith('HPE_') && typeof err.reason === 'string' && err.reason !== '' ? err.reason : undefined;
  const [status, message] = known !== undefined && (known[0] !== 400 || detail === undefined) ? known : [400, detail ?? known?.[1] ?? 'malformed request'];
  const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
  const body = `${status} ${reason}: ${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
  );
}
