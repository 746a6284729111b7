import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_KINDS, ProxyError, finalAttemptError, type ErrorCause } from './errors.ts';

const kinds = Object.keys(ERROR_KINDS) as ErrorCause[];
/** Kinds that are only logged and counted: the connection is cut, no answer is written. */
const NEVER_SENT: readonly ErrorCause[] = ['client_abort', 'drain_timeout'];

describe('the error table', () => {
  it('every 503 the proxy answers says when to try again', () => {
    for (const kind of kinds) {
      if (NEVER_SENT.includes(kind)) continue;
      const err = new ProxyError(kind, 'x');
      if (err.status === 503) assert.ok(err.retryAfter > 0, `${kind} has no Retry-After`);
      else assert.equal(err.retryAfter, 0, `${kind} is no 503 but has a Retry-After`);
    }
  });

  it('answers to malformed or oversized requests close the connection', () => {
    for (const kind of ['bad_request', 'body_too_large', 'headers_too_large', 'request_timeout'] as const) {
      assert.equal(new ProxyError(kind, 'x').closesConnection, true, kind);
    }
    assert.equal(new ProxyError('no_route', 'x').closesConnection, false);
  });

  it('only a connect failure may go to another instance by default; a connect timeout says so itself', () => {
    assert.deepEqual(kinds.filter((k) => new ProxyError(k, 'x').retryable), ['connect']);
    assert.equal(new ProxyError('timeout', 'connect timed out', true).retryable, true);
  });

  it('a request whose every attempt could not connect ends as 503, other failures keep their status', () => {
    assert.equal(finalAttemptError('web', new ProxyError('connect', 'refused')).status, 503);
    assert.equal(finalAttemptError('web', new ProxyError('timeout', 'slow')).status, 504);
  });
});
