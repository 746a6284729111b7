import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientResponseHeaders } from './headers.ts';

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
