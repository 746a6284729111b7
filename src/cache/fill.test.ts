import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Fill, declaredLength, headerStrings } from './fill.ts';

const input = {
  key: 'svc GET http://a/x',
  requestHeaders: ['Accept', 'text/html'],
  status: 200,
  responseHeaders: ['Cache-Control', 'max-age=60', 'Vary', 'Accept', 'Connection', 'close'],
  requestTime: 1_000,
  responseTime: 2_000,
};

describe('Fill', () => {
  it('keeps the chunks by reference and builds the entry', () => {
    const fill = new Fill(100, input);
    const a = Buffer.from('hello ');
    const b = Buffer.from('world');
    assert.equal(fill.add(a), true);
    assert.equal(fill.add(b), true);
    const e = fill.entry({})!;
    assert.equal(e.body[0], a, 'no copy');
    assert.equal(e.body[1], b);
    assert.equal(e.bodySize, 11);
    assert.deepEqual(e.varyNames, ['accept']);
    assert.equal(e.varyKey, 'accept=text/html');
    assert.ok(!e.headers.includes('Connection'), 'hop-by-hop fields are not stored');
  });

  it('drops the copy as soon as the body passes the limit, and stays dropped', () => {
    const fill = new Fill(10, input);
    assert.equal(fill.add(Buffer.alloc(6)), true);
    assert.equal(fill.add(Buffer.alloc(6)), false);
    assert.equal(fill.dropped, true);
    assert.equal(fill.add(Buffer.alloc(1)), false);
    assert.equal(fill.entry({}), undefined);
  });

  it('a body of exactly the limit is kept', () => {
    const fill = new Fill(10, input);
    assert.equal(fill.add(Buffer.alloc(10)), true);
    assert.equal(fill.entry({})!.bodySize, 10);
  });
});

describe('header helpers', () => {
  it('headerStrings reads latin1 Buffers and passes strings through', () => {
    assert.deepEqual(headerStrings([Buffer.from('X-A'), Buffer.from([0xe9]), 'x-b', 'v']), ['X-A', 'é', 'x-b', 'v']);
  });

  it('declaredLength reads one valid Content-Length', () => {
    assert.equal(declaredLength(['Content-Length', '42']), 42);
    assert.equal(declaredLength(['content-length', 'abc']), undefined);
    assert.equal(declaredLength(['Content-Type', 'x']), undefined);
    assert.equal(declaredLength(['CONTENT-LENGTH', '-1']), undefined);
  });
});
