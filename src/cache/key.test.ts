import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cacheKey, methodClass, normalizeAuthority, servicePrefix, splitAbsoluteTarget } from './key.ts';

const key = (target: string, authority = 'example.com', method = 'GET', service = 'shop/web') =>
  cacheKey(service, method, { scheme: 'http', authority, target });

test('two query strings never share a cache entry', () => {
  assert.notEqual(key('/a?x=1'), key('/a?x=2'));
  assert.notEqual(key('/a?x=1&y=2'), key('/a?y=2&x=1'));
  assert.notEqual(key('/a'), key('/a?'));
  assert.notEqual(key('/a?x=1'), key('/a'));
});

test('the path is used exactly as sent, without decoding', () => {
  assert.notEqual(key('/a%2Fb'), key('/a/b'));
  assert.notEqual(key('/A'), key('/a'));
  assert.notEqual(key('/a/../b'), key('/b'));
});

test('the host is case-insensitive, the default port and a trailing dot are dropped', () => {
  const k = key('/p', 'Example.COM');
  assert.equal(key('/p', 'example.com:80'), k);
  assert.equal(key('/p', 'example.com.'), k);
  assert.equal(key('/p', 'example.com.:80'), k);
  assert.equal(key('/p', 'example.com:'), k);
  assert.notEqual(key('/p', 'example.com:8080'), k);
  assert.equal(
    cacheKey('s', 'GET', { scheme: 'https', authority: 'example.com:443', target: '/' }),
    cacheKey('s', 'GET', { scheme: 'https', authority: 'example.com', target: '/' }),
  );
  assert.notEqual(
    cacheKey('s', 'GET', { scheme: 'https', authority: 'example.com', target: '/' }),
    cacheKey('s', 'GET', { scheme: 'http', authority: 'example.com', target: '/' }),
  );
});

test('no service can read another service\'s entries', () => {
  assert.notEqual(key('/p', 'example.com', 'GET', 'a'), key('/p', 'example.com', 'GET', 'b'));
  // "a b" must not be able to forge a prefix of service "a".
  const forged = key('/p', 'example.com', 'GET', 'a GET http://example.com/p');
  assert.ok(!forged!.startsWith(servicePrefix('a')));
  assert.ok(key('/p', 'example.com', 'GET', 'a')!.startsWith(servicePrefix('a')));
  assert.ok(!key('/p', 'example.com', 'GET', 'ab')!.startsWith(servicePrefix('a')));
});

test('HEAD shares the GET entry, other methods have their own class', () => {
  assert.equal(key('/p', 'example.com', 'HEAD'), key('/p', 'example.com', 'GET'));
  assert.notEqual(key('/p', 'example.com', 'POST'), key('/p', 'example.com', 'GET'));
  assert.equal(methodClass('HEAD'), 'GET');
});

test('an absolute-form target uses its own authority', () => {
  assert.equal(key('http://EXAMPLE.com:80/p?q', 'ignored.example'), key('/p?q', 'example.com'));
  assert.equal(key('http://example.com', 'ignored.example'), key('/', 'example.com'));
  assert.deepEqual(splitAbsoluteTarget('https://h:1/x?y#frag'), { scheme: 'https', authority: 'h:1', pathAndQuery: '/x?y' });
});

test('a request without a valid authority or origin-form target is not cacheable', () => {
  assert.equal(key('/p', ''), undefined);
  assert.equal(key('/p', 'user@example.com'), undefined);
  assert.equal(key('/p', 'example.com:99999'), undefined);
  assert.equal(key('/p', 'exa mple.com'), undefined);
  assert.equal(key('*', 'example.com', 'OPTIONS'), undefined);
  assert.equal(key('example.com:443', 'example.com', 'CONNECT'), undefined);
});

test('IPv6 literals are normalised like names', () => {
  assert.equal(normalizeAuthority('[::1]:80', 'http'), '[::1]');
  assert.equal(normalizeAuthority('[FE80::1]:8080', 'http'), '[fe80::1]:8080');
  assert.equal(normalizeAuthority('[::1', 'http'), undefined);
});
