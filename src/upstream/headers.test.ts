import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.ts';

const buffers = (list: string[]): Buffer[] => list.map((h) => Buffer.from(h, 'latin1'));

describe('clientResponseHeaders', () => {
  it('drops hop-by-hop fields, keeps the rest in order, and adds Via and the request id', () => {
    const raw = buffers(['Content-Type', 'text/plain', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']);
    assert.deepEqual(clientResponseHeaders(raw, '1.1 kubeproxy', 'id-1'), [
      'Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'via', '1.1 kubeproxy', 'x-request-id', 'id-1',
    ]);
  });

  it('drops the fields the Connection header names, wherever they appear (RFC 9110 §7.6.1)', () => {
    const raw = buffers(['X-Secret', 's', 'Via', '1.0 a', 'Content-Length', '2', 'Connection', 'close, X-Secret, via', 'X-Secret', 't']);
    assert.deepEqual(clientResponseHeaders(raw, '1.1 kubeproxy', 'id-2'), ['Content-Length', '2', 'via', '1.1 kubeproxy', 'x-request-id', 'id-2']);
    // A plain `keep-alive` first, the field naming X-Secret later: still dropped, also before it.
    const split = buffers(['X-Secret', 's', 'Connection', 'Keep-Alive', 'Content-Length', '2', 'Connection', 'X-Secret']);
    assert.deepEqual(clientResponseHeaders(split, '1.1 kubeproxy', 'id-2'), ['Content-Length', '2', 'via', '1.1 kubeproxy', 'x-request-id', 'id-2']);
  });

  it('appends to the upstream Via and keeps the instance X-Request-Id', () => {
    const raw = buffers(['Via', '1.0 a', 'X-Request-Id', 'up', 'via', '1.1 b']);
    assert.deepEqual(clientResponseHeaders(raw, '1.1 kubeproxy', 'id-3'), ['X-Request-Id', 'up', 'via', '1.0 a, 1.1 b, 1.1 kubeproxy']);
    assert.deepEqual(clientResponseHeaders(raw, undefined, 'id-3'), ['X-Request-Id', 'up', 'via', '1.0 a, 1.1 b']);
  });
});

const trustNone = { isTrusted: () => false };
const trustTen = { isTrusted: (ip: string) => ip === '127.0.0.1' || ip.startsWith('10.') };
const info = { host: 'web.test', authority: 'web.test', requestId: 'id', via: undefined, upstreamHost: undefined, upgrade: false };
const field = (out: string[], name: string) => out.filter((_, i) => i % 2 === 1 && out[i - 1] === name);

describe('upstreamRequestHeaders', () => {
  it('sends the normalised authority as the only Host, first', () => {
    const out = upstreamRequestHeaders(['Host', 'WEB.TEST.', 'Accept', '*/*'], { ...info, clientIp: '192.0.2.1', trust: trustNone });
    assert.deepEqual(out.slice(0, 4), ['host', 'web.test', 'Accept', '*/*']);
    assert.equal(out.filter((v, i) => i % 2 === 0 && v.toLowerCase() === 'host').length, 1);
  });

  it('quotes and brackets an IPv6 client, and quotes a host with a port (RFC 7239 §4, §6)', () => {
    const out = upstreamRequestHeaders(['Host', 'web.test:8080'], { ...info, authority: 'web.test:8080', clientIp: '2001:db8::1', trust: trustNone });
    assert.deepEqual(field(out, 'forwarded'), ['for="[2001:db8::1]";host="web.test:8080";proto=http']);
    assert.deepEqual(field(out, 'x-real-ip'), ['2001:db8::1']);
  });

  it('names an unknown peer `unknown`', () => {
    const out = upstreamRequestHeaders([], { ...info, clientIp: '', trust: trustNone });
    assert.deepEqual(field(out, 'forwarded'), ['for=unknown;host=web.test;proto=http']);
  });
});

/** The X-Real-IP sent upstream for a request from trusted 127.0.0.1 carrying `xff`. */
const realIp = (xff: string) => field(upstreamRequestHeaders(['X-Forwarded-For', xff], { ...info, clientIp: '127.0.0.1', trust: trustTen }), 'x-real-ip')[0];

describe('X-Real-IP behind trusted proxies', () => {
  it('walks X-Forwarded-For from the right past trusted proxies', () => {
    assert.equal(realIp('6.6.6.6, 203.0.113.7, 10.0.0.2'), '203.0.113.7');
    assert.equal(realIp('10.0.0.3, 10.0.0.2'), '10.0.0.3', 'all trusted: the leftmost');
  });

  it('reads ports, brackets and IPv4-mapped forms as addresses', () => {
    assert.equal(realIp('203.0.113.7:5000, 10.0.0.2:80'), '203.0.113.7');
    assert.equal(realIp('[2001:db8::7]:443'), '2001:db8::7');
    assert.equal(realIp('::ffff:10.0.0.9, ::ffff:203.0.113.7'), '203.0.113.7');
  });

  it('stops at an entry that is not an address: the trusted hop that passed it is the answer', () => {
    assert.equal(realIp('6.6.6.6, _hidden'), '127.0.0.1');
    assert.equal(realIp('6.6.6.6, garbage, 10.0.0.2'), '10.0.0.2');
  });
});
