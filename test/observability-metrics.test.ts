/**
 * GET /metrics after known traffic through a real proxy: request counts by status class, the
 * latency histograms, errors by cause, retries, bytes and the gauges read at scrape time.
 * One proxy per file (this process), so every count is exact.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { ERROR_CAUSES, LATENCY_BUCKETS } from '../src/metrics/metrics.ts';
import { validateConfig } from '../src/config/load.ts';
import { deadPort, startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy, type TestService } from './helpers/proxy.ts';
import { request } from './helpers/http.ts';
import { until } from './helpers/load.ts';
import { scrape, type Scrape } from './helpers/metrics.ts';

const LE = [...LATENCY_BUCKETS.map(String), '+Inf'];

describe('metrics after known traffic', () => {
  let ok: Origin;
  let hang: Origin;
  let proxy: TestProxy;
  let dead: number;
  let services: TestService[];
  /** Resolves the next time the hanging origin receives a request. */
  let hangArrived: (() => void) | undefined;
  const okBody = (path: string) => (path === '/missing' ? 'no such page' : `hello ${path}`);

  before(async () => {
    ok = await startOrigin((req, res) => {
      req.resume();
      req.on('end', () => {
        const body = okBody(req.url ?? '/');
        res.writeHead(req.url === '/missing' ? 404 : 200, {
          'content-type': 'text/plain',
          'content-length': Buffer.byteLength(body),
          ...(req.url === '/cacheable' ? { 'cache-control': 'public, max-age=60' } : {}),
        });
        res.end(body);
      });
    });
    // Never answers: for the response timeout and the client abort.
    hang = await startOrigin(() => {
      hangArrived?.();
    });
    dead = await deadPort();
    const flakyDead = await deadPort();
    services = [
      { name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: ok.port }] },
      { name: 'dead', domain: 'dead.test', hosts: [{ address: '127.0.0.1', port: dead }] },
      { name: 'slow', domain: 'slow.test', hosts: [{ address: '127.0.0.1', port: hang.port }], timeouts: { response: '300ms' } },
      // Equal weights rotate in array order: the first request tries the dead instance first.
      { name: 'flaky', domain: 'flaky.test', hosts: [{ address: '127.0.0.1', port: flakyDead }, { address: '127.0.0.1', port: ok.port }] },
      { name: 'abort', domain: 'abort.test', hosts: [{ address: '127.0.0.1', port: hang.port }] },
      { name: 'cached', domain: 'cached.test', hosts: [{ address: '127.0.0.1', port: ok.port }] },
    ];
    proxy = await startProxy({ services });
  });
  after(async () => {
    await proxy.close();
    await ok.close();
    await hang.close();
  });

  test('GET /metrics answers the Prometheus text format with its content type', async () => {
    const s = await scrape(proxy.adminPort);
    assert.equal(s.status, 200);
    assert.match(s.contentType ?? '', /^text\/plain; version=0\.0\.4; charset=utf-8$/);
    assert.match(s.text, /^# HELP kubeproxy_requests_total /m);
    assert.match(s.text, /^# TYPE kubeproxy_request_duration_seconds histogram$/m);
    // Configured services and their instances are exported from the start, at zero.
    assert.equal(s.get('kubeproxy_inflight_requests', { service: 'web' }), 0);
    assert.equal(s.get('kubeproxy_instance_healthy', { service: 'web', upstream: `127.0.0.1:${ok.port}` }), 1);
    assert.equal(s.get('kubeproxy_upstream_inflight', { service: 'dead', upstream: `127.0.0.1:${dead}` }), 0);
    assert.equal(s.get('kubeproxy_errors_total', { service: 'web', cause: 'connect' }), 0);
    assert.equal(s.get('kubeproxy_config_reloads_total', { result: 'success' }), 0);
    assert.ok((s.get('kubeproxy_config_last_reload_success_timestamp_seconds') ?? 0) > Date.now() / 1000 - 600);
  });

  test('requests, errors, retries, bytes and histograms are counted exactly', async () => {
    // web: 3 × GET 200, 1 × POST 200 with a 3-byte body, 1 × GET 404 from the origin.
    for (const path of ['/a', '/b', '/c']) assert.equal((await request(proxy.port, { host: 'web.test', path })).status, 200);
    assert.equal((await request(proxy.port, { host: 'web.test', method: 'POST', path: '/form', body: 'abc' })).status, 200);
    assert.equal((await request(proxy.port, { host: 'web.test', path: '/missing' })).status, 404);
    // No service for this Host: 421, counted under _unrouted.
    assert.equal((await request(proxy.port, { host: 'nowhere.test' })).status, 421);
    // The only instance refuses connections: 503.
    assert.equal((await request(proxy.port, { host: 'dead.test' })).status, 503);
    // The instance never answers: 504 after the 300 ms response timeout.
    assert.equal((await request(proxy.port, { host: 'slow.test' })).status, 504);
    // First instance refuses, the retry on the second answers.
    const flaky = await request(proxy.port, { host: 'flaky.test', path: '/retried' });
    assert.equal(flaky.status, 200);
    assert.equal(flaky.text, 'hello /retried');

    const s = await scrape(proxy.adminPort);
    const requests = (service: string, method: string, status_class: string) => s.get('kubeproxy_requests_total', { service, method, status_class });
    assert.equal(requests('web', 'GET', '2xx'), 3);
    assert.equal(requests('web', 'POST', '2xx'), 1);
    assert.equal(requests('web', 'GET', '4xx'), 1);
    assert.equal(requests('_unrouted', 'GET', '4xx'), 1);
    assert.equal(requests('dead', 'GET', '5xx'), 1);
    assert.equal(requests('slow', 'GET', '5xx'), 1);
    assert.equal(requests('flaky', 'GET', '2xx'), 1);
    const total = s.all('kubeproxy_requests_total').reduce((n, x) => n + x.value, 0);
    assert.equal(total, 9, 'no other request was counted');

    // Errors by cause: every cause of every service, exactly.
    const expected: Record<string, Partial<Record<string, number>>> = {
      web: {},
      dead: { connect: 1, no_healthy_instance: 1 },
      slow: { timeout: 1 },
      flaky: { connect: 1 },
      abort: {},
      cached: {},
      _unrouted: { no_route: 1 },
    };
    for (const [service, causes] of Object.entries(expected)) {
      for (const cause of ERROR_CAUSES) {
        assert.equal(s.get('kubeproxy_errors_total', { service, cause }), causes[cause] ?? 0, `errors ${service}/${cause}`);
      }
    }
    assert.equal(s.get('kubeproxy_retries_total', { service: 'flaky' }), 1);
    assert.equal(s.get('kubeproxy_retries_total', { service: 'web' }), 0);
    assert.equal(s.get('kubeproxy_retries_total', { service: 'dead' }), 0);

    // Traffic: request and response body bytes.
    assert.equal(s.get('kubeproxy_request_bytes_total', { service: 'web' }), 3);
    const webBytes = ['/a', '/b', '/c', '/form', '/missing'].reduce((n, p) => n + Buffer.byteLength(okBody(p)), 0);
    assert.equal(s.get('kubeproxy_response_bytes_total', { service: 'web' }), webBytes);

    // Histograms: cumulative buckets ending in +Inf == _count == the request count.
    for (const [service, method, status_class, count] of [
      ['web', 'GET', '2xx', 3],
      ['web', 'POST', '2xx', 1],
      ['slow', 'GET', '5xx', 1],
      ['_unrouted', 'GET', '4xx', 1],
    ] as const) {
      const labels = { service, method, status_class };
      const buckets = LE.map((le) => s.get('kubeproxy_request_duration_seconds_bucket', { ...labels, le }));
      assert.ok(buckets.every((b) => typeof b === 'number'), `${service}: every bucket exported`);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]! >= buckets[i - 1]!, `${service}: buckets are cumulative`);
      assert.equal(buckets.at(-1), count);
      assert.equal(s.get('kubeproxy_request_duration_seconds_count', labels), count);
      assert.ok(s.get('kubeproxy_request_duration_seconds_sum', labels)! > 0);
    }
    // The 504 took at least the 300 ms response timeout: nothing in the buckets up to 0.25 s.
    assert.equal(s.get('kubeproxy_request_duration_seconds_bucket', { service: 'slow', method: 'GET', status_class: '5xx', le: '0.25' }), 0);
    assert.equal(s.get('kubeproxy_request_duration_seconds_bucket', { service: 'slow', method: 'GET', status_class: '5xx', le: '30' }), 1);

    // Upstream latency: one observation per request answered by an instance (web: 5, flaky: 1 on its live instance).
    assert.equal(s.get('kubeproxy_upstream_duration_seconds_count', { service: 'web', upstream: `127.0.0.1:${ok.port}` }), 5);
    assert.equal(s.get('kubeproxy_upstream_duration_seconds_count', { service: 'flaky', upstream: `127.0.0.1:${ok.port}` }), 1);
    assert.equal(s.get('kubeproxy_upstream_duration_seconds_count', { service: 'dead', upstream: `127.0.0.1:${dead}` }) ?? 0, 0);
    // Nothing is in flight any more.
    for (const g of s.all('kubeproxy_inflight_requests')) assert.equal(g.value, 0, JSON.stringify(g.labels));
    for (const g of s.all('kubeproxy_upstream_inflight')) assert.equal(g.value, 0, JSON.stringify(g.labels));
  });

  test('a request in flight shows in the gauges; a client that leaves is counted as client_abort (499)', async () => {
    const arrived = new Promise<void>((resolve) => (hangArrived = resolve));
    const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: '/wait', headers: { host: 'abort.test' } });
    req.on('error', () => {});
    req.end();
    await arrived;
    const during = await scrape(proxy.adminPort);
    assert.equal(during.get('kubeproxy_inflight_requests', { service: 'abort' }), 1);
    assert.equal(during.get('kubeproxy_upstream_inflight', { service: 'abort', upstream: `127.0.0.1:${hang.port}` }), 1);
    assert.equal(during.get('kubeproxy_open_connections'), 1, 'the waiting client (the scrape is on the admin port)');

    req.destroy();
    let s: Scrape | undefined;
    await until(async () => {
      s = await scrape(proxy.adminPort);
      return s.get('kubeproxy_requests_total', { service: 'abort', method: 'GET', status_class: '4xx' }) === 1;
    }, 'the aborted request to be counted');
    assert.equal(s!.get('kubeproxy_errors_total', { service: 'abort', cause: 'client_abort' }), 1);
    assert.equal(s!.get('kubeproxy_inflight_requests', { service: 'abort' }), 0);
    assert.equal(s!.get('kubeproxy_upstream_inflight', { service: 'abort', upstream: `127.0.0.1:${hang.port}` }), 0);
    assert.equal(s!.all('kubeproxy_requests_total', { service: 'abort' }).length, 1, 'no 2xx was counted for it');
  });

  test('a reload counts, and the series of a service and an instance that left disappear', async () => {
    const next = validateConfig({
      proxy: {
        listen: { address: '127.0.0.1', port: 0 },
        admin: { address: '127.0.0.1', port: 0 },
        services: services
          .filter((sv) => sv.name !== 'dead')
          .map((sv) => (sv.name === 'flaky' ? { ...sv, hosts: sv.hosts.filter((h) => h.port === ok.port) } : sv)),
      },
    });
    proxy.runtime.reload(next);
    const s = await scrape(proxy.adminPort);
    assert.equal(s.get('kubeproxy_config_reloads_total', { result: 'success' }), 1);
    assert.equal(s.get('kubeproxy_config_reloads_total', { result: 'failure' }), 0);
    assert.doesNotMatch(s.text, /service="dead"/);
    assert.equal(s.all('kubeproxy_instance_healthy', { service: 'flaky' }).length, 1);
    // Series of services that stay keep their counts.
    assert.equal(s.get('kubeproxy_requests_total', { service: 'web', method: 'GET', status_class: '2xx' }), 3);
    assert.equal(s.get('kubeproxy_errors_total', { service: 'flaky', cause: 'connect' }), 1);
  });

  test('two identical cacheable requests count one cache miss and one hit', async () => {
    const before = ok.requests.length;
    for (let i = 0; i < 2; i++) {
      const r = await request(proxy.port, { host: 'cached.test', path: '/cacheable' });
      assert.equal(r.status, 200);
      assert.equal(r.text, okBody('/cacheable'));
    }
    assert.equal(ok.requests.length - before, 1, 'the second answer came from the cache');
    let s: Scrape | undefined;
    await until(async () => {
      s = await scrape(proxy.adminPort);
      return (s.get('kubeproxy_cache_requests_total', { service: 'cached', result: 'hit' }) ?? 0) >= 1;
    }, 'the hit to be counted');
    for (const [result, n] of Object.entries({ hit: 1, miss: 1, stale: 0, revalidated: 0, bypass: 0 })) {
      assert.equal(s!.get('kubeproxy_cache_requests_total', { service: 'cached', result }), n, result);
    }
    assert.equal(s!.get('kubeproxy_requests_total', { service: 'cached', method: 'GET', status_class: '2xx' }), 2);
    assert.equal(s!.get('kubeproxy_upstream_duration_seconds_count', { service: 'cached', upstream: `127.0.0.1:${ok.port}` }), 1);
    assert.ok((s!.get('kubeproxy_cache_entries') ?? 0) >= 1, 'cache size is exported');
    assert.ok((s!.get('kubeproxy_cache_bytes') ?? 0) > 0);
    const status = JSON.parse((await request(proxy.adminPort, { path: '/status' })).text) as {
      cache: { entries: number; bytes: number; hitRatio: number; lookups: Record<string, number> };
    };
    assert.ok(status.cache.entries >= 1 && status.cache.bytes > 0);
    assert.ok(status.cache.lookups.hit! >= 1 && status.cache.hitRatio > 0 && status.cache.hitRatio < 1, JSON.stringify(status.cache));
  });
});
