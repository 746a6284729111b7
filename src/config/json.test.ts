import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CORE_SCHEMA, load } from 'js-yaml';
import { parseJsonConfig } from './json.ts';
import { ConfigError, parseConfig } from './load.ts';

/**
 * What the YAML parser makes of `text`, as config/load.ts calls it; undefined on a YAML error.
 * js-yaml reads -0 as 0 (JSON.parse keeps -0: no config key tells them apart), and refuses a tab
 * before a `:` in flow mappings, valid JSON that the fast path reads as JSON.parse does.
 */
function viaYaml(text: string): unknown {
  try {
    return load(text, { schema: CORE_SCHEMA });
  } catch {
    return undefined;
  }
}

/** -0 as 0, the one value JSON.parse and js-yaml read differently. */
const sameAsYaml = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

test('a config written as JSON is read to exactly what the YAML parser reads from it', () => {
  const texts = [
    '{"proxy": {"services": [{"name": "a", "domain": "a.test", "hosts": [{"address": "127.0.0.1", "port": 8080}]}]}}',
    '\n\t{\n\t"proxy": {\n\t\t"listen": {"port": 1e3, "address": "::"},\n\t\t"via": false, "x": null, "y": -0, "z": 12.50}\n}\n',
    '{"a": "\\u00e9\\ud83d\\ude00 \\/ \\" \\\\ : , { }", "b": ["", [], {}, [1, [2, {"c": true}]]]}',
    '{"__proto__": {"polluted": 1}, "constructor": 2}',
    '{"": 0, "k:ey": "va:lue", "esc\\"aped:": ":"}',
  ];
  for (const text of texts) {
    const json = parseJsonConfig(text);
    assert.notEqual(json, undefined, text);
    assert.deepEqual(sameAsYaml(json), viaYaml(text), text);
  }
  assert.equal(Object.is((parseJsonConfig('{"y": -0}') as { y: number }).y, -0), true);
});

test('YAML, broken JSON and JSON with a repeated key are left to the YAML parser', () => {
  for (const text of [
    'proxy:\n  services: []\n',
    '{proxy: {services: []}}',
    '{"proxy": {"services": [],}}',
    '{"proxy": 1} # a comment',
    '["proxy"]',
    '"proxy"',
    '\ufeff{"proxy": 1}',
    '{"proxy": {"a": 1, "a": 2}}',
    '{"proxy": {"services": [{"name": "a"}, {"name": "b", "name": "c"}]}}',
  ]) {
    assert.equal(parseJsonConfig(text), undefined, text);
  }
});

test('a repeated key in a JSON config is an error naming its line and column, as in YAML', () => {
  const text = '{\n  "proxy": {\n    "services": [],\n    "services": []\n  }\n}\n';
  assert.throws(
    () => parseConfig(text),
    (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /^YAML syntax error at line 4, column 5: duplicated mapping key/.test(p)),
  );
});

test('a JSON config gets the same path-precise validation errors as YAML', () => {
  const asJson = '{"proxy": {"services": [{"name": "a", "domain": "a.test", "hosts": [{"address": "127.0.0.1", "port": "abc"}]}]}}';
  const asYaml = 'proxy:\n  services:\n    - name: a\n      domain: a.test\n      hosts:\n        - address: 127.0.0.1\n          port: abc\n';
  const problems = (text: string) => {
    try {
      parseConfig(text);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
    }
    return [];
  };
  assert.deepEqual(problems(asJson), problems(asYaml));
  assert.match(problems(asJson)[0] ?? '', /^proxy\.services\[0\]\.hosts\[0\]\.port: /);
});

test('on generated JSON documents, the fast path gives the YAML result or leaves the document to the YAML parser', () => {
  // A fixed-seed generator: the same 300 documents on every run.
  let seed = 19;
  const rand = (n: number) => {
    // xorshift32
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const KEYS = ['a', 'b', 'name', 'port', 'k:', '"q"', '\\', 'é', ''];
  const SCALARS = ['0', '-1', '1.5e2', '-0', 'true', 'false', 'null', '"x"', '"a: b"', '"\\u0041\\n"', '"{}"', '"#"'];
  const ws = () => [' ', '', '\n', '\t', '\n  '][rand(5)]!;
  const gen = (depth: number): string => {
    const kind = depth > 3 ? 2 : rand(3);
    if (kind === 2) return SCALARS[rand(SCALARS.length)]!;
    const n = rand(4);
    if (kind === 1) return `[${ws()}${Array.from({ length: n }, () => gen(depth + 1)).join(`,${ws()}`)}${ws()}]`;
    const members = Array.from({ length: n }, () => `${JSON.stringify(KEYS[rand(KEYS.length)])}${ws()}:${ws()}${gen(depth + 1)}`);
    return `{${ws()}${members.join(`,${ws()}`)}${ws()}}`;
  };
  let taken = 0;
  let repeated = 0;
  for (let i = 0; i < 300; i++) {
    const text = `{"proxy": ${gen(0)}}`;
    const yaml = viaYaml(text);
    const json = parseJsonConfig(text);
    if (json === undefined) {
      // Declined only where the YAML parser has something to report (a repeated key).
      assert.equal(yaml, undefined, text);
      repeated++;
    } else {
      if (yaml !== undefined) assert.deepEqual(sameAsYaml(json), yaml, text);
      taken++;
    }
  }
  assert.ok(taken > 100 && repeated > 10, `${taken} taken, ${repeated} with a repeated key`);
});
