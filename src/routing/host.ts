/**
 * Host header normalisation (RFC 9110 §7.2, RFC 3986 §3.2.2): case-insensitive, port stripped,
 * IPv6 literals kept in brackets, a trailing dot ignored. Returns undefined for a value that is
 * not a valid host, so the caller can answer 400 instead of guessing.
 */
/** reg-name / IPv4 characters (RFC 3986 §3.2.2), lower-cased: unreserved, pct-encoded, sub-delims. */
export const REG_NAME = /^[a-z0-9._~!$&'()*+,;=%-]*$/;
/**
 * RFC 3986 §3.2.2 IP-literal, lower-cased: an IPv6 address (characters only, with an RFC 6874
 * zone) or an IPvFuture. Both are shared with the cache key's authority rules.
 */
export const IP_LITERAL = /^\[[0-9a-f:.]+(?:%25[a-z0-9\-._~%]+)?\]$|^\[v[0-9a-f]+\.[a-z0-9\-._~!$&'()*+,;=:]+\]$/;

const PORT = /^\d{0,5}$/;

/** RFC 3986 §3.2.3: digits, possibly none; a TCP port is at most 65535. */
function validPort(port: string): boolean {
  return PORT.test(port) && Number(port) <= 65535;
}

export function normaliseHost(value: string): string | undefined {
  let host = value.trim().toLowerCase();
  if (host.length === 0) return undefined;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf(']');
    if (end < 0) return undefined;
    const rest = host.slice(end + 1);
    if (rest !== '' && (rest.charCodeAt(0) !== 58 /* : */ || !validPort(rest.slice(1)))) return undefined;
    // An IP-literal holds an IPv6 address or an IPvFuture, nothing else (`[a"b]` is a 400, not a
    // name to route).
    const literal = host.slice(0, end + 1);
    return IP_LITERAL.test(literal) ? literal : undefined;
  }
  const colon = host.indexOf(':');
  if (colon >= 0) {
    if (!validPort(host.slice(colon + 1))) return undefined;
    host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.length === 0 || !REG_NAME.test(host)) return undefined;
  return host;
}
