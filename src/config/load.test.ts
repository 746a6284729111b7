import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from './load.ts';

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
    assert.equal(c.proxy.loadBalancer, 'round-robin');
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

  test('YAML syntax errors are reported with their position', () => {
    const [p] = problems('proxy: [\n');
    assert.match(p!, /^YAML: .*line \d+, column \d+/);
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
