import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Worker } from 'node:cluster';
import { request } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { ClusterAdmin, type ClusterHost } from './admin.ts';
import { ConfigHistory } from '../observability/live-status.ts';
import type { AdminReply, ToWorker } from './messages.ts';
import type { WorkerSlot } from './slot.ts';

/** Two workers whose answers each test sets; the admin server in front of them on a real port. */
type Answer = (m: ToWorker) => unknown;
const answers: Answer[] = [() => null, () => null];
const slot = (index: number): WorkerSlot => ({
  index,
  worker: { id: index + 1, process: { pid: 1000 + index } } as unknown as Worker,
  state: 'ready',
  connected: true,
  restarts: 0,
  crashesInARow: 0,
  readyAt: 0,
  failure: undefined,
  restartTimer: undefined,
});
const TOKEN = 'test-admin-token';
const host: ClusterHost & { draining: boolean; slots: WorkerSlot[]; adminToken: string | undefined } = {
  draining: false,
  startedAt: Date.now(),
  metricsEnabled: true,
  adminToken: TOKEN,
  slots: [slot(0), slot(1)],
  reloads: new ConfigHistory(),
  async request(s, build) {
    return answers[s.index]!(build(1));
  },
};
const admin = new ClusterAdmin(host);
let port = 0;

before(async () => {
  await admin.listen('127.0.0.1', 0);
  port = admin.address().port;
});
after(() => admin.close());

function get(path: string, method = 'GET', token: string | null = TOKEN): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  const headers = token === null ? {} : { authorization: `Bearer ${token}` };
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

const reply = (status: number, body: unknown): AdminReply => ({
  status,
  headers: { 'content-type': 'application/json' },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

test('a purge without the admin token never reaches a worker: 401, or 403 with no token configured', async () => {
  let asked = 0;
  answers[0] = answers[1] = () => {
    asked++;
    return reply(200, { service: 'web', removed: 1 });
  };
  const missing = await get('/cache/purge?service=web', 'POST', null);
  assert.equal(missing.status, 401);
  assert.match(String(missing.headers['www-authenticate']), /^Bearer/);
  const wrong = await get('/cache/purge?service=web', 'POST', 'not-the-token');
  assert.equal(wrong.status, 401);
  assert.match(JSON.parse(wrong.text).error, /not the one configured/);
  host.adminToken = undefined;
  try {
    const off = await get('/cache/purge?service=web', 'POST');
    assert.equal(off.status, 403);
    assert.match(JSON.parse(off.text).error, /proxy\.admin\.token or proxy\.admin\.tokenFile/);
  } finally {
    host.adminToken = TOKEN;
  }
  assert.equal(asked, 0);
  assert.equal((await get('/status', 'GET', null)).status, 200);
});

test('purge counts from every worker add up; each worker answer is listed', async () => {
  answers[0] = () => reply(200, { service: 'web', removed: 2 });
  answers[1] = () => reply(200, { service: 'web', removed: 0 });
  const r = await get('/cache/purge?service=web', 'POST');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text), {
    service: 'web',
    removed: 2,
    workers: [
      { worker: 1, status: 200, service: 'web', removed: 2 },
      { worker: 2, status: 200, service: 'web', removed: 0 },
    ],
  });
});

test('the same answer from every worker is passed on unchanged', async () => {
  answers[0] = answers[1] = () => reply(400, { error: 'give exactly one of url=<absolute URL> or service=<name>' });
  const r = await get('/cache/purge', 'POST');
  assert.equal(r.status, 400);
  assert.deepEqual(JSON.parse(r.text), { error: 'give exactly one of url=<absolute URL> or service=<name>' });
  assert.equal(r.headers['content-type'], 'application/json');
});

test('workers that disagree on the status, or do not answer, give a 502 naming each answer', async () => {
  answers[0] = () => reply(200, { removed: 1 });
  answers[1] = () => {
    throw new Error('worker 2 did not answer within 15000 ms');
  };
  const r = await get('/cache/purge?service=web', 'POST');
  assert.equal(r.status, 502);
  assert.deepEqual(JSON.parse(r.text), {
    error: 'the workers answered differently',
    workers: [
      { worker: 1, status: 200, body: { removed: 1 } },
      { worker: 2, error: 'worker 2 did not answer within 15000 ms' },
    ],
  });
});

test('/metrics sums counters over the workers and aggregates gauges as declared', async () => {
  const worker = async (requests: number, healthy: number, lag: number) => {
    const registry = new Registry();
    new Counter({ name: 'kubeproxy_requests_total', help: 'h', labelNames: ['service'], registers: [registry] }).inc({ service: 'web' }, requests);
    new Gauge({ name: 'kubeproxy_instance_healthy', help: 'h', aggregator: 'min', registers: [registry] }).set(healthy);
    new Gauge({ name: 'kubeproxy_event_loop_lag_seconds', help: 'h', aggregator: 'max', registers: [registry] }).set(lag);
    new Counter({ name: 'kubeproxy_config_reloads_total', help: 'h', registers: [registry] }).inc(7);
    return registry.getMetricsAsJSON();
  };
  const [a, b] = await Promise.all([worker(30, 1, 0.01), worker(12, 0, 0.2)]);
  answers[0] = () => a;
  answers[1] = () => b;
  const r = await get('/metrics');
  assert.equal(r.status, 200);
  assert.match(r.text, /^kubeproxy_requests_total\{service="web"\} 42$/m);
  assert.match(r.text, /^kubeproxy_instance_healthy 0$/m);
  assert.match(r.text, /^kubeproxy_event_loop_lag_seconds 0\.2$/m);
  assert.doesNotMatch(r.text, /kubeproxy_config_reloads_total 7|kubeproxy_config_reloads_total 14/, "the workers' reload counts are not used");

  // A worker dies: what it had counted stays in the sum; its gauges go.
  await admin.retire(1, true);
  const c = await worker(5, 1, 0.05);
  answers[0] = () => c;
  const next = await get('/metrics');
  assert.match(next.text, /^kubeproxy_requests_total\{service="web"\} 47$/m);
  assert.match(next.text, /^kubeproxy_instance_healthy 0$/m);
});

test('a worker that does not answer the scrape makes it fail rather than return a smaller sum', async () => {
  answers[1] = () => {
    throw new Error('worker 2 did not answer within 5000 ms');
  };
  const r = await get('/metrics');
  assert.equal(r.status, 503);
  assert.match(r.text, /worker slot 1: worker 2 did not answer/);
});

test('readiness needs every worker ready and no drain; liveness one worker alive', async () => {
  assert.equal((await get('/readyz')).status, 200);
  host.slots[1]!.state = 'starting';
  const starting = await get('/readyz');
  assert.equal(starting.status, 503);
  assert.equal(starting.text, 'not ready: worker slot 1 is starting\n');
  host.slots[1]!.state = 'ready';
  host.draining = true;
  assert.deepEqual([(await get('/readyz')).status, (await get('/readyz')).text], [503, 'draining\n']);
  assert.equal((await get('/healthz')).status, 200, 'alive while draining');
  host.slots[0]!.worker = undefined;
  host.slots[1]!.worker = undefined;
  assert.equal((await get('/healthz')).status, 503, 'no worker left');
});
