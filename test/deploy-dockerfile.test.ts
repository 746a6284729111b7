/**
 * The Dockerfile, checked without a Docker engine: its structure (stages, user, entrypoint,
 * copies) statically, and the runtime stages' file layout for real: the sources compiled by the
 * build stage's command, laid out as the image lays them out, started through each stage's
 * ENTRYPOINT (node, and bun for the Bun variant), then stopped with SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { validateConfig } from '../src/config/load.ts';
import { BunMissing, BUN_ENV, bunBinary } from '../src/runtime/bun-binary.ts';
import { BUN_PRELOAD, RUNTIME_ENV } from '../src/runtime/select.ts';
import { V8_FLAGS } from '../src/v8-flags.ts';
import { ROOT, readText, readYaml, runCli, runCommand, tempFile } from './helpers/deploy.ts';
import { request } from './helpers/http.ts';
import { deadPort, namedOrigin } from './helpers/origin.ts';

interface Instruction {
  cmd: string;
  args: string;
  line: number;
}

interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped (Dockerfile reference, "Format"). */
function parseDockerfile(text: string): { globalArgs: Map<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  let current: Instruction | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line.startsWith('#')) return;
    if (current) current.args += ` ${line.replace(/\\$/, '').trim()}`;
    else if (line !== '') {
      const [cmd, ...rest] = line.replace(/\\$/, '').split(/\s+/);
      current = { cmd: cmd!.toUpperCase(), args: rest.join(' '), line: i + 1 };
    }
    if (current && !line.endsWith('\\')) {
      current.args = current.args.trim();
      instructions.push(current);
      current = undefined;
    }
  });
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.cmd === 'FROM') {
      const [image, as, name] = ins.args.split(/\s+/);
      const resolved = image!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => globalArgs.get((a ?? b)!) ?? '');
      const base = stages.find((s) => s.name === resolved);
      stages.push({ image: base ? base.image : resolved, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length === 0 && ins.cmd === 'ARG') {
      const [k, v] = ins.args.split('=');
      globalArgs.set(k!, v ?? '');
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

const dockerfile = parseDockerfile(readText('Dockerfile'));
const final = dockerfile.stages.at(-1)!;
const pkg = JSON.parse(readText('package.json')) as { bin: Record<string, string>; scripts: Record<string, string> };

function all(stage: Stage, cmd: string): Instruction[] {
  return stage.instructions.filter((i) => i.cmd === cmd);
}

function execForm(ins: Instruction | undefined): string[] {
  assert.ok(ins, 'instruction present');
  const parsed = JSON.parse(ins.args) as unknown;
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === 'string'), `${ins.cmd} is in exec form (a JSON array), not shell form`);
  return parsed as string[];
}

/** `COPY [--from=x] [--chown=…] src… dest` → { from, sources, dest }. */
function copies(stage: Stage): Array<{ from: string | undefined; sources: string[]; dest: string }> {
  return all(stage, 'COPY').map((c) => {
    const words = c.args.split(/\s+/);
    const from = words.find((w) => w.startsWith('--from='))?.slice(7);
    const paths = words.filter((w) => !w.startsWith('--'));
    return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
  });
}

/** .dockerignore patterns (Go filepath.Match plus `**`), matched against a path and its parents. */
function ignoredByDockerignore(path: string): boolean {
  const patterns = readText('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const toRegex = (p: string) =>
    new RegExp(
      `^${p
        .replace(/^\//, '')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\/?/g, '\u0000')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')
        .replace(/\u0000/g, '(.*/)?')}$`,
    );
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    const re = toRegex(negate ? p.slice(1) : p);
    if (candidates.some((c) => re.test(c))) ignored = !negate;
  }
  return ignored;
}

describe('Dockerfile', () => {
  it('is multi-stage and the runtime stage is Node 24 LTS slim', () => {
    assert.ok(dockerfile.stages.length >= 2, 'at least a build and a runtime stage');
    assert.match(final.image, /^node:24(\.\d+)*-([a-z]+-)?slim(@sha256:[0-9a-f]{64})?$/);
  });

  it('a build stage installs the dev dependencies and compiles TypeScript; the runtime stage takes only dist/ from it', () => {
    const build = dockerfile.stages.find((s) => all(s, 'RUN').some((r) => /\bnpm run build\b/.test(r.args)));
    assert.ok(build?.name, 'a named stage runs `npm run build`');
    assert.match(pkg.scripts.build ?? '', /\btsc\b/);
    const installs = all(build, 'RUN').filter((r) => /\bnpm ci\b/.test(r.args));
    assert.ok(installs.length > 0 && installs.every((r) => !/--omit=dev|--production/.test(r.args)), 'dev dependencies installed to compile');
    const fromBuild = copies(final).filter((c) => c.from === build.name);
    assert.deepEqual(
      fromBuild.flatMap((c) => c.sources),
      ['/app/dist'],
    );
  });

  it('the runtime stage gets production dependencies only (npm ci --omit=dev)', () => {
    const modules = copies(final).find((c) => c.sources.some((s) => s.endsWith('node_modules')));
    assert.ok(modules?.from, 'node_modules comes from another stage');
    const deps = dockerfile.stages.find((s) => s.name === modules.from)!;
    const ci = all(deps, 'RUN').find((r) => /\bnpm ci\b/.test(r.args));
    assert.match(ci?.args ?? '', /--omit=dev/);
    assert.match(ci?.args ?? '', /--ignore-scripts/, '`prepare` would run tsc, which is a dev dependency');
    assert.ok(!all(final, 'RUN').some((r) => /\bnpm (ci|install|i)\b/.test(r.args)), 'no install in the runtime stage');
  });

  it('runs as a numeric non-root user, the one the chart asks for', () => {
    const user = all(final, 'USER').at(-1)?.args ?? '';
    const [uid, gid] = user.split(':');
    assert.match(uid ?? '', /^\d+$/, 'numeric, so Kubernetes can check runAsNonRoot');
    assert.notEqual(Number(uid), 0);
    const chart = readYaml<{ podSecurityContext: { runAsUser: number; runAsGroup: number } }>('deploy/helm/kubeproxy/values.yaml');
    assert.equal(Number(uid), chart.podSecurityContext.runAsUser);
    if (gid !== undefined) assert.equal(Number(gid), chart.podSecurityContext.runAsGroup);
    const demo = readText('deploy/examples/demo-upstream/demo-upstream.yaml');
    assert.match(demo, new RegExp(`runAsUser: ${uid}\\b`));
  });

  it('ENTRYPOINT is exec form: tini as PID 1 forwarding signals to node, which runs a bin of the package', () => {
    const entry = execForm(all(final, 'ENTRYPOINT').at(-1));
    assert.deepEqual(entry.slice(0, 3), ['/usr/bin/tini', '--', 'node']);
    assert.ok(
      all(final, 'RUN').some((r) => /apt-get install\b.*\btini\b/.test(r.args)),
      'the runtime stage installs tini (Debian package)',
    );
    const bin = entry.at(-1)!;
    assert.ok(Object.values(pkg.bin).includes(bin), `${bin} is a bin of package.json`);
    assert.ok(existsSync(join(ROOT, bin)));
    assert.match(readText(bin), /(from |import\()'\.\.\/dist\/cli\.js'/, 'the bin runs the compiled CLI that the image copies to dist/');
    assert.equal(all(final, 'STOPSIGNAL').at(-1)?.args, 'SIGTERM');
    assert.ok(!/\b(sh|bash) -c\b/.test(entry.join(' ')), 'no shell in between');
  });

  it('the image starts node with the V8 flags of src/v8-flags.ts, and nothing else', () => {
    const entry = execForm(all(final, 'ENTRYPOINT').at(-1));
    assert.deepEqual(entry.slice(3, -1), [...V8_FLAGS]);
  });

  it('CMD passes arguments the CLI accepts', async () => {
    const cmd = execForm(all(final, 'CMD').at(-1));
    const i = cmd.indexOf('--config');
    assert.ok(i >= 0);
    const file = tempFile('config.yaml', readText('examples/config.yaml'));
    try {
      const run = await runCli([...cmd.slice(0, i + 1), file.path, ...cmd.slice(i + 2), '--check']);
      assert.equal(run.code, 0, run.stderr);
    } finally {
      file.cleanup();
    }
    const env = all(final, 'ENV').map((e) => e.args).join(' ');
    assert.match(env, new RegExp(`KUBEPROXY_CONFIG=${cmd[i + 1]!.replace(/[.]/g, '\\.')}\\b`), 'KUBEPROXY_CONFIG names the same file');
    assert.match(env, /HOME=\/tmp\b/, 'HOME is writable with a read-only root filesystem');
  });

  it('EXPOSE lists the default listen and admin ports', () => {
    const defaults = validateConfig({ proxy: { services: [{ name: 'x', domain: 'x.test', hosts: [{ address: '10.0.0.1', port: 80 }] }] } }).proxy;
    const exposed = all(final, 'EXPOSE').flatMap((e) => e.args.split(/\s+/)).map((p) => Number(p.split('/')[0]));
    assert.deepEqual(exposed.sort(), [defaults.listen.port, defaults.admin.port].sort());
  });

  it('every file copied from the build context exists and is not excluded by .dockerignore', () => {
    const sources = dockerfile.stages.flatMap((s) => copies(s).filter((c) => c.from === undefined)).flatMap((c) => c.sources);
    assert.ok(sources.length > 0);
    for (const src of sources) {
      assert.ok(existsSync(join(ROOT, src)), `${src} exists`);
      assert.ok(!ignoredByDockerignore(src), `${src} is not excluded by .dockerignore`);
    }
    for (const unwanted of ['node_modules', '.git', 'dist', 'test/discovery-dns.test.ts', 'src/discovery/dns.test.ts']) {
      assert.ok(ignoredByDockerignore(unwanted), `${unwanted} stays out of the build context`);
    }
  });

  it("the runtime stage's layout runs: bin/kubeproxy starts the compiled proxy, it serves, writes nothing, and exits 0 on SIGTERM, also as PID 1 at any moment of its start", async () => {
    // The image's ENTRYPOINT, with this machine's node; tini from Debian's package (.ci/apt-packages).
    const entry = execForm(all(final, 'ENTRYPOINT').at(-1)).map((a) => (a === 'node' ? process.execPath : a));
    await runImage(entry, () => ({ NODE_ENV: 'production' }));
  });
});

describe('Dockerfile: the Bun variant (docker build --target bun)', () => {
  const bun = dockerfile.stages.find((s) => s.name === 'bun');
  const lock = (JSON.parse(readText('package-lock.json')) as { packages: Record<string, { version: string; libc?: string[]; optional?: boolean; integrity?: string }> }).packages;
  const lockedBun = lock['node_modules/bun']?.version;

  it('is a stage named bun before the Node one, so `docker build` without --target still builds the Node image', () => {
    assert.ok(bun, 'a stage named bun');
    assert.ok(dockerfile.stages.indexOf(bun) < dockerfile.stages.indexOf(final), 'the Node stage stays the last (default) one');
    assert.equal(final.name, 'node');
    assert.match(bun.image, /^debian:[a-z]+-slim(@sha256:[0-9a-f]{64})?$/, 'a Debian slim base (glibc, tini), without Node');
  });

  it('is the Node stage with Bun in place of node: same user, ports, stop signal, command, working directory and files, and the Node environment plus KUBEPROXY_RUNTIME=bun', () => {
    assert.ok(bun);
    for (const cmd of ['USER', 'EXPOSE', 'STOPSIGNAL', 'CMD', 'WORKDIR']) {
      assert.deepEqual(all(bun, cmd).map((i) => i.args), all(final, cmd).map((i) => i.args), cmd);
    }
    const key = (c: ReturnType<typeof copies>[number]) => JSON.stringify(c);
    const extra = copies(bun).filter((c) => !copies(final).map(key).includes(key(c)));
    assert.deepEqual(copies(final).filter((c) => !copies(bun).map(key).includes(key(c))), [], 'every file of the Node image');
    assert.deepEqual(extra, [{ from: 'deps', sources: ['/opt/bun/bin/bun'], dest: '/usr/local/bin/bun' }], 'and the Bun binary, nothing else');
    const [nodeEnv, bunEnv] = [envOf(final), envOf(bun)];
    for (const [k, v] of nodeEnv) assert.equal(bunEnv.get(k), v, k);
    assert.equal(bunEnv.get(RUNTIME_ENV), 'bun', 'the runtime the CLI is asked for is the one it runs on');
    assert.equal(bunEnv.get(BUN_ENV), '/usr/local/bin/bun', 'where --runtime bun would look');
    assert.equal(bunEnv.get('BUN_RUNTIME_TRANSPILER_CACHE_PATH'), '0', 'no transpiler cache written under HOME');
    assert.ok(all(bun, 'RUN').some((r) => /apt-get install\b.*\btini\b/.test(r.args)), 'the Bun stage installs tini');
    assert.ok(!all(bun, 'RUN').some((r) => /\bnpm\b/.test(r.args)), 'no install in the Bun stage');
  });

  it('ENTRYPOINT is exec form: tini as PID 1 starting bun directly (no Node parent), preloading the compiled bun-undici module, then the package bin', () => {
    assert.ok(bun);
    const entry = execForm(all(bun, 'ENTRYPOINT').at(-1));
    assert.deepEqual(entry.slice(0, 4), ['/usr/bin/tini', '--', 'bun', '--preload']);
    // Bun resolves a preload like an import: a bare `dist/...` would be looked up as a package.
    const preload = entry[4]!;
    assert.match(preload, /^\.\/dist\//);
    const source = `src/${preload.slice('./dist/'.length).replace(/\.js$/, '.ts')}`;
    assert.ok(existsSync(join(ROOT, source)), `${source} is compiled to ${preload}`);
    assert.ok(BUN_PRELOAD.endsWith(source.slice('src'.length)), `the module --runtime bun preloads (${BUN_PRELOAD})`);
    assert.deepEqual(entry.slice(5), ['bin/kubeproxy']);
    assert.ok(Object.values(pkg.bin).includes(entry[5]!), 'a bin of package.json');
  });

  it('the Bun binary is the one package-lock.json pins: the platform package of the locked bun version, moved out of the production dependencies', async () => {
    assert.ok(bun && lockedBun, 'bun is in package-lock.json');
    for (const arch of ['x64', 'aarch64']) {
      const platform = lock[`node_modules/@oven/bun-linux-${arch}`];
      assert.equal(platform?.version, lockedBun, `@oven/bun-linux-${arch} is locked at bun's version`);
      assert.ok(platform.optional && platform.integrity, 'an optional package with its integrity hash');
      assert.deepEqual(platform.libc, ['glibc'], 'the glibc build, which the Debian bases run');
    }
    const deps = dockerfile.stages.find((s) => s.name === 'deps')!;
    const step = all(deps, 'RUN').find((r) => r.args.includes('@oven'));
    assert.ok(step, 'the deps stage takes the binary out of its platform package');
    assert.ok(copies(final).every((c) => !c.sources.some((s) => s.startsWith('/opt/bun'))), 'the Node image goes without it');

    // That step, run here on a node_modules laid out as `npm ci --ignore-scripts` leaves it.
    let binary: string;
    try {
      binary = bunBinary();
    } catch (err) {
      assert.ok(err instanceof BunMissing);
      return; // optional dependency not installed here: the static checks above stand alone
    }
    const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-deps-'));
    try {
      const arch = { x64: 'x64', arm64: 'aarch64' }[process.arch as string];
      assert.ok(arch, `a Linux Bun build exists for ${process.arch}`);
      mkdirSync(join(dir, `node_modules/@oven/bun-linux-${arch}/bin`), { recursive: true });
      symlinkSync(binary, join(dir, `node_modules/@oven/bun-linux-${arch}/bin/bun`));
      mkdirSync(join(dir, 'node_modules/bun'));
      writeFileSync(join(dir, 'node_modules/bun/package.json'), JSON.stringify({ name: 'bun', version: lockedBun }));
      const run = await runCommand('sh', ['-c', step.args.split('/opt/bun').join(join(dir, 'opt/bun'))], { cwd: dir });
      assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
      assert.equal((await runCommand(join(dir, 'opt/bun/bin/bun'), ['--version'])).stdout.trim(), lockedBun);
      assert.deepEqual(readdirSync(join(dir, 'node_modules')), ['bun'], 'no @oven left in node_modules');

      // A Bun of another version fails the build.
      writeFileSync(join(dir, 'node_modules/bun/package.json'), JSON.stringify({ name: 'bun', version: '0.0.1' }));
      mkdirSync(join(dir, `node_modules/@oven/bun-linux-${arch}/bin`), { recursive: true });
      symlinkSync(binary, join(dir, `node_modules/@oven/bun-linux-${arch}/bin/bun`));
      assert.notEqual((await runCommand('sh', ['-c', step.args.split('/opt/bun').join(join(dir, 'opt/bun'))], { cwd: dir })).code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the Bun stage's layout runs: tini starts bun, which runs the compiled proxy itself (no Node process), logs runtime bun, serves, writes nothing, and exits 0 on SIGTERM, also as PID 1 at any moment of its start", async (t) => {
    assert.ok(bun);
    let binary: string;
    try {
      binary = bunBinary();
    } catch (err) {
      t.skip(`no Bun here: ${(err as Error).message}`);
      return;
    }
    const entry = execForm(all(bun, 'ENTRYPOINT').at(-1)).map((a) => (a === 'bun' ? binary : a));
    const env = (home: string) => ({ ...Object.fromEntries(envOf(bun)), HOME: home, [BUN_ENV]: binary });
    await runImage(entry, env, async (tiniPid, output) => {
      assert.match(output, /"runtime":"bun".*"msg":"kubeproxy starting"/);
      const [child, ...others] = readChildren(tiniPid);
      assert.equal(others.length, 0, 'one process under tini');
      assert.equal(realpathSync(`/proc/${child}/exe`), realpathSync(binary), 'the process under tini is bun');
      assert.deepEqual(readChildren(child!), [], 'bun runs the proxy itself: no Node process below it');
    });
  });
});

/** The build stage's command, then the runtime stage's copies, into a temp "image"; built once for the file. */
let layout: Promise<string> | undefined;
after(() => layout?.then((dir) => rmSync(dir, { recursive: true, force: true })));
function imageLayout(): Promise<string> {
  layout ??= (async () => {
    const image = mkdtempSync(join(tmpdir(), 'kubeproxy-image-'));
    const tsc = await runCommand(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', join(image, 'dist')], {
      timeoutMs: 180_000,
    });
    // Type errors are the typecheck step's business; here the emitted layout must run.
    assert.ok(existsSync(join(image, 'dist/cli.js')), `tsc emitted dist/cli.js: ${tsc.stdout}${tsc.stderr}`);
    cpSync(join(ROOT, 'bin'), join(image, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(image, 'package.json'));
    cpSync(join(ROOT, 'examples'), join(image, 'examples'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(image, 'node_modules'), 'dir');
    return image;
  })();
  return layout;
}

/**
 * Runs an image's ENTRYPOINT (made local) in its layout with a config on free ports: it serves,
 * `check` sees it running (tini's pid, the output so far), SIGTERM ends it with 0, nothing was
 * written to the image or HOME; then SIGTERM at moments of its start, as PID 1 where allowed.
 */
async function runImage(
  entry: string[],
  envFor: (home: string) => NodeJS.ProcessEnv,
  check?: (tiniPid: number, output: string) => void | Promise<void>,
): Promise<void> {
  const image = await imageLayout();
  const run = mkdtempSync(join(image, 'run-'));
  const origin = await namedOrigin('upstream');
  let child: ReturnType<typeof spawn> | undefined;
  try {
    const home = join(run, 'tmp');
    mkdirSync(home);
    const [port, adminPort] = [await deadPort(), await deadPort()];
    const configDir = join(run, 'etc-kubeproxy');
    mkdirSync(configDir);
    writeFileSync(
      join(configDir, 'config.yaml'),
      [
        'proxy:',
        `  listen: { address: "127.0.0.1", port: ${port} }`,
        `  admin: { address: "127.0.0.1", port: ${adminPort} }`,
        '  shutdown: { delay: 0s, drainTimeout: 5s }',
        '  services:',
        `    - { name: web, domain: web.test, hosts: [{ address: "127.0.0.1", port: ${origin.port} }] }`,
        '',
      ].join('\n'),
    );
    const before = listFiles(image);
    const env = (level: string) => ({ ...envFor(home), PATH: process.env.PATH, HOME: home, KUBEPROXY_CONFIG: join(configDir, 'config.yaml'), KUBEPROXY_LOG_LEVEL: level });

    assert.ok(existsSync(entry[0]!), `${entry[0]} is installed (apt-get install tini; listed in .ci/apt-packages)`);
    child = spawn(entry[0]!, [...entry.slice(1), '--config', join(configDir, 'config.yaml')], { cwd: image, env: env('info'), stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = child;
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    let output = '';
    proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.on('data', (c: Buffer) => {
        output += c.toString();
        if (output.includes('kubeproxy started')) resolve();
      });
      void exited.then((code) => reject(new Error(`proxy exited ${code}: ${output}`)));
    });
    assert.equal((await request(port, { host: 'web.test' })).text, 'upstream');
    assert.equal((await request(adminPort, { path: '/readyz' })).status, 200);
    await check?.(proc.pid!, output);

    proc.kill('SIGTERM');
    assert.equal(await exited, 0, output);
    assert.match(output, /"msg":"stopped"/);
    assert.deepEqual(listFiles(image), before, 'nothing written to the image (read-only root filesystem)');
    assert.deepEqual(readdirSync(home), [], 'nothing written to HOME either');

    // PID 1 ignores a signal it has no handler for: with the runtime as PID 1, a SIGTERM before the
    // CLI's handlers exist would leave the pod up until the kubelet's SIGKILL. The ENTRYPOINT,
    // started as PID 1 of a new PID namespace (unshare, where allowed: as in a container), must
    // end promptly on a SIGTERM sent at any moment of the start: 0 once the proxy drains, 143
    // (128 + SIGTERM, tini passing on the runtime's end) before it has its handlers.
    const pid1 = (await runCommand('unshare', ['--pid', '--fork', '--kill-child', 'true']).catch(() => ({ code: 1 }))).code === 0;
    for (const afterMs of [0, 30, 100, 300, 1000]) {
      const wrapped = pid1 ? ['unshare', '--pid', '--fork', '--kill-child', ...entry] : entry;
      const started = spawn(wrapped[0]!, [...wrapped.slice(1), '--config', join(configDir, 'config.yaml')], { cwd: image, env: env('silent'), stdio: 'ignore' });
      const ended = new Promise<[number | null, string | null]>((resolve) => started.on('exit', (code, signal) => resolve([code, signal])));
      try {
        // The ENTRYPOINT's process (as PID 1 it is unshare's child), signalled from outside as the container runtime does.
        let target: number | undefined = pid1 ? undefined : started.pid;
        for (let i = 0; target === undefined && i < 500; i++) {
          const children = readChildren(started.pid!);
          if (children.length > 0) target = children[0];
          else await new Promise((r) => setTimeout(r, 2));
        }
        assert.ok(target, 'the ENTRYPOINT process started');
        // The moment counts from the runtime's spawn: tini has exec'd and installed its signal
        // handling by then. Before that, a PID 1 that has no handler yet (the fork before exec)
        // drops a SIGTERM from outside its namespace: a race of the test's unshare, not of the image.
        for (let i = 0; readChildren(target).length === 0 && i < 2500; i++) await new Promise((r) => setTimeout(r, 2));
        await new Promise((r) => setTimeout(r, afterMs));
        process.kill(target, 'SIGTERM');
        const result = await Promise.race([ended, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000))]);
        assert.ok(
          result !== 'hung' && result[1] === null && (result[0] === 0 || result[0] === 143),
          `SIGTERM ${afterMs} ms into the start${pid1 ? ' (as PID 1)' : ''}: ends with 0 or 143, not ${JSON.stringify(result)}`,
        );
      } finally {
        if (started.exitCode === null && started.signalCode === null) started.kill('SIGKILL');
      }
    }
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await origin.close();
    rmSync(run, { recursive: true, force: true });
  }
}

/** ENV instructions as a map (KEY=VALUE words; the Dockerfile quotes none). */
function envOf(stage: Stage): Map<string, string> {
  const words = all(stage, 'ENV').flatMap((e) => e.args.split(/\s+/));
  return new Map(words.map((w): [string, string] => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
}

/** Child pids of a process (Linux /proc), e.g. the PID-1 node under `unshare --fork`. */
function readChildren(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules') continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}
