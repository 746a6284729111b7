/**
 * The phases of a request, in order (Pingora's ProxyHttp): route → (cache) → pick → forward →
 * respond → log. Everything a request needs is read from the snapshot it started with.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';
import { normaliseHost } from '../routing/host.ts';
import type { Snapshot } from '../snapshot.ts';
import { forward, type Attempt, type UpstreamHandler, type UpstreamRequest } from '../upstream/client.ts';
import { clientResponseHeaders, upstreamRequestHeaders } from '../upstream/headers.ts';
import type { Instance } from '../upstream/instance.ts';
import type { Service } from '../upstream/service.ts';
import { sendError } from './respond.ts';

/** What the pipeline needs from the running proxy; implemented by Runtime. */
export interface PipelineHost {
  readonly snapshot: Snapshot;
  /** True once shutdown began: responses carry `Connection: close`. */
  readonly draining: boolean;
  /** Requests in flight; the pipeline counts them up, requestEnded counts them down. */
  inflight: number;
  /** Called exactly once per request, when its response ended or was cut. */
  requestEnded(ctx: RequestContext): void;
  /** Called when an attempt to an instance ended; `failure` is set for connect errors, resets, timeouts and 5xx. */
  attemptEnded(instance: Instance, service: Service, status: number, failure: ProxyError | undefined): void;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

export class Pipeline {
  constructor(private readonly host: PipelineHost) {}

  /** The `request` listener of the http.Server. */
  readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    this.handle(req, res, false);
  };

  /** The `checkContinue` listener: 100 Continue is sent only once the request is routed. */
  readonly onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    this.handle(req, res, true);
  };

  handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    const snapshot = this.host.snapshot;
    const incomingId = req.headers['x-request-id'];
    const id = typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    const ctx = new RequestContext(req, res, id, clientIp(req));
    this.host.inflight++;
    res.once('close', () => this.ended(ctx));

    const target = parseTarget(req);
    if (typeof target === 'string') return sendError(ctx, new ProxyError('bad_request', target));
    ctx.host = target.host;
    ctx.path = target.path;
    if (req.method === 'CONNECT') {
      return sendError(ctx, new ProxyError('method_not_allowed', 'CONNECT is not supported by this gateway'));
    }
    const service = snapshot.router.match(target.host);
    if (service === undefined) {
      return sendError(ctx, new ProxyError('no_route', `no service is configured for host "${target.host}"`));
    }
    ctx.service = service;
    const maxBody = snapshot.config.proxy.client.maxBodySize;
    const contentLength = req.headers['content-length'];
    if (maxBody > 0 && contentLength !== undefined && Number(contentLength) > maxBody) {
      return sendError(ctx, new ProxyError('body_too_large', `request body of ${contentLength} bytes is over the limit of ${maxBody}`));
    }
    const hasBody = req.headers['transfer-encoding'] !== undefined || (contentLength !== undefined && contentLength !== '0');
    if (expectContinue) res.writeContinue();

    const traceparent = req.headers.traceparent;
    if (typeof traceparent === 'string') ctx.traceparent = traceparent;
    const upstreamReq: UpstreamRequest = {
      method: req.method!,
      path: target.path,
      headers: upstreamRequestHeaders(req.rawHeaders, {
        clientIp: ctx.clientIp,
        trusted: snapshot.isTrusted(ctx.clientIp),
        host: target.host,
        requestId: id,
        via: snapshot.via,
        upstreamHost: service.upstreamHost ?? target.hostHeader,
        upgrade: false,
      }),
      body: hasBody ? req : null,
    };
    new Exchange(this.host, snapshot, ctx, service, upstreamReq).start();
  }

  private ended(ctx: RequestContext): void {
    if (ctx.finished) return;
    ctx.finished = true;
    if (ctx.status === 0) ctx.status = ctx.res.statusCode;
    if (!ctx.res.writableFinished && ctx.errorCause === undefined) {
      ctx.errorCause = 'client_abort';
      ctx.errorMessage = 'client closed the connection before the response was complete';
    }
    this.host.requestEnded(ctx);
  }
}

/**
 * One request's journey to the instances: picks, forwards, retries on another instance when that
 * is safe, and streams the answer to the client with back-pressure.
 */
export class Exchange implements UpstreamHandler {
  private attempt: Attempt | undefined;
  private tried: Set<Instance> | undefined;
  private readonly retryable: boolean;
  private readonly onDrain = (): void => this.attempt?.resume();

  constructor(
    private readonly host: PipelineHost,
    private readonly snapshot: Snapshot,
    private readonly ctx: RequestContext,
    private readonly service: Service,
    private readonly request: UpstreamRequest,
  ) {
    // Retries are off for requests whose body may already be on the wire: it cannot be replayed.
    this.retryable = request.body === null;
    ctx.res.once('close', () => {
      if (!ctx.res.writableFinished) this.attempt?.abort(new ProxyError('client_abort', 'client closed the connection'));
    });
  }

  start(): void {
    const service = this.service;
    const instance = service.pick({ hashKey: this.hashKey(), exclude: this.tried });
    if (instance === undefined) {
      const err =
        this.tried === undefined
          ? new ProxyError('no_healthy_instance', `no instance of service "${service.name}" is available`)
          : new ProxyError('no_healthy_instance', `every instance of service "${service.name}" failed`);
      return sendError(this.ctx, err, ['retry-after', '1']);
    }
    const ctx = this.ctx;
    ctx.instance = instance;
    ctx.attempts++;
    ctx.upstreamStart = performance.now();
    instance.inflight++;
    service.active++;
    this.attempt = forward(instance, this.request, this);
  }

  private hashKey(): string | undefined {
    const source = this.service.hashKey;
    if (source === undefined) return undefined;
    if (source.kind === 'client-ip') return this.ctx.clientIp;
    if (source.kind === 'path') return this.ctx.path;
    const v = this.ctx.req.headers[source.name];
    return Array.isArray(v) ? v.join(',') : v;
  }

  onResponse(status: number, statusText: string, raw: Buffer[]): void {
    const ctx = this.ctx;
    ctx.upstreamHeaders = performance.now();
    ctx.status = status;
    const headers = clientResponseHeaders(raw, this.snapshot.via, ctx.id);
    if (this.host.draining) headers.push('connection', 'close');
    try {
      ctx.res.writeHead(status, statusText || undefined, headers);
    } catch (err) {
      this.attempt?.abort(err as Error);
      return;
    }
    ctx.res.on('drain', this.onDrain);
  }

  onData(chunk: Buffer): boolean {
    this.ctx.bytesOut += chunk.length;
    return this.ctx.res.write(chunk);
  }

  onBodySent(_chunkSize: number, totalBytesSent: number): void {
    this.ctx.bytesIn = totalBytesSent;
  }

  onEnd(trailers: Buffer[] | string[] | null): void {
    this.release(undefined);
    const res = this.ctx.res;
    if (trailers !== null && trailers.length > 0) {
      const pairs: Array<[string, string]> = [];
      for (let i = 0; i < trailers.length; i += 2) pairs.push([trailers[i]!.toString(), trailers[i + 1]!.toString()]);
      try {
        res.addTrailers(pairs);
      } catch {
        // A trailer Node refuses (invalid characters) is dropped rather than failing the response.
      }
    }
    res.end();
  }

  onError(err: ProxyError, responseStarted: boolean): void {
    this.release(err);
    const ctx = this.ctx;
    if (err.kind === 'client_abort' || ctx.res.destroyed) {
      ctx.errorCause ??= 'client_abort';
      return;
    }
    if (!responseStarted && this.mayRetry(err)) {
      (this.tried ??= new Set()).add(ctx.instance!);
      return this.start();
    }
    sendError(ctx, err);
  }

  private mayRetry(err: ProxyError): boolean {
    if (this.ctx.attempts > this.service.retries.attempts) return false;
    // Connect failures sent nothing; resets of a bodiless idempotent request are safe to replay.
    if (err.retryable) return this.retryable || !this.ctx.req.readableDidRead;
    return err.kind === 'reset' && this.retryable && IDEMPOTENT.has(this.request.method);
  }

  private release(err: ProxyError | undefined): void {
    const instance = this.ctx.instance!;
    instance.inflight--;
    this.service.active--;
    this.ctx.res.off('drain', this.onDrain);
    this.host.attemptEnded(instance, this.service, err === undefined ? this.ctx.status : 0, err);
  }
}

interface Target {
  host: string;
  /** The Host header value as received (or the authority of an absolute-form target). */
  hostHeader: string;
  path: string;
}

/** Origin-form and absolute-form request targets (RFC 9112 §3.2); an error message otherwise. */
export function parseTarget(req: IncomingMessage): Target | string {
  const url = req.url ?? '';
  let hostHeader = req.headers.host;
  let path = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    const m = /^https?:\/\/([^/?#]+)([^#]*)/i.exec(url);
    if (m === null) return `request target "${url.slice(0, 100)}" is neither a path nor an absolute URL`;
    // RFC 9112 §3.2.2: the authority of an absolute-form target replaces the Host header.
    hostHeader = m[1]!;
    path = m[2] === '' ? '/' : m[2]!.startsWith('/') ? m[2]! : `/${m[2]!}`;
  }
  if (hostHeader === undefined || hostHeader === '') return 'missing Host header';
  const host = normaliseHost(hostHeader);
  if (host === undefined) return `invalid Host header "${hostHeader.slice(0, 100)}"`;
  return { host, hostHeader, path };
}

export function clientIp(req: IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
