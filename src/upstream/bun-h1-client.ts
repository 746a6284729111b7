/**
 * HTTP/1.1 to one instance over `Bun.connect`, on Bun (KUBEPROXY_BUN_UPSTREAM=connect, the default
 * there: the instance's pool in place of undici's Pool, instance.ts createPool). On Bun the real undici
 * writes through Bun's node:net emulation; Bun's own sockets cost less per request, most for
 * large bodies (bench/README.md, "Upstream paths on Bun"). It speaks the handler protocol
 * undici's dispatch speaks (upstream/client.ts's Attempt), and reports errors with undici's codes,
 * so forward(), retries and errors.ts work as they do on undici.
 *
 * What undici's Pool gave, kept: keep-alive sockets (the warmest reused first), at most
 * `maxConnections` with a FIFO queue beyond, no pipelining, a connect timeout, a response timeout
 * until the head (refreshed while the request body is still being written, as undici does), an
 * idle timeout between body bytes (not counted while the client holds the answer paused), an
 * idle socket kept `keepAliveTimeout` or the origin's Keep-Alive hint less undici's 2 s margin,
 * whichever is shorter. Back-pressure both ways: the request body (Content-Length or chunked, as
 * its fields say) is read only as fast as the socket takes it, and a paused answer pauses the
 * socket. The response parser is h1-response-parser.ts. Bun's socket timeout() is whole seconds
 * and late, so the timeouts are timers.
 */
import type { Readable } from 'node:stream';
import { ProxyError } from '../errors.ts';
import { envChoice } from '../runtime/select.ts';
import type { AttemptHandler, DispatchRequest } from './h2-client.ts';
import { ResponseParser, isToken, type ResponseSink } from './h1-response-parser.ts';

/**
 * `KUBEPROXY_BUN_UPSTREAM`: the HTTP/1.1 client to instances on Bun. `connect` (the default): this
 * client, measured faster there (README, Running on Bun); `undici`: the real undici, as on Node.
 */
export const BUN_UPSTREAM_ENV = 'KUBEPROXY_BUN_UPSTREAM';
const BUN_UPSTREAMS = ['undici', 'connect'] as const;

/** The upstream client asked for on Bun, or an error naming the bad value. */
export function bunUpstream(env: NodeJS.ProcessEnv = process.env): (typeof BUN_UPSTREAMS)[number] {
  return envChoice(env, BUN_UPSTREAM_ENV, BUN_UPSTREAMS, 'connect', 'an upstream client');
}

export interface BunH1Settings {
  connectTimeout: number;
  responseTimeout: number;
  idleTimeout: number;
  keepAliveTimeout: number;
  /** 0 = unlimited. */
  maxConnections: number;
}

/** The part of Bun's socket used here (Bun 1.4: write returns the bytes taken, -1 once closed). */
interface BunSocket {
  data: Connection;
  write(data: Uint8Array | string): number;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  setNoDelay(on?: boolean): boolean;
}
interface SocketHandlers {
  data(s: BunSocket, d: Buffer): void;
  drain(s: BunSocket): void;
  end(s: BunSocket): void;
  close(s: BunSocket, err?: Error): void;
  error(s: BunSocket, err: Error): void;
  connectError(s: BunSocket, err: Error): void;
}
interface BunConnect {
  connect(options: { hostname: string; port: number; data: Connection; socket: SocketHandlers }): Promise<BunSocket>;
}

/** undici's keepAliveTimeoutThreshold: an origin's Keep-Alive hint less this, so the origin never closes first. */
const KEEP_ALIVE_MARGIN = 2000;
/** Methods whose requests carry a body by their semantics: without one, undici sends Content-Length: 0. */
const EXPECTS_PAYLOAD = new Set(['PUT', 'POST', 'PATCH', 'QUERY', 'PROPFIND', 'PROPPATCH']);
const BAD_VALUE = /[\0\r\n]/;
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

// Connection timer phases.
const NO_TIMER = 0;
const CONNECTING = 1;
const HEADERS = 2;
const BODY = 3;
const IDLE = 4;

function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

export class BunH1Client {
  /** Free keep-alive connections; the last one freed is reused first. */
  private readonly idle: Connection[] = [];
  private readonly queue: Job[] = [];
  /** Connections open or connecting. */
  private open = 0;
  /** Requests dispatched and not finished. */
  running = 0;
  private closing = false;
  private closed: (() => void) | undefined;
  /** Connections connecting or carrying a request (in no other list), for destroy(). */
  readonly connections = new Set<Connection>();

  constructor(
    readonly hostname: string,
    readonly port: number,
    /** The instance's id, for error messages. */
    readonly id: string,
    readonly settings: BunH1Settings,
  ) {}

  /** The shape of undici's pool stats that Instance's idle check reads. */
  get stats(): { connected: number; pending: number; running: number } {
    return { connected: this.open, pending: this.queue.length, running: this.running };
  }

  /** Throws like Pool.dispatch for a request that cannot be written (undici's InvalidArgumentError). */
  dispatch(req: DispatchRequest, handler: AttemptHandler): boolean {
    if (this.closing) throw coded('the pool is closed', 'UND_ERR_CLOSED');
    const job = new Job(this, req, handler, requestHead(req));
    this.running++;
    handler.onConnect(job.abort);
    if (job.done) return true;
    const conn = this.idle.pop();
    if (conn !== undefined) conn.run(job);
    else if (this.settings.maxConnections === 0 || this.open < this.settings.maxConnections) this.connect(job);
    else this.queue.push(job);
    return true;
  }

  private connect(job: Job): void {
    this.open++;
    const conn = new Connection(this);
    conn.connecting(job);
    const bun = (globalThis as { Bun?: BunConnect }).Bun!;
    bun.connect({ hostname: this.hostname, port: this.port, data: conn, socket: HANDLERS }).then(
      (socket) => conn.opened(socket),
      (err: Error) => conn.connectFailed(err),
    );
  }

  /** A connection is free again: the next waiting request, else the idle list for `keepAliveMs`. */
  release(conn: Connection, keepAliveMs: number): void {
    const job = this.nextJob();
    if (job !== undefined) return conn.run(job);
    if (this.closing || keepAliveMs <= 0) return conn.destroy();
    this.idle.push(conn);
    conn.idleFor(keepAliveMs);
  }

  /** A connection closed (or never opened): it no longer counts, and a waiting request may open one. */
  gone(conn: Connection): void {
    this.open--;
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    const job = this.nextJob();
    if (job !== undefined) this.connect(job);
    this.checkClosed();
  }

  /** A request ended (answered, failed or aborted). */
  finished(): void {
    this.running--;
    this.checkClosed();
  }

  private nextJob(): Job | undefined {
    let job: Job | undefined;
    while ((job = this.queue.shift()) !== undefined && job.done);
    return job;
  }

  /** No new requests; resolves once those under way are done and every connection is closed. */
  close(): Promise<void> {
    this.closing = true;
    for (const conn of this.idle.splice(0)) conn.destroy();
    return new Promise((resolve) => {
      this.closed = resolve;
      this.checkClosed();
    });
  }

  /** Ends every request under way (undici's ClientDestroyedError) and closes every connection. */
  destroy(): Promise<void> {
    this.closing = true;
    for (const job of this.queue.splice(0)) job.fail(coded('the pool was destroyed', 'UND_ERR_DESTROYED'));
    for (const conn of this.idle.splice(0)) conn.destroy();
    for (const conn of [...this.connections]) conn.fail(coded('the pool was destroyed', 'UND_ERR_DESTROYED'));
    return this.close();
  }

  private checkClosed(): void {
    if (this.closed !== undefined && this.running === 0 && this.open === 0) {
      const resolve = this.closed;
      this.closed = undefined;
      resolve();
    }
  }
}

/** The request's head as written: its fields, and Content-Length or chunked framing for its body. */
function requestHead(req: DispatchRequest): { text: string; chunked: boolean; length: number } {
  let text = `${req.method} ${req.path} HTTP/1.1\r\n`;
  let length = -1;
  const lines = req.headers;
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i]!;
    const value = lines[i + 1]!;
    if (!isToken(name) || BAD_VALUE.test(value)) throw coded(`invalid request header ${JSON.stringify(name)}`, 'UND_ERR_INVALID_ARG');
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      if (!/^\d{1,15}$/.test(value) || (length >= 0 && Number(value) !== length)) throw coded('invalid content-length header', 'UND_ERR_INVALID_ARG');
      length = Number(value);
    }
    text += `${name}: ${value}\r\n`;
  }
  if (BAD_VALUE.test(req.path) || req.path.includes(' ')) throw coded('invalid request path', 'UND_ERR_INVALID_ARG');
  const chunked = req.body !== null && length < 0;
  if (chunked) text += 'transfer-encoding: chunked\r\n';
  else if (req.body === null && length < 0 && EXPECTS_PAYLOAD.has(req.method)) text += 'content-length: 0\r\n';
  return { text: `${text}\r\n`, chunked, length };
}

/** One request: waiting, then on a connection until its answer ends or it fails. */
class Job {
  done = false;
  conn: Connection | undefined;

  constructor(
    readonly client: BunH1Client,
    readonly req: DispatchRequest,
    readonly handler: AttemptHandler,
    readonly head: { text: string; chunked: boolean; length: number },
  ) {}

  readonly abort = (err?: Error): void => {
    this.fail(err ?? new ProxyError('client_abort', 'client closed the connection'));
  };

  /** Given to the handler with the head: bound to this request, so a late call never resumes the connection's next one. */
  readonly resume = (): void => {
    this.conn?.resume(this);
  };

  /** Ends the request with `err`: its connection (if any) is closed, since its state is unknown. */
  fail(err: Error): void {
    if (this.done) return;
    const conn = this.conn;
    if (conn !== undefined) return conn.fail(err);
    this.done = true;
    this.client.finished();
    this.handler.onError(err);
  }
}

/** One socket to the instance, carrying one request at a time. */
class Connection implements ResponseSink {
  private socket: BunSocket | undefined;
  private job: Job | undefined;
  private readonly parser = new ResponseParser(this);
  private dead = false;
  /** The response is paused (by its handler) and bytes that came meanwhile. */
  private paused = false;
  private held: Buffer | undefined;
  /** The request body: its stream while it is being sent, bytes the socket did not take yet. */
  private body: Readable | null = null;
  private backlog: Buffer | undefined;
  private bodyBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private phase = NO_TIMER;
  /** Date.now() of the last byte either way: the timers measure inactivity from it. */
  private activity = 0;
  private responded = false;
  /** The instance ended the connection while the answer was paused: acted on once the held bytes are read. */
  private endedWhilePaused = false;
  private endError: Error | undefined;

  constructor(private readonly client: BunH1Client) {}

  connecting(job: Job): void {
    this.client.connections.add(this);
    this.attach(job);
    this.arm(CONNECTING, this.client.settings.connectTimeout);
  }

  opened(socket: BunSocket): void {
    if (this.dead) return socket.terminate();
    this.socket = socket;
    socket.setNoDelay(true);
    this.disarm();
    const job = this.job;
    if (job !== undefined && !job.done) this.send(job);
    // Its request went away while connecting: the connection serves the next one, or idles.
    else this.client.release(this, this.client.settings.keepAliveTimeout);
  }

  connectFailed(err: Error): void {
    if (this.dead) return;
    const code = (err as { code?: string }).code;
    this.fail(coded(`cannot connect to ${this.client.id}: ${err.message}`, code ?? 'ECONNREFUSED'));
  }

  /** Runs `job` on this open connection. */
  run(job: Job): void {
    this.client.connections.add(this);
    this.attach(job);
    this.send(job);
  }

  private attach(job: Job): void {
    this.job = job;
    job.conn = this;
    this.responded = false;
    this.endedWhilePaused = false;
    this.parser.start(job.req.method);
  }

  private send(job: Job): void {
    const settings = this.client.settings;
    this.arm(HEADERS, settings.responseTimeout);
    this.write(Buffer.from(job.head.text, 'latin1'));
    const body = job.req.body;
    if (body === null || this.job !== job) return;
    this.bodyBytes = 0;
    if (body.readableEnded) return this.bodyEnd();
    this.body = body;
    body.on('data', this.onBodyData);
    body.once('end', this.onBodyEnd);
    body.once('error', this.onBodyError);
    // on('data') set it flowing; the head still waiting for the socket holds it.
    if (this.backlog !== undefined) body.pause();
  }

  /** Writes what the socket takes now; the rest waits for `drain`, the request body paused meanwhile. */
  private write(data: Buffer): void {
    if (this.backlog !== undefined) {
      this.backlog = Buffer.concat([this.backlog, data]);
      return;
    }
    const n = this.socket!.write(data);
    if (n === data.length) return;
    // Closed already (its close event may be on its way): reported as the instance ending the connection.
    if (n < 0) return queueMicrotask(() => this.ended(undefined));
    this.backlog = data.subarray(n);
    this.body?.pause();
  }

  private onDrain(): void {
    const pending = this.backlog;
    if (pending === undefined || this.socket === undefined) return;
    this.backlog = undefined;
    this.write(pending);
    if (this.backlog === undefined) this.body?.resume();
  }

  private readonly onBodyData = (chunk: Buffer): void => {
    const job = this.job!;
    const { chunked, length } = job.head;
    this.bodyBytes += chunk.length;
    if (length >= 0 && this.bodyBytes > length) {
      return this.fail(coded(`request body longer than its Content-Length (${length})`, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH'));
    }
    if (chunk.length === 0) return;
    this.activity = Date.now();
    if (chunked) this.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, CRLF]));
    else this.write(chunk);
    if (this.job === job) job.handler.onBodySent(chunk);
  };

  private readonly onBodyEnd = (): void => {
    this.bodyEnd();
  };

  private bodyEnd(): void {
    const job = this.job!;
    this.detachBody();
    const { chunked, length } = job.head;
    if (length >= 0 && this.bodyBytes !== length) {
      return this.fail(coded(`request body shorter than its Content-Length (${this.bodyBytes} of ${length})`, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH'));
    }
    if (chunked) this.write(LAST_CHUNK);
  }

  private readonly onBodyError = (err: Error): void => {
    this.fail(err instanceof ProxyError ? err : new ProxyError('client_abort', `request body failed: ${err.message}`));
  };

  private detachBody(): void {
    const body = this.body;
    if (body === null) return;
    this.body = null;
    body.off('data', this.onBodyData);
    body.off('end', this.onBodyEnd);
    body.off('error', this.onBodyError);
  }

  // ---- the response -------------------------------------------------------------------------

  private onSocketData(data: Buffer): void {
    const job = this.job;
    // Bytes with no request out (or after it ended): the instance broke the protocol.
    if (job === undefined) return this.destroy();
    if (this.paused) {
      this.held = this.held === undefined ? data : Buffer.concat([this.held, data]);
      return;
    }
    this.activity = Date.now();
    this.feed(job, data);
  }

  private feed(job: Job, data: Buffer): void {
    let offset: number;
    try {
      offset = this.parser.execute(data);
    } catch (err) {
      return this.fail(err as Error);
    }
    if (this.job !== job) return;
    if (this.parser.done) return this.complete(job, offset < data.length);
    // Paused by the handler: the rest waits for resume.
    if (offset < data.length) this.held = data.subarray(offset);
  }

  onHeaders(status: number, raw: Buffer[], statusText: string): boolean {
    const job = this.job!;
    if (status < 200) {
      // 100 Continue was never asked for (the proxy answers it itself): skipped, as are its fields.
      if (status !== 100) job.handler.onHeaders(status, raw, job.resume, statusText);
      return this.job === job;
    }
    this.responded = true;
    if (!this.parser.done) this.arm(BODY, this.client.settings.idleTimeout);
    const more = job.handler.onHeaders(status, raw, job.resume, statusText);
    if (this.job !== job) return false;
    if (more === false) this.pause();
    return !this.paused;
  }

  onData(chunk: Buffer): boolean {
    const job = this.job!;
    const more = job.handler.onData(chunk);
    if (this.job !== job) return false;
    if (more === false) this.pause();
    return !this.paused;
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket?.pause();
    // A client reading slowly is not an instance stalling: the idle timeout waits for resume.
    if (this.phase === BODY) this.disarm();
  }

  resume(job: Job): void {
    if (!this.paused || this.job !== job) return;
    this.paused = false;
    this.socket?.resume();
    this.activity = Date.now();
    if (this.responded && !this.parser.done) this.arm(BODY, this.client.settings.idleTimeout);
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) this.feed(job, held);
    if (this.endedWhilePaused && this.job === job && !this.paused) this.ended(this.endError);
  }

  /** The answer is whole: the connection is reused unless something says it cannot be. */
  private complete(job: Job, extraBytes: boolean): void {
    const parser = this.parser;
    const trailers = parser.trailers;
    const settings = this.client.settings;
    let keepAliveMs = settings.keepAliveTimeout;
    if (parser.keepAliveHint !== undefined) keepAliveMs = Math.min(keepAliveMs, parser.keepAliveHint - KEEP_ALIVE_MARGIN);
    // Bytes past the answer, a request body still being sent (an early answer): the connection's state is unknown.
    const reusable = parser.keepAlive && !extraBytes && !this.endedWhilePaused && this.body === null && this.backlog === undefined && this.socket !== undefined;
    this.detach(job);
    if (reusable) this.client.release(this, keepAliveMs);
    else this.destroy(true);
    job.handler.onComplete(trailers);
  }

  /** Ends the request on this connection with `err` and closes the connection. */
  fail(err: Error): void {
    const job = this.job;
    this.destroy();
    if (job !== undefined && !job.done) {
      this.detach(job);
      job.handler.onError(err);
    }
  }

  private detach(job: Job): void {
    job.done = true;
    job.conn = undefined;
    this.job = undefined;
    this.held = undefined;
    // A paused socket reads nothing, not even the instance closing it: a free connection reads again.
    if (this.paused) {
      this.paused = false;
      this.socket?.resume();
    }
    this.detachBody();
    this.disarm();
    this.client.connections.delete(this);
    this.client.finished();
  }

  /** Keeps the free connection open for `ms`. */
  idleFor(ms: number): void {
    this.arm(IDLE, ms);
  }

  /**
   * Closes the socket: at once, or after what was written (`graceful`, once an answer is whole).
   * A connection with a request on it fails that request first: fail().
   */
  destroy(graceful = false): void {
    if (this.dead) return;
    this.dead = true;
    this.disarm();
    this.detachBody();
    this.backlog = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (graceful) socket?.end();
    else socket?.terminate();
    if (this.job === undefined) this.client.connections.delete(this);
    this.client.gone(this);
  }

  /** The instance ended the connection (FIN, reset or error). */
  private ended(err: Error | undefined): void {
    if (this.dead) return;
    const job = this.job;
    if (job === undefined) return this.destroy();
    if (this.paused) {
      this.endedWhilePaused = true;
      this.endError ??= err;
      return;
    }
    // A body that runs to the end of the connection is complete now.
    if (this.responded && this.parser.eof()) return this.complete(job, false);
    const code = (err as { code?: string } | undefined)?.code;
    const what = this.responded ? 'closed the connection during the response' : 'closed the connection before answering';
    this.fail(coded(`instance ${this.client.id} ${what}${code === undefined ? '' : ` (${code})`}`, 'UND_ERR_SOCKET'));
  }

  // ---- timers -------------------------------------------------------------------------------

  private arm(phase: number, ms: number): void {
    clearTimeout(this.timer);
    this.phase = phase;
    this.activity = Date.now();
    if (ms <= 0) {
      this.timer = undefined;
      return;
    }
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.phase = NO_TIMER;
  }

  private readonly onTimer = (): void => {
    const settings = this.client.settings;
    const id = this.client.id;
    switch (this.phase) {
      case CONNECTING:
        return this.fail(coded(`connect to instance ${id} timed out`, 'UND_ERR_CONNECT_TIMEOUT'));
      case IDLE:
        return this.destroy();
      case HEADERS:
      case BODY: {
        const limit = this.phase === HEADERS ? settings.responseTimeout : settings.idleTimeout;
        // Bytes moved since the timer was set: it runs again for what is left of the period.
        const left = limit - (Date.now() - this.activity);
        if (left > 0) {
          this.timer = setTimeout(this.onTimer, left);
          this.timer.unref();
          return;
        }
        this.timer = undefined;
        if (this.phase === HEADERS) return this.fail(coded(`instance ${id} did not answer in time`, 'UND_ERR_HEADERS_TIMEOUT'));
        return this.fail(coded(`instance ${id} stopped sending its response body`, 'UND_ERR_BODY_TIMEOUT'));
      }
    }
  };

  // ---- socket events ------------------------------------------------------------------------

  static readonly handlers: SocketHandlers = {
    data: (s, d) => s.data.onSocketData(d),
    drain: (s) => s.data.onDrain(),
    end: (s) => s.data.ended(undefined),
    close: (s, err) => s.data.ended(err),
    error: (s, err) => s.data.ended(err),
    // Reported by Bun.connect's promise (connectFailed).
    connectError: () => {},
  };
}

const CRLF = Buffer.from('\r\n', 'latin1');
const HANDLERS = Connection.handlers;
