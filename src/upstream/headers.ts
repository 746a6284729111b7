/**
 * Header rewriting for a gateway (RFC 9110 §7.6): hop-by-hop fields removed, including those the
 * Connection field names (§7.6.1); Via added (§7.6.3); X-Forwarded-For/-Proto/-Host set.
 * Headers stay flat raw arrays ([name, value, ...]) end to end, so repeated fields and their
 * order survive, and nothing is parsed into objects on the hot path.
 */

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
  'x-request-id',
  'via',
]);

const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te']);

export interface ForwardedInfo {
  /** The direct peer's address. */
  clientIp: string;
  /** Whether the direct peer is a trusted proxy whose X-Forwarded-* may be kept and appended to. */
  trusted: boolean;
  /** The Host the request was routed by (already validated), sent as X-Forwarded-Host. */
  host: string;
  requestId: string;
  /** `1.1 kubeproxy`, or undefined when Via is turned off. */
  via: string | undefined;
  /** A fixed Host header for upstream, or undefined to pass the client's. */
  upstreamHost: string | undefined;
  /** For an Upgrade request: keep Connection: upgrade and Upgrade. */
  upgrade: boolean;
}

/** Tokens of all Connection header fields, lower-cased (RFC 9110 §7.6.1). */
export function connectionTokens(raw: readonly string[]): Set<string> | undefined {
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

/** Builds the header list sent to the instance from the client's raw headers. */
export function upstreamRequestHeaders(raw: readonly string[], info: ForwardedInfo): string[] {
  const out: string[] = [];
  const named = connectionTokens(raw);
  let xff: string | undefined;
  let proto: string | undefined;
  let fwdHost: string | undefined;
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
        case 'via':
          via = via === undefined ? value : `${via}, ${value}`;
          break;
        case 'te':
          // RFC 9110 §10.1.4: "trailers" is the only TE value a gateway should pass on (gRPC needs it).
          if (/(^|,)\s*trailers\s*(;|,|$)/i.test(value)) te = true;
          break;
      }
      continue;
    }
    if (named !== undefined && named.has(lower)) continue;
    if (lower === 'host') {
      out.push(name, info.upstreamHost ?? value);
      continue;
    }
    out.push(name, value);
  }
  if (info.upgrade) out.push('connection', 'upgrade', 'upgrade', upgradeValue(raw));
  if (te) out.push('te', 'trailers');
  out.push('x-forwarded-for', info.trusted && xff !== undefined ? `${xff}, ${info.clientIp}` : info.clientIp);
  out.push('x-forwarded-proto', info.trusted && proto !== undefined ? proto : 'http');
  out.push('x-forwarded-host', info.trusted && fwdHost !== undefined ? fwdHost : info.host);
  out.push('x-request-id', info.requestId);
  if (info.via !== undefined) out.push('via', via === undefined ? info.via : `${via}, ${info.via}`);
  return out;
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
