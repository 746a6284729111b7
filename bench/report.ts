// Turns rows into markdown: the results table, ratios, targets and the origin check.
import { WORKLOADS, type WorkloadId } from './contenders.ts';
import { median, type Row } from './measure.ts';

const UNCACHED: WorkloadId[] = ['small', '64k'];
const DEFAULT_KP = 'kubeproxy';

export function table(head: string[], body: string[][]): string {
  const width = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(width[i]!)).join(' | ')} |`;
  return [line(head), line(width.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (n < 1 ? `${(n * 1000).toFixed(0)} µs` : `${n.toFixed(2)} ms`);
const x = (n: number) => `${n.toFixed(2)}×`;

function find(rows: Row[], contender: string, w: WorkloadId): Row | undefined {
  return rows.find((r) => r.contender === contender && r.workload === w);
}
const usable = (r: Row | undefined): r is Row & { rps: number; p99Ms: number } => !!r && r.rps !== undefined && !r.invalid;

/**
 * a ÷ b as the median of the per-round ratios (a's run k ÷ b's run k): runs of the same round
 * were taken seconds apart, so host drift cancels better than in the ratio of the medians, which
 * is the fallback for results without round numbers.
 */
export function pairedRatio(a: Row, b: Row, key: 'rps' | 'p99Ms'): number {
  const theirs = new Map(b.samples.filter((s) => s.round !== undefined).map((s) => [s.round, s[key]]));
  const ratios = a.samples.flatMap((s) => {
    const other = s.round === undefined ? undefined : theirs.get(s.round);
    return other ? [s[key] / other] : [];
  });
  return ratios.length > 0 ? median(ratios) : a[key]! / b[key]!;
}

export function resultsTable(rows: Row[]): string {
  const body = rows.map((r) => [
    WORKLOADS[r.workload].title,
    r.contender,
    ...(r.rps === undefined
      ? ['—', '—', '—', '—', '—', '—']
      : [int(r.rps), ms(r.p50Ms!), ms(r.p99Ms!), `${r.cpuUsPerReq!.toFixed(1)} µs`, `${Math.round(r.proxyCpu! * 100)} %`, `${r.peakRssMiB!.toFixed(1)} MiB`]),
    [r.missing, ...r.notes].filter(Boolean).join('; '),
  ]);
  return table(['Workload', 'Contender', 'req/s', 'p50', 'p99', 'CPU/req', 'CPU use', 'Peak RSS', 'Notes'], body);
}

export function ratioTable(rows: Row[]): string {
  const kps = [...new Set(rows.filter((r) => r.kind === 'kubeproxy').map((r) => r.contender))];
  const peers = ['bare-undici', 'node-http-proxy', 'fastify-http-proxy', 'nginx', 'memory-server'];
  const body: string[][] = [];
  for (const kp of kps) {
    for (const w of Object.keys(WORKLOADS) as WorkloadId[]) {
      const k = find(rows, kp, w);
      if (!k) continue;
      body.push([kp, WORKLOADS[w].title, ...peers.map((p) => {
        const peer = find(rows, p, w);
        if (!peer) return '';
        if (!usable(k)) return 'n/a';
        return usable(peer) ? x(pairedRatio(k, peer, 'rps')) : 'n/a';
      })]);
    }
  }
  if (body.length === 0) return '_no KubeProxy rows_';
  return table(['KubeProxy req/s ÷', 'Workload', ...peers], body);
}

interface Target { name: string; workload: WorkloadId; peer: string; min?: number; maxP99?: number }

const TARGETS: Target[] = [
  ...UNCACHED.flatMap((w): Target[] => [
    { name: 'req/s ≥ 0.9× bare-undici', workload: w, peer: 'bare-undici', min: 0.9 },
    { name: 'req/s ≥ 1.5× node-http-proxy', workload: w, peer: 'node-http-proxy', min: 1.5 },
    { name: 'req/s ≥ 1.5× fastify-http-proxy', workload: w, peer: 'fastify-http-proxy', min: 1.5 },
    { name: 'p99 ≤ 1.2× bare-undici p99 (64 conns)', workload: w, peer: 'bare-undici', maxP99: 1.2 },
  ]),
  { name: 'req/s ≥ 0.9× memory-server', workload: 'cache-hit', peer: 'memory-server', min: 0.9 },
];

export interface TargetResult { target: string; workload: WorkloadId; measured: string; result: 'PASS' | 'FAIL' | 'n/a' }

export function evaluateTargets(rows: Row[]): TargetResult[] {
  return TARGETS.map((t) => {
    const k = find(rows, DEFAULT_KP, t.workload);
    const p = find(rows, t.peer, t.workload);
    const base = { target: t.name, workload: t.workload };
    const why = (r: Row | undefined, name: string) => (!r ? `${name}: not measured` : r.missing ?? `${name}: no valid figures (see Notes)`);
    if (!usable(k)) return { ...base, measured: why(k, DEFAULT_KP), result: 'n/a' };
    if (!usable(p)) return { ...base, measured: why(p, t.peer), result: 'n/a' };
    if (t.maxP99 !== undefined) {
      const r = pairedRatio(k, p, 'p99Ms');
      return { ...base, measured: `${x(r)} (${ms(k.p99Ms)} vs ${ms(p.p99Ms)})`, result: r <= t.maxP99 ? 'PASS' : 'FAIL' };
    }
    const r = pairedRatio(k, p, 'rps');
    return { ...base, measured: `${x(r)} (${int(k.rps)} vs ${int(p.rps)})`, result: r >= t.min! ? 'PASS' : 'FAIL' };
  });
}

export function targetsTable(results: TargetResult[]): string {
  return table(['Target (KubeProxy default config, workers: 1)', 'Workload', 'Measured', 'Result'],
    results.map((t) => [t.target, WORKLOADS[t.workload].title, t.measured, t.result]));
}

/**
 * The origin must not be the bottleneck: origin-direct req/s should be >= 1.5x every pinned
 * proxy's. A proxy that did not saturate its CPU was held back by something else.
 */
export function originCheck(rows: Row[]): string[] {
  return UNCACHED.map((w) => {
    const title = WORKLOADS[w].title;
    const o = find(rows, 'origin (direct)', w);
    const proxies = rows.filter((r) => r.workload === w && r.kind !== 'origin' && r.pinned && usable(r));
    if (!usable(o) || proxies.length === 0) return `${title}: origin check n/a`;
    if ((o.foreignCpu ?? 0) >= 0.05) {
      return `${title}: origin check unreliable: other processes used ${o.foreignCpu!.toFixed(2)} CPU during the origin-direct runs (${int(o.rps)} req/s).`;
    }
    const near = proxies.filter((r) => r.rps! * 1.5 > o.rps);
    const far = proxies.filter((r) => r.rps! * 1.5 <= o.rps);
    const fastestFar = far.reduce<Row | undefined>((a, b) => (!a || b.rps! > a.rps! ? b : a), undefined);
    const parts = [`${title}: origin direct ${int(o.rps)} req/s.`];
    if (fastestFar) parts.push(`OK for ${far.map((r) => r.contender).join(', ')}: the origin is not their bottleneck (≥ ${x(o.rps / fastestFar.rps!)} the fastest of them).`);
    if (near.length) parts.push(`CAUTION for ${near.map((r) => `${r.contender} (${int(r.rps!)}, ${x(r.rps! / o.rps)} of origin direct)`).join(', ')}: the origin + wrk CPU may cap these figures.`);
    const capped = proxies.filter((r) => r.proxyCpu! < 0.85).map((r) => `${r.contender} (${Math.round(r.proxyCpu! * 100)} %)`);
    parts.push(capped.length ? `Did not saturate CPU 0 (held back elsewhere): ${capped.join(', ')}.` : 'Every pinned proxy saturated CPU 0.');
    return parts.join(' ');
  });
}

/** A warning when other processes used CPU during some measurements (shared machine). */
export function busyWarning(rows: Row[]): string[] {
  const busy = rows.filter((r) => (r.foreignCpu ?? 0) >= 0.05);
  if (busy.length === 0) return ['- Machine quiet: other processes used < 0.05 CPU during every measurement.'];
  const worst = Math.max(...busy.map((r) => r.foreignCpu!));
  return [`- WARNING: other processes used CPU during ${busy.length} of ${rows.length} measurements (up to ${worst.toFixed(2)} CPU; see Notes): those figures are not reliable, rerun on an idle machine.`];
}

/**
 * What metrics and the access log cost, from the three single-worker variants of the same run:
 * metrics = (access log off) vs (metrics+log off); access log = default vs (access log off),
 * each from the per-round ratios (pairedRatio).
 * The observability issue's target: metrics cost ≤ 5 % of throughput.
 */
export function observabilityCost(rows: Row[]): string {
  const body: string[][] = [];
  for (const w of Object.keys(WORKLOADS) as WorkloadId[]) {
    const all = find(rows, DEFAULT_KP, w);
    const noLog = find(rows, 'kubeproxy (access log off)', w);
    const none = find(rows, 'kubeproxy (metrics+log off)', w);
    if (!usable(all) || !usable(noLog) || !usable(none)) continue;
    const metricsCost = 1 - pairedRatio(noLog, none, 'rps');
    const logCost = 1 - pairedRatio(all, noLog, 'rps');
    const pct = (n: number) => `${(n * 100).toFixed(1)} %`;
    body.push([WORKLOADS[w].title, pct(metricsCost), metricsCost <= 0.05 ? 'PASS' : 'FAIL', pct(logCost)]);
  }
  if (body.length === 0) return '_not measured (needs the three single-worker KubeProxy variants)_';
  return table(['Workload', 'metrics cost (req/s)', 'metrics ≤ 5 %', 'access log cost (req/s)'], body);
}

/**
 * What the plugin hooks cost: the default KubeProxy with one plugin whose onRequest and onResponse
 * are empty, against the default, from the per-round ratios. Issue 19's target: ≤ 3 % of req/s.
 */
export function pluginCost(rows: Row[]): string {
  const body: string[][] = [];
  for (const w of Object.keys(WORKLOADS) as WorkloadId[]) {
    const plain = find(rows, DEFAULT_KP, w);
    const withPlugin = find(rows, 'kubeproxy (one empty plugin)', w);
    if (!usable(plain) || !usable(withPlugin)) continue;
    const cost = 1 - pairedRatio(withPlugin, plain, 'rps');
    body.push([WORKLOADS[w].title, `${(cost * 100).toFixed(1)} %`, cost <= 0.03 ? 'PASS' : 'FAIL']);
  }
  if (body.length === 0) return '_not measured (needs the default KubeProxy and the one-empty-plugin variant)_';
  return table(['Workload', 'one empty plugin cost (req/s)', '≤ 3 %'], body);
}

/**
 * This build ÷ a previous one (`--baseline <rev>`, contender `kubeproxy@<rev>`), both the default
 * config, from the per-round ratios. Issue 19's target: ≥ 0.97 for 13 B and cache hits.
 */
export function baselineComparison(rows: Row[]): string {
  const body: string[][] = [];
  for (const prev of [...new Set(rows.filter((r) => r.contender.startsWith('kubeproxy@')).map((r) => r.contender))]) {
    for (const w of Object.keys(WORKLOADS) as WorkloadId[]) {
      const now = find(rows, DEFAULT_KP, w);
      const before = find(rows, prev, w);
      if (!before) continue;
      if (!usable(now) || !usable(before)) {
        body.push([WORKLOADS[w].title, prev, 'n/a', 'n/a']);
        continue;
      }
      const r = pairedRatio(now, before, 'rps');
      body.push([WORKLOADS[w].title, prev, `${x(r)} (${int(now.rps)} vs ${int(before.rps)})`, r >= 0.97 ? 'PASS' : 'FAIL']);
    }
  }
  if (body.length === 0) return '_not measured (run with --baseline <git-rev>)_';
  return table(['Workload', 'Previous build', 'this build ÷ previous (req/s)', '≥ 0.97×'], body);
}

export interface BenchMeta { command: string; machine: string; setup: string; date: string }

/** The whole markdown report of a throughput run. */
export function benchMarkdown(meta: BenchMeta, rows: Row[]): string {
  const paired = rows.some((r) => r.samples.some((s) => s.round !== undefined));
  return [
    `## KubeProxy benchmark (${meta.date ?? 'n/a'})`, '',
    `Command: \`${meta.command}\``, '',
    `Machine: ${meta.machine}.`,
    `Setup: ${meta.setup ?? 'n/a'}`, '',
    resultsTable(rows), '',
    '### KubeProxy ÷ peers (req/s, same run)', '',
    paired
      ? 'Median of the per-round ratios (KubeProxy run k ÷ peer run k, taken seconds apart), so a figure may differ from the ratio of the medians above.'
      : 'Ratio of the medians (these results have no round numbers).', '',
    ratioTable(rows), '',
    '### Performance targets', '',
    `Ratios as above${paired ? ' (median of per-round ratios); the figures in brackets are the medians' : ''}.`, '',
    targetsTable(evaluateTargets(rows)), '',
    `### Cost of metrics and access log (same run${paired ? ', median of per-round ratios' : ''}; negative = within noise)`, '',
    observabilityCost(rows), '',
    `### Cost of one plugin with empty onRequest and onResponse (same run${paired ? ', median of per-round ratios' : ''}; negative = within noise)`, '',
    pluginCost(rows), '',
    `### This build ÷ a previous build (same run${paired ? ', median of per-round ratios' : ''})`, '',
    baselineComparison(rows), '',
    '### Checks', '',
    ...originCheck(rows).map((l) => `- ${l}`),
    ...busyWarning(rows),
  ].join('\n');
}
