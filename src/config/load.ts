/**
 * YAML text (JSON included, read by JSON.parse: config/json.ts) → validated, frozen Config, or a
 * ConfigError listing every problem as `path: message` (e.g.
 * `proxy.services[1].hosts[0].port: expected integer 1-65535, got "abc"`).
 * Values echoed in messages are cut to ECHO_MAX characters, so a wrong file (a binary, a log)
 * gives a readable answer, not its own content back. `proxy.admin.tokenFile` is read here, at
 * every load and reload, into `proxy.admin.token`.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { readCertificatePair } from './certificates.ts';
import { parseJsonConfig } from './json.ts';
import { BEARER_TOKEN, configSchema, type Config, type TlsConfig } from './schema.ts';
import { loadUpstreamCas } from './upstream-ca.ts';
import { show } from './units.ts';

export class ConfigError extends Error {
  constructor(
    readonly problems: readonly string[],
    readonly source: string,
  ) {
    super(`invalid config ${source}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`], path);
  }
  return parseConfig(text, path);
}

/** Longest echo of a value from the file in a message; longer ones end in "…". */
const ECHO_MAX = 80;

/**
 * js-yaml, loaded by the first config that is not JSON: a JSON config starts without it. Chosen
 * over `yaml` for speed: 7× faster on a 5,000-service config (bench/README.md, --scale), which
 * put the first 200 over 1 s. CORE_SCHEMA is YAML 1.2's: no timestamps, no `<<` merges, no
 * yes/no booleans; repeated keys are errors. An alias is a shared reference, not a copy (no
 * alias bomb): the schema validates what it reaches, and plugin options are handed over as is.
 */
let jsYaml: typeof import('js-yaml') | undefined;
const yamlParser = (): typeof import('js-yaml') => (jsYaml ??= createRequire(import.meta.url)('js-yaml') as typeof import('js-yaml'));

export function parseConfig(text: string, source = '<config>'): Config {
  if (text.trim() === '') throw new ConfigError(['the file is empty: expected a mapping with a "proxy" key'], source);
  const json = parseJsonConfig(text);
  if (json !== undefined) return validateConfig(json, source);
  const parser = yamlParser();
  let raw: unknown;
  try {
    raw = parser.load(text, { schema: parser.CORE_SCHEMA, filename: source });
  } catch (err) {
    throw new ConfigError([yamlProblem(err)], source);
  }
  if (raw === null || raw === undefined) throw new ConfigError(['the file has no content (only comments): expected a mapping with a "proxy" key'], source);
  return validateConfig(raw, source);
}

/**
 * js-yaml's message is `<reason> (L:C)` followed by an excerpt of the file; the problem reads as
 * one sentence instead: `YAML syntax error at line L, column C: <reason>`.
 */
function yamlProblem(err: unknown): string {
  const { reason, mark } = err as { reason?: string; mark?: { line: number; column: number } };
  if (reason === undefined) return `YAML syntax error: ${capEchoes((err as Error).message)}`;
  const where = mark === undefined ? '' : ` at line ${mark.line + 1}, column ${mark.column + 1}`;
  return `YAML syntax error${where}: ${capEchoes(reason)}`;
}

export function validateConfig(raw: unknown, source = '<config>'): Config {
  const result = configSchema.safeParse(raw, { error: messageFor });
  if (!result.success) {
    const problems = result.error.issues.map(formatIssue);
    // Cross-service checks run only on an otherwise valid config: a duplicate name is found here too.
    for (const p of duplicateNames(raw)) if (!problems.includes(p)) problems.push(p);
    throw new ConfigError(problems, source);
  }
  const admin = result.data.proxy.admin;
  if (admin.tokenFile !== undefined) admin.token = readToken(admin.tokenFile, source);
  const tls = result.data.proxy.tls;
  if (tls !== undefined) checkCertificates(tls, source);
  const caProblems = loadUpstreamCas(result.data.proxy.services, source.startsWith('<') ? process.cwd() : dirname(source));
  if (caProblems.length > 0) throw new ConfigError(caProblems, source);
  return deepFreeze(result.data);
}

/**
 * `proxy.tls.certificates`: paths resolved against the config file's directory (kept absolute
 * in the Config, for the TLS listener to re-read and watch), and every pair read and checked.
 */
function checkCertificates(tls: TlsConfig, source: string): void {
  const base = source.startsWith('<') ? process.cwd() : dirname(source);
  const problems: string[] = [];
  tls.certificates.forEach((c, i) => {
    c.cert = resolve(base, c.cert);
    c.key = resolve(base, c.key);
    try {
      readCertificatePair(c.cert, c.key, tls.minVersion);
    } catch (err) {
      problems.push(`proxy.tls.certificates[${i}]: ${(err as Error).message}`);
    }
  });
  if (problems.length > 0) throw new ConfigError(problems, source);
}

/** The content of `proxy.admin.tokenFile` (relative to the config file), trailing newline removed. */
function readToken(file: string, source: string): string {
  const path = resolve(source.startsWith('<') ? process.cwd() : dirname(source), file);
  const problem = (message: string) => new ConfigError([`proxy.admin.tokenFile: ${message}`], source);
  let token: string;
  try {
    token = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw problem(`cannot read ${JSON.stringify(cap(file))}: ${readFailure(err as NodeJS.ErrnoException)}`);
  }
  if (token === '') throw problem(`${JSON.stringify(cap(file))} is empty`);
  if (!BEARER_TOKEN.test(token)) throw problem(`the content of ${JSON.stringify(cap(file))} is not a Bearer token (visible ASCII without spaces, RFC 6750 §2.1)`);
  return token;
}

/** Why a file could not be read, in words (an operator reads it, not a programmer): `no such file`, not `ENOENT`. */
function readFailure(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'a directory, not a file';
    default:
      return err.code ?? err.message;
  }
}

/** `proxy.services[i].name: duplicate service name …`, read from the raw input (same words as the schema's check). */
function duplicateNames(raw: unknown): string[] {
  const services = (raw as { proxy?: { services?: unknown } } | null)?.proxy?.services;
  if (!Array.isArray(services)) return [];
  const seen = new Map<string, number>();
  const out: string[] = [];
  services.forEach((s: unknown, i) => {
    const name = (s as { name?: unknown } | null)?.name;
    if (typeof name !== 'string') return;
    const first = seen.get(name);
    if (first !== undefined) out.push(`proxy.services[${i}].name: duplicate service name ${JSON.stringify(cap(name))} (also services[${first}])`);
    else seen.set(name, i);
  });
  return out;
}

function cap(value: string): string {
  return value.length <= ECHO_MAX ? value : `${value.slice(0, ECHO_MAX - 1)}…`;
}

/** Every quoted value in a message cut to ECHO_MAX characters (messages come from many checks). */
function capEchoes(message: string): string {
  if (message.length <= ECHO_MAX) return message;
  return message.replace(/"(?:[^"\\]|\\.)*"/g, (quoted) => {
    if (quoted.length <= ECHO_MAX + 2) return quoted;
    const value = JSON.parse(quoted) as string;
    return `${JSON.stringify(cap(value))} (${value.length} characters)`;
  });
}

/** `proxy.services[1].hosts[0].port`. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? cap(String(part)) : `.${cap(String(part))}`;
  }
  return out || '(top level)';
}

function formatIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `${formatPath([...issue.path, k])}: ${capEchoes(issue.message)}`).join('\n  ');
  }
  return `${formatPath(issue.path)}: ${capEchoes(issue.message)}`;
}

/** Zod's default messages name types; ours name what the user wrote and what was expected. */
function messageFor(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'is required';
      return `expected ${iss.expected === 'object' ? 'a mapping' : iss.expected === 'array' ? 'a list' : iss.expected}, got ${show(iss.input)}`;
    case 'invalid_value':
      return `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}, got ${show(iss.input)}`;
    case 'unrecognized_keys': {
      const shape = (iss.inst as { def?: { shape?: Record<string, unknown> } } | undefined)?.def?.shape;
      const known = shape ? Object.keys(shape) : [];
      const key = iss.keys[0] ?? '';
      const near = closest(key, known);
      return `unknown key${near ? ` (did you mean "${near}"?)` : known.length ? ` (expected one of: ${known.join(', ')})` : ''}`;
    }
    case 'invalid_union':
      return `expected ${describeUnion(iss)}, got ${show(iss.input)}`;
    default:
      return undefined;
  }
}

function describeUnion(iss: z.core.$ZodRawIssue): string {
  const options = (iss.inst as { def?: { options?: Array<{ def?: { type?: string; values?: unknown[] } }> } } | undefined)?.def?.options;
  if (!options) return 'another value';
  return options
    .map((o) => (o.def?.type === 'literal' ? o.def.values?.map((v) => JSON.stringify(v)).join(' or ') : o.def?.type === 'custom' ? 'a number' : o.def?.type))
    .join(' or ');
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
