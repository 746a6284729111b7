import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { watchConfig } from './watch.ts';

/** Counts onChange calls and lets a test await the next one. */
function recorder() {
  let calls = 0;
  let waiters: Array<() => void> = [];
  return {
    get calls() {
      return calls;
    },
    onChange: () => {
      calls++;
      const w = waiters;
      waiters = [];
      for (const fn of w) fn();
    },
    /** Resolves when the count reaches `n` (fails the test after 10 s). */
    until(n: number): Promise<void> {
      return new Promise((resolve, reject) => {
        if (calls >= n) return resolve();
        const timer = setTimeout(() => reject(new Error(`expected ${n} change(s), saw ${calls}`)), 10_000);
        const check = () => {
          if (calls >= n) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        waiters.push(check);
      });
    },
  };
}

async function tempDir(t: { after: (fn: () => unknown) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kubeproxy-watch-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A temp config file with `content`, watched with `options`; the watch closes after the test. */
async function watchedFile(t: { after: (fn: () => unknown) => void }, content: string, options: Parameters<typeof watchConfig>[2] = { debounceMs: 50 }) {
  const dir = await tempDir(t);
  const file = join(dir, 'config.yaml');
  await writeFile(file, content);
  const r = recorder();
  const w = watchConfig(file, r.onChange, options);
  t.after(() => w.close());
  return { dir, file, r };
}

test('a file written in place triggers one reload, however many writes the burst had', async (t) => {
  const { file, r } = await watchedFile(t, 'a: 1\n', { debounceMs: 100 });
  await writeFile(file, 'a: 2\n');
  await writeFile(file, 'a: 3\n');
  await writeFile(file, 'a: 4\n');
  await r.until(1);
  // A later distinct change is seen as exactly one more: the burst above was one call.
  await writeFile(file, 'a: 5\n');
  await r.until(2);
  assert.equal(r.calls, 2);
});

test('rewriting the same content does not reload', async (t) => {
  const { file, r } = await watchedFile(t, 'a: 1\n');
  await writeFile(file, 'a: 1\n');
  await new Promise((resolve) => setTimeout(resolve, 300));
  await writeFile(file, 'a: 2\n');
  await r.until(1);
  assert.equal(r.calls, 1, 'only the real change counted');
});

test('a file replaced by rename (editors, atomic writes) is seen, and so is the next change', async (t) => {
  const { dir, file, r } = await watchedFile(t, 'a: 1\n');
  await writeFile(join(dir, 'config.yaml.tmp'), 'a: 2\n');
  await rename(join(dir, 'config.yaml.tmp'), file);
  await r.until(1);
  // The watch followed the new inode: an in-place write to it is seen too.
  await writeFile(file, 'a: 3\n');
  await r.until(2);
});

test('a Kubernetes ConfigMap update (..data symlink swap) is seen', async (t) => {
  const dir = await tempDir(t);
  // The layout kubelet creates: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>
  await mkdir(join(dir, '..2024_01_01_00_00_00.1'));
  await writeFile(join(dir, '..2024_01_01_00_00_00.1', 'config.yaml'), 'a: 1\n');
  await symlink('..2024_01_01_00_00_00.1', join(dir, '..data'));
  await symlink(join('..data', 'config.yaml'), join(dir, 'config.yaml'));
  const r = recorder();
  const w = watchConfig(join(dir, 'config.yaml'), r.onChange, { debounceMs: 50 });
  t.after(() => w.close());
  // kubelet's update: a new timestamped dir, a new ..data_tmp link renamed over ..data, old dir removed.
  await mkdir(join(dir, '..2024_01_01_00_01_00.2'));
  await writeFile(join(dir, '..2024_01_01_00_01_00.2', 'config.yaml'), 'a: 2\n');
  await symlink('..2024_01_01_00_01_00.2', join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  // Seen from the swap itself, before kubelet deletes the old directory (a watch on the file's
  // old inode would only notice that deletion, if it happens at all).
  await r.until(1);
  await rm(join(dir, '..2024_01_01_00_00_00.1'), { recursive: true });
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(r.calls, 1, 'removing the old directory changes nothing');
});

test('a file that disappears and comes back with new content reloads once it is back', async (t) => {
  const { file, r } = await watchedFile(t, 'a: 1\n');
  await rm(file);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(r.calls, 0, 'a missing file is not a change');
  await writeFile(file, 'a: 2\n');
  await r.until(1);
});

test('after close, changes are no longer reported', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'config.yaml');
  await writeFile(file, 'a: 1\n');
  const r = recorder();
  const w = watchConfig(file, r.onChange, { debounceMs: 50 });
  w.close();
  await writeFile(file, 'a: 2\n');
  // A second watcher sees the change; the closed one must not have.
  const r2 = recorder();
  const w2 = watchConfig(file, r2.onChange, { debounceMs: 50 });
  t.after(() => w2.close());
  await writeFile(file, 'a: 3\n');
  await r2.until(1);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(r.calls, 0);
});

test('a change made between loading the config and starting the watch is reported at once', async (t) => {
  // The running config was loaded from "a: 1"; the file already says "a: 2" when watching starts.
  const { r } = await watchedFile(t, 'a: 2\n', { debounceMs: 50, baseline: 'a: 1\n' });
  await r.until(1);
});

test('a baseline equal to the file reports nothing until the file changes', async (t) => {
  const { file, r } = await watchedFile(t, 'a: 1\n', { debounceMs: 50, baseline: Buffer.from('a: 1\n') });
  await new Promise((resolve) => setTimeout(resolve, 200));
  await writeFile(file, 'a: 2\n');
  await r.until(1);
  assert.equal(r.calls, 1);
});
