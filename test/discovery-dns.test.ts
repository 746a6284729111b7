/**
 * DNS service discovery end to end: a real DNS server (dns2) on 127.0.0.1 plays a Kubernetes
 * headless Service whose answers the test changes; "pods" are HTTP servers on 127.0.0.x sharing
 * one port; the proxy is the real runtime.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { DiscoveryStatus } from '../src/discovery/dns.ts';
import { startDns, startPods, type Pod, type Pods, type TestDns } from './helpers/dns.ts';
import { request } from './helpers/http.ts';
import { namedOrigin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

const NAME = 'web.demo.svc.cluster.local';

interface StatusService {
  name: string;
  discovery?: DiscoveryStatus;
  instances: Array<{ id: string; available: boolean }>;
}

async function status(p: TestProxy, service: string): Promise<StatusService> {
  const reply = await request(p.adminPort, { path: '/status' });
  assert.equal(reply.status, 200);
  const found = (JSON.parse(reply.text) as { services: StatusService[] }).services.find((s) => s.name === service);
  assert.ok(found, `service ${service} in /status`);
  return found;
}

/** Resolves once the service's discovery status satisfies `ok` (checked after every resolution). */
function until(p: TestProxy, service: string, ok: (s: DiscoveryStatus) => boolean, what: string): Promise<void> {
  const d = p.runtime.discovery;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${what}; discovery status: ${JSON.stringify(d.status(service))}`));
    }, 15_000);
    const check = () => {
      const st = d.status(service);
      if (st && ok(st)) {
        off();
        clearTimeout(timer);
        resolve();
      }
    };
    const off = d.onResolve(check);
    check();
  });
}

const addressesAre = (...want: string[]) => (s: DiscoveryStatus) => s.state === 'ok' && s.addresses.join() === [...want].sort().join();

function proxyWith(dns: TestDns, pods: Pods, extra: Record<string, unknown> = {}) {
  return startProxy({
    dnsServers: [dns.server],
    services: [
      {
        name: 'web',
        domain: 'web.example.com',
        hosts: [],
        discovery: { dns: NAME, port: pods.port, interval: '100ms' },
        ...extra,
      },
    ],
  });
}

/** Answers with the pod's address; `/slow` waits until the test releases it. */
function podHandler(held: Map<string, { arrived: () => void; release: Promise<void> }>) {
  return (pod: Pod, req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const answer = () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-pod': pod.address, 'x-remote-port': String(req.socket.remotePort) });
      res.end(pod.address);
    };
    const hold = req.url === '/slow' ? held.get(pod.address) : undefined;
    if (hold === undefined) return answer();
    hold.arrived();
    void hold.release.then(answer);
  };
}

describe('DNS service discovery', () => {
  let dns: TestDns;
  let pods: Pods;
  const held = new Map<string, { arrived: () => void; release: Promise<void> }>();

  before(async () => {
    dns = await startDns();
    pods = await startPods(['127.0.0.2', '127.0.0.3', '127.0.0.4'], podHandler(held));
  });
  after(async () => {
    await pods.close();
    await dns.close();
  });

  it('routes to the pods the DNS name lists, and a new pod starts receiving traffic when DNS lists it', async () => {
    dns.set(NAME, ['127.0.0.2']);
    const p = await proxyWith(dns, pods);
    try {
      // Runtime.start waits for the first answer: the first request already has an instance.
      const first = await request(p.port, { host: 'web.example.com' });
      assert.equal(first.status, 200);
      assert.equal(first.text, '127.0.0.2');

      dns.set(NAME, ['127.0.0.2', '127.0.0.3']);
      await until(p, 'web', addressesAre('127.0.0.2', '127.0.0.3'), 'the second pod');
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) seen.add((await request(p.port, { host: 'web.example.com' })).text);
      assert.deepEqual([...seen].sort(), ['127.0.0.2', '127.0.0.3']);

      const st = await status(p, 'web');
      assert.deepEqual(st.instances.map((i) => i.id).sort(), [`127.0.0.2:${pods.port}`, `127.0.0.3:${pods.port}`]);
      assert.equal(st.discovery?.state, 'ok');
      assert.equal(st.discovery?.dns, NAME);
      assert.equal(st.discovery?.port, pods.port);
      assert.ok(st.discovery?.lastSuccessAt);
    } finally {
      await p.close();
    }
  });

  it('a pod that leaves DNS gets no new requests, and its in-flight request still completes', async () => {
    dns.set(NAME, ['127.0.0.2']);
    const p = await proxyWith(dns, pods);
    let release!: () => void;
    let arrived!: () => void;
    const arrival = new Promise<void>((r) => (arrived = r));
    held.set('127.0.0.2', { arrived, release: new Promise<void>((r) => (release = r)) });
    try {
      const slow = request(p.port, { host: 'web.example.com', path: '/slow' });
      await arrival;

      dns.set(NAME, ['127.0.0.3']);
      await until(p, 'web', addressesAre('127.0.0.3'), 'the pod to leave');
      for (let i = 0; i < 3; i++) {
        const r = await request(p.port, { host: 'web.example.com' });
        assert.equal(r.status, 200);
        assert.equal(r.text, '127.0.0.3', 'new requests go to the pod that stays');
      }
      assert.deepEqual(
        (await status(p, 'web')).instances.map((i) => i.id),
        [`127.0.0.3:${pods.port}`],
      );

      release();
      const done = await slow;
      assert.equal(done.status, 200, 'the in-flight request to the leaving pod completes');
      assert.equal(done.text, '127.0.0.2');
    } finally {
      held.clear();
      release();
      await p.close();
    }
  });

  it('a failing DNS server keeps the last pods serving, and /status reports the error and the last success', async () => {
    dns.set(NAME, ['127.0.0.2', '127.0.0.3']);
    const p = await proxyWith(dns, pods);
    try {
      const before = await status(p, 'web');
      dns.fail('servfail');
      await until(p, 'web', (s) => s.consecutiveFailures >= 2, 'two failed resolutions');
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const r = await request(p.port, { host: 'web.example.com' });
        assert.equal(r.status, 200);
        seen.add(r.text);
      }
      assert.deepEqual([...seen].sort(), ['127.0.0.2', '127.0.0.3'], 'both pods still serve');

      const st = await status(p, 'web');
      assert.equal(st.discovery?.state, 'failing');
      assert.match(st.discovery?.lastError ?? '', /ESERVFAIL resolving web\.demo\.svc\.cluster\.local/);
      assert.ok(st.discovery?.lastErrorAt);
      assert.equal(st.discovery?.lastSuccessAt, before.discovery?.lastSuccessAt, 'the last success is the one before the outage');
      assert.deepEqual(st.discovery?.addresses, ['127.0.0.2', '127.0.0.3']);
      assert.equal(st.instances.length, 2);

      dns.fail(undefined);
      await until(p, 'web', (s) => s.state === 'ok', 'recovery');
      assert.equal((await status(p, 'web')).discovery?.consecutiveFailures, 0);
    } finally {
      dns.fail(undefined);
      await p.close();
    }
  });

  it('a pod that stays keeps its instance and its pooled connection when another pod joins', async () => {
    dns.set(NAME, ['127.0.0.2']);
    const p = await proxyWith(dns, pods);
    try {
      const a1 = await request(p.port, { host: 'web.example.com' });
      const a2 = await request(p.port, { host: 'web.example.com' });
      assert.equal(a2.headers['x-remote-port'], a1.headers['x-remote-port'], 'the proxy reuses its connection to the pod');
      const instanceBefore = p.runtime.snapshot.services.get('web')!.instances[0]!;

      dns.set(NAME, ['127.0.0.2', '127.0.0.4']);
      await until(p, 'web', addressesAre('127.0.0.2', '127.0.0.4'), 'the second pod');
      const instances = p.runtime.snapshot.services.get('web')!.instances;
      assert.equal(instances.length, 2);
      assert.equal(
        instances.find((i) => i.address === '127.0.0.2'),
        instanceBefore,
        'same Instance object: health, ejection and counters are kept',
      );
      let again: string | undefined;
      for (let i = 0; i < 4 && again === undefined; i++) {
        const r = await request(p.port, { host: 'web.example.com' });
        if (r.text === '127.0.0.2') again = r.headers['x-remote-port'] as string;
      }
      assert.equal(again, a1.headers['x-remote-port'], 'the pooled connection to the pod that stayed is still used');
    } finally {
      await p.close();
    }
  });

  it('static hosts and discovered pods serve the same service', async () => {
    const origin = await namedOrigin('static');
    dns.set(NAME, ['127.0.0.3']);
    const p = await startProxy({
      dnsServers: [dns.server],
      services: [
        {
          name: 'web',
          domain: 'web.example.com',
          hosts: [{ port: origin.port }],
          discovery: { dns: NAME, port: pods.port, interval: '100ms' },
        },
      ],
    });
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) seen.add((await request(p.port, { host: 'web.example.com' })).text);
      assert.deepEqual([...seen].sort(), ['127.0.0.3', 'static']);

      // The pods go away; the static host stays.
      dns.fail('refused');
      await until(p, 'web', (s) => s.state === 'failing', 'a failed resolution');
      dns.fail(undefined);
      dns.set(NAME, []);
      await until(p, 'web', (s) => s.state === 'ok' && s.addresses.length === 0, 'the pod set to empty (after confirmations)');
      const r = await request(p.port, { host: 'web.example.com' });
      assert.equal(r.text, 'static');
      assert.deepEqual(
        (await status(p, 'web')).instances.map((i) => i.id),
        [`127.0.0.1:${origin.port}`],
      );
    } finally {
      await p.close();
      await origin.close();
    }
  });

  it('a config reload keeps the discovered pods without waiting for DNS', async () => {
    dns.set(NAME, ['127.0.0.2', '127.0.0.3']);
    const p = await proxyWith(dns, pods);
    try {
      const queries = dns.queries;
      dns.fail('servfail');
      p.runtime.reload(p.runtime.snapshot.config);
      const ids = p.runtime.snapshot.services.get('web')!.instances.map((i) => i.id);
      assert.deepEqual(ids.sort(), [`127.0.0.2:${pods.port}`, `127.0.0.3:${pods.port}`]);
      const r = await request(p.port, { host: 'web.example.com' });
      assert.equal(r.status, 200);
      assert.ok(dns.queries - queries < 10, 'the reload itself sends no burst of queries');
    } finally {
      dns.fail(undefined);
      await p.close();
    }
  });

  it('AAAA records become IPv6 instances', async (t) => {
    let v6: Pods;
    try {
      v6 = await startPods(['::1'], (pod, req, res) => {
        req.resume();
        res.end(pod.address);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT') return t.skip(`this machine has no IPv6 loopback (${code})`);
      throw err;
    }
    dns.set(NAME, ['::1']);
    const p = await startProxy({
      dnsServers: [dns.server],
      services: [{ name: 'web', domain: 'web.example.com', hosts: [], discovery: { dns: NAME, port: v6.port, interval: '100ms' } }],
    });
    try {
      const r = await request(p.port, { host: 'web.example.com' });
      assert.equal(r.status, 200);
      assert.equal(r.text, '::1');
      assert.deepEqual(
        (await status(p, 'web')).instances.map((i) => i.id),
        [`::1:${v6.port}`],
      );
    } finally {
      await p.close();
      await v6.close();
    }
  });

  it('a service whose DNS name never answered gets a clear 503, and /status says why', async () => {
    dns.fail('servfail');
    const p = await proxyWith(dns, pods);
    try {
      const r = await request(p.port, { host: 'web.example.com' });
      assert.equal(r.status, 503);
      assert.match(r.text, /service "web"/);
      const st = await status(p, 'web');
      assert.equal(st.discovery?.state, 'failing');
      assert.equal(st.discovery?.lastSuccessAt, null);
      assert.deepEqual(st.instances, []);
    } finally {
      dns.fail(undefined);
      await p.close();
    }
  });
});
