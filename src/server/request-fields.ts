/**
 * The request fields the phases read, as req.headers would give them (Node keeps the first Host,
 * Content-Length and X-Forwarded-Proto, joins repeated X-Request-Id, Transfer-Encoding and
 * traceparent lines with ", "), found in one pass over the raw header lines: req.headers would
 * build an object of every field.
 */
export class RequestFields {
  host: string | undefined = undefined;
  hostCount = 0;
  requestId: string | undefined = undefined;
  contentLength: string | undefined = undefined;
  chunked = false;
  traceparent: string | undefined = undefined;
  /** The first X-Forwarded-Proto line (believed only from a trusted peer). */
  forwardedProto: string | undefined = undefined;
}

export function scanRequestHeaders(raw: readonly string[]): RequestFields {
  const f = new RequestFields();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const n = name.length;
    // Length first: most fields are none of these.
    if (n !== 4 && n !== 11 && n !== 12 && n !== 14 && n !== 17) continue;
    const lower = name.toLowerCase();
    const value = raw[i + 1]!;
    switch (lower) {
      case 'host':
        f.hostCount++;
        f.host ??= value;
        break;
      case 'x-request-id':
        f.requestId = f.requestId === undefined ? value : `${f.requestId}, ${value}`;
        break;
      case 'content-length':
        f.contentLength ??= value;
        break;
      case 'transfer-encoding':
        f.chunked = true;
        break;
      case 'x-forwarded-proto':
        f.forwardedProto ??= value;
        break;
      case 'traceparent':
        f.traceparent = f.traceparent === undefined ? value : `${f.traceparent}, ${value}`;
        break;
    }
  }
  return f;
}
