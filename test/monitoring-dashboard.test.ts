/**
 * The Grafana dashboard and the Prometheus rules may only name metrics that
 * src/metrics/metrics.ts really exports (plus prom-client's default metrics and
 * the recording rules defined in kubeproxy-rules.yaml), and only labels those
 * series carry. A small PromQL tokenizer extracts metric names, matcher labels
 * and by()/without()/on()/ignoring()/group_*() labels from every expression.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { createMetrics, describeMetrics, type ProxyMetrics } from '../src/metrics/metrics.ts';

const DASHBOARD = new URL('../deploy/monitoring/grafana-dashboard.json', import.meta.url);
const RULES = new URL('../deploy/monitoring/kubeproxy-rules.yaml', import.meta.url);

/**
 * Labels Prometheus attaches to every scraped series (scrape target labels): job and instance
 * always; namespace and pod from Kubernetes service discovery (the chart's ServiceMonitor).
 */
const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod'];

// ---------------------------------------------------------------------------
// PromQL tokenizer and checker
// ---------------------------------------------------------------------------

type Token =
  | { kind: 'ident'; value: string; pos: number }
  | { kind: 'punct'; value: string; pos: number }
  | { kind: 'other'; value: string; pos: number };

/** A metric selector: name plus the label names its {} matchers use. */
interface Selector {
  name: string;
  matcherLabels: string[];
  /** Index in the token list of the metric name. */
  index: number;
}

interface Grouping {
  keyword: string;
  labels: string[];
  /** Token index range of the expression the clause applies to (aggregations). */
  body?: [number, number];
}

interface ParsedExpr {
  selectors: Selector[];
  groupings: Grouping[];
}

const AGGREGATIONS = new Set([
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values',
  'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio',
]);
const KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless',
  'offset', 'atan2', 'start', 'end', 'inf', 'nan',
]);
const LABEL_LIST_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++; // comment
    } else if (c === '"' || c === "'" || c === '`') {
      const start = i++;
      while (i < expr.length && expr[i] !== c) i += expr[i] === '\\' && c !== '`' ? 2 : 1;
      i++;
      tokens.push({ kind: 'other', value: expr.slice(start, i), pos: start }); // string
    } else if (c === '[') {
      const start = i;
      while (i < expr.length && expr[i] !== ']') i++; // range / subquery: durations, $__rate_interval
      i++;
      tokens.push({ kind: 'other', value: expr.slice(start, i), pos: start });
    } else if (c === '$') {
      const m = /^\$(\{[^}]*\}|\w+)/.exec(expr.slice(i));
      const len = m ? m[0].length : 1;
      tokens.push({ kind: 'other', value: expr.slice(i, i + len), pos: i }); // Grafana variable
      i += len;
    } else if (/[0-9.]/.test(c)) {
      const m = /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?(?:ms|[smhdwy])*)/.exec(expr.slice(i));
      const len = m && m[0].length > 0 ? m[0].length : 1;
      tokens.push({ kind: 'other', value: expr.slice(i, i + len), pos: i }); // number / duration
      i += len;
    } else if (/[a-zA-Z_:]/.test(c)) {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))!;
      tokens.push({ kind: 'ident', value: m[0], pos: i });
      i += m[0].length;
    } else {
      const two = expr.slice(i, i + 2);
      const op = ['==', '!=', '>=', '<=', '=~', '!~'].includes(two) ? two : c;
      tokens.push({ kind: 'punct', value: op, pos: i });
      i += op.length;
    }
  }
  return tokens;
}

function matching(tokens: Token[], open: number): number {
  const o = tokens[open]!.value;
  const cl = o === '(' ? ')' : '}';
  let depth = 0;
  for (let j = open; j < tokens.length; j++) {
    const t = tokens[j]!;
    if (t.kind !== 'punct') continue;
    if (t.value === o) depth++;
    else if (t.value === cl && --depth === 0) return j;
  }
  throw new Error(`unbalanced ${o} at ${tokens[open]!.pos}`);
}

function matchingOpen(tokens: Token[], close: number): number {
  let depth = 0;
  for (let j = close; j >= 0; j--) {
    const t = tokens[j]!;
    if (t.kind !== 'punct') continue;
    if (t.value === ')') depth++;
    else if (t.value === '(' && --depth === 0) return j;
  }
  throw new Error(`unbalanced ) at ${tokens[close]!.pos}`);
}

/** Identifiers of a ( a, b, c ) list starting at `open`. */
function labelList(tokens: Token[], open: number): { labels: string[]; close: number } {
  assert.equal(tokens[open]?.value, '(', 'label list must start with (');
  const close = matching(tokens, open);
  const labels = tokens.slice(open + 1, close).flatMap((t) => (t.kind === 'ident' ? [t.value] : []));
  return { labels, close };
}

function parsePromQL(expr: string): ParsedExpr {
  const tokens = tokenize(expr);
  const selectors: Selector[] = [];
  const groupings: Grouping[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind === 'punct' && t.value === '{') {
      // Matchers: label op "string" pairs. A {} not right after a metric name
      // would be a bare selector: the project does not use those.
      const close = matching(tokens, i);
      const labels: string[] = [];
      for (let j = i + 1; j < close; j++) {
        const tj = tokens[j]!;
        if (tj.kind === 'ident' && tokens[j + 1]?.kind === 'punct' && ['=', '!=', '=~', '!~'].includes(tokens[j + 1]!.value)) {
          labels.push(tj.value);
        }
      }
      const prev = selectors.at(-1);
      assert.ok(prev && prev.index === i - 1, `selector without metric name at ${t.pos} in ${expr}`);
      prev.matcherLabels.push(...labels);
      i = close;
      continue;
    }
    if (t.kind !== 'ident') continue;
    const next = tokens[i + 1];
    const lower = t.value.toLowerCase();
    if (LABEL_LIST_KEYWORDS.has(t.value)) {
      if (next?.value !== '(') continue; // group_left without labels
      const { labels, close } = labelList(tokens, i + 1);
      const grouping: Grouping = { keyword: t.value, labels };
      if (t.value === 'by' || t.value === 'without') {
        const prev = tokens[i - 1];
        if (prev?.kind === 'ident' && AGGREGATIONS.has(prev.value)) {
          // sum by (x) (body)
          const open = close + 1;
          assert.equal(tokens[open]?.value, '(', `aggregation body expected at ${t.pos} in ${expr}`);
          grouping.body = [open, matching(tokens, open)];
        } else if (prev?.value === ')') {
          // sum (body) by (x)
          grouping.body = [matchingOpen(tokens, i - 1), i - 1];
        } else {
          assert.fail(`${t.value} clause not attached to an aggregation at ${t.pos} in ${expr}`);
        }
      }
      groupings.push(grouping);
      i = close;
      continue;
    }
    if (next?.kind === 'punct' && next.value === '(') continue; // function or aggregation call
    if (AGGREGATIONS.has(t.value) || KEYWORDS.has(lower)) continue;
    selectors.push({ name: t.value, matcherLabels: [], index: i });
  }
  return { selectors, groupings };
}

/** Known series: name -> label names they carry. */
type Catalog = Map<string, Set<string>>;

function checkExpr(expr: string, catalog: Catalog): string[] {
  const problems: string[] = [];
  const { selectors, groupings } = parsePromQL(expr);
  if (selectors.length === 0) problems.push(`no metric in: ${expr}`);
  for (const s of selectors) {
    const labels = catalog.get(s.name);
    if (!labels) {
      problems.push(`unknown metric ${s.name} in: ${expr}`);
      continue;
    }
    for (const l of s.matcherLabels) {
      if (!labels.has(l)) problems.push(`metric ${s.name} has no label ${l} (matcher) in: ${expr}`);
    }
  }
  for (const g of groupings) {
    const scope = g.body ? selectors.filter((s) => s.index > g.body![0] && s.index < g.body![1]) : selectors;
    for (const l of g.labels) {
      const carriers = scope.filter((s) => catalog.get(s.name)?.has(l));
      // by()/without(): every aggregated series must carry the label;
      // on()/ignoring()/group_*(): at least one side must.
      const ok = g.body ? carriers.length === scope.length && scope.length > 0 : carriers.length > 0;
      if (!ok) problems.push(`${g.keyword} (${l}): not a label of ${scope.map((s) => s.name).join(', ')} in: ${expr}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Collecting expressions
// ---------------------------------------------------------------------------

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}

function loadRules(): Rule[] {
  const doc = parseYaml(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: { expr?: string; datasource?: { uid?: string }; refId?: string }[];
  panels?: Panel[];
}

interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: {
    list: { name: string; type: string; query?: unknown; definition?: string; datasource?: { uid?: string } }[];
  };
}

function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

function dashboardExprs(d: Dashboard): { where: string; expr: string }[] {
  return allPanels(d.panels).flatMap((p) =>
    (p.targets ?? []).flatMap((t) => (t.expr ? [{ where: `panel "${p.title}" ${t.refId}`, expr: t.expr }] : [])),
  );
}

/** label_values(metric, label) of the dashboard's query variables. */
function labelValuesQueries(d: Dashboard): { metric: string; label: string }[] {
  return d.templating.list.flatMap((v) => {
    if (v.type !== 'query') return [];
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query ?? '';
    const m = /^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)$/.exec(q.trim());
    assert.ok(m, `variable ${v.name}: unsupported query ${q}`);
    return [{ metric: m[1]!, label: m[2]! }];
  });
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

let metrics: ProxyMetrics;
/** Exported series, plus target labels. */
const exported: Catalog = new Map();
/** Exported series plus recording rules. */
const catalog: Catalog = new Map();
const families = new Map<string, string[]>();

before(async () => {
  metrics = createMetrics(); // with default metrics, like the proxy
  for (const d of await describeMetrics(metrics.registry)) {
    families.set(d.name, d.series.map((s) => s.name));
    for (const s of d.series) exported.set(s.name, new Set([...s.labelNames, ...TARGET_LABELS]));
  }
  for (const [k, v] of exported) catalog.set(k, v);
  // `up`: the series Prometheus itself writes for every scrape target.
  catalog.set('up', new Set(TARGET_LABELS));
  // Recording rules: the series they produce carry their outer by() labels.
  for (const r of loadRules()) {
    if (!r.record) continue;
    const problems = checkExpr(r.expr, catalog);
    assert.deepEqual(problems, [], `recording rule ${r.record}`);
    const bys = parsePromQL(r.expr).groupings.filter((g) => g.keyword === 'by');
    assert.ok(bys.length > 0, `recording rule ${r.record} should aggregate with by()`);
    const labels = bys.map((g) => new Set(g.labels)).reduce((a, b) => new Set([...a].filter((l) => b.has(l))));
    catalog.set(r.record, labels);
  }
});

after(() => metrics.close());

describe('PromQL checker', () => {
  it('extracts metrics, matchers and grouping labels, skipping functions, keywords, strings and ranges', () => {
    const p = parsePromQL(
      'histogram_quantile(0.99, sum by (service, le) (rate(kubeproxy_request_duration_seconds_bucket{service=~"$service",le!="x"}[$__rate_interval] offset 5m)))' +
        ' / on (service) group_left sum(rate(kubeproxy_requests_total{status_class="5xx"}[5m])) by (service) > bool 1e-3 and vector(1) or time() - 0x10',
    );
    assert.deepEqual(
      p.selectors.map((s) => [s.name, s.matcherLabels]),
      [
        ['kubeproxy_request_duration_seconds_bucket', ['service', 'le']],
        ['kubeproxy_requests_total', ['status_class']],
      ],
    );
    assert.deepEqual(
      p.groupings.map((g) => [g.keyword, g.labels, g.body !== undefined]),
      [
        ['by', ['service', 'le'], true],
        ['on', ['service'], false],
        ['by', ['service'], true],
      ],
    );
  });

  it('reports unknown metrics and labels', () => {
    assert.deepEqual(checkExpr('sum by (service) (rate(kubeproxy_requests_total[5m]))', catalog), []);
    assert.match(checkExpr('rate(kubeproxy_request_total[5m])', catalog).join(), /unknown metric kubeproxy_request_total/);
    assert.match(checkExpr('kubeproxy_open_connections{service="a"}', catalog).join(), /has no label service/);
    assert.match(
      checkExpr('sum by (upstream) (rate(kubeproxy_requests_total[5m]))', catalog).join(),
      /by \(upstream\): not a label of kubeproxy_requests_total/,
    );
    assert.match(
      checkExpr('sum(rate(kubeproxy_request_duration_seconds_sum[5m])) by (le)', catalog).join(),
      /by \(le\)/,
    );
    assert.deepEqual(checkExpr('sum by (le) (rate(kubeproxy_request_duration_seconds_bucket[5m]))', catalog), []);
  });
});

describe('metric catalog', () => {
  it('has every KubeProxy metric family and the default process metrics', () => {
    for (const name of [
      'kubeproxy_requests_total',
      'kubeproxy_request_duration_seconds_bucket',
      'kubeproxy_upstream_duration_seconds_count',
      'kubeproxy_event_loop_lag_seconds',
      'kubeproxy_event_loop_utilization',
      'nodejs_heap_size_used_bytes',
      'nodejs_gc_duration_seconds_sum',
      'process_cpu_seconds_total',
    ]) {
      assert.ok(exported.has(name), name);
    }
    assert.ok(exported.get('nodejs_gc_duration_seconds_sum')!.has('kind'));
  });
});

describe('Prometheus rules', () => {
  it('name only exported metrics, recording rules and existing labels', () => {
    const rules = loadRules();
    assert.ok(rules.length >= 10);
    const problems = rules.flatMap((r) => checkExpr(r.expr, catalog).map((p) => `${r.record ?? r.alert}: ${p}`));
    assert.deepEqual(problems, []);
  });

  it('alerts use the recorded SLIs for every window they need', () => {
    const records = new Set(loadRules().flatMap((r) => (r.record ? [r.record] : [])));
    for (const sli of ['availability', 'latency']) {
      for (const w of ['5m', '30m', '1h', '2h', '6h', '1d', '3d']) {
        assert.ok(records.has(`service:kubeproxy_${sli}_sli:ratio_rate${w}`), `${sli} ${w}`);
      }
    }
  });
});

describe('Grafana dashboard', () => {
  it('is a schemaVersion 39 dashboard with a templated datasource and a service variable', () => {
    const d = loadDashboard();
    assert.equal(d.schemaVersion, 39);
    assert.equal(d.uid, 'kubeproxy-overview');
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get('datasource')?.type, 'datasource');
    assert.equal(vars.get('service')?.definition, 'label_values(kubeproxy_requests_total, service)');
    assert.equal(vars.get('service')?.datasource?.uid, '${datasource}');
    const ids = new Set<number>();
    for (const p of allPanels(d.panels)) {
      assert.ok(p.id !== undefined && !ids.has(p.id), `duplicate or missing panel id ${p.id}`);
      ids.add(p.id);
      assert.ok(p.gridPos, `panel ${p.title} has no gridPos`);
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, `panel ${p.title} is wider than the grid`);
      if (p.type === 'row') continue;
      assert.equal(p.datasource?.uid, '${datasource}', `panel ${p.title} datasource`);
      assert.ok((p.targets ?? []).length > 0, `panel ${p.title} has no query`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, '${datasource}', `panel ${p.title} target`);
    }
  });

  it('queries only exported metrics, recording rules and existing labels', () => {
    const d = loadDashboard();
    const exprs = dashboardExprs(d);
    assert.ok(exprs.length >= 30, `only ${exprs.length} expressions`);
    const problems = exprs.flatMap(({ where, expr }) => checkExpr(expr, catalog).map((p) => `${where}: ${p}`));
    for (const { metric, label } of labelValuesQueries(d)) {
      if (!catalog.get(metric)?.has(label)) problems.push(`label_values(${metric}, ${label}): unknown metric or label`);
    }
    assert.deepEqual(problems, []);
  });

  it('shows every KubeProxy metric family at least once', () => {
    const used = new Set<string>();
    const rules = new Map(loadRules().flatMap((r) => (r.record ? [[r.record, r.expr] as const] : [])));
    const visit = (expr: string): void => {
      for (const s of parsePromQL(expr).selectors) {
        used.add(s.name);
        const recorded = rules.get(s.name);
        if (recorded) visit(recorded);
      }
    };
    for (const { expr } of dashboardExprs(loadDashboard())) visit(expr);
    const missing = [...families]
      .filter(([name]) => name.startsWith('kubeproxy_'))
      .filter(([, series]) => !series.some((s) => used.has(s)))
      .map(([name]) => name);
    assert.deepEqual(missing, []);
  });
});
