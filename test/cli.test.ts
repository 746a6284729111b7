import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { createSocket } from 'node:dgram';
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
    assert.match(r.stdout, /is valid: listen 127\.0\.0\.1:8080, admin 127\.0\.0\.1:0 \(no token: purge disabled\), 1 service\(s\): my-service \(1 host\(s\)\)/);
  });

  test('an invalid config is refused with every problem named, exit code 2, nothing started', () => {
    const path = file('bad.yaml', VALID(8080, 9090).replace('port: 9090', 'port: "abc"').replace('domain:', 'domian:'));
    const r = run(['--config', path]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /proxy\.services\[0\]\.hosts\[0\]\.port: expected integer 1-65535, got "abc"/);
    assert.match(r.stderr, /proxy\.services\[0\]\.domian: unknown key \(did you mean "domain"\?\)/);
    assert.equal(r.stdout, '');
  });

  test('--check on a config whose admin tokenFile is missing names the key and the file, exit code 2', () => {
    const path = file('token.yaml', VALID(8080, 9090).replace('port: 0 }', 'port: 0, tokenFile: /var/run/kubeproxy/admin/token }'));
    const r = run(['--check', '--config', path]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /proxy\.admin\.tokenFile: cannot read "\/var\/run\/kubeproxy\/admin\/token": no such file/);
    assert.doesNotMatch(r.stderr, /ENOENT|\n\s+at /, 'no error code or stack trace');
    assert.equal(r.stdout, '');
  });

  test('--check lists every problem: a duplicate service name next to other errors', () => {
    const path = file(
      'dup.yaml',
      VALID(8080, 9090).replace('services:\n', 'services:\n    - { name: my-service, domain: other.test, hosts: [{ address: "127.0.0.1", port: "x" }] }\n'),
    );
    const r = run(['--check', '--config', path]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /proxy\.services\[0\]\.hosts\[0\]\.port: expected integer 1-65535, got "x"/);
    assert.match(r.stderr, /proxy\.services\[1\]\.name: duplicate service name "my-service" \(also services\[0\]\)/);
  });

  test('--check on a 1 MB junk file, an empty file and a YAML syntax error: short, clear answers', () => {
    let seed = 7;
    const junk = Buffer.from(new Uint8Array(1 << 20).map(() => (seed = (seed * 1103515245 + 12345) % 2 ** 31) >> 23));
    const path = join(dir, 'junk.bin');
    writeFileSync(path, junk);
    const r = run(['--check', '--config', path]);
    assert.equal(r.status, 2);
    assert.ok(r.stderr.length < 3000, `${r.stderr.length} bytes on stderr`);
    for (const line of r.stderr.split('\n')) assert.ok(line.length < 300, line);

    const empty = run(['--check', '--config', file('empty.yaml', '')]);
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /the file is empty/);

    const syntax = run(['--check', '--config', file('syntax.yaml', 'proxy:\n  listen: { port: 8080 }\n  services: a: b\n')]);
    assert.equal(syntax.status, 2);
    assert.match(syntax.stderr, /\n {2}YAML syntax error at line 3, column 14: bad indentation of a mapping entry\n$/);
  });

  test('--check shows the admin address (loopback by default) and whether purge is enabled', () => {
    const path = file('admin.yaml', 'proxy:\n  services:\n    - { name: a, domain: a.test, hosts: [{ address: "127.0.0.1", port: 9 }] }\n');
    const r = run(['--check', '--config', path]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /admin 127\.0\.0\.1:9901 \(no token: purge disabled\)/);
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

  test('--help explains the flags and the exit codes; no config at all is a usage error', () => {
    const help = run(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--config FILE/);
    assert.match(help.stdout, /--check/);
    assert.match(help.stdout, /Exit codes: 0 .*\n.*2 invalid config.*64 usage error/);
    const none = run([], { KUBEPROXY_CONFIG: '' });
    assert.equal(none.status, 64);
    assert.match(none.stderr, /no config file/);
    const unknown = run(['--bogus']);
    assert.equal(unknown.status, 64);
  });

  test('the proxy serves, and SIGTERM (sent twice) lets an in-flight request finish before exiting 0', async () => {
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
      await new Promise((r) => setTimeout(r, 100));
      child.kill('SIGTERM'); // a second one (an impatient operator) does not cut the drain
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

  for (const workers of [1, 2]) {
    test(`SIGTERM while the start waits for DNS stops the process at once with exit 0 (workers: ${workers})`, async () => {
      // A DNS server that never answers: the first resolution would wait for its timeouts.
      const silent = createSocket('udp4');
      await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
      const config = `
proxy:
  listen: { address: "127.0.0.1", port: 0 }
  admin: { address: "127.0.0.1", port: 0 }
  workers: ${workers}
  dnsServers: ["127.0.0.1:${silent.address().port}"]
  services:
    - { name: pods, domain: pods.test, discovery: { dns: pods.test, port: 80 } }
`;
      const child = spawn(process.execPath, [bin('kubeproxy'), '--config', file(`dns-${workers}.yaml`, config)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, KUBEPROXY_LOG_LEVEL: 'info' },
      });
      try {
        const exited = once(child, 'exit');
        await waitForOutput(child, /kubeproxy starting/);
        await new Promise((r) => setTimeout(r, 150));
        let out = '';
        child.stdout!.on('data', (d) => (out += d));
        child.kill('SIGTERM');
        // Bounded: well under the 6 s of DNS timeouts (2 s, then 4 s) the start would otherwise wait for.
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        const [code, signal] = await exited;
        clearTimeout(timer);
        assert.deepEqual([code, signal], [0, null], out);
        assert.match(out, /"msg":"stopped"/);
        assert.doesNotMatch(out, /kubeproxy started/);
      } finally {
        child.kill('SIGKILL');
        silent.close();
      }
    });
  }

  test('a request cut when shutdown.drainTimeout runs out is logged with the cause "drain_timeout"', async () => {
    const origin = await startOrigin((req) => req.resume()); // never answers
    const port = await deadPort();
    const config = VALID(port, origin.port).replace('  services:', '  shutdown: { drainTimeout: 300ms }\n  services:');
    const child = spawn(process.execPath, [bin('kubeproxy'), '--config', file('cut.yaml', config)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBEPROXY_LOG_LEVEL: 'info' } });
    try {
      let out = await waitForOutput(child, /kubeproxy started/);
      child.stdout!.on('data', (d) => (out += d));
      const cut = request(port, { host: 'my-service.my-company.com', path: '/held' }).catch((err: Error) => err);
      while (origin.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0);
      assert.ok((await cut) instanceof Error, 'the client saw its connection closed');
      const line = out.split('\n').map((l) => (l.startsWith('{') ? (JSON.parse(l) as Record<string, unknown>) : {})).find((l) => l.path === '/held');
      assert.ok(line, out);
      assert.equal(line.errorCause, 'drain_timeout');
      assert.equal(line.status, 503, 'nothing was sent: logged as the 503 the cut stands for, not as 200 or 499');
      assert.match(String(line.errorMessage), /drainTimeout/);
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
      // The default balancer breaks ties at random: a few requests reach both, bounded here.
      for (let i = 0; i < 40 && names.size < 2; i++) {
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
