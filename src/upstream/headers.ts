/**
 * Header rewriting for a gateway (RFC 9110 §7.6): hop-by-hop fields removed, including those the
 * Connection field names (§7.6.1); Via added (§7.6.3); Host set to the normalised authority;
 * X-Forwarded-For/-Proto/-Host, Forwarded (RFC 7239) and X-Real-IP set from the peer, or kept and
 * appended to when the peer is a trusted proxy.
 * Headers stay flat raw arrays ([name, value, ...]) end to end, so repeated fields and their
 * order survive, and nothing is parsed into objects on the hot path.
 */
import { isIP } from 'node:net';


/** Lower-case names that never cross the proxy. `te` is handled apart (TE: trailers passes). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  // Handled by the proxy itself (it answers 100 Continue); undici refuses it anyway.
  'expect',
  // Re-set below from the trusted chain or the peer.
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-real-ip',
  'x-request-id',
  'via',
  // Always the normalised authority (or the service's upstreamHost), never the client's spelling.
  'host',
]);

const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te']);

/** `proxy.trustedProxies`: peers whose forwarding headers are kept and appended to. */
export interface TrustedProxies {
  isTrusted(ip: string): boolean;
}

export interface ForwardedInfo {
  /** The direct peer's address. */
  clientIp: string;
  /** Decides whether the peer (and each hop of its X-Forwarded-For) is a trusted proxy. */
  trust: TrustedProxies;
  /** The Host the request was routed by (already validated), sent as X-Forwarded-Host. */
  host: string;
  /**
   * The request's authority as the cache keys it (lower case, no trailing dot, no default port;
   * cache/key.ts normalizeAuthority): the Host sent upstream, so an answer that reflects Host was
   * made for the Host every client of that cache entry sends.
   */
  authority: string;
  requestId: string;
  /** `1.1 kubeproxy`, or undefined when Via is turned off. */
  via: string | undefined;
  /** A fixed Host header for upstream (`services[].upstreamHost`), or undefined for `authority`. */
  upstreamHost: string | undefined;
  /** For an Upgrade request: keep Connection: upgrade and Upgrade. */
  upgrade: boolean;
  /** The protocol of the client's connection (the TLS listener: https); default http. */
  proto?: 'http' | 'https' | undefined;
}

/** Whether a TE value says the sender takes trailer fields (RFC 9110 §10.1.4). */
export function acceptsTrailers(te: string | undefined): boolean {
  return te !== undefined && /(^|,)\s*trailers\s*(;|,|$)/i.test(te);
}

/** Tokens of all Connection header fields, lower-cased (RFC 9110 §7.6.1). */
function connectionTokens(raw: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      tokens ??= new Set();
      for (const t of raw[i + 1]!.split(',')) {
        const v = t.trim().toLowerCase();
        if (v) tokens.add(v);
      }
    }
  }
  return tokens;
}

/**
 * Builds the header list sent to the instance from the client's raw headers.
 *
 * Forwarding headers are believed only from a trusted peer (NGINX's set_real_ip_from, Envoy's
 * xff_num_trusted_hops): from it, X-Forwarded-For and Forwarded are kept and this hop appended,
 * X-Forwarded-Proto/-Host kept; from anyone else they are replaced by what the proxy saw, so a
 * client cannot speak for the proxy. X-Real-IP is always the proxy's own answer: the peer, or for
 * a trusted peer the first address from the right of X-Forwarded-For that is not a trusted proxy.
 */
export function upstreamRequestHeaders(raw: readonly string[], info: ForwardedInfo): string[] {
  const out: string[] = ['host', info.upstreamHost ?? info.authority];
  const named = connectionTokens(raw);
  let xff: string | undefined;
  let proto: string | undefined;
  let fwdHost: string | undefined;
  let forwarded: string | undefined;
  let via: string | undefined;
  let te = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      switch (lower) {
        case 'x-forwarded-for':
          xff = xff === undefined ? value : `${xff}, ${value}`;
          break;
        case 'x-forwarded-proto':
          proto ??= value;
          break;
        case 'x-forwarded-host':
          fwdHost ??= value;
          break;
        case 'forwarded':
          // RFC 7239 §4: repeated fields form one list, in order.
          forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
          break;
        case 'via':
          via = via === undefined ? value : `${via}, ${value}`;
          break;
        case 'te':
          // RFC 9110 §10.1.4: "trailers" is the only TE value a gateway should pass on (gRPC needs it).
          if (acceptsTrailers(value)) te = true;
          break;
      }
      continue;
    }
    if (named !== undefined && named.has(lower)) continue;
    out.push(name, value);
  }
  if (info.upgrade) out.push('connection', 'upgrade', 'upgrade', upgradeValue(raw));
  if (te) out.push('te', 'trailers');
  const peer = info.clientIp;
  const trusted = info.trust.isTrusted(peer);
  const scheme = info.proto ?? 'http';
  const hop = `for=${forwardedNode(peer)};host=${forwardedValue(info.authority)};proto=${scheme}`;
  out.push('x-forwarded-for', trusted && xff !== undefined ? `${xff}, ${peer}` : peer);
  out.push('x-forwarded-proto', trusted && proto !== undefined ? proto : scheme);
  out.push('x-forwarded-host', trusted && fwdHost !== undefined ? fwdHost : info.host);
  out.push('forwarded', trusted && forwarded !== undefined ? `${forwarded}, ${hop}` : hop);
  out.push('x-real-ip', trusted && xff !== undefined ? realClientIp(xff, peer, info.trust) : peer);
  out.push('x-request-id', info.requestId);
  if (info.via !== undefined) out.push('via', via === undefined ? info.via : `${via}, ${info.via}`);
  return out;
}

/**
 * RFC 7239 §6: a node is an IPv4 address as a token, an IPv6 address bracketed and quoted
 * (`"[2001:db8::1]"`), or `unknown` when the peer's address is not known (a closed socket).
 */
function forwardedNode(ip: string): string {
  if (ip === '') return 'unknown';
  return ip.includes(':') ? `"[${ip}]"` : ip;
}

/** RFC 7239 §4: a value is a token, or a quoted-string when it holds other characters (`:` of a port). */
function forwardedValue(value: string): string {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The client address behind a trusted peer: X-Forwarded-For read from the right, past every
 * trusted proxy (NGINX's real_ip_recursive). An entry that is not an address stops the walk at the
 * trusted hop that passed it on: nothing to its left can be vouched for.
 */
function realClientIp(xff: string, peer: string, trust: TrustedProxies): string {
  const hops = xff.split(',');
  let real = peer;
  for (let i = hops.length - 1; i >= 0 && trust.isTrusted(real); i--) {
    const address = hopAddress(hops[i]!);
    if (address === undefined) break;
    real = address;
  }
  return real;
}

/** An X-Forwarded-For entry as a bare address (`1.2.3.4:5`, `[::1]:5` and `::ffff:1.2.3.4` unwrapped), or undefined. */
function hopAddress(entry: string): string | undefined {
  let a = entry.trim();
  const colon = a.indexOf(':');
  if (a.startsWith('[')) {
    const close = a.indexOf(']');
    a = close < 0 ? a.slice(1) : a.slice(1, close);
  } else if (colon > 0 && colon === a.lastIndexOf(':')) {
    a = a.slice(0, colon); // IPv4 with a port
  }
  if (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4) a = a.slice(7);
  return isIP(a) === 0 ? undefined : a;
}

function upgradeValue(raw: readonly string[]): string {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'upgrade') return raw[i + 1]!;
  }
  return '';
}

/**
 * Filters an instance's raw response headers (Buffers from undici, latin1) into the list sent to
 * the client, adding Via and X-Request-Id. One pass, each name converted once: Connection almost
 * always names only hop-by-hop fields (keep-alive, close); when it names another field, the pass
 * starts again with those names to drop (`named`, RFC 9110 §7.6.1).
 */
export function clientResponseHeaders(raw: readonly (Buffer | string)[], via: string | undefined, requestId: string, named?: ReadonlySet<string>): string[] {
  const out: string[] = [];
  let upstreamVia: string | undefined;
  let hasRequestId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (RESPONSE_HOP_BY_HOP.has(lower)) {
      if (named === undefined && lower === 'connection' && !onlyHopByHop(raw[i + 1]!.toString('latin1'))) {
        return clientResponseHeaders(raw, via, requestId, responseConnectionTokens(raw));
      }
      continue;
    }
    if (named !== undefined && named.has(lower)) continue;
    const value = raw[i + 1]!.toString('latin1');
    if (lower === 'via') {
      upstreamVia = upstreamVia === undefined ? value : `${upstreamVia}, ${value}`;
      continue;
    }
    if (lower === 'x-request-id') hasRequestId = true;
    out.push(name, value);
  }
  if (via !== undefined) out.push('via', upstreamVia === undefined ? via : `${upstreamVia}, ${via}`);
  else if (upstreamVia !== undefined) out.push('via', upstreamVia);
  if (!hasRequestId) out.push('x-request-id', requestId);
  return out;
}

/** Whether a Connection value names only hop-by-hop fields: `keep-alive` or `close`, nearly always. */
function onlyHopByHop(value: string): boolean {
  const v = value.length === 10 || value.length === 5 ? value.toLowerCase() : '';
  if (v === 'keep-alive' || v === 'close') return true;
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase();
    if (token !== '' && !RESPONSE_HOP_BY_HOP.has(token)) return false;
  }
  return true;
}

/** Tokens of every Connection field of a response, lower-cased. */
function responseConnectionTokens(raw: readonly (Buffer | string)[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (name.length !== 10 || name.toLowerCase() !== 'connection') continue;
    for (const t of raw[i + 1]!.toString('latin1').split(',')) {
      const token = t.trim().toLowerCase();
      if (token !== '') tokens.add(token);
    }
  }
  return tokens;
}

/** Reads one header (first occurrence) from a flat raw list, case-insensitively. */
export function rawHeader(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) return raw[i + 1];
  }
  return undefined;
}
