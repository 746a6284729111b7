/**
 * Loads the plugins a config names: resolves each module (a path relative to the config file's
 * directory, or a package name found from there), imports it, calls its default export with the
 * entry's options and checks what comes back. Any problem is a ConfigError naming the entry
 * (`proxy.plugins[0].module: ...`), so a broken plugin is refused like any invalid config: at
 * start, on reload (the running config keeps serving) and by `kubeproxy --check`.
 */
import { statSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../config/load.ts';
import type { Config, PluginConfig } from '../config/schema.ts';
import { log } from '../log.ts';
import { withTimeout } from '../timeout.ts';
import type { HookName, Plugin } from './api.ts';
import type { LoadedPlugin } from './chain.ts';

const HOOKS: readonly HookName[] = ['onRequest', 'onUpstreamRequest', 'onResponse', 'onLog'];
const KEYS = new Set<string>(['name', 'close', ...HOOKS]);
/** A plugin name is a metric label value: short and plain. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The plugins of one config: proxy-level, and each service's own (only services that have some). */
export class LoadedPlugins {
  constructor(
    readonly proxy: readonly LoadedPlugin[],
    readonly services: ReadonlyMap<string, readonly LoadedPlugin[]>,
  ) {}

  static readonly none = new LoadedPlugins([], new Map());

  get size(): number {
    let n = this.proxy.length;
    for (const list of this.services.values()) n += list.length;
    return n;
  }

  /** Calls every plugin's close() (config replaced, or the proxy stopped); a failing one is logged. */
  async close(): Promise<void> {
    const all = [...this.proxy, ...[...this.services.values()].flat()];
    await Promise.all(all.map((p) => closePlugin(p)));
  }
}

async function closePlugin(p: LoadedPlugin): Promise<void> {
  if (typeof p.plugin.close !== 'function') return;
  try {
    await p.plugin.close();
  } catch (err) {
    log.warn({ plugin: p.plugin.name, where: p.where, err: (err as Error)?.message ?? String(err) }, 'plugin close() failed');
  }
}

/**
 * Imports and creates every plugin `config` names. `baseDir` is the config file's directory;
 * `source` names the config in the error. Throws ConfigError listing every broken entry.
 */
export async function loadPlugins(config: Config, baseDir: string, source = '<config>'): Promise<LoadedPlugins> {
  const { proxy } = config;
  const jobs: Array<Promise<LoadedPlugin | string>> = [];
  const proxyJobs = proxy.plugins.map((entry, i) => loadOne(entry, `proxy.plugins[${i}]`, baseDir));
  jobs.push(...proxyJobs);
  const serviceJobs = new Map<string, Array<Promise<LoadedPlugin | string>>>();
  proxy.services.forEach((s, si) => {
    if (s.plugins.length === 0) return;
    const list = s.plugins.map((entry, i) => loadOne(entry, `proxy.services[${si}].plugins[${i}]`, baseDir));
    serviceJobs.set(s.name, list);
    jobs.push(...list);
  });
  if (jobs.length === 0) return LoadedPlugins.none;
  const results = await Promise.all(jobs);
  const problems = results.filter((r): r is string => typeof r === 'string');
  const made = new LoadedPlugins(
    (await Promise.all(proxyJobs)) as LoadedPlugin[],
    new Map(await Promise.all([...serviceJobs].map(async ([name, list]) => [name, (await Promise.all(list)) as LoadedPlugin[]] as const))),
  );
  if (problems.length > 0) {
    // The ones that were made will never serve: let them release what they hold.
    await new LoadedPlugins(results.filter((r): r is LoadedPlugin => typeof r !== 'string'), new Map()).close();
    throw new ConfigError(problems, source);
  }
  return made;
}

/** One entry: the plugin, or the problem as `path: message`. */
async function loadOne(entry: PluginConfig, where: string, baseDir: string): Promise<LoadedPlugin | string> {
  const at = `${where}.module`;
  const spec = entry.module;
  let url: string;
  try {
    url = resolveModule(spec, baseDir);
  } catch (err) {
    return `${at}: cannot find ${JSON.stringify(spec)}: ${(err as Error).message}`;
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    return `${at}: cannot import ${JSON.stringify(spec)}: ${firstLine(err)}`;
  }
  const factory = mod.default;
  if (typeof factory !== 'function') {
    return `${at}: ${JSON.stringify(spec)} must export a default function (options) => plugin, got ${factory === undefined ? 'no default export' : typeof factory}`;
  }
  let plugin: unknown;
  try {
    // A copy: the config is frozen, and a plugin may keep and change its options.
    const made = (factory as (o: unknown) => unknown)(structuredClone(entry.options));
    plugin = isThenable(made) ? await withTimeout(made, entry.timeout, () => new Error(`did not return a plugin within ${entry.timeout} ms`)) : made;
  } catch (err) {
    return `${at}: the factory of ${JSON.stringify(spec)} failed: ${firstLine(err)}`;
  }
  const problem = checkPlugin(plugin);
  if (problem !== undefined) return `${at}: ${JSON.stringify(spec)} returned ${problem}`;
  return { plugin: plugin as Plugin, where, timeout: entry.timeout };
}

/** What is wrong with a factory's return value, or undefined. */
function checkPlugin(plugin: unknown): string | undefined {
  if (plugin === null || typeof plugin !== 'object' || Array.isArray(plugin)) return `${plugin === null ? 'null' : Array.isArray(plugin) ? 'an array' : typeof plugin} instead of a plugin object ({ name, onRequest?, ... })`;
  const p = plugin as Record<string, unknown>;
  if (typeof p.name !== 'string' || !NAME.test(p.name)) {
    return `a plugin whose name is ${p.name === undefined ? 'missing' : JSON.stringify(p.name)}: expected 1-64 letters, digits, ".", "_" or "-"`;
  }
  for (const key of Object.keys(p)) {
    if (!KEYS.has(key)) return `a plugin with an unknown key "${key}" (expected name, ${HOOKS.join(', ')}, close)`;
    if (key !== 'name' && typeof p[key] !== 'function') return `a plugin whose ${key} is ${typeof p[key]}, not a function`;
  }
  return undefined;
}

/**
 * A file URL for `spec`: paths (`./x.mjs`, `../x.mjs`, `/abs/x.mjs`) resolve against `baseDir`; a
 * package name resolves like an `import` from a module in `baseDir` (its node_modules, then the
 * parents'). An edited plugin file gets a new URL (its mtime in the query), so a reload imports
 * the new code; an unchanged one is the module already loaded.
 */
export function resolveModule(spec: string, baseDir: string): string {
  if (spec.startsWith('file:')) return spec;
  if (spec.startsWith('./') || spec.startsWith('../') || isAbsolute(spec)) {
    const file = resolve(baseDir, spec);
    let st;
    try {
      st = statSync(file);
    } catch {
      throw new Error(`no such file ${file}`);
    }
    if (!st.isFile()) throw new Error(`${file} is not a file`);
    return `${pathToFileURL(file).href}?v=${Math.trunc(st.mtimeMs)}-${st.size}`;
  }
  if (spec.startsWith('node:')) throw new Error('a plugin cannot be a Node.js built-in module');
  return pathToFileURL(resolvePackage(spec, baseDir)).href;
}

/**
 * Node's require resolution finds most packages (their `exports` have a `default` or `require`
 * entry, or they have a `main`); a package whose `exports` only has `import` is found by reading
 * its package.json from the same node_modules folders.
 */
function resolvePackage(spec: string, baseDir: string): string {
  const require = createRequire(join(baseDir, 'noop.js'));
  try {
    return require.resolve(spec);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw new Error(`no package ${JSON.stringify(spec)} in node_modules from ${baseDir}`);
  }
  const m = /^((?:@[^/]+\/)?[^/]+)(\/.*)?$/.exec(spec);
  const name = m?.[1] ?? spec;
  const subpath = m?.[2] === undefined ? '.' : `.${m[2]}`;
  for (const dir of require.resolve.paths(name) ?? []) {
    const pkgDir = join(dir, name);
    let pkg: { exports?: unknown };
    try {
      pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { exports?: unknown };
    } catch {
      continue;
    }
    const target = importTarget(pkg.exports, subpath);
    if (target !== undefined) return resolve(pkgDir, target);
    throw new Error(`package ${JSON.stringify(name)} exports no ${JSON.stringify(subpath)} for import`);
  }
  throw new Error(`no package ${JSON.stringify(spec)} in node_modules from ${baseDir}`);
}

/** The `import` (or `node`, `default`) target of `exports[subpath]`, for the common shapes of the field. */
function importTarget(exports: unknown, subpath: string): string | undefined {
  if (typeof exports === 'string') return subpath === '.' ? exports : undefined;
  if (exports === null || typeof exports !== 'object') return undefined;
  const map = exports as Record<string, unknown>;
  const isSubpathMap = Object.keys(map).some((k) => k.startsWith('.'));
  const entry = isSubpathMap ? map[subpath] : subpath === '.' ? map : undefined;
  return conditionTarget(entry);
}

function conditionTarget(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (entry === null || typeof entry !== 'object') return undefined;
  const c = entry as Record<string, unknown>;
  for (const key of ['import', 'node', 'default']) {
    const t = conditionTarget(c[key]);
    if (t !== undefined) return t;
  }
  return undefined;
}

function isThenable(v: unknown): v is Promise<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!;
}

/** The directory plugin paths are relative to: the config file's, or the working directory for a config given in memory. */
export function pluginBaseDir(configPath: string | undefined): string {
  return configPath === undefined ? process.cwd() : dirname(resolve(configPath));
}
