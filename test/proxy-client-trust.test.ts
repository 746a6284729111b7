/**
 * What a client may say about itself, and what reaches the instance: forwarding headers
 * (X-Forwarded-*, Forwarded, X-Real-IP) are believed only from `trustedProxies`, and the Host the
 * instance sees is the normalised authority the cache keyed the answer on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { parseRawResponse, rawRequest, request } from './helpers/http.ts';

/** All values of one header, as the instance received them (one entry per field line). */
function lines(req: IncomingMessage, name: string): string[] {
  const raw = req.rawHeaders;
  return raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name);
}

async function setup(t: { after(fn: () => Promise<void>): void }, proxy: Record<string, unknown> = {}, service: Record<string, unknown> = {}): Promise<{ origin: Origin; proxy: TestProxy }> {
  // A cacheable answer that reflects the Host it was made for, as many origins do in links.
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
    res.end(`made for ${req.headers.host}`);
  });
  t.after(() => origin.close());
  const p = await startProxy({ ...proxy, services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }], ...service }] });
  t.after(() => p.close());
  return { origin, proxy: p };
}

const SPOOFED = [
  'X-Forwarded-For', '6.6.6.6',
  'X-Forwarded-Proto', 'https',
  'X-Forwarded-Host', 'evil.test',
  'Forwarded', 'for=6.6.6.6;proto=https',
  'forwarded', 'for=7.7.7.7',
  'X-Real-IP', '6.6.6.6',
];

test('an untrusted client cannot speak for the proxy: its X-Forwarded-*, Forwarded and X-Real-IP are replaced', async (t) => {
  const { origin, proxy } = await setup(t);
  const r = await request(proxy.port, { host: 'web.test', path: '/untrusted', headers: SPOOFED });
  assert.equal(r.status, 200);
  const seen = origin.requests[0]!;
  assert.deepEqual(lines(seen, 'x-forwarded-for'), ['127.0.0.1']);
  assert.deepEqual(lines(seen, 'x-forwarded-proto'), ['http']);
  assert.deepEqual(lines(seen, 'x-forwarded-host'), ['web.test']);
  assert.deepEqual(lines(seen, 'forwarded'), ['for=127.0.0.1;host=web.test;proto=http']);
  assert.deepEqual(lines(seen, 'x-real-ip'), ['127.0.0.1']);
});

test('a trusted proxy in front: its chain is kept and appended to, X-Real-IP is the first untrusted hop from the right', async (t) => {
  const { origin, proxy } = await setup(t, { trustedProxies: ['127.0.0.1', '10.0.0.0/8'] });
  const r = await request(proxy.port, {
    host: 'web.test',
    path: '/trusted',
    headers: [
      'X-Forwarded-For', '6.6.6.6, 203.0.113.7',
      'X-Forwarded-For', '10.1.2.3',
      'X-Forwarded-Proto', 'https',
      'X-Forwarded-Host', 'www.example.com',
      // RFC 7239 §6.2/6.3: obfuscated and unknown nodes from a trusted hop are kept as they are.
      'Forwarded', 'for=203.0.113.7;proto=https;by=_edge1',
      'Forwarded', 'for=_hidden, for=unknown',
      'X-Real-IP', '6.6.6.6',
    ],
  });
  assert.equal(r.status, 200);
  const seen = origin.requests[0]!;
  assert.deepEqual(lines(seen, 'x-forwarded-for'), ['6.6.6.6, 203.0.113.7, 10.1.2.3, 127.0.0.1']);
  assert.deepEqual(lines(seen, 'x-forwarded-proto'), ['https']);
  assert.deepEqual(lines(seen, 'x-forwarded-host'), ['www.example.com']);
  assert.deepEqual(lines(seen, 'forwarded'), ['for=203.0.113.7;proto=https;by=_edge1, for=_hidden, for=unknown, for=127.0.0.1;host=web.test;proto=http']);
  // 127.0.0.1 and 10.1.2.3 are trusted proxies; 203.0.113.7 is the client they vouch for.
  assert.deepEqual(lines(seen, 'x-real-ip'), ['203.0.113.7']);
});

test('a trusted proxy that sends no chain: X-Real-IP and Forwarded name the peer', async (t) => {
  const { origin, proxy } = await setup(t, { trustedProxies: ['127.0.0.0/8'] });
  await request(proxy.port, { host: 'web.test', path: '/bare' });
  const seen = origin.requests[0]!;
  assert.deepEqual(lines(seen, 'x-real-ip'), ['127.0.0.1']);
  assert.deepEqual(lines(seen, 'forwarded'), ['for=127.0.0.1;host=web.test;proto=http']);
});

test('Host spelled differently (case, trailing dot, default port) reaches the instance as the cache keys it, so a stored answer never carries another spelling', async (t) => {
  const { origin, proxy } = await setup(t);
  for (const [i, host] of ['WEB.TEST.', 'web.test:80', 'Web.Test:0080'].entries()) {
    const path = `/spelled-${i}`;
    const first = await request(proxy.port, { host, path });
    assert.equal(first.text, 'made for web.test', `${host}: the instance saw the normalised Host`);
    const plain = await request(proxy.port, { host: 'web.test', path });
    assert.equal(plain.text, 'made for web.test', `${host}: a plain web.test client gets an answer made for web.test`);
  }
  assert.equal(origin.requests.length, 3, 'the plain requests were answered from the cache');
  assert.deepEqual(origin.requests.map((r) => lines(r, 'host')), [['web.test'], ['web.test'], ['web.test']], 'exactly one Host line each');
});

test('a non-default port stays in the Host sent upstream, and in its own cache entry', async (t) => {
  const { origin, proxy } = await setup(t);
  assert.equal((await request(proxy.port, { host: 'WEB.test:8080', path: '/port' })).text, 'made for web.test:8080');
  assert.equal((await request(proxy.port, { host: 'web.test', path: '/port' })).text, 'made for web.test');
  assert.equal(origin.requests.length, 2);
});

test('an absolute-form target sends its normalised authority as Host, whatever Host line came with it', async (t) => {
  const { origin, proxy } = await setup(t);
  const reply = await rawRequest(proxy.port, 'GET http://WEB.TEST.:80/abs HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n');
  assert.equal(parseRawResponse(reply).body, 'made for web.test');
  // HTTP/1.0 needs no Host line at all: the instance still gets one.
  const old = await rawRequest(proxy.port, 'GET http://web.test/abs10 HTTP/1.0\r\n\r\n');
  assert.equal(parseRawResponse(old).body, 'made for web.test');
  assert.deepEqual(origin.requests.map((r) => lines(r, 'host')), [['web.test'], ['web.test']]);
});

test('behind a trusted TLS terminator, Host web.test:443 with X-Forwarded-Proto: https reaches the instance as web.test', async (t) => {
  const { origin, proxy } = await setup(t, { trustedProxies: ['127.0.0.1'] });
  const r = await request(proxy.port, { host: 'web.test:443', path: '/tls', headers: { 'x-forwarded-proto': 'https' } });
  assert.equal(r.text, 'made for web.test');
  assert.deepEqual(lines(origin.requests[0]!, 'host'), ['web.test']);
});

test('services[].upstreamHost still replaces the Host sent upstream', async (t) => {
  const { origin, proxy } = await setup(t, {}, { upstreamHost: 'internal.svc.cluster.local' });
  const r = await request(proxy.port, { host: 'WEB.TEST.', path: '/fixed' });
  assert.equal(r.text, 'made for internal.svc.cluster.local');
  assert.deepEqual(lines(origin.requests[0]!, 'host'), ['internal.svc.cluster.local']);
  // Forwarded still says which Host the client asked for.
  assert.deepEqual(lines(origin.requests[0]!, 'forwarded'), ['for=127.0.0.1;host=web.test;proto=http']);
});
