import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseParser, ResponseParseError, isToken } from './h1-response-parser.ts';

interface Parsed {
  heads: Array<{ status: number; text: string; fields: string[] }>;
  body: string;
  done: boolean;
  trailers: string[] | null;
  keepAlive: boolean;
  keepAliveHint: number | undefined;
  /** Bytes left over after the response. */
  rest: number;
}

/** Parses `wire` fed in pieces of `step` bytes (0: at once); `eof` ends the stream after it. */
function parse(wire: string, opts: { method?: string; step?: number; eof?: boolean; max?: number } = {}): Parsed {
  const out: Parsed = { heads: [], body: '', done: false, trailers: null, keepAlive: false, keepAliveHint: undefined, rest: 0 };
  const parser = new ResponseParser(
    {
      onHeaders: (status, raw, text) => {
        out.heads.push({ status, text, fields: raw.map((b) => b.toString('latin1')) });
        return true;
      },
      onData: (chunk) => {
        out.body += chunk.toString('latin1');
        return true;
      },
    },
    opts.max,
  );
  parser.start(opts.method ?? 'GET');
  const bytes = Buffer.from(wire, 'latin1');
  const step = opts.step || bytes.length;
  for (let i = 0; i < bytes.length && !parser.done; i += step) {
    const piece = bytes.subarray(i, i + step);
    const used = parser.execute(piece);
    if (parser.done) out.rest = piece.length - used + Math.max(0, bytes.length - i - step);
  }
  if (opts.eof) parser.eof();
  out.done = parser.done;
  out.trailers = parser.trailers?.map((b) => b.toString('latin1')) ?? null;
  out.keepAlive = parser.keepAlive;
  out.keepAliveHint = parser.keepAliveHint;
  return out;
}

function refused(wire: string, code: string | RegExp, opts: { method?: string; max?: number } = {}): void {
  for (const step of [0, 1]) {
    assert.throws(
      () => parse(wire, { ...opts, step }),
      (err: unknown) => err instanceof ResponseParseError && (typeof code === 'string' ? err.code === code : code.test(err.code)),
      `${JSON.stringify(wire.slice(0, 80))} (step ${step}) must be refused with ${String(code)}`,
    );
  }
}

/** Every split of the bytes gives the same result as all at once. */
function sameInPieces(wire: string, opts: { method?: string; eof?: boolean } = {}): Parsed {
  const whole = parse(wire, opts);
  for (const step of [1, 2, 3, 7]) assert.deepEqual(parse(wire, { ...opts, step }), whole, `step ${step}`);
  return whole;
}

test('a Content-Length response: status, reason, raw fields in order, the body, keep-alive', () => {
  const r = sameInPieces('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 5\r\n\r\nhello');
  assert.deepEqual(r.heads, [{ status: 200, text: 'OK', fields: ['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Length', '5'] }]);
  assert.equal(r.body, 'hello');
  assert.equal(r.done, true);
  assert.equal(r.keepAlive, true);
});

test('field values lose their surrounding whitespace, keep inner whitespace and obs-text; an empty reason is accepted', () => {
  const r = sameInPieces('HTTP/1.1 404\r\nX-A: \t a  b \t\r\nX-B:\r\nX-C: caf\xe9\r\ncontent-length: 0\r\n\r\n');
  assert.equal(r.heads[0]!.status, 404);
  assert.equal(r.heads[0]!.text, '');
  assert.deepEqual(r.heads[0]!.fields.slice(0, 6), ['X-A', 'a  b', 'X-B', '', 'X-C', 'caf\xe9']);
  assert.equal(r.done, true);
});

test('a chunked body with extensions and trailers, in any split', () => {
  const r = sameInPieces('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6 ; x="y"\r\n world\r\nA\r\n0123456789\r\n0\r\nGrpc-Status: 0\r\nX-Sum: abc\r\n\r\n');
  assert.equal(r.body, 'hello world0123456789');
  assert.deepEqual(r.trailers, ['Grpc-Status', '0', 'X-Sum', 'abc']);
  assert.equal(r.done, true);
  assert.equal(r.keepAlive, true);
  const plain = sameInPieces('HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
  assert.equal(plain.body, 'abc');
  assert.equal(plain.trailers, null);
});

test('bad chunk framing is refused: a size that is not hex, no size, space inside it, a missing CRLF after the data, a huge size', () => {
  const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
  refused(`${head}zz\r\n`, 'HPE_INVALID_CHUNK_SIZE');
  refused(`${head}\r\n`, 'HPE_INVALID_CHUNK_SIZE');
  refused(`${head}-1\r\n`, 'HPE_INVALID_CHUNK_SIZE');
  refused(`${head}1 2\r\n`, 'HPE_INVALID_CHUNK_SIZE');
  refused(`${head}3\r\nabcX\r\n`, 'HPE_CR_EXPECTED');
  refused(`${head}3\r\nabc\rX`, 'HPE_LF_EXPECTED');
  refused(`${head}3\rX`, 'HPE_LF_EXPECTED');
  refused(`${head}${'f'.repeat(14)}\r\n`, 'HPE_INVALID_CHUNK_SIZE');
  refused(`${head}3;a\x00b\r\n`, 'HPE_INVALID_CHUNK_SIZE');
});

test('Content-Length and Transfer-Encoding together are refused, as undici refuses them (request smuggling)', () => {
  refused('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH');
  refused('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH');
});

test('Transfer-Encoding: chunked must be last; another last coding reads the body to the end of the connection', () => {
  refused('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING');
  refused('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING');
  refused('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING');
  const r = sameInPieces('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n3\r\nabc', { eof: true });
  assert.equal(r.body, '3\r\nabc');
  assert.equal(r.done, true);
  assert.equal(r.keepAlive, false);
});

test('Content-Length: one decimal value; repeats and lists must agree', () => {
  assert.equal(sameInPieces('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc').body, 'abc');
  assert.equal(sameInPieces('HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc').body, 'abc');
  refused('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc', 'HPE_UNEXPECTED_CONTENT_LENGTH');
  refused('HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc', 'HPE_UNEXPECTED_CONTENT_LENGTH');
  for (const bad of ['-1', '+3', '0x10', '3a', '', '1 2', '1e3', '9'.repeat(16)]) {
    refused(`HTTP/1.1 200 OK\r\nContent-Length: ${bad}\r\n\r\n`, 'HPE_INVALID_CONTENT_LENGTH');
  }
});

test('the status line must be HTTP/1.x with a three-digit status', () => {
  refused('HTTP/2.0 200 OK\r\n\r\n', 'HPE_INVALID_VERSION');
  refused('HTTP/1.2 200 OK\r\n\r\n', 'HPE_INVALID_VERSION');
  refused('HTTP/1.1  200 OK\r\n\r\n', 'HPE_INVALID_STATUS');
  refused('HTTP/1.1 20 OK\r\n\r\n', 'HPE_INVALID_STATUS');
  refused('HTTP/1.1 2000 OK\r\n\r\n', 'HPE_INVALID_STATUS');
  refused('HTTP/1.1 099 Low\r\n\r\n', 'HPE_INVALID_STATUS');
  refused('HTTP/1.1 200 O\x01K\r\n\r\n', 'HPE_INVALID_STATUS');
  refused('ICY 200 OK\r\n\r\n', 'HPE_INVALID_CONSTANT');
  refused('hello world\r\n\r\n', 'HPE_INVALID_CONSTANT');
  refused('\r\nHTTP/1.1 200 OK\r\n\r\n', 'HPE_INVALID_CONSTANT');
});

test('header names must be tokens; obs-fold, CR, LF and NUL in values are refused; lines end with CRLF', () => {
  refused('HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
  refused('HTTP/1.1 200 OK\r\nName : x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
  refused('HTTP/1.1 200 OK\r\n: x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
  refused('HTTP/1.1 200 OK\r\nNoColon\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
  refused('HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
  refused('HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
  refused('HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n', 'HPE_LF_EXPECTED');
  refused('HTTP/1.1 200 OK\r\nX-A: a\nX-B: b\r\n\r\n', 'HPE_CR_EXPECTED');
  refused('HTTP/1.1 200 OK\n\n', 'HPE_CR_EXPECTED');
});

test('a head or trailers over the size limit are refused with undici\'s code', () => {
  refused(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`, 'UND_ERR_HEADERS_OVERFLOW');
  refused(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(600)}\r\n\r\n`, 'UND_ERR_HEADERS_OVERFLOW', { max: 512 });
  refused(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: ${'a'.repeat(600)}\r\n\r\n`, 'UND_ERR_HEADERS_OVERFLOW', { max: 512 });
  assert.equal(parse(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(60 * 1024)}\r\nContent-Length: 0\r\n\r\n`, { step: 1000 }).done, true);
});

test('no body after HEAD, nor for 204 and 304, whatever Content-Length says', () => {
  for (const [wire, method] of [
    ['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', 'HEAD'],
    ['HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', 'GET'],
    ['HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', 'GET'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'HEAD'],
  ] as const) {
    const r = sameInPieces(wire, { method });
    assert.equal(r.done, true, wire);
    assert.equal(r.body, '');
    assert.equal(r.keepAlive, true);
  }
  // Bytes after a complete answer are left to the caller.
  assert.equal(parse('HTTP/1.1 204 No Content\r\n\r\nextra').rest, 5);
});

test('1xx answers are reported before the final one on the same bytes, without a body', () => {
  const r = sameInPieces('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\nContent-Length: 9\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  assert.deepEqual(
    r.heads.map((h) => h.status),
    [100, 103, 102, 200],
  );
  assert.deepEqual(r.heads[1]!.fields, ['Link', '</a.css>; rel=preload']);
  assert.equal(r.body, 'ok');
  assert.equal(r.done, true);
  refused('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n', 'HPE_INVALID_STATUS');
});

test('without Content-Length or chunked the body runs to the end of the connection, which it does not keep', () => {
  const r = sameInPieces('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this', { eof: true });
  assert.equal(r.body, 'all of this');
  assert.equal(r.done, true);
  assert.equal(r.keepAlive, false);
  assert.equal(parse('HTTP/1.1 200 OK\r\n\r\nabc').done, false, 'not done before the end of the connection');
});

test('a response cut short is not complete at the end of the stream', () => {
  assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc', { eof: true }).done, false);
  assert.equal(parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab', { eof: true }).done, false);
  assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Le', { eof: true }).done, false);
});

test('Connection and Keep-Alive: close, HTTP/1.0 keep-alive, the timeout hint', () => {
  assert.equal(parse('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  assert.equal(parse('HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  assert.equal(parse('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  assert.equal(parse('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').keepAlive, true);
  const r = parse('HTTP/1.1 200 OK\r\nKeep-Alive: max=100, timeout=5\r\nContent-Length: 0\r\n\r\n');
  assert.equal(r.keepAlive, true);
  assert.equal(r.keepAliveHint, 5000);
  assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').keepAliveHint, undefined);
});

test('a callback returning false stops the parse right after it, and the rest parses later', () => {
  let paused = true;
  const seen: string[] = [];
  const parser = new ResponseParser({
    onHeaders: (status) => {
      seen.push(`head ${status}`);
      return !paused;
    },
    onData: (chunk) => {
      seen.push(chunk.toString());
      return !paused;
    },
  });
  parser.start('GET');
  const wire = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n');
  let at = parser.execute(wire);
  assert.deepEqual(seen, ['head 200']);
  at = parser.execute(wire, at);
  assert.deepEqual(seen, ['head 200', 'abc']);
  paused = false;
  at = parser.execute(wire, at);
  assert.deepEqual(seen, ['head 200', 'abc', 'def']);
  assert.equal(at, wire.length);
  assert.equal(parser.done, true);
});

test('the parser is reused for the next response on a kept-alive connection', () => {
  const bodies: string[] = [];
  const parser = new ResponseParser({ onHeaders: () => true, onData: (c) => (bodies.push(c.toString()), true) });
  parser.start('GET');
  parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX: y\r\n\r\n'));
  assert.equal(parser.done, true);
  assert.equal(parser.trailers?.length, 2);
  parser.start('GET');
  assert.equal(parser.done, false);
  assert.equal(parser.trailers, null);
  parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb'));
  assert.equal(parser.done, true);
  assert.deepEqual(bodies, ['a', 'b']);
});

test('a request field name is sent only when it is a token (the same table the response parser checks names with)', () => {
  for (const name of ['x-a', 'Content-Type', "!#$%&'*+-.^_`|~09AZaz"]) assert.equal(isToken(name), true, name);
  for (const name of ['', 'x a', 'x:a', 'x\ra', 'é', 'x\u0100']) assert.equal(isToken(name), false, JSON.stringify(name));
});
