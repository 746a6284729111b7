import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseHost } from './host.ts';
import { Router } from './router.ts';

describe('Host normalisation', () => {
  const table: Array<[string, string | undefined]> = [
    ['Example.COM', 'example.com'],
    ['example.com:8080', 'example.com'],
    ['example.com.', 'example.com'],
    ['example.com.:80', 'example.com'],
    ['[::1]:8080', '[::1]'],
    ['[2001:DB8::1]', '[2001:db8::1]'],
    ['10.0.0.1:80', '10.0.0.1'],
    ['', undefined],
    ['exa mple.com', undefined],
    ['example.com:80x', undefined],
    ['example.com:', 'example.com'],
    ['example.com:65535', 'example.com'],
    ['example.com:65536', undefined],
    ['[::1]:65536', undefined],
    ['[::1]x80', undefined],
    ['[::1', undefined],
    ['[::ffff:10.0.0.1]', '[::ffff:10.0.0.1]'],
    ['[v1.Fe80::a+en1]:80', '[v1.fe80::a+en1]'],
    ['[FE80::1%25eth0]', '[fe80::1%25eth0]'],
    ['[a"b]', undefined],
    ['[::1\\]', undefined],
    ['[]', undefined],
    ['[example.com]', undefined],
    ['a/b', undefined],
  ];
  for (const [input, expected] of table) {
    test(`${JSON.stringify(input)} routes as ${JSON.stringify(expected)}`, () => {
      assert.equal(normaliseHost(input), expected);
    });
  }
});

describe('Router', () => {
  const router = new Router(
    [
      { domains: ['shop.example.com'], target: 'shop' },
      { domains: ['*.example.com'], target: 'wild' },
      { domains: ['*.eu.example.com'], target: 'eu' },
      { domains: ['api.eu.example.com'], target: 'api-eu' },
    ],
    undefined,
  );
  const table: Array<[string, string | undefined]> = [
    ['shop.example.com', 'shop'],
    ['SHOP.example.com:443', 'shop'],
    ['shop.example.com.', 'shop'],
    ['blog.example.com', 'wild'],
    ['a.b.example.com', 'wild'],
    ['x.eu.example.com', 'eu'],
    ['api.eu.example.com', 'api-eu'],
    ['example.com', undefined],
    ['notexample.com', undefined],
    ['other.org', undefined],
  ];
  /** What the pipeline does with a Host header: normalise, then match. */
  const route = <S>(r: Router<S>, host: string) => r.match(normaliseHost(host)!);
  for (const [host, expected] of table) {
    test(`Host ${host} goes to ${expected ?? 'no service'}`, () => {
      assert.equal(route(router, host), expected);
    });
  }

  test('an exact name wins over a wildcard that also matches', () => {
    assert.equal(route(router, 'api.eu.example.com'), 'api-eu');
  });

  test('unmatched hosts go to the default service when one is configured', () => {
    const withDefault = new Router([{ domains: ['a.com'], target: 'a' }], 'fallback');
    assert.equal(route(withDefault, 'b.com'), 'fallback');
    assert.equal(route(withDefault, 'a.com'), 'a');
  });
});
