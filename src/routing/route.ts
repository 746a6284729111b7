/**
 * The route phase: the request's host (normalised by the validate phase) picks its service by
 * the snapshot's router; no service is a 421 (RFC 9110 §15.5.20: this proxy is not authoritative
 * for that host).
 */
import type { RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';

/** The error to answer when no service takes the host. */
export function route(ctx: RequestContext): ProxyError | undefined {
  const service = ctx.snapshot!.router.match(ctx.host);
  if (service === undefined) return new ProxyError('no_route', `no service is configured for host "${ctx.host}"`);
  ctx.service = service;
  return undefined;
}
