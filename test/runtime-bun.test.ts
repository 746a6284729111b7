import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { namedOrigin } from './helpers/origin.ts';
import { request } from './helpers/http.ts';
import { noBun } from './helpers/bun.ts';

const bin = fileURLToPath(new URL('../bin/kubeproxy', import.meta.url));

function config(dir: string, upstream: number): string {
  const path = join(dir, 'config.yaml');
  writeFileSync(path, JSON.stringify({ proxy: { listen: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 }, services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: upstream }] }] } }));
  return path;
}

for (const [how, args, env] of [
  ['--runtime bun', ['--runtime', 'bun'], {}],
  ['KUBEPROXY_RUNTIME=bun', [], { KUBEPROXY_RUNTIME: 'bun' }],
] as const) {
  test(`kubeproxy ${how} serves on Bun and stops with exit 0 on SIGTERM`, { skip: noBun, timeout: 60_000 }, async (t) => {
    const origin = await namedOrigin('a');
    const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-bun-'));
    t.after(async () => {
      await origin.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const child = spawn(process.execPath, [bin, ...args, '--config', config(dir, origin.port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, KUBEPROXY_LOG_LEVEL: 'info', ...env },
    });
    t.after(() => child.kill('SIGKILL'));
    const lines: Array<Record<string, unknown>> = [];
    const started = new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const l = JSON.parse(line) as Record<string, unknown>;
        lines.push(l);
        if (l.msg === 'kubeproxy started') resolve(l);
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code} before starting`)));
    });
    const port = ((await started).listen as { port: number }).port;
    assert.equal(lines.find((l) => l.msg === 'kubeproxy starting')?.runtime, 'bun');
    const r = await request(port, { host: 'web.test', path: '/' });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'a');
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
  });
}

test('--runtime bun without Bun installed fails with a message naming the problem', { timeout: 30_000 }, () => {
  const r = spawnSync(process.execPath, [bin, '--runtime', 'bun', '--check', '--config', 'unused.yaml'], {
    encoding: 'utf8',
    env: { ...process.env, KUBEPROXY_BUN: '/nonexistent/bun' },
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^kubeproxy: --runtime bun: KUBEPROXY_BUN: \/nonexistent\/bun is not an executable file/);
});

test('an unknown --runtime is a usage error (64) listing the runtimes', () => {
  const r = spawnSync(process.execPath, [bin, '--runtime', 'deno', '--config', 'unused.yaml'], { encoding: 'utf8' });
  assert.equal(r.status, 64);
  assert.match(r.stderr, /--runtime: "deno" is not a runtime \(use node or bun\)/);
});

test('when the Node parent of --runtime bun is killed (SIGKILL), the Bun process drains and exits rather than keep the ports', { skip: noBun, timeout: 60_000 }, async (t) => {
  const origin = await namedOrigin('a');
  const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-bun-'));
  t.after(async () => {
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const parent = spawn(process.execPath, [bin, '--runtime', 'bun', '--config', config(dir, origin.port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, KUBEPROXY_LOG_LEVEL: 'info' },
  });
  t.after(() => parent.kill('SIGKILL'));
  const lines: Array<Record<string, unknown>> = [];
  const seen = (msg: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`"${msg}" not logged within 20 s`)), 20_000);
      const check = () => {
        const l = lines.find((x) => x.msg === msg);
        if (l === undefined) return;
        clearTimeout(timer);
        resolve(l);
      };
      rl.on('line', check);
      check();
    });
  const rl = createInterface({ input: parent.stdout! });
  rl.on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  const started = await seen('kubeproxy started');
  parent.kill('SIGKILL');
  // The Bun process keeps the pipe open: its lines still come after its parent is gone.
  await seen('stopped');
  const alive = () => {
    try {
      process.kill(started.pid as number, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(alive(), false, 'the Bun process has exited');
});
