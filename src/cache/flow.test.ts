import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { responseDirectives } from './directives.ts';
import { worthStoring } from './flow.ts';

const NOW = 1_700_000_000_000;

describe('worthStoring', () => {
  it('a 200 without any caching field is not worth storing (it would be stale on arrival)', () => {
    const headers = ['Content-Type', 'text/plain', 'Content-Length', '13'];
    assert.equal(worthStoring(200, headers, NOW, NOW, {}, responseDirectives(headers)), false);
  });

  it('an answer with a validator or a lifetime is worth storing', () => {
    const etag = ['ETag', '"v1"'];
    assert.equal(worthStoring(200, etag, NOW, NOW, {}, responseDirectives(etag)), true);
    const maxAge = ['Cache-Control', 'max-age=60'];
    assert.equal(worthStoring(200, maxAge, NOW, NOW, {}, responseDirectives(maxAge)), true);
  });
});
