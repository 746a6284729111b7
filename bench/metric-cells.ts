// `node --import tsx bench/metric-cells.ts`: what one metric update costs on the request path,
// KubeProxy's cells (src/metrics/metrics.ts) against prom-client's own children (a child bound once
// with `labels()`, as a caller that hoists it would), in the same process, interleaved over rounds.
// A proxied request makes about six updates (request counter and histogram, upstream histogram,
// byte counters, cache counter). Prints ns per update; the median over the rounds.
import { Counter, Histogram, Registry } from 'prom-client';
import { createMetrics, LATENCY_BUCKETS } from '../src/metrics/metrics.ts';
import { runMicro } from './micro.ts';

const ROUNDS = 7;
const N = 1_000_000;

const registry = new Registry();
const labelNames = ['service', 'method', 'status_class'] as const;
const labels = { service: 'bench', method: 'GET', status_class: '2xx' };
const counter = new Counter({ name: 'c_total', help: 'c', labelNames, registers: [registry] }).labels(labels);
const histogram = new Histogram({ name: 'h_seconds', help: 'h', labelNames, buckets: [...LATENCY_BUCKETS], registers: [registry] }).labels(labels);

const metrics = createMetrics({ defaultMetrics: false, eventLoop: false });
const service = metrics.service('bench');

const cases: Record<string, (i: number) => void> = {
  'cells: counter': () => service.retry(),
  'prom-client child: counter': () => counter.inc(),
  // observeRequest = one counter + one histogram update.
  'cells: counter + histogram': (i) => service.observeRequest('GET', 200, (i % 200) / 1000),
  'prom-client child: counter + histogram': (i) => {
    counter.inc();
    histogram.observe((i % 200) / 1000);
  },
};

const medians = runMicro(cases, ROUNDS, N);
console.log(`| update (median of ${ROUNDS} rounds × ${N.toLocaleString('en')}) | ns |`);
console.log('|---|---:|');
for (const [name, ns] of medians) console.log(`| ${name} | ${ns.toFixed(1)} |`);
metrics.close();
