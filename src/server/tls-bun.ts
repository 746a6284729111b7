/**
 * The TLS port on Bun (server/tls.ts picks it): one node:http2 server with `allowHTTP1` for both
 * protocols. Bun's https.Server cannot share its port with the h2 front (no 'secureConnection'
 * listener to hand h2 sockets to) and serves its default certificate whatever the SNI callback
 * picks; its http2 server does both. HTTP/1.1 requests come out of it as node:http ones, through
 * the events the Listener handles ('request', 'checkContinue', 'upgrade', 'clientError',
 * 'connection', 'drop'); h2 streams through the same 'request' event, for the h2 front.
 *
 * What that server's HTTP/1.1 side does not do by itself is kept here: the header, request and
 * keep-alive deadlines of node:http (headersTimeout, requestTimeout, keepAliveTimeout), and
 * closing idle connections when draining.
 */
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { ServerOptions as SecureServerOptions } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ProxyConfig } from '../config/schema.ts';
import { h2ServerOptions, type H2Front } from './h2-front.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** The server, with the Listener's HTTP/1.1 options and the h2 front's settings. */
export function bunTlsServer({ maxHeaderSize, ...options }: ServerOptions & SecureServerOptions, client: ProxyConfig['client']): Server {
  // Bun advertises a maxHeaderSize option as SETTINGS_MAX_HEADER_LIST_SIZE, over the h2 front's; its HTTP/1.1 parser reads the property.
  const server = createSecureServer({ ...options, ...h2ServerOptions(client), allowHTTP1: true }) as unknown as Server & { maxHeaderSize?: number };
  server.maxHeaderSize = maxHeaderSize;
  return server;
}

/**
 * Once the Listener has its listeners on the server: its 'request' and 'checkContinue' come for
 * HTTP/1.1 requests and h2 streams alike. h2 streams go to the h2 front (an Expect: 100-continue
 * answered at once, as node:http2 does when nobody listens for it), the others to the Listener's
 * own listeners, under node:http's deadlines (below).
 */
export function serveBoth(server: Server, h2: H2Front): void {
  const h1 = { request: server.listeners('request')[0] as Handler, checkContinue: server.listeners('checkContinue')[0] as Handler };
  server.removeAllListeners('request');
  server.removeAllListeners('checkContinue');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.httpVersionMajor === 2) h2.onRequest(req as unknown as Http2ServerRequest, res as unknown as Http2ServerResponse);
    else h1.request.call(server, req, res);
  });
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (req.httpVersionMajor !== 2) return h1.checkContinue.call(server, req, res);
    res.writeContinue();
    h2.onRequest(req as unknown as Http2ServerRequest, res as unknown as Http2ServerResponse);
  });
  keepDeadlines(server);
}

/**
 * An HTTP/1.1 connection's deadline and state: `new` (nothing read yet), `reading` (a request's
 * headers arriving), `busy` (a request being served), `kept` (answered, waiting for the next).
 */
interface Watch {
  timer: NodeJS.Timeout | undefined;
  state: 'new' | 'reading' | 'busy' | 'kept';
}

/**
 * node:http's deadlines on the HTTP/1.1 connections, read from the server's properties (the
 * Listener sets them, and again on reload):
 * - a request's headers within headersTimeout of the connection, or of its first byte after an
 *   answer, and its body within requestTimeout of its headers: past either the server's
 *   'clientError' gets ERR_HTTP_REQUEST_TIMEOUT, answered 408 as by node:http;
 * - after an answer, a connection that sends nothing for keepAliveTimeout is closed.
 * closeIdleConnections (the drain) also closes the connections waiting for a request.
 */
function keepDeadlines(server: Server): void {
  const watches = new Map<Socket, Watch>();
  const arm = (watch: Watch, ms: number, expire: () => void): void => {
    clearTimeout(watch.timer);
    watch.timer = ms > 0 ? setTimeout(expire, ms).unref() : undefined;
  };
  const timedOut = (socket: Socket, req?: IncomingMessage) => (): void => {
    if (req?.complete === true) return;
    const err = Object.assign(new Error('request was not received in time'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
    server.emit('clientError', err, socket);
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') return;
    const watch: Watch = { timer: undefined, state: 'new' };
    watches.set(socket, watch);
    arm(watch, server.headersTimeout, timedOut(socket));
    socket.on('data', () => {
      if (watch.state === 'kept') arm(watch, server.headersTimeout, timedOut(socket));
      if (watch.state === 'kept' || watch.state === 'new') watch.state = 'reading';
    });
    socket.once('close', () => {
      clearTimeout(watch.timer);
      watches.delete(socket);
    });
  });
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket;
    const watch = watches.get(socket);
    if (watch === undefined) return;
    watch.state = 'busy';
    arm(watch, server.requestTimeout, timedOut(socket, req));
    res.once('finish', () => {
      if (socket.destroyed) return;
      watch.state = 'kept';
      arm(watch, server.keepAliveTimeout, () => socket.destroy());
    });
  };
  // Before the Listener's own listeners: a request refused there still ends its deadline (h2 streams have no watch).
  server.prependListener('request', onRequest);
  server.prependListener('checkContinue', onRequest);
  // A tunnel has deadlines of its own (server/upgrade.ts).
  server.prependListener('upgrade', (req: IncomingMessage) => {
    const watch = watches.get(req.socket);
    if (watch !== undefined) clearTimeout(watch.timer);
    watches.delete(req.socket);
  });
  // The drain's: Bun's server has no closeAllConnections.
  const closeIdle = server.closeIdleConnections.bind(server);
  server.closeIdleConnections = () => {
    closeIdle();
    for (const [socket, watch] of watches) if (watch.state === 'new' || watch.state === 'kept') socket.destroy();
  };
  server.closeAllConnections = () => {
    for (const socket of watches.keys()) socket.destroy();
  };
}
