/**
 * Failover end to end: dead and dying instances, retries on another instance, the retry budget,
 * outlier ejection and readmission, panic mode and recovery. Real origins, real sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request } from './helpers/http.ts';
import { deadPort, namedOrigin, startOrigin } from './helpers/origin.ts';
import { startProxy } from './helpers/proxy.ts';
import { runLoad, statusCounts, until } from './helpers/load.ts';

/** An origin on a fixed port (to bring a killed instance back where the proxy expects it). */
async function originOnPort(port: number, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

const named = (name: string) => (req: IncomingMessage, res: ServerResponse) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-origin': name });
    res.end(name);
  });
};

test('killing an instance mid-load fails no request; it is ejected, and readmitted once it is back', async (t) => {
  const a = await namedOrigin('a');
  const b = await namedOrigin('b');
  t.after(() => b.close());
  const proxy = await startProxy({
    services: [
      {
        name: 'web',
        domain: 'web.test',
        hosts: [{ port: a.port }, { port: b.port }],
        outlierDetection: { consecutiveFailures: 2, baseEjectionTime: '300ms', maxEjectionPercent: 50 },
      },
    ],
  });
  t.after(() => proxy.close());
  const ejected: string[] = [];
  const readmitted: string[] = [];
  proxy.runtime.outliers.addListener({
    onEject: (i) => ejected.push(i.id),
    onReadmit: (i) => readmitted.push(i.id),
  });
  const aId = `127.0.0.1:${a.port}`;

  const outcomes = await runLoad(proxy.port, {
    total: 400,
    concurrency: 8,
    host: 'web.test',
    before: async (i) => {
      if (i === 150) await a.close();
      return true;
    },
  });
  assert.deepEqual(statusCounts(outcomes), { 200: 400 }, 'every request was answered 200');
  assert.ok(outcomes.slice(0, 100).some((o) => o.body === 'a'), 'a served traffic before it was killed');
  assert.ok(ejected.includes(aId), `the killed instance was ejected (ejections: ${ejected.join(', ')})`);

  // Bring it back on the same port: it is readmitted and serves again, with nobody intervening.
  const revived = await originOnPort(a.port, named('a2'));
  t.after(() => closeServer(revived));
  await until(async () => (await request(proxy.port, { host: 'web.test' })).text === 'a2', 'the revived instance to serve again');
  assert.ok(readmitted.includes(aId), 'the instance was readmitted');
});

test('with every instance down, clients get a clear 503 at once and the proxy recovers by itself', async (t) => {
  const ports = [await deadPort(), await deadPort()];
  const proxy = await startProxy({
    services: [
      {
        name: 'web',
        domain: 'web.test',
        hosts: ports.map((port) => ({ port })),
        // Ejections grow while instances keep failing; a short cap keeps the recovery quick here.
        outlierDetection: { baseEjectionTime: '100ms', maxEjectionTime: '500ms' },
      },
    ],
  });
  t.after(() => proxy.close());

  const outcomes = await runLoad(proxy.port, { total: 60, concurrency: 6, host: 'web.test' });
  assert.deepEqual(statusCounts(outcomes), { 503: 60 });
  for (const o of outcomes) {
    assert.equal(o.headers['retry-after'], '1');
    assert.match(o.body, /^503 Service Unavailable: no instance of service "web" could be reached/);
  }
  // The proxy itself stays responsive: its admin answers and other requests are routed.
  assert.equal((await request(proxy.adminPort, { path: '/healthz' })).status, 200);
  assert.equal((await request(proxy.port, { host: 'nothing.test' })).status, 421);

  const servers = await Promise.all(ports.map((p, i) => originOnPort(p, named(`back${i}`))));
  t.after(() => Promise.all(servers.map(closeServer)));
  const served = new Set<string>();
  await until(async () => {
    const r = await request(proxy.port, { host: 'web.test' });
    if (r.status === 200) served.add(r.text);
    return served.size === 2;
  }, 'both instances to serve again');
  const after = await runLoad(proxy.port, { total: 40, concurrency: 4, host: 'web.test' });
  assert.deepEqual(statusCounts(after), { 200: 40 });
});

test('a 503 from one instance is retried on another and never reaches the client', async (t) => {
  const busy = await startOrigin((req, res) => {
    req.resume();
    res.writeHead(503, { 'content-type': 'text/plain', 'x-origin': 'busy' });
    res.end('busy is overloaded');
  });
  const ok = await namedOrigin('ok');
  t.after(() => Promise.all([busy.close(), ok.close()]));
  const proxy = await startProxy({
    services: [
      {
        name: 'web',
        domain: 'web.test',
        hosts: [{ port: busy.port }, { port: ok.port }],
        outlierDetection: { enabled: false },
      },
    ],
  });
  t.after(() => proxy.close());

  for (let i = 0; i < 20; i++) {
    const r = await request(proxy.port, { host: 'web.test', path: `/get/${i}` });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'ok');
  }
  assert.ok(busy.requests.length >= 5, `the failing instance was tried (${busy.requests.length} times)`);

  // A POST may have side effects: its 503 is forwarded as it is, never replayed.
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const r = await request(proxy.port, { host: 'web.test', method: 'POST', path: '/post', body: 'x' });
    seen.add(`${r.status} ${r.text}`);
  }
  assert.ok(seen.has('503 busy is overloaded'), 'the instance\'s own 503 reached the client for a POST');
  const posts = [...busy.requests, ...ok.requests].filter((r) => r.url === '/post').length;
  assert.equal(posts, 6, 'each POST reached exactly one instance');
});

test('when every instance answers 503, each is tried once and the last answer is forwarded as it is', async (t) => {
  const origins = await Promise.all(
    ['x', 'y', 'z'].map((name) =>
      startOrigin((req, res) => {
        req.resume();
        res.writeHead(503, { 'content-type': 'text/plain', 'x-origin': name, 'retry-after': '7' });
        res.end(`${name} is down for maintenance`);
      }),
    ),
  );
  t.after(() => Promise.all(origins.map((o) => o.close())));
  const proxy = await startProxy({
    services: [{ name: 'web', domain: 'web.test', hosts: origins.map((o) => ({ port: o.port })), outlierDetection: { enabled: false } }],
  });
  t.after(() => proxy.close());

  const r = await request(proxy.port, { host: 'web.test', path: '/page', headers: { 'x-request-id': 'req-1' } });
  assert.equal(r.status, 503);
  assert.equal(r.headers['retry-after'], '7', "the instance's own headers");
  assert.match(r.text, /^[xyz] is down for maintenance$/, "the instance's own body");
  assert.equal(r.headers['x-origin'], r.text[0]);
  const hits = origins.map((o) => o.requests.filter((q) => q.headers['x-request-id'] === 'req-1').length);
  assert.deepEqual(hits, [1, 1, 1], 'three attempts (1 + 2 retries), each on a different instance');
});

test('a connect failure is retried on another instance even for a POST, whose body was not sent yet', async (t) => {
  const dead = await deadPort();
  const ok = await startOrigin((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => res.end(`got ${body}`));
  });
  t.after(() => ok.close());
  const proxy = await startProxy({
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: dead }, { port: ok.port }], outlierDetection: { enabled: false } }],
  });
  t.after(() => proxy.close());
  for (let i = 0; i < 6; i++) {
    const r = await request(proxy.port, { host: 'web.test', method: 'POST', body: `payload-${i}` });
    assert.equal(r.status, 200);
    assert.equal(r.text, `got payload-${i}`);
  }
});

test('nothing is retried once response bytes reached the client', async (t) => {
  const half = await startOrigin((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const ok = await namedOrigin('ok');
  t.after(() => Promise.all([half.close(), ok.close()]));
  const proxy = await startProxy({
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: half.port }, { port: ok.port }], outlierDetection: { enabled: false } }],
  });
  t.after(() => proxy.close());
  // Round-robin: of two requests, one lands on the instance that dies mid-body.
  const results = await Promise.allSettled([request(proxy.port, { host: 'web.test', path: '/one' }), request(proxy.port, { host: 'web.test', path: '/two' })]);
  const failed = results.filter((r) => r.status === 'rejected');
  assert.equal(failed.length, 1, 'the cut response reached the client as a cut connection');
  assert.equal(half.requests.length, 1);
  assert.equal(ok.requests.length, 1, 'the cut request was not replayed on the other instance');
});

test('with every instance failing, upstream attempts stay within the retry budget', async (t) => {
  let attempts = 0;
  const origins = await Promise.all(
    [0, 1, 2].map(() =>
      startOrigin((req, res) => {
        attempts++;
        req.resume();
        // A little latency keeps many attempts in flight at once, as in a real outage.
        setTimeout(() => {
          res.writeHead(503, { 'content-type': 'text/plain' });
          res.end('down');
        }, 15);
      }),
    ),
  );
  t.after(() => Promise.all(origins.map((o) => o.close())));
  const run = async (budgetPercent: number): Promise<number> => {
    attempts = 0;
    const proxy = await startProxy({
      services: [
        {
          name: 'web',
          domain: 'web.test',
          hosts: origins.map((o) => ({ port: o.port })),
          outlierDetection: { enabled: false },
          retries: { attempts: 2, budgetPercent, minRetryConcurrency: 0 },
        },
      ],
    });
    try {
      const outcomes = await runLoad(proxy.port, { total: 200, concurrency: 20, host: 'web.test' });
      assert.deepEqual(statusCounts(outcomes), { 503: 200 });
    } finally {
      await proxy.close();
    }
    return attempts;
  };

  const unbounded = await run(100);
  assert.equal(unbounded, 600, 'without a budget, every request is tried on all three instances');
  const budgeted = await run(20);
  // Retries in flight are at most 20 % of the attempts in flight, so at most a quarter on top of the requests.
  assert.ok(budgeted <= 200 * 1.25 + 20, `attempts with a 20 % budget: ${budgeted}`);
  assert.ok(budgeted > 200, `some retries were still allowed: ${budgeted}`);
  if (process.env.SHOW_FIGURES) console.error(`retry budget: ${budgeted} attempts for 200 requests`);
});
