/**
 * No import cycles between files under src/: a cycle means neither side can be read, tested or
 * loaded without the other (and an ES module cycle can meet a binding before it is initialised).
 * The graph comes from dependency-cruiser, type-only imports included: a layer that needs a type
 * from the layer above it is a cycle too, even if nothing of it runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { cruise } from 'dependency-cruiser';

const ROOT = join(import.meta.dirname, '..');

/** Every import cycle among the files under `dir`, each written `a.ts -> b.ts -> a.ts`. */
async function importCycles(dir: string): Promise<string[]> {
  const result = await cruise([relative(ROOT, dir) || '.'], {
    baseDir: ROOT,
    tsPreCompilationDeps: true,
    exclude: { path: '\\.test\\.ts$' },
    doNotFollow: { path: 'node_modules' },
    // Packages whose `exports` only name `import` resolve too (none of them is part of a cycle).
    enhancedResolveOptions: { conditionNames: ['import', 'require', 'node', 'default'] },
    ruleSet: { forbidden: [{ name: 'no-circular', severity: 'error', from: {}, to: { circular: true } }] },
    validate: true,
  });
  if (typeof result.output === 'string') throw new Error('dependency-cruiser: expected a result object');
  const cycles = new Set<string>();
  for (const v of result.output.summary.violations) {
    if (v.rule.name !== 'no-circular') continue;
    const path = [v.from, ...(v.cycle ?? []).map((step) => step.name)];
    // The same cycle is reported from each of its files: keep one spelling, from its first file in sort order.
    const ring = path.slice(0, -1);
    const start = ring.indexOf([...ring].sort()[0]!);
    const rotated = [...ring.slice(start), ...ring.slice(0, start)];
    cycles.add([...rotated, rotated[0]].join(' -> '));
  }
  return [...cycles].sort();
}

test('no file under src/ imports itself back through other files', async () => {
  const cycles = await importCycles(join(ROOT, 'src'));
  assert.deepEqual(cycles, [], `import cycles under src/:\n  ${cycles.join('\n  ')}`);
});

test('the cycle check reports a cycle, including one closed by a type-only import', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-cycles-'));
  try {
    writeFileSync(join(dir, 'a.ts'), "import { b } from './b.ts';\nexport const a = () => b;\n");
    writeFileSync(join(dir, 'b.ts'), "import type { C } from './c.ts';\nexport const b = (c?: C) => c;\n");
    writeFileSync(join(dir, 'c.ts'), "import { a } from './a.ts';\nexport type C = ReturnType<typeof a>;\n");
    writeFileSync(join(dir, 'leaf.ts'), "import { a } from './a.ts';\nexport const leaf = a;\n");
    const cycles = await importCycles(dir);
    const name = (f: string) => relative(ROOT, join(dir, f));
    assert.deepEqual(cycles, [`${name('a.ts')} -> ${name('b.ts')} -> ${name('c.ts')} -> ${name('a.ts')}`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
