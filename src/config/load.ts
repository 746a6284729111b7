/**
 * YAML text → validated, frozen Config, or a ConfigError listing every problem as
 * `path: message` (e.g. `proxy.services[1].hosts[0].port: expected integer 1-65535, got "abc"`).
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.ts';
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

export function parseConfig(text: string, source = '<config>'): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`), source);
  }
  return validateConfig(doc.toJS({ maxAliasCount: 100 }), source);
}

export function validateConfig(raw: unknown, source = '<config>'): Config {
  const result = configSchema.safeParse(raw, { error: messageFor });
  if (!result.success) {
    throw new ConfigError(result.error.issues.map(formatIssue), source);
  }
  return deepFreeze(result.data);
}

/** `proxy.services[1].hosts[0].port`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out || '(top level)';
}

function formatIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `${formatPath([...issue.path, k])}: ${issue.message}`).join('\n  ');
  }
  return `${formatPath(issue.path)}: ${issue.message}`;
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
