/**
 * The validate phase: the request target and Host (RFC 9112 §3.2) become the routed host, the
 * path sent upstream and the authority the cache keys on; anything else is a 400 naming the
 * problem. (CONNECT never gets here: Node emits it apart from requests and the Listener refuses
 * it with a 405.)
 */
import type { IncomingMessage } from 'node:http';
import { normalizeAuthority, type Scheme } from '../cache/key.ts';
import type { RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';
import { forwardedScheme } from '../upstream/forwarded-proto.ts';
import { REG_NAME, normaliseHost } from '../routing/host.ts';
import { scanRequestHeaders, type RequestFields } from './request-fields.ts';

interface Target {
  /** The host that routes the request (routing/host.ts: no port). */
  host: string;
  /** The Host header value as received (or the authority of an absolute-form target). */
  hostHeader: string;
  /** `hostHeader` normalised as the cache keys it (cache/key.ts): the Host sent upstream. */
  authority: string;
  /** The scheme `authority` was normalised for: the absolute-form target's, or the one given. */
  scheme: Scheme;
  path: string;
}

/** The scheme of the client's own connection: node:tls sockets say `encrypted`, plain ones have no such field. */
export function connectionScheme(req: IncomingMessage): Scheme {
  return (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http';
}

/** The scheme the client used: a trusted peer's X-Forwarded-Proto, else the connection's. */
export function clientScheme(connection: Scheme, fields: RequestFields, trusted: boolean): Scheme {
  return trusted && fields.forwardedProto !== undefined ? forwardedScheme(fields.forwardedProto) : connection;
}

/** The error to answer (400) when the target or Host is unusable. */
export function validate(ctx: RequestContext): ProxyError | undefined {
  const fields = ctx.fields!;
  const trusted = ctx.snapshot!.isTrusted(ctx.clientIp);
  ctx.scheme = connectionScheme(ctx.req);
  const target = parseTarget(ctx.req, fields, clientScheme(ctx.scheme, fields, trusted));
  if (typeof target === 'string') return new ProxyError('bad_request', target);
  ctx.host = target.host;
  ctx.authority = target.authority;
  ctx.targetScheme = target.scheme;
  ctx.path = target.path;
  return undefined;
}

/**
 * Origin-form and absolute-form request targets (RFC 9112 §3.2); an error message otherwise.
 * `scheme` is the one the client used (from a trusted X-Forwarded-Proto): it decides which port
 * is the default one, dropped from the authority as the cache key drops it.
 */
export function parseTarget(req: IncomingMessage, fields: RequestFields = scanRequestHeaders(req.rawHeaders), scheme: Scheme = 'http'): Target | string {
  const url = req.url ?? '';
  let hostHeader = fields.host;
  let path = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    const m = /^(https?):\/\/([^/?#]+)([^#]*)/i.exec(url);
    if (m === null) return `request target "${url.slice(0, 100)}" is neither a path nor an absolute URL`;
    // RFC 9112 §3.2.2: the authority of an absolute-form target replaces the Host header.
    scheme = m[1]!.toLowerCase() as Scheme;
    hostHeader = m[2]!;
    path = m[3] === '' ? '/' : m[3]!.startsWith('/') ? m[3]! : `/${m[3]!}`;
  }
  if (hostHeader === undefined || hostHeader === '') return 'missing Host header';
  // RFC 9112 §3.2: more than one Host field line is a 400; Node would silently keep the first.
  if (fields.hostCount > 1) return 'more than one Host header';
  // The usual Host, a lower-case name without port or trailing dot, is already both normal forms.
  if (isPlainName(hostHeader)) return { host: hostHeader, hostHeader, authority: hostHeader, scheme, path };
  const host = normaliseHost(hostHeader);
  const authority = normalizeAuthority(hostHeader, scheme);
  if (host === undefined || authority === undefined) return `invalid Host header "${hostHeader.slice(0, 100)}"`;
  return { host, hostHeader, authority, scheme, path };
}

/** A reg-name as normaliseHost and normalizeAuthority return it unchanged: lower-case, no port, no trailing dot. */
function isPlainName(value: string): boolean {
  return value.charCodeAt(value.length - 1) !== 46 /* . */ && REG_NAME.test(value);
}
