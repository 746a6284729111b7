// Issue 18: which upstream path is fastest on Bun while keeping KubeProxy's semantics. One Bun.serve
// front (the same for every mode) forwards each request to the origin with MODE:
//   undici     the real undici (by path: inside Bun `undici` is Bun's stand-in), one Pool per
//              origin, dispatch() with the raw handler protocol as src/upstream/client.ts uses it
//   fetch      Bun's fetch (its own keep-alive pool), redirect: manual, decompress: false
//   connect    peers/bun-upstream-h1.ts: an HTTP/1.1 client over Bun.connect
//   node-http  node:http's request() with a keep-alive Agent (Bun's node:http client)
// The answer is streamed into the Response through a ReadableStream whose pull() resumes the
// upstream read (back-pressure: a full stream pauses the socket). With BUFFER_MAX=N, an answer whose
// Content-Length is <= N bytes is collected first and sent as one buffer (no stream).
// Runs on Bun only (bench/bun-upstream.ts). Env: PORT, UPSTREAM, MODE, BUFFER_MAX, TIMEOUT_MS (headers and idle-body timeouts).
import http from 'node:http';
import { createRequire } from 'node:module';
import { realUndiciPath } from '../../src/runtime/bun-undici.ts';
import { H1Pool, type H1Error } from './bun-upstream-h1.ts';

declare const Bun: { serve(o: { port: number; hostname: string; fetch(req: Request): Response | Promise<Response> }): unknown };

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'expect']);
const upstream = new URL(process.env.UPSTREAM ?? 'http://127.0.0.1:19001');
const MODE = process.env.MODE ?? 'undici';
const BUFFER_MAX = Number(process.env.BUFFER_MAX ?? 0);
const CONNECTIONS = 128; // above wrk's 64: no request waits for a socket in the benchmark
const TIMEOUT_MS = Number(process.env.TIMEOUT_MS ?? 30_000);
/** Bytes a response stream holds before the upstream socket is paused. */
const STREAM_HWM = 64 * 1024;

/** The request line's path and query, from Bun's absolute request URL. */
function pathOf(url: string): string {
  return url.slice(url.indexOf('/', url.indexOf('//') + 2));
}

function requestHeaders(req: Request): string[] {
  const out: string[] = [];
  req.headers.forEach((v, k) => { if (!HOP.has(k)) out.push(k, v); });
  return out;
}

function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) if (!HOP.has(flat[i]!)) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

const STATUS: Record<string, number> = { connect: 502, reset: 502, timeout: 504, protocol: 502 };

/**
 * The answer being built for one request: collects a small body (BUFFER_MAX) or streams it with
 * back-pressure; `resume` restarts the upstream read once the stream has room again.
 */
class Answer {
  readonly response: Promise<Response>;
  private resolve!: (r: Response) => void;
  private settled = false;
  private chunks: Uint8Array[] | null = null;
  private size = 0;
  private ctrl: ReadableStreamDefaultController<Uint8Array> | null = null;
  private status = 0;
  private headers: [string, string][] = [];
  resume: () => void = () => {};

  constructor() {
    this.response = new Promise((r) => { this.resolve = r; });
  }

  head(status: number, headers: [string, string][], contentLength: number): void {
    this.status = status;
    this.headers = headers;
    if (contentLength >= 0 && contentLength <= BUFFER_MAX) {
      this.chunks = [];
      return;
    }
    const body = new ReadableStream<Uint8Array>({
      start: (c) => { this.ctrl = c; },
      pull: () => this.resume(),
      cancel: () => this.cancel(),
    }, { highWaterMark: STREAM_HWM, size: (c) => c.byteLength });
    this.settle(new Response(body, { status, headers }));
  }

  /** false: the stream is full, pause the upstream until `resume`. */
  data(chunk: Uint8Array): boolean {
    if (this.chunks) {
      this.chunks.push(chunk);
      this.size += chunk.byteLength;
      return true;
    }
    if (!this.ctrl) return true;
    this.ctrl.enqueue(chunk);
    return (this.ctrl.desiredSize ?? 1) > 0;
  }

  end(): void {
    if (this.chunks) {
      const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
      this.settle(new Response(body, { status: this.status, headers: this.headers }));
    } else {
      this.ctrl?.close();
    }
  }

  fail(kind: string, message: string): void {
    if (!this.settled) return this.settle(new Response(`${kind}: ${message}\n`, { status: STATUS[kind] ?? 502 }));
    this.ctrl?.error(new Error(message));
  }

  /** The client went away mid-body. */
  cancel: () => void = () => {};

  private settle(r: Response): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(r);
  }
}

type Forward = (req: Request) => Promise<Response>;

function viaUndici(): Forward {
  // The real undici, by path (src/runtime/bun-undici.ts says why).
  const { Pool } = createRequire(import.meta.url)(realUndiciPath()) as typeof import('undici');
  const pool = new Pool(upstream.origin, { connections: CONNECTIONS, pipelining: 1, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
  const codeKind = (code: string) => (code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect'
    : code.includes('TIMEOUT') ? 'timeout' : code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' ? 'reset' : 'protocol');
  return (req) => {
    const a = new Answer();
    const headers = requestHeaders(req);
    const body = req.body;
    pool.dispatch({ method: req.method, path: pathOf(req.url), headers, body: body as never }, {
      onConnect(abort: (e?: Error) => void) { a.cancel = () => abort(new Error('client went away')); },
      onHeaders(status: number, raw: Buffer[], resume: () => void) {
        if (status < 200) return true;
        a.resume = resume;
        const flat: string[] = [];
        let length = -1;
        for (let i = 0; i < raw.length; i += 2) {
          const k = raw[i]!.toString('latin1').toLowerCase();
          const v = raw[i + 1]!.toString('latin1');
          if (k === 'content-length') length = Number(v);
          flat.push(k, v);
        }
        a.head(status, pairs(flat), length);
        return true;
      },
      onData: (chunk: Buffer) => a.data(chunk),
      onComplete: () => a.end(),
      onError: (e: Error & { code?: string }) => a.fail(codeKind(e.code ?? ''), `${e.code}: ${e.message}`),
    } as never);
    return a.response;
  };
}

function viaFetch(): Forward {
  const base = upstream.origin;
  return async (req) => {
    const headers = new Headers(req.headers);
    for (const h of HOP) headers.delete(h);
    let res: Response;
    try {
      res = await fetch(base + pathOf(req.url), { method: req.method, headers, body: req.body, redirect: 'manual', decompress: false } as RequestInit);
    } catch (e) {
      // Bun's fetch names a refused connect ECONNREFUSED; a reset after sending, ECONNRESET.
      const code = (e as { code?: string }).code ?? '';
      return new Response(`${code === 'ECONNREFUSED' ? 'connect' : 'reset'}: ${code} ${(e as Error).message}\n`, { status: 502 });
    }
    const out = new Headers(res.headers);
    for (const h of HOP) out.delete(h);
    const length = Number(res.headers.get('content-length') ?? -1);
    const body = length >= 0 && length <= BUFFER_MAX ? await res.arrayBuffer() : res.body;
    return new Response(body, { status: res.status, headers: out });
  };
}

function viaConnect(): Forward {
  const pool = new H1Pool(upstream.hostname, Number(upstream.port), { connections: CONNECTIONS, headersTimeoutMs: TIMEOUT_MS, bodyTimeoutMs: TIMEOUT_MS, connectTimeoutMs: 5000 });
  return (req) => {
    const a = new Answer();
    const headers = requestHeaders(req);
    const cl = req.headers.get('content-length');
    if (cl !== null) headers.splice(headers.indexOf('content-length'), 2); // the client writes its own
    const body = req.body && cl !== '0' ? req.body : null;
    const ex = pool.request({ method: req.method, path: pathOf(req.url), headers, body, length: cl === null ? undefined : Number(cl) }, {
      onHeaders: (status, flat, length) => a.head(status, pairs(flat), length),
      onData: (chunk) => a.data(chunk),
      onEnd: () => a.end(),
      onError: (e: H1Error) => a.fail(e.kind, e.message),
    });
    a.resume = () => ex.resume();
    a.cancel = () => ex.abort();
    return a.response;
  };
}

function viaNodeHttp(): Forward {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  return (req) => {
    const a = new Answer();
    const flat = requestHeaders(req);
    const headers: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) headers[flat[i]!] = flat[i + 1]!;
    const up = http.request({ agent, hostname: upstream.hostname, port: upstream.port, method: req.method, path: pathOf(req.url), headers, timeout: TIMEOUT_MS }, (res) => {
      const out: string[] = [];
      for (let i = 0; i < res.rawHeaders.length; i += 2) out.push(res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!);
      a.resume = () => res.resume();
      a.cancel = () => up.destroy();
      a.head(res.statusCode ?? 502, pairs(out), Number(res.headers['content-length'] ?? -1));
      res.on('data', (c: Buffer) => { if (!a.data(c)) res.pause(); });
      res.on('end', () => a.end());
      res.on('error', (e: Error & { code?: string }) => a.fail('reset', `${e.code}: ${e.message}`));
    });
    up.on('error', (e: Error & { code?: string }) => a.fail(e.code === 'ECONNREFUSED' ? 'connect' : 'reset', `${e.code}: ${e.message}`));
    up.on('timeout', () => up.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    if (req.body) {
      (async () => {
        for await (const c of req.body as unknown as AsyncIterable<Uint8Array>) {
          if (!up.write(c)) await new Promise((r) => up.once('drain', r));
        }
        up.end();
      })().catch((e: Error) => up.destroy(e));
    } else {
      up.end();
    }
    return a.response;
  };
}

const MODES: Record<string, () => Forward> = { undici: viaUndici, fetch: viaFetch, connect: viaConnect, 'node-http': viaNodeHttp };
if (!MODES[MODE]) throw new Error(`MODE: expected one of ${Object.keys(MODES).join(', ')}, got ${MODE}`);
const forward = MODES[MODE]!();

Bun.serve({ port: Number(process.env.PORT), hostname: '127.0.0.1', fetch: forward });

const ppid = process.ppid;
setInterval(() => { if (process.ppid !== ppid) process.exit(0); }, 1000).unref();
