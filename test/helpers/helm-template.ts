/**
 * A small renderer for the subset of Helm's Go-template language that deploy/helm/kubeproxy uses,
 * so tests can render the chart without a helm binary and check the objects it produces.
 *
 * Supported: `{{ }}` with `{{-`/`-}}` trimming, comments, if / else if / else, with / else,
 * range over lists, define / include, `$var :=`, pipelines, parentheses, and the functions in
 * FUNCTIONS below. Anything else is an error, never a silent pass: a template that uses a
 * construct this renderer lacks must extend it (or be checked by hand with `helm template`).
 * Like Helm, a field of a missing value is an error ("nil pointer evaluating"), a missing map key
 * is empty, and `toYaml` sorts keys.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';

export class TemplateError extends Error {}

// ---------------------------------------------------------------------------
// Lexing: text and actions

type Piece = { kind: 'text'; text: string } | { kind: 'action'; src: string; where: string };

function lex(source: string, file: string): Piece[] {
  const out: Piece[] = [];
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf('{{', i);
    if (open < 0) {
      out.push({ kind: 'text', text: source.slice(i) });
      break;
    }
    let text = source.slice(i, open);
    let start = open + 2;
    if (source[start] === '-' && /\s/.test(source[start + 1] ?? '')) {
      text = text.replace(/\s+$/, '');
      start++;
    }
    out.push({ kind: 'text', text });
    const close = findClose(source, start, file);
    let end = close;
    let trimAfter = false;
    if (source[close - 1] === '-' && /\s/.test(source[close - 2] ?? '')) {
      end = close - 1;
      trimAfter = true;
    }
    const line = source.slice(0, open).split('\n').length;
    out.push({ kind: 'action', src: source.slice(start, end).trim(), where: `${file}:${line}` });
    i = close + 2;
    if (trimAfter) while (i < source.length && /\s/.test(source[i]!)) i++;
  }
  return out.filter((p) => p.kind !== 'action' || !/^\/\*[\s\S]*\*\/$/.test(p.src));
}

/** Index of the `}}` closing an action, skipping string literals. */
function findClose(s: string, from: number, file: string): number {
  let i = from;
  while (i < s.length) {
    const c = s[i];
    if (c === '"' || c === '`') {
      const q = c;
      i++;
      while (i < s.length && s[i] !== q) i += s[i] === '\\' && q === '"' ? 2 : 1;
      i++;
      continue;
    }
    if (s.startsWith('/*', i)) {
      const e = s.indexOf('*/', i + 2);
      if (e < 0) break;
      i = e + 2;
      continue;
    }
    if (s.startsWith('}}', i)) return i;
    i++;
  }
  throw new TemplateError(`${file}: unclosed action`);
}

// ---------------------------------------------------------------------------
// Parsing: a tree of nodes

type Expr =
  | { t: 'str'; v: string }
  | { t: 'num'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'nil' }
  | { t: 'field'; base: 'dot' | string; path: string[] } // base: 'dot' or a variable name ('$' included)
  | { t: 'pipe'; cmds: Cmd[] }
  | { t: 'ident'; name: string };
type Cmd = Expr[]; // a function and its args, or a single operand
interface Pipe {
  decl: string | undefined;
  cmds: Cmd[];
}

type Node =
  | { t: 'text'; text: string }
  | { t: 'out'; pipe: Pipe; where: string }
  | { t: 'if'; branches: Array<{ cond: Pipe; body: Node[] }>; otherwise: Node[]; where: string }
  | { t: 'with'; pipe: Pipe; body: Node[]; otherwise: Node[]; where: string }
  | { t: 'range'; pipe: Pipe; body: Node[]; where: string };

function tokenize(src: string, where: string): string[] {
  const tokens: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|:=|[|(),]|[^\s|(),]+)/y;
  let m: RegExpExecArray | null;
  re.lastIndex = 0;
  while (re.lastIndex < src.length && (m = re.exec(src)) !== null) tokens.push(m[1]!);
  if (re.lastIndex < src.trimEnd().length) throw new TemplateError(`${where}: cannot read "${src.slice(re.lastIndex)}"`);
  if (tokens.length === 0) throw new TemplateError(`${where}: empty action`);
  return tokens;
}

function parsePipe(tokens: string[], where: string): Pipe {
  let decl: string | undefined;
  if (tokens.length > 2 && tokens[0]!.startsWith('$') && tokens[1] === ':=') {
    decl = tokens[0]!;
    tokens = tokens.slice(2);
  }
  let pos = 0;
  const operand = (): Expr => {
    const tok = tokens[pos++];
    if (tok === undefined) throw new TemplateError(`${where}: unexpected end of action`);
    if (tok === '(') {
      const cmds = pipeline();
      if (tokens[pos++] !== ')') throw new TemplateError(`${where}: missing )`);
      return { t: 'pipe', cmds };
    }
    if (tok.startsWith('"')) return { t: 'str', v: JSON.parse(tok) as string };
    if (tok.startsWith('`')) return { t: 'str', v: tok.slice(1, -1) };
    if (/^-?\d+(\.\d+)?$/.test(tok)) return { t: 'num', v: Number(tok) };
    if (tok === 'true' || tok === 'false') return { t: 'bool', v: tok === 'true' };
    if (tok === 'nil') return { t: 'nil' };
    if (tok === '.') return { t: 'field', base: 'dot', path: [] };
    if (tok.startsWith('.')) return { t: 'field', base: 'dot', path: tok.slice(1).split('.') };
    if (tok.startsWith('$')) {
      const [name, ...path] = tok.split('.');
      return { t: 'field', base: name!, path };
    }
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(tok)) return { t: 'ident', name: tok };
    throw new TemplateError(`${where}: cannot parse "${tok}"`);
  };
  const command = (): Cmd => {
    const cmd: Cmd = [];
    while (pos < tokens.length && tokens[pos] !== '|' && tokens[pos] !== ')') cmd.push(operand());
    if (cmd.length === 0) throw new TemplateError(`${where}: empty command`);
    return cmd;
  };
  const pipeline = (): Cmd[] => {
    const cmds = [command()];
    while (tokens[pos] === '|') {
      pos++;
      cmds.push(command());
    }
    return cmds;
  };
  const cmds = pipeline();
  if (pos !== tokens.length) throw new TemplateError(`${where}: unexpected "${tokens[pos]}"`);
  return { decl, cmds };
}

interface Parsed {
  nodes: Node[];
  defines: Map<string, Node[]>;
}

function parse(pieces: Piece[], defines: Map<string, Node[]>): Node[] {
  let pos = 0;
  /** Parses until one of `stops` (an action keyword) and returns the nodes and the stop action. */
  const block = (stops: string[]): { nodes: Node[]; stop: Piece & { kind: 'action' } | undefined } => {
    const nodes: Node[] = [];
    while (pos < pieces.length) {
      const p = pieces[pos++]!;
      if (p.kind === 'text') {
        if (p.text !== '') nodes.push({ t: 'text', text: p.text });
        continue;
      }
      const word = p.src.split(/\s+/)[0]!;
      if (stops.includes(word)) return { nodes, stop: p };
      if (word === 'end' || word === 'else') throw new TemplateError(`${p.where}: unexpected {{ ${word} }}`);
      const rest = p.src.slice(word.length).trim();
      switch (word) {
        case 'if': {
          const branches = [{ cond: parsePipe(tokenize(rest, p.where), p.where), body: [] as Node[] }];
          let otherwise: Node[] = [];
          for (;;) {
            const r = block(['else', 'end']);
            branches.at(-1)!.body = r.nodes;
            if (r.stop === undefined) throw new TemplateError(`${p.where}: {{ if }} without {{ end }}`);
            if (r.stop.src === 'end') break;
            const elseRest = r.stop.src.slice(4).trim();
            if (elseRest.startsWith('if ')) {
              branches.push({ cond: parsePipe(tokenize(elseRest.slice(3), r.stop.where), r.stop.where), body: [] });
              continue;
            }
            const e = block(['end']);
            if (e.stop === undefined) throw new TemplateError(`${p.where}: {{ else }} without {{ end }}`);
            otherwise = e.nodes;
            break;
          }
          nodes.push({ t: 'if', branches, otherwise, where: p.where });
          break;
        }
        case 'with': {
          const pipe = parsePipe(tokenize(rest, p.where), p.where);
          const r = block(['else', 'end']);
          if (r.stop === undefined) throw new TemplateError(`${p.where}: {{ with }} without {{ end }}`);
          let otherwise: Node[] = [];
          if (r.stop.src !== 'end') {
            const e = block(['end']);
            if (e.stop === undefined) throw new TemplateError(`${p.where}: {{ else }} without {{ end }}`);
            otherwise = e.nodes;
          }
          nodes.push({ t: 'with', pipe, body: r.nodes, otherwise, where: p.where });
          break;
        }
        case 'range': {
          const pipe = parsePipe(tokenize(rest, p.where), p.where);
          const r = block(['end']);
          if (r.stop === undefined) throw new TemplateError(`${p.where}: {{ range }} without {{ end }}`);
          nodes.push({ t: 'range', pipe, body: r.nodes, where: p.where });
          break;
        }
        case 'define': {
          const name = JSON.parse(rest) as string;
          const r = block(['end']);
          if (r.stop === undefined) throw new TemplateError(`${p.where}: {{ define }} without {{ end }}`);
          defines.set(name, r.nodes);
          break;
        }
        case 'template':
        case 'block':
        case 'break':
        case 'continue':
          throw new TemplateError(`${p.where}: {{ ${word} }} is not supported by this renderer`);
        default:
          nodes.push({ t: 'out', pipe: parsePipe(tokenize(p.src, p.where), p.where), where: p.where });
      }
    }
    return { nodes, stop: undefined };
  };
  const r = block([]);
  return r.nodes;
}

// ---------------------------------------------------------------------------
// Evaluation

type Scope = Map<string, unknown>;

interface Ctx {
  defines: Map<string, Node[]>;
  files: Map<string, string>;
  depth: number;
}

function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

function show(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  return `map[${Object.entries(v as object)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, x]) => `${k}:${show(x)}`)
    .join(' ')}]`;
}

function field(base: unknown, path: readonly string[], where: string): unknown {
  let v = base;
  for (const key of path) {
    if (v === undefined || v === null) throw new TemplateError(`${where}: nil pointer evaluating .${key}`);
    if (typeof v !== 'object') throw new TemplateError(`${where}: can't evaluate field ${key} in ${typeof v}`);
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

function toYaml(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  return stringify(v, { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
}

function indent(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return pad + s.replace(/\n/g, `\n${pad}`);
}

function sprintf(format: string, args: unknown[]): string {
  let i = 0;
  return format.replace(/%[sdvq%]/g, (m) => {
    if (m === '%%') return '%';
    const a = args[i++];
    if (m === '%q') return JSON.stringify(show(a));
    return show(a);
  });
}

function asInt(v: unknown): number {
  if (typeof v === 'number') return Math.trunc(v);
  if (typeof v === 'string' && /^-?\d+/.test(v)) return Number.parseInt(v, 10);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return 0;
}

const FUNCTIONS: Record<string, (ctx: Ctx, scope: Scope, dot: unknown, where: string, args: unknown[]) => unknown> = {
  include: (ctx, _s, _d, where, [name, data]) => {
    const body = ctx.defines.get(name as string);
    if (body === undefined) throw new TemplateError(`${where}: no template named "${String(name)}"`);
    if (ctx.depth > 50) throw new TemplateError(`${where}: include recursion`);
    return run({ ...ctx, depth: ctx.depth + 1 }, body, data, new Map([['$', data]]));
  },
  toYaml: (_c, _s, _d, _w, [v]) => toYaml(v),
  toJson: (_c, _s, _d, _w, [v]) => JSON.stringify(v ?? null),
  fromYaml: (_c, _s, _d, _w, [v]) => parseYaml(String(v ?? '')) as unknown,
  nindent: (_c, _s, _d, _w, [n, s]) => `\n${indent(asInt(n), show(s))}`,
  indent: (_c, _s, _d, _w, [n, s]) => indent(asInt(n), show(s)),
  default: (_c, _s, _d, _w, [def, v]) => (truthy(v) ? v : def),
  quote: (_c, _s, _d, _w, args) => args.map((a) => JSON.stringify(show(a))).join(' '),
  trunc: (_c, _s, _d, _w, [n, s]) => show(s).slice(0, asInt(n)),
  trimSuffix: (_c, _s, _d, _w, [suffix, s]) => (show(s).endsWith(show(suffix)) ? show(s).slice(0, -show(suffix).length || undefined) : show(s)),
  replace: (_c, _s, _d, _w, [from, to, s]) => show(s).split(show(from)).join(show(to)),
  contains: (_c, _s, _d, _w, [sub, s]) => show(s).includes(show(sub)),
  printf: (_c, _s, _d, _w, [format, ...args]) => sprintf(show(format), args),
  print: (_c, _s, _d, _w, args) => args.map(show).join(''),
  sha256sum: (_c, _s, _d, _w, [s]) => createHash('sha256').update(show(s)).digest('hex'),
  int: (_c, _s, _d, _w, [v]) => asInt(v),
  list: (_c, _s, _d, _w, args) => args,
  first: (_c, _s, _d, _w, [l]) => (Array.isArray(l) ? l[0] : undefined),
  hasKey: (_c, _s, _d, _w, [m, k]) => m !== null && typeof m === 'object' && Object.hasOwn(m, k as string),
  dig: (_c, _s, _d, where, args) => {
    const dict = args.at(-1);
    const fallback = args.at(-2);
    const keys = args.slice(0, -2) as string[];
    if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) throw new TemplateError(`${where}: dig needs a map, got ${show(dict)}`);
    let v: unknown = dict;
    for (const k of keys) {
      if (v === null || typeof v !== 'object' || !Object.hasOwn(v, k)) return fallback;
      v = (v as Record<string, unknown>)[k];
    }
    return v;
  },
  empty: (_c, _s, _d, _w, [v]) => !truthy(v),
  not: (_c, _s, _d, _w, [v]) => !truthy(v),
  and: (_c, _s, _d, _w, args) => args.find((a) => !truthy(a)) ?? args.at(-1),
  or: (_c, _s, _d, _w, args) => args.find((a) => truthy(a)) ?? args.at(-1),
  eq: (_c, _s, _d, _w, [a, ...rest]) => rest.some((b) => b === a),
  ne: (_c, _s, _d, _w, [a, b]) => a !== b,
  gt: (_c, _s, _d, _w, [a, b]) => (a as number) > (b as number),
  lt: (_c, _s, _d, _w, [a, b]) => (a as number) < (b as number),
  fail: (_c, _s, _d, where, [msg]) => {
    throw new TemplateError(`${where}: execution error: ${show(msg)}`);
  },
  required: (_c, _s, _d, where, [msg, v]) => {
    if (v === undefined || v === null || v === '') throw new TemplateError(`${where}: execution error: ${show(msg)}`);
    return v;
  },
};

function evalExpr(ctx: Ctx, scope: Scope, dot: unknown, e: Expr, where: string): unknown {
  switch (e.t) {
    case 'str':
    case 'num':
    case 'bool':
      return e.v;
    case 'nil':
      return null;
    case 'field': {
      if (e.base === 'dot') return field(dot, e.path, where);
      if (!scope.has(e.base)) throw new TemplateError(`${where}: undefined variable ${e.base}`);
      return field(scope.get(e.base), e.path, where);
    }
    case 'pipe':
      return evalCmds(ctx, scope, dot, e.cmds, where);
    case 'ident':
      return callFn(ctx, scope, dot, e.name, [], where);
  }
}

function callFn(ctx: Ctx, scope: Scope, dot: unknown, name: string, args: unknown[], where: string): unknown {
  const fn = FUNCTIONS[name];
  if (fn === undefined) throw new TemplateError(`${where}: function "${name}" not defined (in this renderer)`);
  return fn(ctx, scope, dot, where, args);
}

function evalCmds(ctx: Ctx, scope: Scope, dot: unknown, cmds: Cmd[], where: string): unknown {
  let prev: unknown;
  let havePrev = false;
  for (const cmd of cmds) {
    const [head, ...rest] = cmd;
    let value: unknown;
    // `.Files.Get "path"`: the one method call the chart makes.
    if (head!.t === 'field' && head!.base === 'dot' && head!.path.join('.') === 'Files.Get') {
      const args = rest.map((a) => evalExpr(ctx, scope, dot, a, where));
      if (havePrev) args.push(prev);
      value = ctx.files.get(String(args[0])) ?? '';
    } else if (head!.t === 'ident') {
      const args = rest.map((a) => evalExpr(ctx, scope, dot, a, where));
      if (havePrev) args.push(prev);
      value = callFn(ctx, scope, dot, head!.name, args, where);
    } else {
      if (rest.length > 0 || havePrev) throw new TemplateError(`${where}: can't give arguments to a non-function`);
      value = evalExpr(ctx, scope, dot, head!, where);
    }
    prev = value;
    havePrev = true;
  }
  return prev;
}

function evalPipe(ctx: Ctx, scope: Scope, dot: unknown, pipe: Pipe, where: string): unknown {
  const v = evalCmds(ctx, scope, dot, pipe.cmds, where);
  if (pipe.decl !== undefined) scope.set(pipe.decl, v);
  return v;
}

function run(ctx: Ctx, nodes: Node[], dot: unknown, scope: Scope): string {
  let out = '';
  for (const n of nodes) {
    switch (n.t) {
      case 'text':
        out += n.text;
        break;
      case 'out': {
        const v = evalPipe(ctx, scope, dot, n.pipe, n.where);
        if (n.pipe.decl === undefined) out += show(v);
        break;
      }
      case 'if': {
        const inner = new Map(scope);
        const hit = n.branches.find((b) => truthy(evalPipe(ctx, inner, dot, b.cond, n.where)));
        out += run(ctx, hit ? hit.body : n.otherwise, dot, inner);
        break;
      }
      case 'with': {
        const inner = new Map(scope);
        const v = evalPipe(ctx, inner, dot, n.pipe, n.where);
        out += truthy(v) ? run(ctx, n.body, v, inner) : run(ctx, n.otherwise, dot, inner);
        break;
      }
      case 'range': {
        const v = evalPipe(ctx, new Map(scope), dot, n.pipe, n.where);
        if (v === undefined || v === null) break;
        if (!Array.isArray(v)) throw new TemplateError(`${n.where}: range over ${typeof v} is not supported by this renderer`);
        for (const item of v) out += run(ctx, n.body, item, new Map(scope));
        break;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The chart

export interface Release {
  name: string;
  namespace: string;
}

export interface RenderedChart {
  /** Rendered text of each template (`templates/deployment.yaml` → text), partials excluded. */
  files: Map<string, string>;
  values: Record<string, unknown>;
}

/** Helm's coalescing: maps merge key by key, anything else (lists included) is replaced; null deletes. */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (over === undefined) return structuredClone(base);
  if (isMap(base) && isMap(over)) {
    const out: Record<string, unknown> = structuredClone(base);
    for (const [k, v] of Object.entries(over)) {
      if (v === null) delete out[k];
      else out[k] = mergeValues(out[k], v);
    }
    return out;
  }
  return structuredClone(over);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Renders every template of the chart in `chartDir` with its values.yaml merged with each of
 * `overrides` in order (like `helm template -f a.yaml -f b.yaml`).
 */
export function renderChart(chartDir: string, overrides: unknown[] = [], release: Release = { name: 'kubeproxy', namespace: 'default' }): RenderedChart {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  let values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as unknown;
  for (const o of overrides) values = mergeValues(values, o);
  const files = new Map<string, string>();
  for (const entry of readdirSync(join(chartDir, 'files'), { withFileTypes: true })) {
    if (entry.isFile()) files.set(`files/${entry.name}`, readFileSync(join(chartDir, 'files', entry.name), 'utf8'));
  }
  const defines = new Map<string, Node[]>();
  const templates = readdirSync(join(chartDir, 'templates')).sort();
  const parsed = new Map<string, Node[]>();
  for (const name of templates) {
    const src = readFileSync(join(chartDir, 'templates', name), 'utf8');
    parsed.set(name, parse(lex(src, `templates/${name}`), defines));
  }
  const root = {
    Values: values,
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
    Release: { Name: release.name, Namespace: release.namespace, Service: 'Helm', IsInstall: true, IsUpgrade: false },
    Capabilities: { KubeVersion: { Version: 'v1.30.0' } },
    Template: { BasePath: 'kubeproxy/templates' },
  };
  const ctx: Ctx = { defines, files, depth: 0 };
  const out = new Map<string, string>();
  for (const [name, nodes] of parsed) {
    if (name.startsWith('_')) continue;
    out.set(`templates/${name}`, run(ctx, nodes, root, new Map([['$', root]])));
  }
  return { files: out, values: values as Record<string, unknown> };
}

/** The Kubernetes objects of a rendered chart (NOTES.txt and empty documents left out). */
export function renderedObjects(r: RenderedChart): Array<{ file: string; object: Record<string, unknown> }> {
  const objects: Array<{ file: string; object: Record<string, unknown> }> = [];
  for (const [file, text] of r.files) {
    if (!file.endsWith('.yaml')) continue;
    for (const doc of text.split(/^---\s*$/m)) {
      const object = parseYaml(doc, { uniqueKeys: true }) as Record<string, unknown> | null;
      if (object !== null && object !== undefined) objects.push({ file, object });
    }
  }
  return objects;
}
