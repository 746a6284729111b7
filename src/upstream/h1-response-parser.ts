/**
 * An incremental HTTP/1.1 response parser (RFC 9112), for the Bun.connect upstream client
 * (bun-h1-client.ts). Pure: bytes in, callbacks out, no sockets, so it runs and is tested on Node.
 *
 * As strict as llhttp is for undici: a status line `HTTP/1.x NNN reason`, header names that are
 * tokens, no obs-fold, no CR, LF or NUL in a value, lines ended by CRLF, one Content-Length value
 * (repeats must agree), chunked as the last transfer coding and never with Content-Length (a
 * smuggling vector: refused as undici refuses it), hex chunk sizes, head and trailers within the
 * header size limit. Errors carry llhttp's `HPE_*` codes (undici's own for a head too large), so
 * errors.ts maps them as it maps undici's.
 *
 * Framing (RFC 9112 §6.3): no body after HEAD or for 1xx, 204 and 304; chunked; Content-Length;
 * otherwise the body runs to the end of the connection. 1xx heads are reported, then the final
 * head is parsed on the same bytes. A callback returning false stops `execute` right after it
 * (the caller keeps the rest and feeds it again on resume): back-pressure at message granularity
 * costs nothing when nobody pauses.
 */

export class ResponseParseError extends Error {
  constructor(
    message: string,
    /** llhttp's error name (HPE_*), or undici's UND_ERR_HEADERS_OVERFLOW. */
    readonly code: string,
  ) {
    super(message);
  }
}

export interface ResponseSink {
  /** A response head: informational ones (status < 200) first, then the final one. false pauses. */
  onHeaders(status: number, raw: Buffer[], statusText: string): boolean;
  /** A piece of the body. false pauses. */
  onData(chunk: Buffer): boolean;
}

// Parser states.
const HEAD = 0;
const LENGTH = 1;
const CHUNK_SIZE = 2;
const CHUNK_SIZE_WS = 3;
const CHUNK_EXT = 4;
const CHUNK_SIZE_LF = 5;
const CHUNK_DATA = 6;
const CHUNK_DATA_CR = 7;
const CHUNK_DATA_LF = 8;
const TRAILERS = 9;
const TO_CLOSE = 10;
const DONE = 11;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const SEMI = 59;
/** Chunk sizes up to 2^52: more hex digits than this is refused before the number loses precision. */
const MAX_CHUNK_DIGITS = 13;
/** A chunk's extensions are skipped, but not without end. */
const MAX_CHUNK_EXT = 16 * 1024;

/** RFC 9110 §5.6.2 tchar. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = TOKEN[c + 32] = 1;
/** Whether `name` is a token (a field name, a method): the check the client makes on what it sends. */
export function isToken(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 255 || TOKEN[c] !== 1) return false;
  }
  return true;
}
/** field-vchar, SP and HTAB (RFC 9110 §5.5): no CTL, no DEL; obs-text passes. Also the reason phrase's set. */
const FIELD = new Uint8Array(256);
for (let c = 32; c < 256; c++) FIELD[c] = c === 127 ? 0 : 1;
FIELD[HTAB] = 1;
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) HEX[65 + c] = HEX[97 + c] = 10 + c;

function fail(message: string, code: string): never {
  throw new ResponseParseError(message, code);
}

export class ResponseParser {
  /** The final status, once its head is parsed (0 before). */
  status = 0;
  /** Whether the connection may carry another request after this response. */
  keepAlive = false;
  /** The origin's `Keep-Alive: timeout=` in ms, or undefined. */
  keepAliveHint: number | undefined = undefined;
  /** Trailer fields of a chunked body (raw name/value pairs), null when there were none. */
  trailers: Buffer[] | null = null;
  private state = HEAD;
  private noBody = false;
  /** Bytes left of the body (LENGTH) or of the chunk (CHUNK_DATA). */
  private left = 0;
  private digits = 0;
  private extBytes = 0;
  /** A head or trailer section not complete yet, and how much of it was scanned. */
  private partial: Buffer | null = null;
  /** Whether any byte of this response arrived (an end of stream before it is not a truncation). */
  private started = false;

  constructor(
    private readonly sink: ResponseSink,
    private readonly maxHeaderSize = 64 * 1024,
  ) {}

  /** Readies the parser for the response to a request with `method` (after HEAD: no body). */
  start(method: string): void {
    this.state = HEAD;
    this.noBody = method === 'HEAD';
    this.status = 0;
    this.keepAlive = false;
    this.keepAliveHint = undefined;
    this.trailers = null;
    this.partial = null;
    this.started = false;
  }

  /** Whether the response is complete. */
  get done(): boolean {
    return this.state === DONE;
  }

  /** Whether the final head was parsed. */
  get headersDone(): boolean {
    return this.status !== 0;
  }

  /** Whether no byte of the response has arrived yet. */
  get idle(): boolean {
    return !this.started;
  }

  /**
   * Parses `data` from `offset`. Returns where it stopped: the end of `data`, the end of the
   * response (`done`), or right after a callback that returned false. Throws ResponseParseError.
   */
  execute(data: Buffer, offset = 0): number {
    const end = data.length;
    let i = offset;
    if (i < end) this.started = true;
    while (i < end) {
      switch (this.state) {
        case HEAD: {
          const next = this.collect(data, i);
          if (next < 0) return end;
          i = next;
          if (!this.headDone()) return i;
          break;
        }
        case LENGTH:
        case CHUNK_DATA: {
          // `left` bytes of the body (Content-Length) or of the chunk.
          const n = Math.min(this.left, end - i);
          this.left -= n;
          const chunk = data.subarray(i, (i += n));
          if (this.left === 0) this.state = this.state === LENGTH ? DONE : CHUNK_DATA_CR;
          if (!this.sink.onData(chunk)) return i;
          break;
        }
        case TO_CLOSE: {
          const chunk = i === 0 ? data : data.subarray(i);
          i = end;
          if (!this.sink.onData(chunk)) return i;
          break;
        }
        case TRAILERS: {
          const next = this.collect(data, i);
          if (next < 0) return end;
          i = next;
          break;
        }
        case DONE:
          return i;
        default:
          i = this.chunkFraming(data, i);
      }
    }
    return i;
  }

  /**
   * The connection ended. Returns whether the response is complete: done, or a body read to the
   * end of the connection. A response cut short returns false.
   */
  eof(): boolean {
    if (this.state === TO_CLOSE) this.state = DONE;
    return this.state === DONE;
  }

  /** The size line of a chunk and the CRLF after its data, byte by byte. */
  private chunkFraming(data: Buffer, i: number): number {
    const end = data.length;
    for (; i < end; i++) {
      const c = data[i]!;
      switch (this.state) {
        case CHUNK_SIZE: {
          const h = HEX[c]!;
          if (h >= 0) {
            if (++this.digits > MAX_CHUNK_DIGITS) fail('chunk size too large', 'HPE_INVALID_CHUNK_SIZE');
            this.left = this.left * 16 + h;
            continue;
          }
          if (this.digits === 0) fail('invalid character in chunk size', 'HPE_INVALID_CHUNK_SIZE');
          if (c === CR) this.state = CHUNK_SIZE_LF;
          else if (c === SEMI) this.state = CHUNK_EXT;
          else if (c === SP || c === HTAB) this.state = CHUNK_SIZE_WS;
          else fail('invalid character in chunk size', 'HPE_INVALID_CHUNK_SIZE');
          continue;
        }
        case CHUNK_SIZE_WS:
          // RFC 9112 §7.1.1: BWS only before an extension.
          if (c === SEMI) this.state = CHUNK_EXT;
          else if (c !== SP && c !== HTAB) fail('invalid character in chunk size', 'HPE_INVALID_CHUNK_SIZE');
          continue;
        case CHUNK_EXT:
          if (c === CR) this.state = CHUNK_SIZE_LF;
          else if (FIELD[c] === 0) fail('invalid character in chunk extensions', 'HPE_INVALID_CHUNK_SIZE');
          else if (++this.extBytes > MAX_CHUNK_EXT) fail('chunk extensions too long', 'HPE_CHUNK_EXTENSIONS_OVERFLOW');
          continue;
        case CHUNK_SIZE_LF:
          if (c !== LF) fail('expected LF after chunk size', 'HPE_LF_EXPECTED');
          this.state = this.left === 0 ? TRAILERS : CHUNK_DATA;
          return i + 1;
        case CHUNK_DATA_CR:
          if (c !== CR) fail('expected CRLF after chunk data', 'HPE_CR_EXPECTED');
          this.state = CHUNK_DATA_LF;
          continue;
        case CHUNK_DATA_LF:
          if (c !== LF) fail('expected LF after chunk data', 'HPE_LF_EXPECTED');
          this.nextChunk();
          return i + 1;
        default:
          return i;
      }
    }
    return i;
  }

  private nextChunk(): void {
    this.state = CHUNK_SIZE;
    this.left = 0;
    this.digits = 0;
    this.extBytes = 0;
  }

  /**
   * Gathers a head or trailer section up to its empty line. Returns the offset in `data` after
   * it (the section is then parsed), or -1 when more bytes are needed (what came is kept).
   */
  private collect(data: Buffer, offset: number): number {
    const prev = this.partial;
    const buf = prev === null ? data : Buffer.concat([prev, data.subarray(offset)]);
    const start = prev === null ? offset : 0;
    // LFs before the kept bytes' end were checked already (a check only looks back).
    let from = prev === null ? offset : prev.length;
    let sectionEnd = -1;
    while (true) {
      const lf = buf.indexOf(LF, from);
      if (lf < 0) break;
      if (lf === start || buf[lf - 1] !== CR) fail('bare LF: lines end with CRLF', 'HPE_CR_EXPECTED');
      // An empty line: CRLF at the start of the section, or right after the previous line's CRLF.
      if (lf - 1 === start || (lf - 2 > start && buf[lf - 2] === LF)) {
        sectionEnd = lf + 1;
        break;
      }
      from = lf + 1;
    }
    const size = (sectionEnd < 0 ? buf.length : sectionEnd) - start;
    if (size > this.maxHeaderSize) fail(`response ${this.state === HEAD ? 'head' : 'trailers'} larger than ${this.maxHeaderSize} bytes`, 'UND_ERR_HEADERS_OVERFLOW');
    if (sectionEnd < 0) {
      this.partial = start === 0 && prev !== null ? buf : Buffer.from(buf.subarray(start));
      return -1;
    }
    this.partial = null;
    if (this.state === HEAD) this.parseHead(buf, start, sectionEnd - 2);
    else this.parseTrailers(buf, start, sectionEnd - 2);
    // Where the section ended in `data` (the kept bytes came before `offset`).
    return prev === null ? sectionEnd : offset + sectionEnd - prev.length;
  }

  /** The head just parsed, reported by headDone once `execute` is past it. */
  private headStatus = 0;
  private headFields: Buffer[] = [];
  private headText = '';

  private parseHead(buf: Buffer, start: number, end: number): void {
    const lineEnd = buf.indexOf(CR, start);
    const status = statusLine(buf, start, lineEnd);
    const code = status.code;
    const f = new Framing(status.minor === 1);
    this.headFields = fields(buf, lineEnd + 2, end, f);
    this.headText = buf.toString('latin1', status.reasonAt, lineEnd);
    this.headStatus = code;
    // 1xx: no body (RFC 9112 §6.3); the next head follows. 101 only answers an Upgrade, never sent here.
    if (code < 200) {
      if (code === 101) fail('101 Switching Protocols to a request that asked for no upgrade', 'HPE_INVALID_STATUS');
      return;
    }
    if (f.chunked && f.length >= 0) fail('Content-Length with Transfer-Encoding', 'HPE_UNEXPECTED_CONTENT_LENGTH');
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
    if (f.transferEncoding && status.minor === 0) fail('Transfer-Encoding in an HTTP/1.0 response', 'HPE_INVALID_TRANSFER_ENCODING');
    this.status = code;
    this.keepAlive = f.keepAlive;
    this.keepAliveHint = f.keepAliveHint;
    if (this.noBody || code === 204 || code === 304) this.state = DONE;
    else if (f.chunked) {
      this.state = CHUNK_SIZE;
      this.nextChunk();
    } else if (f.length >= 0) {
      this.left = f.length;
      this.state = f.length === 0 ? DONE : LENGTH;
    } else {
      // Transfer-Encoding without chunked last, or no framing at all: the body ends with the connection.
      this.state = TO_CLOSE;
      this.keepAlive = false;
    }
  }

  /** Reports the head just parsed (the parser already expects the next head after a 1xx). Returns false to pause. */
  private headDone(): boolean {
    const raw = this.headFields;
    this.headFields = [];
    return this.sink.onHeaders(this.headStatus, raw, this.headText);
  }

  private parseTrailers(buf: Buffer, start: number, end: number): void {
    const raw = fields(buf, start, end, undefined);
    this.trailers = raw.length === 0 ? null : raw;
    this.state = DONE;
  }
}

/** What the head's fields say about the body and the connection. */
class Framing {
  /** Content-Length, -1 when absent. */
  length = -1;
  transferEncoding = false;
  chunked = false;
  keepAliveHint: number | undefined = undefined;
  keepAlive: boolean;
  private close = false;
  private keepAliveToken = false;

  constructor(private readonly http11: boolean) {
    this.keepAlive = http11;
  }

  field(name: string, value: string): void {
    switch (name) {
      case 'content-length':
        return this.contentLength(value);
      case 'transfer-encoding':
        return this.codings(value);
      case 'connection':
        for (const t of value.split(',')) {
          const token = t.trim().toLowerCase();
          if (token === 'close') this.close = true;
          else if (token === 'keep-alive') this.keepAliveToken = true;
        }
        this.keepAlive = !this.close && (this.http11 || this.keepAliveToken);
        return;
      case 'keep-alive': {
        const m = /(?:^|[,;\s])timeout\s*=\s*"?(\d{1,9})"?/i.exec(value);
        if (m !== null) this.keepAliveHint = Number(m[1]) * 1000;
        return;
      }
    }
  }

  /** RFC 9110 §8.6: a list of identical values, or the field repeated with one value, is that value. */
  private contentLength(value: string): void {
    for (const part of value.split(',')) {
      const v = part.trim();
      if (!/^\d{1,15}$/.test(v)) fail(`invalid Content-Length "${value}"`, 'HPE_INVALID_CONTENT_LENGTH');
      const n = Number(v);
      if (this.length >= 0 && this.length !== n) fail('Content-Length values differ', 'HPE_UNEXPECTED_CONTENT_LENGTH');
      this.length = n;
    }
  }

  /** RFC 9112 §6.1: chunked must be the final coding, and applied once. */
  private codings(value: string): void {
    for (const part of value.split(',')) {
      const coding = part.trim().toLowerCase();
      if (coding === '') continue;
      if (this.chunked) fail('chunked is not the last transfer coding', 'HPE_INVALID_TRANSFER_ENCODING');
      this.transferEncoding = true;
      if (coding === 'chunked') this.chunked = true;
    }
  }
}

/** `HTTP/1.x NNN reason` from `start` to the line's CR. */
function statusLine(buf: Buffer, start: number, cr: number): { minor: number; code: number; reasonAt: number } {
  // "HTTP/1.x NNN" is 12 bytes; the reason phrase may be empty (with or without its SP).
  if (cr - start < 12 || buf.toString('latin1', start, start + 5) !== 'HTTP/') fail('not an HTTP status line', 'HPE_INVALID_CONSTANT');
  if (buf[start + 5] !== 49 || buf[start + 6] !== 46 || (buf[start + 7] !== 48 && buf[start + 7] !== 49)) fail('not an HTTP/1.x response', 'HPE_INVALID_VERSION');
  if (buf[start + 8] !== SP) fail('expected SP after the HTTP version', 'HPE_INVALID_VERSION');
  let code = 0;
  for (let i = start + 9; i < start + 12; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) fail('invalid status code', 'HPE_INVALID_STATUS');
    code = code * 10 + d;
  }
  if (code < 100) fail('invalid status code', 'HPE_INVALID_STATUS');
  let reasonAt = start + 12;
  if (reasonAt < cr) {
    if (buf[reasonAt] !== SP) fail('invalid status code', 'HPE_INVALID_STATUS');
    reasonAt++;
    for (let i = reasonAt; i < cr; i++) if (FIELD[buf[i]!] === 0) fail('invalid character in the reason phrase', 'HPE_INVALID_STATUS');
  }
  return { minor: buf[start + 7]! - 48, code, reasonAt };
}

/**
 * Field lines from `start` (a line's first byte) to `end` (the CR of the last line's CRLF, or
 * `start` for none), as raw name/value Buffers. With `framing`, the fields that frame the body
 * are read into it.
 */
function fields(buf: Buffer, start: number, end: number, framing: Framing | undefined): Buffer[] {
  const raw: Buffer[] = [];
  let i = start;
  while (i < end) {
    const cr = buf.indexOf(CR, i);
    const lineEnd = cr < 0 || cr > end ? end : cr;
    if (buf[lineEnd + 1] !== LF) fail('CR not followed by LF', 'HPE_LF_EXPECTED');
    const first = buf[i]!;
    if (first === SP || first === HTAB) fail('obs-fold (a line starting with whitespace) is not accepted', 'HPE_INVALID_HEADER_TOKEN');
    let colon = i;
    while (colon < lineEnd && TOKEN[buf[colon]!] === 1) colon++;
    if (colon === i || colon === lineEnd || buf[colon] !== 58) fail('invalid header field name', 'HPE_INVALID_HEADER_TOKEN');
    let vs = colon + 1;
    let ve = lineEnd;
    while (vs < ve && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    for (let j = vs; j < ve; j++) if (FIELD[buf[j]!] === 0) fail('invalid header value character', 'HPE_INVALID_HEADER_TOKEN');
    raw.push(buf.subarray(i, colon), buf.subarray(vs, ve));
    if (framing !== undefined) {
      const n = colon - i;
      // Only the names that frame the message are lowered and compared.
      if (n === 14 || n === 17 || n === 10) {
        framing.field(buf.toString('latin1', i, colon).toLowerCase(), buf.toString('latin1', vs, ve));
      }
    }
    i = lineEnd + 2;
  }
  return raw;
}
