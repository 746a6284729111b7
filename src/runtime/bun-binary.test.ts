import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BunMissing, bunBinary } from './bun-binary.ts';

/** A directory with a package.json, as a module of a project whose node_modules is given. */
function project(files: Record<string, string>): { from: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-bun-binary-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text, { mode: 0o755 });
  }
  return { from: pathToFileURL(join(dir, 'index.js')).href, dir };
}

test('without the optional dependency, the error says bun is not installed and how to fix it', (t) => {
  const p = project({ 'package.json': '{}' });
  t.after(() => rmSync(p.dir, { recursive: true, force: true }));
  assert.throws(() => bunBinary({}, p.from), (err: Error) => err instanceof BunMissing && /bun package is not installed.*optional dependency.*KUBEPROXY_BUN/.test(err.message));
});

test("the bun package's own executable is found through its package.json", (t) => {
  const p = project({ 'node_modules/bun/package.json': '{"name":"bun","bin":{"bun":"bin/bun.exe"}}', 'node_modules/bun/bin/bun.exe': '#!/bin/sh\n' });
  t.after(() => rmSync(p.dir, { recursive: true, force: true }));
  assert.equal(bunBinary({}, p.from), join(p.dir, 'node_modules/bun/bin/bun.exe'));
});

test('KUBEPROXY_BUN names the executable; one that does not exist is an error naming it', (t) => {
  const p = project({ 'package.json': '{}', 'my-bun': '#!/bin/sh\n' });
  t.after(() => rmSync(p.dir, { recursive: true, force: true }));
  assert.equal(bunBinary({ KUBEPROXY_BUN: join(p.dir, 'my-bun') }, p.from), join(p.dir, 'my-bun'));
  assert.throws(() => bunBinary({ KUBEPROXY_BUN: join(p.dir, 'nope') }, p.from), /KUBEPROXY_BUN: .*nope is not an executable file/);
});
