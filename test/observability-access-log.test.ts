/**
 * The access log as an operator reads it: one JSON line per request with the fields that explain
 * it, errors always logged whatever the sampling, no credentials ever, and the W3C trace context
 * passed upstream unchanged and recorded.
 */
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { setAccessLogOutput } from '../src/observability/access-log.ts';
import { log, setLogger } from '../src/log.ts';
import { deadPort, startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { spawnProxy } from './helpers/child.ts';
import { request } from './helpers/http.ts';
import { until } from './helpers/load.ts';
import { scrape } from './helpers/metrics.ts';

type Line = Record<string, unknown>;

/** A destination that keeps every line written to it. */
function capture(): { stream: Writable; lines: Line[]; raw: string[] } {
  const lines: Line[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) {
        if (l === '') continue;
        raw.push(l);
        lines.push(JSON.parse(l) as Line);
      }
      done();
    },
  });
  return { stream, lines, raw };
}

/** An origin echoing the trace headers it received; /fail answers 500, /missing 404. */
function traceOrigin(): Promise<Origin> {
  return startOrigin((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ traceparent: req.headers.traceparent ?? null, tracestate: req.headers.tracestate ?? null });
      const status = req.url === '/fail' ? 500 : req.url === '/missing' ? 404 : 200;
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        ...(req.url === '/cacheable' ? { 'cache-control': 'public, max-age=60' } : {}),
      });
      res.end(body);
    });
  });
}

/** Requests counted so far by the proxy (the registry is per process: tests compare with a base). */
async function counted(proxy: TestProxy): Promise<number> {
  return (await scrape(proxy.adminPort)).all('kubeproxy_requests_total').reduce((n, x) => n + x.value, 0);
}

async function untilCounted(proxy: TestProxy, base: number, n: number): Promise<void> {
  await until(async () => (await counted(proxy)) >= base + n, `${n} requests to end`);
}

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const TRACESTATE = 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE';

describe('access log', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
    setAccessLogOutput(undefined);
  });

  /** `level`: the access-log level override; null follows the config like production does. */
  async function setup(proxyBlock: Record<string, unknown> = {}, level: string | null = 'info') {
    const out = capture();
    setAccessLogOutput(out.stream, level ?? undefined);
    const origin = await traceOrigin();
    const dead = await deadPort();
    const proxy: TestProxy = await startProxy({
      ...proxyBlock,
      services: [
        { name: 'shop', domain: 'shop.test', hosts: [{ port: origin.port }] },
        { name: 'gone', domain: 'gone.test', hosts: [{ port: dead }] },
      ],
    });
    cleanup.push(() => origin.close(), () => proxy.close());
    return { ...out, origin, proxy, dead };
  }

  test('a successful request is one JSON line with its fields; the query and credentials are never logged', async () => {
    const { proxy, lines, raw, origin } = await setup();
    const r = await request(proxy.port, {
      host: 'shop.test',
      path: '/items/42?token=query-secret&page=2',
      headers: {
        'x-request-id': 'req-123',
        authorization: 'Bearer auth-secret-value',
        cookie: 'session=cookie-secret-value',
        'user-agent': 'test-agent/1.0',
        traceparent: TRACEPARENT,
        tracestate: TRACESTATE,
      },
    });
    assert.equal(r.status, 200);
    // Trace context reaches the instance unchanged.
    assert.deepEqual(JSON.parse(r.text), { traceparent: TRACEPARENT, tracestate: TRACESTATE });
    await until(() => lines.length === 1, 'the access log line');
    const line = lines[0]!;
    assert.equal(line.name, 'kubeproxy.access');
    assert.equal(line.level, 30);
    assert.equal(typeof line.time, 'number');
    assert.equal(line.requestId, 'req-123');
    assert.equal(line.method, 'GET');
    assert.equal(line.host, 'shop.test');
    assert.equal(line.path, '/items/42');
    assert.equal(line.status, 200);
    assert.equal(line.service, 'shop');
    assert.equal(line.instance, `127.0.0.1:${origin.port}`);
    assert.equal(line.bytesIn, 0);
    assert.equal(line.bytesOut, r.body.length);
    assert.equal(line.retries, 0);
    assert.equal(line.clientIp, '127.0.0.1');
    assert.equal(line.userAgent, 'test-agent/1.0');
    assert.equal(line.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(line.parentSpanId, '00f067aa0ba902b7');
    assert.ok(typeof line.durationMs === 'number' && line.durationMs > 0);
    assert.ok(typeof line.upstreamMs === 'number' && line.upstreamMs >= 0 && line.upstreamMs <= line.durationMs);
    for (const absent of ['errorCause', 'errorMessage', 'pid', 'hostname']) assert.equal(absent in line, false, absent);
    const text = raw.join('\n');
    for (const secret of ['query-secret', 'auth-secret-value', 'cookie-secret-value', 'Bearer']) assert.ok(!text.includes(secret), secret);
  });

  test('a failed request is logged at warn with its error cause and message', async () => {
    const { proxy, lines, raw, dead } = await setup();
    const r = await request(proxy.port, {
      host: 'gone.test',
      method: 'POST',
      path: '/pay?card=4111',
      body: 'x',
      headers: { authorization: 'Basic c2VjcmV0OnNlY3JldA==', cookie: 'sid=cookie-secret-value' },
    });
    assert.equal(r.status, 503);
    await until(() => lines.length === 1, 'the access log line');
    const line = lines[0]!;
    assert.equal(line.level, 40);
    assert.equal(line.status, 503);
    assert.equal(line.method, 'POST');
    assert.equal(line.path, '/pay');
    assert.equal(line.service, 'gone');
    assert.equal(line.instance, `127.0.0.1:${dead}`);
    assert.equal(line.errorCause, 'no_healthy_instance');
    assert.match(String(line.errorMessage), /no instance of service "gone" could be reached/);
    assert.equal(line.upstreamMs, undefined, 'no response came from an instance');
    const text = raw.join('\n');
    for (const secret of ['c2VjcmV0OnNlY3JldA==', 'cookie-secret-value', '4111']) assert.ok(!text.includes(secret), secret);
  });

  test('with sampling 0, successful requests are not logged but errors and 5xx always are', async () => {
    const { proxy, lines } = await setup({ accessLog: { sampling: 0 } });
    const base = await counted(proxy);
    for (const path of ['/a', '/b', '/missing']) assert.ok((await request(proxy.port, { host: 'shop.test', path })).status < 500);
    assert.equal((await request(proxy.port, { host: 'nowhere.test', path: '/x' })).status, 421);
    assert.equal((await request(proxy.port, { host: 'shop.test', path: '/fail' })).status, 500);
    assert.equal((await request(proxy.port, { host: 'gone.test' })).status, 503);
    await untilCounted(proxy, base, 6);
    await until(() => lines.length >= 3, 'the error lines');
    assert.deepEqual(
      lines.map((l) => [l.status, l.errorCause ?? null, l.level]),
      [
        [421, 'no_route', 40],
        [500, null, 40],
        [503, 'no_healthy_instance', 40],
      ],
    );
  });

  test('with sampling 0.5, about half of the successful requests are logged', async () => {
    const { proxy, lines } = await setup({ accessLog: { sampling: 0.5 } });
    const base = await counted(proxy);
    for (let i = 0; i < 200; i++) await request(proxy.port, { host: 'shop.test', path: `/p${i}` });
    await untilCounted(proxy, base, 200);
    // Binomial(200, 0.5): outside 60..140 has a probability below 1e-8.
    assert.ok(lines.length > 60 && lines.length < 140, `${lines.length} lines`);
  });

  test('proxy.accessLog.enabled false writes no line, not even for errors', async () => {
    const { proxy, lines } = await setup({ accessLog: { enabled: false } });
    const base = await counted(proxy);
    assert.equal((await request(proxy.port, { host: 'shop.test' })).status, 200);
    assert.equal((await request(proxy.port, { host: 'gone.test' })).status, 503);
    await untilCounted(proxy, base, 2);
    assert.equal(lines.length, 0);
  });

  test('proxy.log.level warn keeps only the failed requests in the access log', async () => {
    // The level comes from the config (no override, no KUBEPROXY_LOG_LEVEL); the process log is muted.
    const savedEnv = process.env.KUBEPROXY_LOG_LEVEL;
    const savedLog = log;
    delete process.env.KUBEPROXY_LOG_LEVEL;
    setLogger(pino({ level: 'warn' }, new Writable({ write: (_c, _e, done) => done() })));
    cleanup.push(() => {
      if (savedEnv === undefined) delete process.env.KUBEPROXY_LOG_LEVEL;
      else process.env.KUBEPROXY_LOG_LEVEL = savedEnv;
      setLogger(savedLog);
    });
    const { proxy, lines } = await setup({ log: { level: 'warn' } }, null);
    const base = await counted(proxy);
    assert.equal((await request(proxy.port, { host: 'shop.test' })).status, 200);
    assert.equal((await request(proxy.port, { host: 'gone.test' })).status, 503);
    await until(() => lines.length >= 1, 'the error line');
    await untilCounted(proxy, base, 2);
    assert.deepEqual(lines.map((l) => l.status), [503]);
  });

  test('the cache result is recorded: a miss, then a hit with no instance and no upstream time', async () => {
    const { proxy, lines, origin } = await setup();
    for (let i = 0; i < 2; i++) assert.equal((await request(proxy.port, { host: 'shop.test', path: '/cacheable' })).status, 200);
    await until(() => lines.length === 2, 'two lines');
    assert.equal(origin.requests.length, 1);
    assert.equal(lines[0]!.cache, 'miss');
    assert.equal(lines[0]!.instance, `127.0.0.1:${origin.port}`);
    assert.equal(lines[1]!.cache, 'hit');
    assert.equal(lines[1]!.status, 200);
    assert.equal('instance' in lines[1]!, false);
    assert.equal('upstreamMs' in lines[1]!, false);
    assert.ok((lines[1]!.bytesOut as number) > 0);
  });

  test('an invalid traceparent is passed through but records no trace id', async () => {
    const { proxy, lines } = await setup();
    const bad = '00-00000000000000000000000000000000-00f067aa0ba902b7-01';
    const r = await request(proxy.port, { host: 'shop.test', headers: { traceparent: bad } });
    assert.equal(JSON.parse(r.text).traceparent, bad);
    await until(() => lines.length === 1, 'the access log line');
    assert.equal('traceId' in lines[0]!, false);
  });
});

describe('access log of a real process on stdout', () => {
  test('lines still buffered when the proxy is stopped reach stdout before it exits', async (t) => {
    const origin = await startOrigin((_req, res) => res.end('ok'));
    t.after(() => origin.close());
    const proxy = await spawnProxy({ services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }] }] });
    t.after(() => proxy.cleanup());
    // A handful of lines stays well below the destination's 64 KiB write threshold; SIGTERM follows
    // at once, before its periodic flush, so only the flush at shutdown can write them.
    for (let i = 0; i < 5; i++) assert.equal((await request(proxy.port, { host: 'web.test', path: `/line-${i}` })).status, 200);
    proxy.child.kill('SIGTERM');
    assert.equal((await proxy.exited).code, 0);
    const paths = proxy.logs.filter((l) => l.name === 'kubeproxy.access').map((l) => l.path);
    assert.deepEqual(paths, ['/line-0', '/line-1', '/line-2', '/line-3', '/line-4']);
  });
});
