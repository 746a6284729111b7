// A minimal HTTP/1.1 client over Bun.connect (issue 18: one of the upstream paths measured on Bun by
// peers/bun-upstream.ts). What KubeProxy's upstream needs, nothing more: a pool of keep-alive
// sockets per origin (a cap, a FIFO queue, no pipelining), Content-Length, chunked and
// close-delimited response bodies, request bodies by Content-Length or chunked, back-pressure both
// ways (the request body is read only as fast as the socket drains; socket.pause() while the
// response's reader is full), errors that say what happened (connect refused vs closed after the
// request was sent), a headers timeout and an idle-body timeout. Runs on Bun only.

type Handlers = {
  open(s: BunSocket): void;
  data(s: BunSocket, d: Uint8Array): void;
  drain(s: BunSocket): void;
  close(s: BunSocket, err?: Error): void;
  error(s: BunSocket, err: Error): void;
  connectError(s: BunSocket, err: Error): void;
  end(s: BunSocket): void;
  timeout(s: BunSocket): void;
};
export interface BunSocket {
  data: Conn;
  write(d: string | Uint8Array): number;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  timeout(seconds: number): void;
  setNoDelay(on: boolean): boolean;
}
declare const Bun: { connect(o: { hostname: string; port: number; data: Conn; socket: Handlers }): Promise<BunSocket> };

/** connect: nothing was sent (safe to try elsewhere); reset: closed after the request went out; timeout; protocol: unparsable answer. */
export type H1ErrorKind = 'connect' | 'reset' | 'timeout' | 'protocol';
export class H1Error extends Error {
  constructor(readonly kind: H1ErrorKind, message: string, readonly code?: string) {
    super(message);
  }
}

export interface H1Request {
  method: string;
  path: string;
  /** Flat name/value list; hop-by-hop fields and Content-Length already removed. */
  headers: string[];
  /** null: no body; with `length` its Content-Length, without it is sent chunked. */
  body: ReadableStream<Uint8Array> | null;
  length?: number;
}

export interface H1Handler {
  /** Flat name/value list. `contentLength` is -1 when the body is chunked or close-delimited. */
  onHeaders(status: number, headers: string[], contentLength: number): void;
  /** Return false to stop reading the socket until the exchange's resume() is called. */
  onData(chunk: Uint8Array): boolean;
  onEnd(): void;
  onError(err: H1Error, responseStarted: boolean): void;
}

export interface H1PoolOptions {
  connections: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  connectTimeoutMs: number;
}

const CRLF2 = Buffer.from('\r\n\r\n');
const enum Body { None, Length, Chunked, Close }
const enum Chunk { Size, Data, DataEnd, Trailers }
/** What a parsed head leaves to do: a body to read, nothing (no body, or failed), or a 1xx skipped. */
const enum Head { Body, Done, Informational }

/** One request on one connection. */
export class Exchange {
  conn: Conn | null = null;
  responseStarted = false;
  done = false;
  paused = false;
  constructor(readonly req: H1Request, readonly handler: H1Handler) {}
  resume(): void {
    if (!this.paused || this.done) return;
    this.paused = false;
    const c = this.conn;
    if (c?.sock) {
      c.sock.resume();
      c.armTimeout(c.pool.opt.bodyTimeoutMs);
    }
  }
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.conn?.destroy();
  }
}

class Conn {
  sock: BunSocket | null = null;
  ex: Exchange | null = null;
  private head: Buffer | null = null;
  private body = Body.None;
  private left = 0;
  private chunk = Chunk.Size;
  private line = '';
  private keepAlive = true;
  private pendingWrite: Uint8Array | null = null;
  private bodyReader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  private chunkedBody = false;
  private sentAny = false;
  /** Counted out of the pool's open connections already. */
  closed = false;
  constructor(readonly pool: H1Pool) {}

  /** Bun's socket timeout counts whole seconds of inactivity; the bench only needs coarse bounds. */
  armTimeout(ms: number): void {
    this.sock?.timeout(ms > 0 ? Math.max(1, Math.ceil(ms / 1000)) : 0);
  }

  start(ex: Exchange): void {
    this.ex = ex;
    ex.conn = this;
    this.head = null;
    this.body = Body.None;
    this.sentAny = false;
    const r = ex.req;
    let head = `${r.method} ${r.path} HTTP/1.1\r\n`;
    for (let i = 0; i < r.headers.length; i += 2) head += `${r.headers[i]}: ${r.headers[i + 1]}\r\n`;
    if (r.body) {
      this.chunkedBody = r.length === undefined;
      head += this.chunkedBody ? 'transfer-encoding: chunked\r\n\r\n' : `content-length: ${r.length}\r\n\r\n`;
    } else {
      head += '\r\n';
    }
    this.armTimeout(this.pool.opt.headersTimeoutMs);
    this.write(Buffer.from(head, 'latin1'));
    if (r.body) {
      this.bodyReader = r.body.getReader();
      if (!this.pendingWrite) this.pumpBody();
    }
  }

  /** Writes what the socket takes; keeps the rest for `drain` (request-side back-pressure). */
  private write(b: Uint8Array): void {
    const n = this.sock!.write(b);
    if (n > 0) this.sentAny = true;
    this.pendingWrite = n < b.length ? b.subarray(Math.max(n, 0)) : null;
  }

  onDrain(): void {
    if (this.pendingWrite) this.write(this.pendingWrite);
    if (!this.pendingWrite && this.bodyReader) this.pumpBody();
  }

  /** Reads the next request-body chunk only once the previous one is on the wire. */
  private pumpBody(): void {
    const reader = this.bodyReader!;
    reader.read().then(({ done, value }) => {
      if (this.bodyReader !== reader || !this.sock) return;
      if (done) {
        this.bodyReader = null;
        if (this.chunkedBody) this.write(Buffer.from('0\r\n\r\n'));
        return;
      }
      if (this.chunkedBody) {
        if (value.length === 0) return this.pumpBody();
        this.write(Buffer.concat([Buffer.from(`${value.length.toString(16)}\r\n`), value, Buffer.from('\r\n')]));
      } else {
        this.write(value);
      }
      if (!this.pendingWrite) this.pumpBody();
    }, () => this.fail(new H1Error('reset', 'request body failed')));
  }

  onData(d: Uint8Array): void {
    const ex = this.ex;
    if (!ex || ex.done) {
      // Bytes on an idle connection (or after an abort): the peer broke the protocol; drop it.
      this.destroy();
      return;
    }
    let buf = d as Buffer;
    if (!ex.responseStarted) {
      buf = this.head ? Buffer.concat([this.head, buf]) : Buffer.from(d.buffer, d.byteOffset, d.byteLength);
      const end = buf.indexOf(CRLF2);
      if (end < 0) {
        if (buf.length > 64 * 1024) return this.fail(new H1Error('protocol', 'response head over 64 KiB'));
        this.head = buf;
        return;
      }
      this.head = null;
      const head = this.parseHead(buf.toString('latin1', 0, end), ex);
      buf = buf.subarray(end + 4);
      if (head === Head.Done) return;
      if (head === Head.Informational) {
        if (buf.length > 0) this.onData(buf); // the final answer follows on this connection
        return;
      }
    }
    this.onBody(buf, ex);
  }

  private parseHead(text: string, ex: Exchange): Head {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]!);
    if (!m) {
      this.fail(new H1Error('protocol', 'not an HTTP/1.x status line'));
      return Head.Done;
    }
    const status = Number(m[2]);
    const headers: string[] = [];
    let length = -1;
    let chunked = false;
    this.keepAlive = m[1] === '1';
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i]!;
      const c = l.indexOf(':');
      if (c <= 0) continue;
      const name = l.slice(0, c).trim().toLowerCase();
      const value = l.slice(c + 1).trim();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding') chunked = /chunked\s*$/i.test(value);
      else if (name === 'connection') this.keepAlive = !/close/i.test(value) && (this.keepAlive || /keep-alive/i.test(value));
      else if (name !== 'keep-alive') headers.push(name, value);
    }
    if (status < 200) return Head.Informational;
    ex.responseStarted = true;
    this.armTimeout(this.pool.opt.bodyTimeoutMs);
    const noBody = ex.req.method === 'HEAD' || status === 204 || status === 304;
    if (noBody) this.body = Body.None;
    else if (chunked) { this.body = Body.Chunked; this.chunk = Chunk.Size; this.line = ''; }
    else if (length >= 0 && Number.isSafeInteger(length)) { this.body = Body.Length; this.left = length; }
    else { this.body = Body.Close; this.keepAlive = false; }
    if (length >= 0) headers.push('content-length', String(length));
    ex.handler.onHeaders(status, headers, this.body === Body.Length ? length : noBody ? 0 : -1);
    if (noBody || (this.body === Body.Length && length === 0)) this.finish();
    return ex.done ? Head.Done : Head.Body;
  }

  private deliver(ex: Exchange, b: Uint8Array): void {
    if (b.length === 0 || ex.done) return;
    if (ex.handler.onData(b) === false && !ex.paused && !ex.done) {
      ex.paused = true;
      this.sock?.pause();
      this.armTimeout(0); // a client reading slowly is not an origin stalling
    }
  }

  private onBody(buf: Buffer, ex: Exchange): void {
    if (ex.done) return;
    switch (this.body) {
      case Body.Length: {
        if (buf.length > this.left) return this.fail(new H1Error('protocol', 'more bytes than Content-Length'));
        this.left -= buf.length;
        this.deliver(ex, buf);
        if (this.left === 0) this.finish();
        return;
      }
      case Body.Close:
        return this.deliver(ex, buf);
      case Body.Chunked:
        return this.onChunked(buf, ex);
      default:
        if (buf.length > 0) this.fail(new H1Error('protocol', 'bytes after a response without a body'));
    }
  }

  private onChunked(buf: Buffer, ex: Exchange): void {
    let i = 0;
    while (i < buf.length && !ex.done) {
      if (this.chunk === Chunk.Data) {
        const n = Math.min(this.left, buf.length - i);
        this.deliver(ex, buf.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) { this.chunk = Chunk.DataEnd; this.line = ''; }
        continue;
      }
      // Size line, the CRLF after a chunk's data, or a trailer line: read up to the next LF.
      const lf = buf.indexOf(10, i);
      this.line += buf.toString('latin1', i, lf < 0 ? buf.length : lf);
      if (lf < 0) return;
      i = lf + 1;
      const line = this.line.trim();
      this.line = '';
      if (this.chunk === Chunk.DataEnd) {
        this.chunk = Chunk.Size;
      } else if (this.chunk === Chunk.Size) {
        const size = parseInt(line, 16);
        if (!(size >= 0)) return this.fail(new H1Error('protocol', 'bad chunk size'));
        if (size === 0) this.chunk = Chunk.Trailers;
        else { this.chunk = Chunk.Data; this.left = size; }
      } else if (line === '') {
        if (i !== buf.length) return this.fail(new H1Error('protocol', 'bytes after the last chunk'));
        return this.finish();
      }
    }
  }

  private finish(): void {
    const ex = this.ex!;
    if (ex.done) return;
    ex.done = true;
    this.ex = null;
    ex.conn = null;
    // The last chunk may have filled the client's stream: the socket is no longer this exchange's.
    if (ex.paused) this.sock?.resume();
    ex.handler.onEnd();
    // A request body still being sent, or a body the answer left unread: this socket cannot be reused.
    if (this.keepAlive && !this.bodyReader && !this.pendingWrite) this.pool.release(this);
    else this.destroy();
  }

  fail(err: H1Error): void {
    const ex = this.ex;
    this.ex = null;
    this.destroy();
    if (ex && !ex.done) {
      ex.done = true;
      ex.handler.onError(err, ex.responseStarted);
    }
  }

  /** The socket closed or failed: what it means depends on whether a request was on it. */
  onClose(err: Error | undefined): void {
    const had = this.sock !== null;
    this.sock = null;
    this.pool.gone(this);
    const ex = this.ex;
    if (!ex || ex.done) return;
    if (this.body === Body.Close && ex.responseStarted) return this.finish();
    const code = (err as { code?: string } | undefined)?.code ?? 'ECONNRESET';
    if (had) this.fail(new H1Error('reset', `origin closed the connection ${ex.responseStarted ? 'mid-response' : this.sentAny ? 'after the request was sent' : 'before the request was sent'} (${code})`, code));
  }

  onTimeout(): void {
    const ex = this.ex;
    if (!ex) return this.destroy(); // idle keep-alive socket: let it go
    this.fail(new H1Error('timeout', ex.responseStarted ? 'origin stopped sending the body' : 'origin did not answer in time'));
  }

  destroy(): void {
    this.bodyReader?.cancel().catch(() => {});
    this.bodyReader = null;
    this.pendingWrite = null;
    const s = this.sock;
    this.sock = null;
    if (s) {
      s.terminate();
      this.pool.gone(this);
    }
  }
}

const handlers: Handlers = {
  open(s) { s.setNoDelay(true); },
  data(s, d) { s.data.onData(d); },
  drain(s) { s.data.onDrain(); },
  close(s, err) { if (s.data.sock === s) s.data.onClose(err); },
  error(s, err) { if (s.data.sock === s) s.data.onClose(err); },
  end(s) { s.end(); },
  connectError() {}, // reported by the rejected promise of Bun.connect
  timeout(s) { if (s.data.sock === s) s.data.onTimeout(); },
};

/** Keep-alive sockets to one origin: at most `connections`, requests beyond wait in FIFO order. */
export class H1Pool {
  private idle: Conn[] = [];
  private queue: Exchange[] = [];
  private open = 0;
  constructor(readonly hostname: string, readonly port: number, readonly opt: H1PoolOptions) {}

  request(req: H1Request, handler: H1Handler): Exchange {
    const ex = new Exchange(req, handler);
    const c = this.idle.pop();
    if (c) c.start(ex);
    else if (this.open < this.opt.connections) this.connect(ex);
    else this.queue.push(ex);
    return ex;
  }

  private connect(ex: Exchange): void {
    this.open++;
    const conn = new Conn(this);
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      this.open--;
      ex.done = true;
      ex.handler.onError(new H1Error('timeout', 'connect timed out', 'ETIMEDOUT'), false);
    }, this.opt.connectTimeoutMs);
    Bun.connect({ hostname: this.hostname, port: this.port, data: conn, socket: handlers }).then((s) => {
      clearTimeout(t);
      if (timedOut) return s.terminate();
      conn.sock = s;
      if (ex.done) return this.release(conn); // aborted while connecting
      conn.start(ex);
    }, (err: Error & { code?: string }) => {
      clearTimeout(t);
      if (timedOut) return;
      this.open--;
      if (!ex.done) {
        ex.done = true;
        ex.handler.onError(new H1Error('connect', `cannot connect (${err.code ?? err.message})`, err.code), false);
      }
      this.next();
    });
  }

  /** A connection finished its exchange and may carry the next one. */
  release(c: Conn): void {
    let ex: Exchange | undefined;
    while ((ex = this.queue.shift()) && ex.done);
    if (ex) return c.start(ex);
    c.armTimeout(4000); // idle keep-alive: shorter than the origin's (node:http: 5 s by default)
    this.idle.push(c);
  }

  /** A connection closed: forget it, and open one for a waiting request. */
  gone(c: Conn): void {
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (c.sock === null && !c.closed) {
      c.closed = true;
      this.open--;
      this.next();
    }
  }

  private next(): void {
    let ex: Exchange | undefined;
    while ((ex = this.queue.shift()) && ex.done);
    if (ex) {
      if (this.open < this.opt.connections) this.connect(ex);
      else this.queue.unshift(ex);
    }
  }
}
