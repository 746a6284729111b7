import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { cacheKey, keyFor, servicePrefix } from '../cache/key.ts';
import { normaliseHost } from '../routing/host.ts';
import { scanRequestHeaders } from './request-fields.ts';
import { parseTarget } from './validate.ts';

const req = (url: string, ...headers: string[]) => ({ url, rawHeaders: headers }) as unknown as IncomingMessage;

describe('the request target (validate phase)', () => {
  it('routes an origin-form request by its Host, without the port, and keeps the path and query', () => {
    assert.deepEqual(parseTarget(req('/a?b=1', 'Host', 'Web.Test:80')), { host: 'web.test', hostHeader: 'Web.Test:80', authority: 'web.test', scheme: 'http', path: '/a?b=1' });
  });

  it('takes the authority of an absolute-form target over the Host header (RFC 9112 §3.2.2)', () => {
    const t = parseTarget(req('https://api.test:443/x', 'Host', 'other.test'));
    assert.equal(typeof t, 'object');
    assert.equal((t as { host: string }).host, 'api.test');
    assert.equal((t as { authority: string }).authority, 'api.test');
    assert.equal((t as { path: string }).path, '/x');
  });

  it('names the problem of a request it refuses', () => {
    assert.equal(parseTarget(req('/', 'Host', 'a.test', 'Host', 'b.test')), 'more than one Host header');
    assert.equal(parseTarget(req('/')), 'missing Host header');
    assert.match(parseTarget(req('*', 'Host', 'a.test')) as string, /neither a path nor an absolute URL/);
    assert.match(parseTarget(req('/', 'Host', 'a b')) as string, /invalid Host header/);
  });

  it('routes and keys a Host as normaliseHost and cacheKey would from the Host line and the scheme', () => {
    const hosts = ['web.test', 'a', 'xn--bcher-kva.test', 'Web.Test', 'web.test.', 'web.test:80', 'web.test:0443', 'web.test:443', 'web.test:', '[::1]:80', '[FE80::1]:8443', '10.0.0.1:8080'];
    for (const scheme of ['http', 'https'] as const) {
      for (const host of hosts) {
        const r = req('/a?b=1', 'Host', host);
        const t = parseTarget(r, scanRequestHeaders(r.rawHeaders), scheme);
        assert.equal(typeof t, 'object', host);
        const { authority, scheme: s, path, host: routed } = t as Exclude<typeof t, string>;
        assert.equal(routed, normaliseHost(host), host);
        assert.equal(keyFor(servicePrefix('shop/web'), 'HEAD', s, authority, path), cacheKey('shop/web', 'HEAD', { scheme, authority: host, target: '/a?b=1' }), `${scheme} ${host}`);
      }
    }
  });
});
