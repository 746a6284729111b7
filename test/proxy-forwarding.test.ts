import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { once } from 'node:events';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { parseRawResponse, rawRequest, request } from './helpers/http.ts';

/** An origin that echoes what it received as JSON. */
function echoOrigin(): Promise<Origin> {
  return startOrigin((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, body: body.toString('latin1'), trailers: req.trailers }));
    });
  });
}

describe('forwarding', () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await echoOrigin();
    proxy = await startProxy({ services: [{ name: 'echo', domain: 'echo.test', hosts: [{ port: origin.port }] }] });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PURGE', 'PROPFIND']) {
    test(`${method} reaches the instance with its method, path and query unchanged`, async () => {
      const path = '/a/b%20c/./d?x=1&x=2&y=%2F&z';
      const r = await request(proxy.port, { method, path, host: 'echo.test' });
      assert.equal(r.status, 200);
      if (method === 'HEAD') {
        assert.equal(r.body.length, 0);
        return;
      }
      const echo = JSON.parse(r.text);
      assert.equal(echo.method, method);
      assert.equal(echo.url, path);
    });
  }

  test('request and response bodies pass both ways byte for byte', async () => {
    const body = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 256));
    const r = await request(proxy.port, { method: 'POST', path: '/upload', host: 'echo.test', body, headers: { 'content-type': 'application/octet-stream' } });
    const echo = JSON.parse(r.text);
    assert.ok(Buffer.from(echo.body, 'latin1').equals(body));
  });

  test('a chunked request body is forwarded', async () => {
    const r = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ port: proxy.port, host: '127.0.0.1', method: 'POST', path: '/chunked', headers: { host: 'echo.test' } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.write('hello ');
      setTimeout(() => req.end('world'), 20);
    });
    assert.equal(JSON.parse(r).body, 'hello world');
  });

  test('repeated headers reach the instance in their order', async () => {
    const r = await request(proxy.port, { host: 'echo.test', headers: ['x-a', '1', 'x-b', 'b', 'x-a', '2', 'Cookie', 'c=1', 'x-a', '3'] });
    const raw: string[] = JSON.parse(r.text).rawHeaders;
    const values = raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === 'x-a' ? [raw[i + 1]] : []));
    assert.deepEqual(values, ['1', '2', '3']);
  });

  test('hop-by-hop headers, and those named in Connection, are removed; Via and X-Forwarded-* are set', async () => {
    const r = await request(proxy.port, {
      host: 'echo.test',
      headers: ['Connection', 'keep-alive, X-Secret-Hop', 'Keep-Alive', 'timeout=5', 'X-Secret-Hop', 'dropped', 'Proxy-Connection', 'x', 'TE', 'gzip', 'X-End', 'kept', 'X-Forwarded-For', '6.6.6.6'],
    });
    const raw: string[] = JSON.parse(r.text).rawHeaders;
    const names = raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const gone of ['x-secret-hop', 'keep-alive', 'proxy-connection', 'te']) assert.ok(!names.includes(gone), `${gone} must not be forwarded`);
    const get = (n: string) => raw[raw.findIndex((v, i) => i % 2 === 0 && v.toLowerCase() === n) + 1];
    assert.equal(get('x-end'), 'kept');
    assert.equal(get('via'), '1.1 kubeproxy');
    // The peer is not a trusted proxy: a client-supplied X-Forwarded-For is replaced, not trusted.
    assert.equal(get('x-forwarded-for'), '127.0.0.1');
    assert.equal(get('x-forwarded-proto'), 'http');
    assert.equal(get('x-forwarded-host'), 'echo.test');
    assert.equal(get('host'), 'echo.test');
  });

  test('TE: trailers is passed on for gRPC-style upstreams', async () => {
    const r = await request(proxy.port, { host: 'echo.test', headers: { te: 'trailers' } });
    const raw: string[] = JSON.parse(r.text).rawHeaders;
    assert.ok(raw.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'te' && raw[i + 1] === 'trailers'));
  });

  test('the response carries Via and an X-Request-Id that was also sent upstream', async () => {
    const r = await request(proxy.port, { host: 'echo.test', headers: { 'x-request-id': 'abc-123' } });
    assert.equal(r.headers['x-request-id'], 'abc-123');
    assert.equal(r.headers.via, '1.1 kubeproxy');
    const raw: string[] = JSON.parse(r.text).rawHeaders;
    assert.ok(raw.includes('abc-123'));
  });

  test('an absolute-form request target is routed by its authority', async () => {
    const reply = await rawRequest(proxy.port, 'GET http://echo.test/abs?q=1 HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 200/);
    const echo = JSON.parse(parseRawResponse(reply).body);
    assert.equal(echo.url, '/abs?q=1');
  });

  test('Expect: 100-continue gets 100 Continue from the proxy and the body is forwarded', async () => {
    const socket = connect(proxy.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('POST /continue HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    let data = '';
    socket.on('data', (c) => (data += c));
    const deadline = Date.now() + 5000;
    while (!data.includes('100 Continue') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.match(data, /^HTTP\/1\.1 100 Continue/);
    socket.write('hello');
    await once(socket, 'close');
    assert.match(data, /HTTP\/1\.1 200 OK/);
    assert.equal(JSON.parse(parseRawResponse(data.slice(data.indexOf('HTTP/1.1 200'))).body).body, 'hello');
  });

  test('a Host that matches no service gets 421 naming the host, with a request id', async () => {
    const r = await request(proxy.port, { host: 'unknown.test' });
    assert.equal(r.status, 421);
    assert.match(r.text, /no service is configured for host "unknown.test"/);
    assert.ok(r.headers['x-request-id']);
    assert.equal(r.headers['cache-control'], 'no-store');
  });

  test('a request without Host gets 400', async () => {
    const reply = await rawRequest(proxy.port, 'GET / HTTP/1.0\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 400/);
    assert.match(reply, /missing Host header/);
  });

  test('CONNECT is refused with 405', async () => {
    const reply = await rawRequest(proxy.port, 'CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 405/);
    assert.match(reply, /CONNECT is not supported/);
  });
});

describe('forwarding of responses', () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await startOrigin((req, res) => {
      if (req.url === '/trailers') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
        res.write('part1 ');
        res.addTrailers({ 'x-checksum': 'abc' });
        res.end('part2');
        return;
      }
      if (req.url === '/hop') {
        res.writeHead(200, [
          ['Connection', 'x-internal'],
          ['X-Internal', 'secret'],
          ['Set-Cookie', 'a=1'],
          ['Set-Cookie', 'b=2'],
          ['Keep-Alive', 'timeout=30'],
          ['Content-Length', '2'],
        ].flat());
        res.end('ok');
        return;
      }
      if (req.url === '/status/418') {
        res.writeHead(418, 'I Am A Teapot', { 'content-length': '0' });
        res.end();
        return;
      }
      res.writeHead(204);
      res.end();
    });
    proxy = await startProxy({ services: [{ name: 'r', domain: 'r.test', hosts: [{ port: origin.port }] }] });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  test('response trailers reach the client', async () => {
    const trailers = await new Promise<NodeJS.Dict<string>>((resolve, reject) => {
      const req = httpRequest({ port: proxy.port, host: '127.0.0.1', path: '/trailers', headers: { host: 'r.test', te: 'trailers' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.trailers));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(trailers['x-checksum'], 'abc');
  });

  test('response hop-by-hop headers are removed and repeated Set-Cookie kept', async () => {
    const r = await request(proxy.port, { host: 'r.test', path: '/hop' });
    assert.equal(r.headers['x-internal'], undefined);
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
    assert.notEqual(r.headers['keep-alive'], 'timeout=30');
    assert.equal(r.text, 'ok');
  });

  test('status code and reason phrase pass through', async () => {
    const reply = await rawRequest(proxy.port, 'GET /status/418 HTTP/1.1\r\nHost: r.test\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 418 I Am A Teapot/);
  });

  test('a 204 response has no body', async () => {
    const r = await request(proxy.port, { host: 'r.test', path: '/empty' });
    assert.equal(r.status, 204);
    assert.equal(r.body.length, 0);
  });
});

describe('304 responses', () => {
  test('a 304 that carries the Content-Length of the representation reaches the client as a 304', async () => {
    const origin = await startOrigin((req, res) => {
      // Written by hand: Node's own server never sends Content-Length on a 304, other servers do.
      req.socket.write('HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\nCache-Control: no-store\r\n\r\n');
      res.detachSocket?.(req.socket);
    });
    const proxy = await startProxy({ services: [{ name: 'nm', domain: 'nm.test', hosts: [{ port: origin.port }] }] });
    try {
      const r = await request(proxy.port, { host: 'nm.test', headers: { 'if-none-match': '"v1"' } });
      assert.equal(r.status, 304);
      assert.equal(r.headers.etag, '"v1"');
      assert.equal(r.body.length, 0);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});
