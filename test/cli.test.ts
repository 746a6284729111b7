import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { deadPort, startOrigin } from './helpers/origin.ts';
import { request } from './helpers/http.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string) => join(root, 'bin', name);
const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [bin('kubeproxy'), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
}

/** Waits until the child printed a line matching `pattern` on stdout (JSON logs) or exits. */
async function waitForOutput(child: ChildProcess, pattern: RegExp): Promise<string> {
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; got: ${out}`)), 20_000);
    child.stdout!.on('data', (d) => {
      out += d;
      if (pattern.test(out)) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${pattern}: ${out}`));
    });
  });
}

const VALID = (port: number, upstream: number, admin = 0) => `
proxy:
  listen: { address: "127.0.0.1", port: ${port} }
  admin: { address: "127.0.0.1", port: ${admin} }
  services:
    - name: my-service
      domain: my-service.my-company.com
      hosts:
        - { address: "127.0.0.1", port: ${upstream} }
`;

describe('kubeproxy CLI', () => {
  test('--check accepts a valid config, prints a summary and exits 0', () => {
    const r = run(['--check', '--config', file('ok.yaml', VALID(8080, 9090))]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /is valid: listen 127\.0\.0\.1:8080, 1 service\(s\): my-service \(1 host\(s\)\)/);
  });

  test('an invalid config is refused with every problem named, exit code 2, nothing started', () => {
    const path = file('bad.yaml', VALID(8080, 9090).replace('port: 9090', 'port: "abc"').replace('domain:', 'domian:'));
    const r = run(['--config', path]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /proxy\.services\[0\]\.hosts\[0\]\.port: expected integer 1-65535, got "abc"/);
    assert.match(r.stderr, /proxy\.services\[0\]\.domian: unknown key \(did you mean "domain"\?\)/);
    assert.equal(r.stdout, '');
  });

  test('a missing config file is a clear error', () => {
    const r = run(['--config', join(dir, 'nope.yaml')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /cannot read file: ENOENT/);
  });

  test('KUBEPROXY_CONFIG names the config when --config is absent', () => {
    const r = run(['--check'], { KUBEPROXY_CONFIG: file('env.yaml', VALID(8081, 9091)) });
    assert.equal(r.status, 0, r.stderr);
  });

  test('--help explains the flags; no config at all is a usage error', () => {
    const help = run(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--config FILE/);
    assert.match(help.stdout, /--check/);
    const none = run([], { KUBEPROXY_CONFIG: '' });
    assert.equal(none.status, 64);
    assert.match(none.stderr, /no config file/);
    const unknown = run(['--bogus']);
    assert.equal(unknown.status, 64);
  });

  test('the proxy serves, and SIGTERM lets an in-flight request finish before exiting 0', async () => {
    const origin = await startOrigin((req, res) => {
      const delay = req.url === '/slow' ? 600 : 0;
      setTimeout(() => res.end(`done ${req.url}`), delay);
    });
    const port = await deadPort();
    const child = spawn(process.execPath, [bin('kubeproxy'), '--config', file('run.yaml', VALID(port, origin.port))], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBEPROXY_LOG_LEVEL: 'info' } });
    try {
      await waitForOutput(child, /kubeproxy started/);
      const quick = await request(port, { host: 'my-service.my-company.com', path: '/quick' });
      assert.equal(quick.text, 'done /quick');
      const slow = request(port, { host: 'my-service.my-company.com', path: '/slow' });
      await new Promise((r) => setTimeout(r, 150));
      child.kill('SIGTERM');
      const reply = await slow;
      assert.equal(reply.status, 200);
      assert.equal(reply.text, 'done /slow');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0);
    } finally {
      child.kill('SIGKILL');
      await origin.close();
    }
  });

  test('the demo launcher starts demo upstreams that echo their name and the request', async () => {
    const [port, up1, up2] = [await deadPort(), await deadPort(), await deadPort()];
    const path = file('demo.yaml', VALID(port, up1).replace(/(hosts:\n.*\n)/, `$1        - { address: "127.0.0.1", port: ${up2} }\n`));
    const child = spawn(process.execPath, [bin('kubeproxy-demo'), '--config', path], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBEPROXY_LOG_LEVEL: 'info' } });
    try {
      await waitForOutput(child, /kubeproxy started/);
      const names = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const r = await request(port, { host: 'my-service.my-company.com', path: '/hello?x=1' });
        const body = JSON.parse(r.text);
        assert.equal(body.path, '/hello?x=1');
        assert.equal(body.method, 'GET');
        names.add(body.instance);
      }
      assert.deepEqual([...names].sort(), ['my-service-1', 'my-service-2']);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
