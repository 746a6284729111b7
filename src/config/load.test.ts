import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile, parseConfig, ConfigError } from './load.ts';

const ORIGINAL = `
proxy:
  listen: { address: "127.0.0.1", port: 8080 }
  services:
    - name: my-service
      domain: my-service.my-company.com
      hosts:
        - { address: "10.0.0.1", port: 9090 }
        - { address: "10.0.0.2", port: 9090 }
`;

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return [...err.problems];
  }
  assert.fail('config was accepted');
}

function withService(service: string, extra = ''): string {
  return `proxy:\n  listen: { port: 8080 }\n${extra}  services:\n${service}`;
}

describe('config', () => {
  test("the assignment's original format is accepted unchanged", () => {
    const c = parseConfig(ORIGINAL);
    assert.deepEqual(c.proxy.listen, { address: '127.0.0.1', port: 8080 });
    const s = c.proxy.services[0]!;
    assert.equal(s.name, 'my-service');
    assert.equal(s.domain, 'my-service.my-company.com');
    assert.deepEqual(s.hosts, [
      { address: '10.0.0.1', port: 9090, weight: 1 },
      { address: '10.0.0.2', port: 9090, weight: 1 },
    ]);
    assert.equal(c.proxy.loadBalancer, 'least-request');
  });

  test('a port that is not a number names its path and the bad value', () => {
    const yaml = withService(`    - name: a\n      domain: a.com\n      hosts: [{ address: x, port: 1 }]\n    - name: b\n      domain: b.com\n      hosts:\n        - { address: "10.0.0.1", port: "abc" }\n`);
    assert.deepEqual(problems(yaml), ['proxy.services[1].hosts[0].port: expected integer 1-65535, got "abc"']);
  });

  test('a port out of range is refused', () => {
    assert.deepEqual(problems(withService(`    - name: a\n      domain: a.com\n      hosts: [{ address: x, port: 70000 }]\n`)), [
      'proxy.services[0].hosts[0].port: expected integer 1-65535, got 70000',
    ]);
  });

  test('a typo in a key is an error that suggests the right key', () => {
    assert.deepEqual(problems(withService(`    - name: a\n      domain: a.com\n      hots: [{ address: x, port: 1 }]\n`)), [
      'proxy.services[0].hots: unknown key (did you mean "hosts"?)',
      'proxy.services[0].hosts: expected at least one host (or "discovery")',
    ]);
  });

  test('a domain used by two services is an error', () => {
    const yaml = withService(
      `    - name: a\n      domain: shop.example.com\n      hosts: [{ address: x, port: 1 }]\n    - name: b\n      domains: ["Shop.Example.com."]\n      hosts: [{ address: y, port: 1 }]\n`,
    );
    assert.deepEqual(problems(yaml), ['proxy.services[1].domains: domain "shop.example.com" is already used by service "a"']);
  });

  test('two services with the same name are an error', () => {
    const yaml = withService(`    - name: a\n      domain: a.com\n      hosts: [{ address: x, port: 1 }]\n    - name: a\n      domain: b.com\n      hosts: [{ address: y, port: 1 }]\n`);
    assert.deepEqual(problems(yaml), ['proxy.services[1].name: duplicate service name "a" (also services[0])']);
  });

  test('an unknown load balancer lists the valid ones', () => {
    const yaml = withService(`    - name: a\n      domain: a.com\n      loadBalancer: fastest\n      hosts: [{ address: x, port: 1 }]\n`);
    assert.deepEqual(problems(yaml), [
      'proxy.services[0].loadBalancer: expected one of "round-robin", "random", "least-request", "consistent-hash", got "fastest"',
    ]);
  });

  test('sizes and durations accept 10MiB and 5s forms', () => {
    const c = parseConfig(
      withService(`    - name: a\n      domain: a.com\n      hosts: [{ address: x, port: 1 }]\n      timeouts: { connect: 250ms, response: 1m30s }\n`, `  cache: { maxSize: 10MiB, maxObjectSize: 512KB }\n`),
    );
    assert.equal(c.proxy.cache.maxSize, 10 * 1024 * 1024);
    assert.equal(c.proxy.cache.maxObjectSize, 512_000);
    assert.deepEqual(c.proxy.services[0]!.timeouts, { connect: 250, response: 90_000 });
  });

  test('a bare number as a duration is refused because its unit would be a guess', () => {
    const yaml = withService(`    - name: a\n      domain: a.com\n      hosts: [{ address: x, port: 1 }]\n      timeouts: { connect: 5 }\n`);
    assert.deepEqual(problems(yaml), ['proxy.services[0].timeouts.connect: expected a duration like "250ms", "5s" or "1m30s", got 5']);
  });

  test('a bad size names the expected form', () => {
    assert.deepEqual(problems(withService(`    - name: a\n      domain: a.com\n      hosts: [{ address: x, port: 1 }]\n`, `  cache: { maxSize: lots }\n`)), [
      'proxy.cache.maxSize: expected a size like "512KiB", "10MiB" or a number of bytes, got "lots"',
    ]);
  });

  test('wildcard domains, weights and consistent-hash keys are accepted', () => {
    const c = parseConfig(
      withService(
        `    - name: a\n      domain: a.com\n      domains: ["*.a.com"]\n      loadBalancer: consistent-hash\n      hashKey: "header:X-User"\n      hosts: [{ address: x, port: 1, weight: 3 }]\n`,
      ),
    );
    assert.deepEqual(c.proxy.services[0]!.domains, ['*.a.com']);
    assert.equal(c.proxy.services[0]!.hosts[0]!.weight, 3);
  });

  test('a malformed hash key is refused', () => {
    const yaml = withService(`    - name: a\n      domain: a.com\n      hashKey: cookie\n      hosts: [{ address: x, port: 1 }]\n`);
    assert.deepEqual(problems(yaml), ['proxy.services[0].hashKey: expected "client-ip", "path" or "header:NAME", got "cookie"']);
  });

  test('a default service must exist', () => {
    const yaml = withService(`    - name: a\n      domain: a.com\n      hosts: [{ address: x, port: 1 }]\n`, `  defaultService: b\n`);
    assert.deepEqual(problems(yaml), ['proxy.defaultService: no service is named "b"']);
  });

  test('a missing proxy block says it is required', () => {
    assert.deepEqual(problems('services: []\n'), ['proxy: is required', 'services: unknown key (expected one of: proxy)']);
  });

  test('a YAML syntax error reads as one sentence with its line and column', () => {
    assert.deepEqual(problems('proxy:\n  listen: { port: 8080 }\n  services: a: b\n'), [
      'YAML syntax error at line 3, column 14: bad indentation of a mapping entry',
    ]);
  });

  test('an empty file, or one with only comments, says so', () => {
    assert.deepEqual(problems(''), ['the file is empty: expected a mapping with a "proxy" key']);
    assert.deepEqual(problems('\n  \n'), ['the file is empty: expected a mapping with a "proxy" key']);
    assert.deepEqual(problems('# nothing yet\n'), ['the file has no content (only comments): expected a mapping with a "proxy" key']);
  });

  test('a duplicate service name is reported even when other problems exist', () => {
    const yaml = withService(`    - name: a\n      domain: a.com\n      hosts: [{ address: x, port: 1 }]\n    - name: a\n      domain: b.com\n      hosts: [{ address: x, port: "abc" }]\n`);
    assert.deepEqual(problems(yaml), [
      'proxy.services[1].hosts[0].port: expected integer 1-65535, got "abc"',
      'proxy.services[1].name: duplicate service name "a" (also services[0])',
    ]);
  });

  test('values echoed from the file are cut to 80 characters; a junk file does not come back whole', () => {
    const long = 'x'.repeat(5000);
    const [p] = problems(withService(`    - name: a\n      domain: a.com\n      hosts: [{ address: x, port: "${long}" }]\n`));
    assert.match(p!, /^proxy\.services\[0\]\.hosts\[0\]\.port: expected integer 1-65535, got "x{79}…" \(5000 characters\)$/);
    // 1 MiB of pseudo-random bytes (a binary given by mistake).
    let seed = 1;
    const junk = Buffer.from(new Uint8Array(1 << 20).map(() => (seed = (seed * 1103515245 + 12345) % 2 ** 31) >> 23));
    const all = problems(junk.toString('latin1')).join('\n');
    assert.ok(all.length < 2500, `${all.length} characters of problems`);
    const key = 'k'.repeat(1000);
    assert.ok(problems(`proxy:\n  ${key}: 1\n  services: []\n`).some((p) => /^proxy\.k{79}…: unknown key/.test(p)));
  });

  test('admin.tokenFile is read (trailing newline dropped); token and tokenFile together are refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-token-'));
    try {
      writeFileSync(join(dir, 'token'), 's3cret-token\n');
      const config = (admin: string) => `proxy:\n  admin: ${admin}\n  services:\n    - { name: a, domain: a.com, hosts: [{ address: x, port: 1 }] }\n`;
      writeFileSync(join(dir, 'ok.yaml'), config('{ tokenFile: token }'));
      assert.equal(loadConfigFile(join(dir, 'ok.yaml')).proxy.admin.token, 's3cret-token');
      assert.equal(parseConfig(config('{}')).proxy.admin.address, '127.0.0.1');
      assert.deepEqual(problems(config('{ token: abc, tokenFile: token }')), ['proxy.admin.tokenFile: give either token or tokenFile, not both']);
      assert.deepEqual(problems(config('{ token: "two words" }')), [
        'proxy.admin.token: expected visible ASCII characters without spaces (a Bearer token, RFC 6750 §2.1), got 9 character(s)',
      ]);
      writeFileSync(join(dir, 'missing.yaml'), config('{ tokenFile: nope }'));
      assert.throws(() => loadConfigFile(join(dir, 'missing.yaml')), (err: ConfigError) => {
        assert.deepEqual(err.problems, ['proxy.admin.tokenFile: cannot read "nope": no such file']);
        return true;
      });
      writeFileSync(join(dir, 'dir.yaml'), config('{ tokenFile: . }'));
      assert.throws(() => loadConfigFile(join(dir, 'dir.yaml')), (err: ConfigError) => {
        assert.deepEqual(err.problems, ['proxy.admin.tokenFile: cannot read ".": a directory, not a file']);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a service needs at least one domain', () => {
    assert.deepEqual(problems(withService(`    - name: a\n      hosts: [{ address: x, port: 1 }]\n`)), ['proxy.services[0].domain: is required (or give "domains")']);
  });

  test('the validated config is frozen', () => {
    const c = parseConfig(ORIGINAL);
    assert.throws(() => {
      (c.proxy.services as unknown as unknown[]).push({});
    });
  });
});
