/**
 * The scheme a request was made with, as X-Forwarded-Proto tells it: the one rule for the target
 * the proxy validates (server/validate.ts, server/upgrade.ts) and for the cache key (cache/flow.ts),
 * so a request is never keyed under another scheme than the one it was routed with.
 */

const HTTPS_FIRST = /^\s*https\s*(,|$)/i;

/**
 * `https` when the X-Forwarded-Proto value names it first (a list, RFC 7239-style, is read
 * front to back: the first hop is the client's), else `http`. Callers pass only a value from a
 * trusted peer, or the one the proxy wrote itself (upstream/headers.ts).
 */
export function forwardedScheme(proto: string | undefined): 'http' | 'https' {
  // A bare `http` / `https` is what the proxy forwards unless a trusted peer sent a list: no regex for those.
  if (proto === undefined || proto === 'http') return 'http';
  if (proto === 'https') return 'https';
  return HTTPS_FIRST.test(proto) ? 'https' : 'http';
}
