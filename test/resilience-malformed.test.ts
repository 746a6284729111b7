/**
 * Malformed and smuggling requests: each gets a 400 (421 for an absolute URI naming another
 * host) and a closed connection, and nothing of it reaches an instance — which then sees exactly
 * the well-formed requests, framed as they were sent, on its pooled connections.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request } from './helpers/http.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy } from './helpers/proxy.ts';
import { scrape } from './helpers/metrics.ts';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { log, setLogger } from '../src/log.ts';

/** Sends raw bytes; resolves with the reply and whether the proxy closed the connection (vs. our 5 s timeout). */
function send(port: number, data: string): Promise<{ reply: string; closedByProxy: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, 5000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(chunks).toString('latin1'), closedByProxy: !timedOut });
    });
    socket.write(data);
  });
}

/** An origin that records every byte it receives, on every connection. */
async function recordingOrigin(): Promise<Origin & { raw: () => string }> {
  let raw = '';
  const origin = await startOrigin((req, res) => {
    req.resume();
    req.on('end', () => res.end(`ok ${req.url}`));
  });
  origin.server.on('connection', (s) => s.on('data', (d: Buffer) => (raw += d.toString('latin1'))));
  return Object.assign(origin, { raw: () => raw });
}

const H = 'Host: web.test\r\n';
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: web.test\r\n\r\n';

const MALFORMED: Array<[string, string, RegExp]> = [
  ['CL.TE: Content-Length and Transfer-Encoding together', `POST / HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, /Transfer-Encoding can't be present with Content-Length/],
  ['TE.CL: Transfer-Encoding then Content-Length', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2c\r\n${SMUGGLED}\r\n0\r\n\r\n`, /Content-Length can't be present with Transfer-Encoding/],
  ['two different Content-Length values', `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: ${3 + SMUGGLED.length}\r\n\r\nabc${SMUGGLED}`, /Duplicate Content-Length/],
  ['Content-Length as a list', `POST / HTTP/1.1\r\n${H}Content-Length: 3, 3\r\n\r\nabc`, /Content-Length/],
  ['Transfer-Encoding: chunked, identity', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`, /Transfer-Encoding/],
  ['Transfer-Encoding without chunked last', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n${SMUGGLED}`, /Transfer-Encoding/],
  ['a space before the colon of Transfer-Encoding', `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, /header/i],
  ['obs-fold (a header line continued on the next line)', `GET / HTTP/1.1\r\n${H}X-Folded: a\r\n b\r\n\r\n`, /whitespace/i],
  ['obs-fold hiding Transfer-Encoding: chunked', `POST / HTTP/1.1\r\n${H}Content-Length: 0\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, /whitespace/i],
  ['a control character in a header value', `GET / HTTP/1.1\r\n${H}X-Bad: a\x01b\r\n\r\n`, /header value char/i],
  ['a bare CR inside a header value', `GET / HTTP/1.1\r\n${H}X-Bad: a\rb\r\n\r\n`, /LF/],
  ['an invalid chunk size', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n`, /chunk size/i],
  ['a space inside the request target', `GET /a b HTTP/1.1\r\n${H}\r\n`, /./],
  ['two Host headers', `GET / HTTP/1.1\r\n${H}Host: other.test\r\n\r\n`, /more than one Host header/],
  ['a missing Host header', 'GET / HTTP/1.1\r\n\r\n', /./],
  ['a missing Host header in HTTP/1.0', 'GET / HTTP/1.0\r\n\r\n', /missing Host header/],
  ['an empty Host header', 'GET / HTTP/1.1\r\nHost:\r\n\r\n', /missing Host header/],
  ['a Host header with a space', 'GET / HTTP/1.1\r\nHost: web.test evil.test\r\n\r\n', /invalid Host header/],
  ['a Host header with userinfo', 'GET / HTTP/1.1\r\nHost: user@web.test\r\n\r\n', /invalid Host header/],
  ['a Host header with a bad port', 'GET / HTTP/1.1\r\nHost: web.test:80x\r\n\r\n', /invalid Host header/],
  ['a Host header with a port over 65535', 'GET / HTTP/1.1\r\nHost: web.test:65536\r\n\r\n', /invalid Host header/],
  // llhttp reads a request line without a version as HTTP/0.9 and still parses the lines after it as fields.
  ['an HTTP/0.9-shaped request line followed by header lines', `GET /a\r\nX-Injected: 1 HTTP/1.1\r\n${H}\r\n`, /HTTP\/0\.9 is not supported/],
  ['a bare HTTP/0.9 request line', 'GET /a\r\n\r\n', /without an HTTP version/],
  ['an explicit HTTP/0.9 version', `GET /a HTTP/0.9\r\n${H}\r\n`, /HTTP\/0\.9 is not supported/],
  ['an HTTP/0.9-shaped Upgrade request', `GET /a\r\n${H}Connection: upgrade\r\nUpgrade: websocket\r\n\r\n`, /HTTP\/0\.9 is not supported/],
  // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing, whatever its value.
  ['HTTP/1.0 with Transfer-Encoding: chunked', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, /Transfer-Encoding in an HTTP\/1\.0 request/],
  ['HTTP/1.0 with Transfer-Encoding: gzip, chunked', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n${SMUGGLED}`, /RFC 9112 section 6\.1/],
  ['HTTP/1.0 with Transfer-Encoding and Expect: 100-continue', `POST / HTTP/1.0\r\n${H}Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, /RFC 9112 section 6\.1/],
  ['a chunk size that overflows', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n`, /overflow/i],
  ['a negative chunk size', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n`, /chunk size/i],
  ['a signed Content-Length', `POST / HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\nabc`, /Content-Length/],
];

test('malformed and smuggling requests get 400 and a closed connection, and never reach an instance', async (t) => {
  const origin = await recordingOrigin();
  t.after(() => origin.close());
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] });
  t.after(() => proxy.close());

  // A pooled connection to the instance exists before the attempts, so a desync would show on it.
  assert.equal((await request(proxy.port, { host: 'web.test', path: '/before' })).text, 'ok /before');

  for (const [name, data, message] of MALFORMED) {
    const { reply, closedByProxy } = await send(proxy.port, data);
    assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/, `${name}: ${JSON.stringify(reply.slice(0, 80))}`);
    assert.match(reply.slice(reply.indexOf('\r\n\r\n')), message, `${name}: the body names the problem`);
    assert.match(reply, /\r\nconnection: close\r\n/i, `${name}: says the connection closes`);
    assert.ok(closedByProxy, `${name}: the proxy closed the connection`);
    assert.equal(reply.split('HTTP/1.1 ').length - 1, 1, `${name}: exactly one response`);
    // The reply came after the socket closed: anything forwarded would have reached the origin by now.
    assert.equal(origin.requests.length, 1, `${name}: nothing reached the instance`);
  }

  // A normal request on another connection: the instance sees exactly it, well-formed.
  assert.equal((await request(proxy.port, { host: 'web.test', path: '/after' })).text, 'ok /after');
  assert.deepEqual(origin.requests.map((r) => r.url), ['/before', '/after']);
  const lines = origin.raw().split('\r\n').filter((l) => /^[A-Z]+ \S+ HTTP\/1\.1$/.test(l));
  assert.deepEqual(lines, ['GET /before HTTP/1.1', 'GET /after HTTP/1.1'], 'the instance received exactly two request lines');
  assert.doesNotMatch(origin.raw(), /smuggled/);
});

test('a request line claiming HTTP/2.0 gets 505 and a closed connection, and never reaches an instance', async (t) => {
  const origin = await recordingOrigin();
  t.after(() => origin.close());
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] });
  t.after(() => proxy.close());
  const { reply, closedByProxy } = await send(proxy.port, `GET / HTTP/2.0\r\n${H}\r\n${SMUGGLED}`);
  assert.match(reply, /^HTTP\/1\.1 505 HTTP Version Not Supported\r\n/);
  assert.match(reply, /\r\nconnection: close\r\n/i);
  assert.match(reply, /HTTP\/2\.0 is not supported/);
  assert.ok(closedByProxy);
  assert.equal(reply.split('HTTP/1.1 ').length - 1, 1, 'the smuggled request got no answer');
  assert.equal(origin.raw(), '', 'the instance received nothing');
});

test('a chunked body that turns malformed while it streams: the client gets 400, the instance never gets a complete request', async (t) => {
  const completed: string[] = [];
  const cut: string[] = [];
  const origin = await startOrigin((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('latin1')));
    req.on('end', () => {
      completed.push(body);
      res.end('ok');
    });
    req.on('close', () => {
      if (!req.complete) cut.push(body);
    });
  });
  t.after(() => origin.close());
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] });
  t.after(() => proxy.close());

  const socket = connect(proxy.port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.write(`POST /upload HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n`);
  // The request is under way to the instance before the bad bytes arrive.
  for (let i = 0; i < 200 && origin.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(origin.requests.length, 1, 'the request was streaming to the instance');
  socket.write(`3\r\ndefX\r\n0\r\n\r\n${SMUGGLED}`);
  await closed;
  const reply = Buffer.concat(chunks).toString('latin1');
  assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(reply, /LF after chunk data/);
  for (let i = 0; i < 200 && cut.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(completed, [], 'the instance never saw the request end');
  assert.equal(cut.length, 1, 'the request to the instance was cut');
  assert.deepEqual(origin.requests.map((r) => r.url), ['/upload'], 'the smuggled request never reached the instance');
});

test('a smuggling attempt pipelined after a valid request: the valid one is answered, then the connection closes', async (t) => {
  const origin = await recordingOrigin();
  t.after(() => origin.close());
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] });
  t.after(() => proxy.close());

  const attack = `GET /first HTTP/1.1\r\n${H}\r\nPOST / HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`;
  const { reply, closedByProxy } = await send(proxy.port, attack);
  assert.ok(closedByProxy);
  assert.match(reply, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(reply, /\r\nconnection: close\r\n/i);
  assert.match(reply, /ok \/first$/);
  assert.equal(reply.split('HTTP/1.1 ').length - 1, 1, 'no response was sent for the malformed request');
  assert.equal((await request(proxy.port, { host: 'web.test', path: '/after' })).text, 'ok /after');
  assert.deepEqual(origin.requests.map((r) => r.url), ['/first', '/after']);
  assert.doesNotMatch(origin.raw(), /smuggled/);
});

test('an absolute URI naming a host no service serves is answered 421 and never forwarded', async (t) => {
  const origin = await recordingOrigin();
  t.after(() => origin.close());
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] });
  t.after(() => proxy.close());
  // RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host, and routes.
  const { reply } = await send(proxy.port, `GET http://evil.test/steal HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.match(reply, /^HTTP\/1\.1 421 Misdirected Request\r\n/);
  assert.match(reply, /no service is configured for host "evil\.test"/);
  const ok = await send(proxy.port, 'GET http://web.test/page HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n');
  assert.match(ok.reply, /^HTTP\/1\.1 200 OK\r\n/);
  assert.deepEqual(origin.requests.map((r) => r.url), ['/page']);
});

test('requests the listener refuses are counted in kubeproxy_errors_total by cause and logged as warnings', async (t) => {
  const origin = await recordingOrigin();
  t.after(() => origin.close());
  const proxy = await startProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] });
  t.after(() => proxy.close());
  const saved = log;
  const lines: Array<Record<string, unknown>> = [];
  setLogger(pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, done) => (lines.push(JSON.parse(c.toString())), done()) })));
  t.after(() => setLogger(saved));
  const errors = async (cause: string) => (await scrape(proxy.adminPort)).get('kubeproxy_errors_total', { service: '_unrouted', cause }) ?? 0;
  const before = { bad: await errors('bad_request'), version: await errors('http_version'), large: await errors('headers_too_large') };

  const replies = [
    await send(proxy.port, `GET /a\r\n${H}\r\n`),
    await send(proxy.port, `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`),
    await send(proxy.port, `GET / HTTP/2.0\r\n${H}\r\n`),
    await send(proxy.port, `GET / HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    await send(proxy.port, `GET / HTTP/1.1\r\n${H}X-Bad: a\x01b\r\n\r\n`),
  ];
  assert.deepEqual(replies.map((r) => r.reply.slice(9, 12)), ['400', '400', '505', '431', '400']);
  assert.equal(await errors('bad_request'), before.bad + 3);
  assert.equal(await errors('http_version'), before.version + 1);
  assert.equal(await errors('headers_too_large'), before.large + 1);

  const refused = lines.filter((l) => l.msg === 'request refused by the listener');
  assert.deepEqual(refused.map((l) => [l.status, l.errorCause]), [[400, 'bad_request'], [400, 'bad_request'], [505, 'http_version'], [431, 'headers_too_large'], [400, 'bad_request']]);
  assert.ok(refused.every((l) => l.level === 40 && l.clientIp === '127.0.0.1' && typeof l.requestId === 'string'));
  // The id logged is the one the client was given.
  assert.match(replies[0]!.reply, new RegExp(`x-request-id: ${String(refused[0]!.requestId)}\\r\\n`, 'i'));
  assert.match(String(refused[1]!.errorMessage), /Transfer-Encoding in an HTTP\/1\.0 request/);
  assert.equal(origin.requests.length, 0);
});
