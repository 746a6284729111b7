/**
 * The primary cache key (RFC 9111 §2: "The base cache key comprises the request
 * method and target URI"), scoped to a service.
 *
 * Layout:  `<service>` SP `<method-class>` SP `<scheme>://<authority><path-and-query>`
 *   - service: percent-encoded (encodeURIComponent), so it never contains a
 *     space; `servicePrefix(service)` is everything up to and including the
 *     first space, and no other service's keys share that prefix. This is what
 *     `CacheStore.deleteByPrefix` purges.
 *   - method-class: `GET` for GET and HEAD (a HEAD request is answered from the
 *     stored GET response, RFC 9110 §9.3.2); any other method is its own class
 *     (such keys are only used to address invalidation, nothing else is stored).
 *   - scheme: `http` or `https`, lower-case.
 *   - authority: lower-case host, trailing dot of the host dropped, default port
 *     (80 / 443) and an empty port dropped (RFC 3986 §6.2.3, RFC 9110 §4.2.3).
 *   - path and query: EXACTLY as sent, no decoding, no dot-segment removal, no
 *     parameter re-ordering, `?` with an empty query kept. Two query strings that
 *     differ in any byte are two keys (the old proxy keyed on the path only and
 *     made `/a?x=1` and `/a?x=2` share an entry).
 *
 * The path-and-query is the last component, so the key is unambiguous whatever
 * characters it contains.
 *
 * API
 *   interface RequestTarget { scheme; authority; target }
 *   cacheKey(service, method, target): string | undefined   undefined = not keyable (bypass)
 *   keyFor(prefix, method, scheme, authority, pathAndQuery): string   from parts already checked
 *   servicePrefix(service): string
 *   methodClass(method): string
 *   normalizeAuthority(authority, scheme): string | undefined
 *   splitAbsoluteTarget(target): { scheme; authority; pathAndQuery } | undefined
 */
import { IP_LITERAL, REG_NAME } from '../routing/host.ts';

export type Scheme = 'http' | 'https';

/** What identifies the target URI of a request (RFC 9110 §7.1). */
export interface RequestTarget {
  /** Scheme the client used to reach the proxy. */
  readonly scheme: Scheme;
  /** Host header value (or the authority of an absolute-form target). */
  readonly authority: string;
  /**
   * Request-target as sent: origin-form `/path?query`, or absolute-form
   * `http://host/path?query` (its authority then wins over `authority`, RFC 9112 §3.2.2).
   */
  readonly target: string;
}

const DEFAULT_PORT: Record<Scheme, string> = { http: '80', https: '443' };

/**
 * Normalises an authority (`host[:port]`, no userinfo) for use in a key, or
 * returns undefined when it is not a valid authority (then the request is not
 * cacheable: there is no reliable key for it).
 */
export function normalizeAuthority(authority: string, scheme: Scheme): string | undefined {
  const a = authority.trim().toLowerCase();
  if (a === '' || a.includes('@')) return undefined;
  let host: string;
  let port: string;
  if (a.startsWith('[')) {
    const close = a.indexOf(']');
    if (close < 0) return undefined;
    host = a.slice(0, close + 1);
    const rest = a.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return undefined;
    port = rest.slice(1);
    if (!IP_LITERAL.test(host)) return undefined;
  } else {
    const colon = a.lastIndexOf(':');
    host = colon < 0 ? a : a.slice(0, colon);
    port = colon < 0 ? '' : a.slice(colon + 1);
    if (host.endsWith('.')) host = host.slice(0, -1);
    if (host === '' || !REG_NAME.test(host) || host.includes(':')) return undefined;
  }
  if (port !== '') {
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return undefined;
    port = String(Number(port)); // "0080" is port 80
    if (port === DEFAULT_PORT[scheme]) port = '';
  }
  return port === '' ? host : `${host}:${port}`;
}

/** `GET` for GET and HEAD, otherwise the method itself (RFC 9110 §9.1 methods are case-sensitive). */
export function methodClass(method: string): string {
  return method === 'GET' || method === 'HEAD' ? 'GET' : method;
}

/** The prefix shared by every key of `service`, and by no key of any other service. */
export function servicePrefix(service: string): string {
  return `${encodeURIComponent(service)} `;
}

/**
 * Splits an absolute-form request-target into scheme, authority and
 * path-and-query (an empty path becomes "/", RFC 9112 §3.2.1). Returns
 * undefined for origin-form and anything else.
 */
export function splitAbsoluteTarget(
  target: string,
): { scheme: Scheme; authority: string; pathAndQuery: string } | undefined {
  const m = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(target);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase() as Scheme;
  let pathAndQuery = m[3]!;
  const hash = pathAndQuery.indexOf('#');
  if (hash >= 0) pathAndQuery = pathAndQuery.slice(0, hash);
  if (!pathAndQuery.startsWith('/')) pathAndQuery = `/${pathAndQuery}`;
  return { scheme, authority: m[2]!, pathAndQuery };
}

/**
 * The primary cache key, or undefined when the request has no usable target
 * URI (invalid authority, asterisk-form, authority-form): bypass the cache.
 */
export function cacheKey(service: string, method: string, t: RequestTarget): string | undefined {
  let scheme = t.scheme;
  let authority = t.authority;
  let pathAndQuery = t.target;
  if (!pathAndQuery.startsWith('/')) {
    const abs = splitAbsoluteTarget(pathAndQuery);
    if (!abs) return undefined;
    ({ scheme, authority, pathAndQuery } = abs);
  }
  const normalized = normalizeAuthority(authority, scheme);
  if (normalized === undefined) return undefined;
  return keyFor(servicePrefix(service), method, scheme, normalized, pathAndQuery);
}

/**
 * The key from parts already checked: `prefix` is servicePrefix(service), `authority` is
 * normalizeAuthority's result for `scheme`, `pathAndQuery` starts with `/`.
 */
export function keyFor(prefix: string, method: string, scheme: Scheme, authority: string, pathAndQuery: string): string {
  return `${prefix}${methodClass(method)} ${scheme}://${authority}${pathAndQuery}`;
}
