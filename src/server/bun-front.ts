/**
 * The Bun.serve front (issue 18, `KUBEPROXY_BUN_FRONT=serve`): on Bun, the plain HTTP port is
 * Bun's own server instead of its node:http compatibility layer, and the same Pipeline answers. This file is the adapter: a
 * Bun `Request` becomes the request object the phases read (method, target, raw header lines,
 * a Readable body) and the response object they write (writeHead / write / end / destroy, 'drain'
 * and 'close'), which becomes the `Response` Bun sends: its bytes at once when the whole answer is
 * known in the same turn (a cache hit, an error), a ReadableStream fed with back-pressure otherwise.
 *
 * What Bun.serve does not give, and what it means (README, "Running on Bun"):
 * - the request target as sent: `request.url` comes from Bun's URL parser, which resolves dot
 *   segments (also `%2e`), reads `\` as `/`, and builds absolute-form targets from the Host field;
 *   the path forwarded is that normalised one (as Envoy's `normalize_path`);
 * - the HTTP version: every request reads as HTTP/1.1;
 * - Upgrade: answered 501 (the node:http front, Bun's default, tunnels it); CONNECT 405 as on node:http;
 * - the reason phrase: Bun writes its own for the status;
 * - 100 Continue, 1xx and trailers to the client: Bun sends 100 itself, 102/103 and trailers are dropped;
 * - the client's socket: `connections` counts requests in flight, and `client.maxHeaderSize`,
 *   `maxConnections` and the header timeout are Bun's own (its idle timeout is `keepAliveTimeout`).
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { ProxyConfig } from '../config/schema.ts';
import { ProxyError } from '../errors.ts';
import type { RequestContext } from '../context.ts';
import type { ClientFront } from './client-front.ts';
import type { RequestHandlers } from './listener.ts';
import { errorBody, errorHead } from './respond.ts';

type ClientConfig = ProxyConfig['client'];

/** The part of Bun's API used here (no bun-types dependency: this file is compiled on Node too, and only loaded on Bun). */
interface BunServer {
  readonly port: number;
  readonly hostname: string;
  readonly pendingRequests: number;
  requestIP(req: Request): { address: string; port: number } | null;
  stop(closeActiveConnections?: boolean): Promise<void>;
}
interface BunServeOptions {
  port: number;
  hostname: string;
  reusePort?: boolean;
  idleTimeout?: number;
  maxRequestBodySize?: number;
  fetch(req: Request, server: BunServer): Response | Promise<Response>;
  error(err: Error): Response;
}
declare const Bun: { serve(options: BunServeOptions): BunServer };

/**
 * Fields Bun writes itself from the Response it is given; a copy from the instance would be wrong
 * or doubled. `Connection: close` is the exception: Bun honours it and closes after the answer.
 */
const BUN_OWNED = new Set(['transfer-encoding', 'connection', 'keep-alive']);
/** Bytes a streamed answer may queue before the instance is paused (Node's socket buffer is in the same range). */
const STREAM_HIGH_WATER = 64 * 1024;
/** Bun's idle timeout is whole seconds, at most 255. */
const MAX_IDLE_SECONDS = 255;

/** The request as the phases read it: node:http's IncomingMessage fields, over a Bun Request. */
export class BunRequest extends Readable {
  readonly method: string;
  /** Path and query (origin form). */
  readonly url: string;
  readonly rawHeaders: string[];
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  complete = false;
  readonly socket: { remoteAddress: string; remotePort: number };
  private headerObject: IncomingHttpHeaders | undefined;
  private reader: ReadableStreamDefaultReader<Uint8Array> | undefined;

  constructor(
    private readonly request: Request,
    address: { address: string; port: number } | null,
  ) {
    super();
    this.method = request.method;
    const url = request.url;
    const slash = url.indexOf('/', url.indexOf('//') + 2);
    this.url = slash === -1 ? '/' : url.slice(slash);
    const raw: string[] = [];
    for (const [name, value] of request.headers) raw.push(name, value);
    this.rawHeaders = raw;
    this.socket = { remoteAddress: address?.address ?? '', remotePort: address?.port ?? 0 };
    if (request.body === null) this.complete = true;
  }

  /** Built on first use only: the phases read rawHeaders. */
  get headers(): IncomingHttpHeaders {
    if (this.headerObject === undefined) {
      const h: IncomingHttpHeaders = {};
      const raw = this.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) h[raw[i]!] = raw[i + 1]!;
      this.headerObject = h;
    }
    return this.headerObject;
  }

  override _read(): void {
    const body = this.request.body;
    if (body === null) {
      this.push(null);
      return;
    }
    const reader = (this.reader ??= body.getReader());
    reader.read().then(
      (r) => {
        if (r.done) {
          this.complete = true;
          this.push(null);
        } else {
          this.push(r.value);
        }
      },
      (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
    );
  }
}

/**
 * The response as the phases write it (the node:http ServerResponse calls they make), turned
 * into the Response Bun sends. 'finish' and 'close' come once Bun has the whole answer (an
 * answer in one piece) or once the stream ends, or when the client leaves.
 */
export class BunResponse extends EventEmitter {
  statusCode = 200;
  statusMessage = '';
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = true;
  /** The request this answers (pipeline.ts finds it through the response). */
  ctx: RequestContext | undefined = undefined;
  /** The answer, once its head is known: what Bun's fetch handler returns. */
  response: Response | undefined = undefined;
  /** Made only for an answer not ready when the pipeline returns (see BunServeFront.serve). */
  private resolveLater: ((r: Response) => void) | undefined;
  private head: Array<[string, string]> = [];
  private typed = false;
  /** The head says `Connection: close` already. */
  private closing = false;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  /** Chunks written in the current turn, before any stream exists (see write). */
  private held: Uint8Array[] | undefined;
  private heldBytes = 0;
  private closed = false;

  constructor(private readonly method: string) {
    super();
  }

  /** The answer, when it comes later than the pipeline's return (an instance's, or after an await). */
  later(): Promise<Response> {
    return new Promise((resolve) => (this.resolveLater = resolve));
  }

  private resolveAnswer(response: Response): void {
    this.response = response;
    this.resolveLater?.(response);
  }

  writeHead(status: number, reasonOrHeaders?: string | OutgoingHttpHeaders | readonly string[], headers?: OutgoingHttpHeaders | readonly string[]): this {
    if (this.headersSent) throw new Error('headers already sent');
    const fields = typeof reasonOrHeaders === 'string' || reasonOrHeaders === undefined ? headers : reasonOrHeaders;
    if (typeof reasonOrHeaders === 'string') this.statusMessage = reasonOrHeaders;
    if (status < 200 || status > 999) throw new RangeError(`invalid status code ${status}`);
    this.statusCode = status;
    const head = this.head;
    if (Array.isArray(fields)) {
      for (let i = 0; i < fields.length; i += 2) this.field(head, fields[i] as string, fields[i + 1] as string);
    } else if (fields !== undefined) {
      for (const [name, value] of Object.entries(fields as OutgoingHttpHeaders)) {
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const v of value) this.field(head, name, v);
        else this.field(head, name, String(value));
      }
    }
    if (!this.shouldKeepAlive && !this.closing) head.push(['connection', 'close']);
    this.headersSent = true;
    return this;
  }

  private field(head: Array<[string, string]>, name: string, value: string): void {
    const lower = name.length === 17 || name.length === 10 ? name.toLowerCase() : name;
    if (BUN_OWNED.has(lower)) {
      if (lower !== 'connection' || value !== 'close') return;
      this.closing = true;
    }
    if (name.length === 12 && name.toLowerCase() === 'content-type') this.typed = true;
    head.push([name, value]);
  }

  /**
   * Queues a chunk; false once the queue is full ('drain' follows). Chunks written in one turn are
   * held until its end: an answer that also ends in that turn (a small one: undici reports its
   * data and its end from one read) goes to Bun as bytes, without a stream.
   */
  write(chunk: Uint8Array | string): boolean {
    if (this.destroyed || this.writableEnded) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const controller = this.controller;
    if (controller !== undefined) {
      controller.enqueue(bytes);
      return (controller.desiredSize ?? 0) > 0;
    }
    if (this.held === undefined) {
      this.held = [];
      queueMicrotask(() => this.flushHeld());
    }
    this.held.push(bytes);
    this.heldBytes += bytes.length;
    return this.heldBytes < STREAM_HIGH_WATER;
  }

  end(chunk?: Uint8Array | string): this {
    if (this.destroyed || this.writableEnded) return this;
    if (!this.headersSent) this.writeHead(this.statusCode);
    this.writableEnded = true;
    const last = chunk === undefined || chunk.length === 0 ? undefined : typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const controller = this.controller;
    if (controller !== undefined) {
      if (last !== undefined) controller.enqueue(last);
      controller.close();
      this.finished();
      return this;
    }
    // The whole answer in one piece: Bun gets the bytes.
    const held = this.held;
    this.held = undefined;
    const body = held === undefined ? last : Buffer.concat(last === undefined ? held : [...held, last]);
    if (this.method === 'HEAD' || body === undefined || body.length === 0) {
      this.resolveAnswer(new Response(null, this.init()));
    } else if (this.typed) {
      this.resolveAnswer(new Response(body, this.init()));
    } else {
      // Bun names bytes without Content-Type application/octet-stream; a stream it leaves untyped.
      this.startStream().enqueue(body);
      this.controller!.close();
    }
    this.finished();
    return this;
  }

  /** The turn ended with the answer still open: it streams from here on. */
  private flushHeld(): void {
    const held = this.held;
    if (held === undefined || this.destroyed) return;
    this.held = undefined;
    const controller = this.startStream();
    for (const c of held) controller.enqueue(c);
  }

  /** Cuts the answer: before its head, the connection closes without one; after, the stream errors. */
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    const reason = err ?? new Error('response destroyed');
    if (this.controller !== undefined) {
      try {
        this.controller.error(reason);
      } catch {
        // The stream was already closed or cancelled.
      }
    } else {
      // No head went out yet: a stream that fails before its first byte makes Bun drop the connection.
      this.resolveAnswer(new Response(new ReadableStream({ start: (c) => c.error(reason) }), this.init()));
    }
    this.close();
    return this;
  }

  /** The client went away (the request's signal): the answer is cut. */
  clientGone(): void {
    if (this.writableFinished || this.destroyed) return;
    this.destroyed = true;
    this.close();
  }

  // node:http calls the phases make that mean nothing here (see the file's head).
  cork(): void {}
  writeContinue(): void {}
  writeProcessing(): void {}
  writeEarlyHints(): void {}
  addTrailers(): void {}

  private init(): ResponseInit {
    return this.statusMessage === '' ? { status: this.statusCode, headers: this.head } : { status: this.statusCode, statusText: this.statusMessage, headers: this.head };
  }

  private startStream(): ReadableStreamDefaultController<Uint8Array> {
    const stream = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.controller = c;
        },
        pull: () => {
          this.emit('drain');
        },
        cancel: () => this.clientGone(),
      },
      new ByteLengthQueuingStrategy({ highWaterMark: STREAM_HIGH_WATER }),
    );
    this.resolveAnswer(new Response(stream, this.init()));
    return this.controller!;
  }

  private finished(): void {
    queueMicrotask(() => {
      if (this.destroyed) return;
      this.writableFinished = true;
      this.emit('finish');
      this.close();
    });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }
}

/** The front's part of the Listener's surface that the Runtime, metrics and /status use. */
export class BunServeFront implements ClientFront {
  readonly name = 'http' as const;
  private server: BunServer | undefined;
  private idleTimeout: number;
  /** Told of every request refused here, before the pipeline (the metrics count them). */
  private readonly refusalListeners: Array<(refusal: ProxyError) => void> = [];

  constructor(
    private readonly pipeline: RequestHandlers,
    client: ClientConfig,
    /** A node:cluster worker: the port is shared with the other workers (SO_REUSEPORT). */
    private readonly reusePort = false,
  ) {
    this.idleTimeout = idleSeconds(client);
  }

  /** Requests in flight: Bun.serve does not expose its connections. */
  get connections(): number {
    return this.server?.pendingRequests ?? 0;
  }

  get listening(): boolean {
    return this.server !== undefined;
  }

  onRefused(fn: (refusal: ProxyError) => void): () => void {
    this.refusalListeners.push(fn);
    return () => {
      const i = this.refusalListeners.indexOf(fn);
      if (i >= 0) this.refusalListeners.splice(i, 1);
    };
  }

  /** Bun.serve has no connection cap to refuse at (see the file's head). */
  onConnectionRefused(): () => void {
    return () => {};
  }

  applyClientConfig(client: ClientConfig): void {
    // Bun reads idleTimeout when it starts; a reload's new value applies from the next start.
    this.idleTimeout = idleSeconds(client);
  }

  listen(address: string, port: number): Promise<void> {
    this.server = Bun.serve({
      port,
      hostname: address,
      reusePort: this.reusePort,
      idleTimeout: this.idleTimeout,
      // Bun's default (128 MiB) would cut longer uploads; body limits are the admit phase's (per service).
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      fetch: (request, server) => this.serve(request, server),
      error: (err) => internalError(err),
    });
    return Promise.resolve();
  }

  address(): { address: string; port: number } {
    if (this.server === undefined) throw new Error('listener is not bound');
    return { address: this.server.hostname, port: this.server.port };
  }

  /** Stops accepting; in-flight requests get `timeoutMs`, then what is left is cut. */
  async drain(timeoutMs: number, busy: () => boolean): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    const stopped = server.stop(false);
    const deadline = Date.now() + timeoutMs;
    while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    await server.stop(true);
    await stopped;
  }

  private refuse(err: ProxyError, extra?: readonly string[]): Response {
    for (const fn of this.refusalListeners) fn(err);
    return refusal(err, extra);
  }

  private serve(request: Request, server: BunServer): Promise<Response> | Response {
    const method = request.method;
    if (method === 'CONNECT') return this.refuse(new ProxyError('method_not_allowed', 'CONNECT is not supported by this gateway'), ['allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS']);
    if (request.headers.has('upgrade')) return this.refuse(new ProxyError('not_implemented', 'Upgrade (WebSocket) is not served by the Bun.serve front; the node:http front (KUBEPROXY_BUN_FRONT=node, the default) tunnels it'));
    const req = new BunRequest(request, server.requestIP(request));
    const res = new BunResponse(method);
    this.pipeline.onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    // Answered in the same turn (a cache hit, an error): no promise, and no abort signal to watch.
    if (res.response !== undefined && res.writableEnded) return res.response;
    request.signal.addEventListener('abort', () => res.clientGone(), { once: true });
    return res.response ?? res.later();
  }
}

/** Bun's idle timeout from the client config: the keep-alive timeout, in whole seconds (0: Bun's default). */
function idleSeconds(client: ClientConfig): number {
  return Math.min(MAX_IDLE_SECONDS, Math.max(1, Math.ceil(client.keepAliveTimeout / 1000)));
}

/** An answer made here, before the pipeline (CONNECT, Upgrade). */
function refusal(err: ProxyError, extra?: readonly string[]): Response {
  const body = errorBody(err);
  const head = errorHead(err, crypto.randomUUID(), body, extra);
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < head.length; i += 2) pairs.push([head[i]!, head[i + 1]!]);
  return new Response(body, { status: err.status, headers: pairs });
}

/** A handler that threw (a bug): a 502 naming it, never Bun's default error page. */
function internalError(err: Error): Response {
  return refusal(new ProxyError('upstream_protocol', `internal error: ${err.message}`));
}
