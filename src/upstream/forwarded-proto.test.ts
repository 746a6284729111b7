import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forwardedScheme } from './forwarded-proto.ts';

describe('forwardedScheme', () => {
  it('is https only when X-Forwarded-Proto names https first', () => {
    assert.equal(forwardedScheme('https'), 'https');
    assert.equal(forwardedScheme(' HTTPS , http'), 'https');
    assert.equal(forwardedScheme('https,http'), 'https');
  });

  it('is http without the field, for http, for a list led by http, and for anything else', () => {
    assert.equal(forwardedScheme(undefined), 'http');
    assert.equal(forwardedScheme('http'), 'http');
    assert.equal(forwardedScheme('http, https'), 'http');
    assert.equal(forwardedScheme('httpsx'), 'http');
    assert.equal(forwardedScheme(''), 'http');
  });
});
