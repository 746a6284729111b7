import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  createMetrics,
  describeMetrics,
  methodClass,
  statusClass,
  metrics as sharedMetrics,
  registry as sharedRegistry,
  metricsText,
  METRICS_CONTENT_TYPE,
  UNROUTED_SERVICE,
  ERROR_CAUSES,
  type ErrorCause,
  type ProxyMetrics,
} from './metrics.ts';
import type { ErrorCause as ProxyErrorCause } from '../errors.ts';

// Contract (checked by tsc): every ProxyError kind is a valid `cause` label, so
// the request path can call `service.error(err.kind)` directly.
const proxyErrorCauseIsCounted = (kind: ProxyErrorCause): ErrorCause => kind;
void proxyErrorCauseIsCounted;

/** Sample lines (no # HELP/# TYPE) of the given metric family names. */
async function samples(m: ProxyMetrics, ...prefixes: string[]): Promise<string[]> {
  const text = await m.metricsText();
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .filter((line) => prefixes.some((p) => line.startsWith(p + '{') || line.startsWith(p + ' ')));
}

function isolated(): ProxyMetrics {
  return createMetrics({ defaultMetrics: false, eventLoop: false });
}

const LE = ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30', '+Inf'];

describe('label classes', () => {
  it('maps methods to a bounded set', () => {
    assert.equal(methodClass('GET'), 'GET');
    assert.equal(methodClass('OPTIONS'), 'OPTIONS');
    assert.equal(methodClass('PROPFIND'), 'other');
    assert.equal(methodClass('get'), 'other');
    assert.equal(methodClass('constructor'), 'other');
  });
  it('ignores an unknown error cause instead of creating a series', async () => {
    const m = isolated();
    m.service('api').error('nope' as ErrorCause);
    assert.ok((await samples(m, 'kubeproxy_errors_total')).every((l) => / 0$/.test(l)));
  });
  it('maps status codes to classes', () => {
    assert.equal(statusClass(101), '1xx');
    assert.equal(statusClass(204), '2xx');
    assert.equal(statusClass(304), '3xx');
    assert.equal(statusClass(499), '4xx');
    assert.equal(statusClass(503), '5xx');
    assert.equal(statusClass(0), '5xx');
    assert.equal(statusClass(999), '5xx');
  });
});

describe('exposition', () => {
  it('counts requests and fills histogram buckets, sum and count', async () => {
    const m = isolated();
    const api = m.service('api');
    api.requestStarted();
    api.requestStarted();
    api.requestStarted();
    api.requestFinished('GET', 200, 0.003);
    api.requestFinished('GET', 204, 0.2);
    api.requestFinished('post', 502, 1.5); // lower-case method -> other
    api.observeRequest('GET', 200, Number.NaN); // ignored as a duration, still counted
    api.requestStarted();
    api.requestFinished('GET', 201, Number.NaN);
    assert.deepEqual(await samples(m, 'kubeproxy_requests_total'), [
      'kubeproxy_requests_total{service="api",method="GET",status_class="2xx"} 4',
      'kubeproxy_requests_total{service="api",method="other",status_class="5xx"} 1',
    ]);
    const getCounts = [2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4];
    const otherCounts = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
    const expected = [
      ...LE.map(
        (le, i) =>
          `kubeproxy_request_duration_seconds_bucket{le="${le}",service="api",method="GET",status_class="2xx"} ${getCounts[i]}`,
      ),
      'kubeproxy_request_duration_seconds_sum{service="api",method="GET",status_class="2xx"} 0.203',
      'kubeproxy_request_duration_seconds_count{service="api",method="GET",status_class="2xx"} 4',
      ...LE.map(
        (le, i) =>
          `kubeproxy_request_duration_seconds_bucket{le="${le}",service="api",method="other",status_class="5xx"} ${otherCounts[i]}`,
      ),
      'kubeproxy_request_duration_seconds_sum{service="api",method="other",status_class="5xx"} 1.5',
      'kubeproxy_request_duration_seconds_count{service="api",method="other",status_class="5xx"} 1',
    ];
    assert.deepEqual(
      await samples(
        m,
        'kubeproxy_request_duration_seconds_bucket',
        'kubeproxy_request_duration_seconds_sum',
        'kubeproxy_request_duration_seconds_count',
      ),
      expected,
    );
    assert.deepEqual(await samples(m, 'kubeproxy_inflight_requests'), ['kubeproxy_inflight_requests{service="api"} 0']);
  });

  it('exports traffic, errors, retries, cache and discovery counters', async () => {
    const m = isolated();
    const web = m.service('web');
    web.addRequestBytes(100);
    web.addRequestBytes(0);
    web.addResponseBytes(2048);
    web.addResponseBytes(1024);
    web.error('timeout');
    web.error('timeout');
    web.error('connect');
    web.retry();
    web.cache('hit');
    web.cache('hit');
    web.cache('stale');
    web.discoveryError();
    m.unroutedError('no_route');
    assert.deepEqual(await samples(m, 'kubeproxy_request_bytes_total', 'kubeproxy_response_bytes_total'), [
      'kubeproxy_request_bytes_total{service="web"} 100',
      `kubeproxy_request_bytes_total{service="${UNROUTED_SERVICE}"} 0`,
      'kubeproxy_response_bytes_total{service="web"} 3072',
      `kubeproxy_response_bytes_total{service="${UNROUTED_SERVICE}"} 0`,
    ]);
    // Every cause is exported from the start (at 0) so rate() sees the first error.
    const webErrors: Record<string, number> = { connect: 1, timeout: 2 };
    assert.deepEqual(await samples(m, 'kubeproxy_errors_total'), [
      ...ERROR_CAUSES.map((c) => `kubeproxy_errors_total{service="web",cause="${c}"} ${webErrors[c] ?? 0}`),
      ...ERROR_CAUSES.map(
        (c) => `kubeproxy_errors_total{service="${UNROUTED_SERVICE}",cause="${c}"} ${c === 'no_route' ? 1 : 0}`,
      ),
    ]);
    assert.deepEqual(await samples(m, 'kubeproxy_retries_total', 'kubeproxy_discovery_errors_total'), [
      'kubeproxy_retries_total{service="web"} 1',
      `kubeproxy_retries_total{service="${UNROUTED_SERVICE}"} 0`,
      'kubeproxy_discovery_errors_total{service="web"} 1',
      `kubeproxy_discovery_errors_total{service="${UNROUTED_SERVICE}"} 0`,
    ]);
    assert.deepEqual(await samples(m, 'kubeproxy_cache_requests_total'), [
      'kubeproxy_cache_requests_total{service="web",result="hit"} 2',
      'kubeproxy_cache_requests_total{service="web",result="miss"} 0',
      'kubeproxy_cache_requests_total{service="web",result="stale"} 1',
      'kubeproxy_cache_requests_total{service="web",result="revalidated"} 0',
      'kubeproxy_cache_requests_total{service="web",result="bypass"} 0',
      `kubeproxy_cache_requests_total{service="${UNROUTED_SERVICE}",result="hit"} 0`,
      `kubeproxy_cache_requests_total{service="${UNROUTED_SERVICE}",result="miss"} 0`,
      `kubeproxy_cache_requests_total{service="${UNROUTED_SERVICE}",result="stale"} 0`,
      `kubeproxy_cache_requests_total{service="${UNROUTED_SERVICE}",result="revalidated"} 0`,
      `kubeproxy_cache_requests_total{service="${UNROUTED_SERVICE}",result="bypass"} 0`,
    ]);
  });

  it('exports upstream latency, pool use and health', async () => {
    const m = isolated();
    const up = m.service('api').upstream('10.0.0.7:8080');
    assert.equal(m.service('api').upstream('10.0.0.7:8080'), up, 'upstream handles are cached');
    up.dispatched();
    up.dispatched();
    up.released();
    up.observeResponseHeaders(0.004);
    up.healthCheck(true);
    up.healthCheck(true);
    up.healthCheck(false);
    up.setHealthy(false);
    up.ejected();
    assert.deepEqual(await samples(m, 'kubeproxy_upstream_inflight'), [
      'kubeproxy_upstream_inflight{service="api",upstream="10.0.0.7:8080"} 1',
    ]);
    const counts = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    assert.deepEqual(
      await samples(
        m,
        'kubeproxy_upstream_duration_seconds_bucket',
        'kubeproxy_upstream_duration_seconds_sum',
        'kubeproxy_upstream_duration_seconds_count',
      ),
      [
        ...LE.map(
          (le, i) => `kubeproxy_upstream_duration_seconds_bucket{le="${le}",service="api",upstream="10.0.0.7:8080"} ${counts[i]}`,
        ),
        'kubeproxy_upstream_duration_seconds_sum{service="api",upstream="10.0.0.7:8080"} 0.004',
        'kubeproxy_upstream_duration_seconds_count{service="api",upstream="10.0.0.7:8080"} 1',
      ],
    );
    assert.deepEqual(
      await samples(m, 'kubeproxy_health_checks_total', 'kubeproxy_instance_healthy', 'kubeproxy_ejections_total'),
      [
        'kubeproxy_health_checks_total{service="api",upstream="10.0.0.7:8080",result="success"} 2',
        'kubeproxy_health_checks_total{service="api",upstream="10.0.0.7:8080",result="failure"} 1',
        'kubeproxy_instance_healthy{service="api",upstream="10.0.0.7:8080"} 0',
        'kubeproxy_ejections_total{service="api",upstream="10.0.0.7:8080"} 1',
      ],
    );
  });

  it('sets state gauges in scrape hooks, before the exposition is built', async () => {
    const m = isolated();
    const api = m.service('api');
    const up = api.upstream('10.0.0.9:80');
    let calls = 0;
    const remove = m.beforeScrape(async () => {
      calls++;
      api.setInflight(7);
      up.setInflight(3);
      m.setOpenConnections(12);
      await Promise.resolve();
      api.retry(2);
    });
    assert.deepEqual(
      await samples(m, 'kubeproxy_inflight_requests', 'kubeproxy_upstream_inflight', 'kubeproxy_open_connections', 'kubeproxy_retries_total'),
      [
        'kubeproxy_retries_total{service="api"} 2',
        'kubeproxy_inflight_requests{service="api"} 7',
        'kubeproxy_open_connections 12',
        'kubeproxy_upstream_inflight{service="api",upstream="10.0.0.9:80"} 3',
      ],
    );
    remove();
    await m.metricsText();
    assert.equal(calls, 1, 'a removed hook is not called');
    api.retry(0); // no-op
    assert.deepEqual(await samples(m, 'kubeproxy_retries_total'), ['kubeproxy_retries_total{service="api"} 2']);
  });

  it('sets the last-success timestamp at first load without counting a reload', async () => {
    const m = isolated();
    m.configLoaded(new Date(1_700_000_000_000));
    assert.deepEqual(await samples(m, 'kubeproxy_config_reloads_total', 'kubeproxy_config_last_reload_success_timestamp_seconds'), [
      'kubeproxy_config_reloads_total{result="success"} 0',
      'kubeproxy_config_reloads_total{result="failure"} 0',
      'kubeproxy_config_last_reload_success_timestamp_seconds 1700000000',
    ]);
  });

  it('exports connections, cache size and config reloads', async () => {
    const m = isolated();
    m.connectionOpened();
    m.connectionOpened();
    m.connectionClosed();
    m.setCacheSize(4096, 3);
    m.cacheEvicted();
    m.cacheEvicted(4);
    m.configReload(true, new Date(1_700_000_000_500));
    m.configReload(false);
    assert.deepEqual(
      await samples(
        m,
        'kubeproxy_open_connections',
        'kubeproxy_cache_bytes',
        'kubeproxy_cache_entries',
        'kubeproxy_cache_evictions_total',
        'kubeproxy_config_reloads_total',
        'kubeproxy_config_last_reload_success_timestamp_seconds',
      ),
      [
        'kubeproxy_open_connections 1',
        'kubeproxy_cache_bytes 4096',
        'kubeproxy_cache_entries 3',
        'kubeproxy_cache_evictions_total 5',
        'kubeproxy_config_reloads_total{result="success"} 1',
        'kubeproxy_config_reloads_total{result="failure"} 1',
        'kubeproxy_config_last_reload_success_timestamp_seconds 1700000000.5',
      ],
    );
  });
});

describe('series lifecycle', () => {
  it('removes the series of an upstream that left the config', async () => {
    const m = isolated();
    const api = m.service('api');
    for (const address of ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']) {
      const up = api.upstream(address);
      up.dispatched();
      up.observeResponseHeaders(0.01);
      up.healthCheck(true);
      up.healthCheck(false);
      up.setHealthy(true);
      up.ejected();
    }
    const leaving = api.upstream('10.0.0.1:80');
    api.removeUpstream('10.0.0.1:80');
    api.retainUpstreams(['10.0.0.3:80']);
    // A request still in flight on a removed upstream finishes later: its
    // detached handle must not re-create the series.
    leaving.released();
    leaving.observeResponseHeaders(0.02);
    leaving.setHealthy(false);
    const text = await m.metricsText();
    assert.doesNotMatch(text, /10\.0\.0\.1:80/);
    assert.doesNotMatch(text, /10\.0\.0\.2:80/);
    assert.deepEqual(await samples(m, 'kubeproxy_instance_healthy', 'kubeproxy_upstream_inflight'), [
      'kubeproxy_upstream_inflight{service="api",upstream="10.0.0.3:80"} 1',
      'kubeproxy_instance_healthy{service="api",upstream="10.0.0.3:80"} 1',
    ]);
    // Coming back starts new series from zero.
    api.upstream('10.0.0.1:80').ejected();
    assert.deepEqual(await samples(m, 'kubeproxy_ejections_total'), [
      'kubeproxy_ejections_total{service="api",upstream="10.0.0.3:80"} 1',
      'kubeproxy_ejections_total{service="api",upstream="10.0.0.1:80"} 1',
    ]);
  });

  it('removes every series of a service that left the config', async () => {
    const m = isolated();
    for (const name of ['a', 'b', 'c']) {
      const s = m.service(name);
      s.requestStarted();
      s.requestFinished('GET', 200, 0.01);
      s.requestFinished('DELETE', 404, 0.01);
      s.addRequestBytes(1);
      s.addResponseBytes(1);
      s.error('reset');
      s.retry();
      s.cache('miss');
      s.discoveryError();
      s.upstream(`${name}.svc:80`).dispatched();
    }
    m.removeService('a');
    m.retainServices(['c']);
    m.removeService('never-seen'); // no-op
    const text = await m.metricsText();
    assert.doesNotMatch(text, /service="a"/);
    assert.doesNotMatch(text, /service="b"/);
    assert.match(text, /service="c"/);
    const lines = text.split('\n').filter((l) => l.startsWith('kubeproxy_'));
    assert.ok(lines.every((l) => !/service="/.test(l) || /service="c"/.test(l)), lines.join('\n'));
    assert.deepEqual(await samples(m, 'kubeproxy_requests_total'), [
      'kubeproxy_requests_total{service="c",method="GET",status_class="2xx"} 1',
      'kubeproxy_requests_total{service="c",method="DELETE",status_class="4xx"} 1',
    ]);
    // A new handle for a returning service starts from zero; a stale handle is detached.
    const stale = m.service('c');
    m.removeService('c');
    stale.retry();
    assert.equal(await samples(m, 'kubeproxy_retries_total').then((l) => l.length), 0);
    m.service('c').retry();
    assert.deepEqual(await samples(m, 'kubeproxy_retries_total'), ['kubeproxy_retries_total{service="c"} 1']);
  });

  it('keeps the unrouted pseudo-service on retainServices', async () => {
    const m = isolated();
    m.unroutedError('overload');
    m.retainServices([]);
    assert.ok(
      (await samples(m, 'kubeproxy_errors_total')).includes(
        `kubeproxy_errors_total{service="${UNROUTED_SERVICE}",cause="overload"} 1`,
      ),
    );
  });

  it('caches service handles', () => {
    const m = isolated();
    assert.equal(m.service('x'), m.service('x'));
  });
});

describe('shared instance', () => {
  after(() => sharedMetrics.close());

  it('registers default process metrics and event-loop gauges on the dedicated registry', async () => {
    assert.equal(sharedMetrics.registry, sharedRegistry);
    assert.match(METRICS_CONTENT_TYPE, /^text\/plain; version=0\.0\.4/);
    const text = await metricsText();
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'kubeproxy_event_loop_lag_seconds',
      'kubeproxy_event_loop_utilization',
      'kubeproxy_open_connections',
    ]) {
      assert.match(text, new RegExp(`^${name} `, 'm'), name);
    }
    const util = Number(/^kubeproxy_event_loop_utilization (\S+)$/m.exec(text)?.[1]);
    assert.ok(util >= 0 && util <= 1, `utilization ${util}`);
    const lag = Number(/^kubeproxy_event_loop_lag_seconds (\S+)$/m.exec(text)?.[1]);
    assert.ok(lag >= 0, `lag ${lag}`);
  });

  it('reports a blocked event loop as lag', async () => {
    const m = createMetrics({ defaultMetrics: false, eventLoopResolutionMs: 5 });
    try {
      await m.metricsText(); // resets the window
      await new Promise((resolve) => setTimeout(resolve, 20));
      const start = Date.now();
      while (Date.now() - start < 120) {
        /* block the loop */
      }
      await new Promise((resolve) => setTimeout(resolve, 30));
      const text = await m.metricsText();
      const lag = Number(/^kubeproxy_event_loop_lag_seconds (\S+)$/m.exec(text)?.[1]);
      assert.ok(lag >= 0.08, `lag ${lag}`);
      const util = Number(/^kubeproxy_event_loop_utilization (\S+)$/m.exec(text)?.[1]);
      assert.ok(util > 0.5 && util <= 1, `utilization ${util}`);
    } finally {
      m.close();
    }
  });

  it('describes metrics with their label names and sample names', async () => {
    const all = await describeMetrics(isolated().registry);
    const byName = new Map(all.map((d) => [d.name, d]));
    assert.deepEqual(byName.get('kubeproxy_requests_total')?.labelNames, ['method', 'service', 'status_class']);
    assert.deepEqual(
      byName.get('kubeproxy_upstream_duration_seconds')?.series.map((s) => [s.name, s.labelNames.join(',')]),
      [
        ['kubeproxy_upstream_duration_seconds_bucket', 'service,upstream,le'],
        ['kubeproxy_upstream_duration_seconds_sum', 'service,upstream'],
        ['kubeproxy_upstream_duration_seconds_count', 'service,upstream'],
      ],
    );
    for (const d of all) {
      assert.match(d.name, /^kubeproxy_[a-z0-9_]+$/);
      if (d.type === 'counter') assert.match(d.name, /_total$/, d.name);
      else assert.doesNotMatch(d.name, /_total$/, d.name);
    }
    assert.equal(all.length, 28);
  });
});
