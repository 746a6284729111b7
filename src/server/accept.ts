/**
 * The accept phase: a request from the node:http front becomes a RequestContext (its id, client
 * address, the snapshot it keeps to its end), counted in flight and tied to its response, whose
 * one shared 'close' listener ends it. Responses are ProxyResponse objects (the Listener makes
 * node:http create them), so the listener finds the request through a declared field.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import { RequestContext } from '../context.ts';
import type { PipelineHost } from './host.ts';
import { requestId } from './request-id.ts';
import { scanRequestHeaders } from './request-fields.ts';

/** node:http's response with the request it answers. */
export class ProxyResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  ctx: RequestContext | undefined = undefined;
}

export function accept(host: PipelineHost, req: IncomingMessage, res: ServerResponse, expectContinue: boolean, onClose: (this: ProxyResponse) => void): RequestContext {
  const fields = scanRequestHeaders(req.rawHeaders);
  const ctx = new RequestContext(req, res, requestId(fields.requestId), clientIp(req));
  ctx.snapshot = host.snapshot;
  ctx.fields = fields;
  ctx.expectContinue = expectContinue;
  if (fields.traceparent !== undefined) ctx.traceparent = fields.traceparent;
  host.inflight++;
  (res as ProxyResponse).ctx = ctx;
  // `on`, not `once`: no wrapper; 'close' comes once per response.
  res.on('close', onClose as (this: ServerResponse) => void);
  // Shutting down: every response says `Connection: close`, so keep-alive clients reconnect elsewhere.
  if (host.draining) res.shouldKeepAlive = false;
  return ctx;
}

/** The client's address, IPv4-mapped IPv6 as plain IPv4. */
export function clientIp(req: IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
