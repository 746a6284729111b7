import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { parseTarget } from './validate.ts';

const req = (url: string, ...headers: string[]) => ({ url, rawHeaders: headers }) as unknown as IncomingMessage;

describe('the request target (validate phase)', () => {
  it('routes an origin-form request by its Host, without the port, and keeps the path and query', () => {
    assert.deepEqual(parseTarget(req('/a?b=1', 'Host', 'Web.Test:80')), { host: 'web.test', hostHeader: 'Web.Test:80', authority: 'web.test', path: '/a?b=1' });
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
});
