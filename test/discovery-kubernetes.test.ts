/**
 * EndpointSlice discovery end to end: a stand-in Kubernetes API server (test/helpers/kube-api.ts,
 * the real list/watch wire format; no cluster runs here) holds the EndpointSlices; "pods" are HTTP
 * servers on 127.0.0.x sharing one port; the proxy is the real runtime, reaching the API with a
 * service-account directory (token, namespace) as it would in a pod.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubernetesDiscoveryStatus } from '../src/discovery/kubernetes.ts';
import { startPods, type Pod, type Pods } from './helpers/dns.ts';
import { request } from './helpers/http.ts';
import { endpointSlice, startKubeApi, type KubeApi } from './helpers/kube-api.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

const TOKEN = 'service-account-token';

/** Waits (bounded) until the service's EndpointSlice status satisfies `ok`. */
async function until(p: TestProxy, ok: (s: KubernetesDiscoveryStatus) => boolean, what: string, withinMs = 5000): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const st = p.runtime.kubernetes.status('web');
    if (st && ok(st)) return;
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}; status: ${JSON.stringify(st)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function podHandler(held: Map<string, { arrived: () => void; release: Promise<void> }>) {
  return (pod: Pod, req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const answer = () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(pod.address);
    };
    const hold = req.url === '/slow' ? held.get(pod.address) : undefined;
    if (hold === undefined) return answer();
    hold.arrived();
    void hold.release.then(answer);
  };
}

async function pick(p: TestProxy, n = 6): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await request(p.port, { host: 'web.example.com' });
    assert.equal(r.status, 200);
    seen.add(r.text);
  }
  return [...seen].sort();
}

describe('EndpointSlice discovery', () => {
  let api: KubeApi;
  let pods: Pods;
  let saDir: string;
  const held = new Map<string, { arrived: () => void; release: Promise<void> }>();
  const saved = { api: process.env.KUBEPROXY_KUBERNETES_API, dir: process.env.KUBEPROXY_SERVICEACCOUNT_DIR };

  before(async () => {
    api = await startKubeApi({ token: TOKEN });
    pods = await startPods(['127.0.0.2', '127.0.0.3', '127.0.0.4'], podHandler(held));
    saDir = mkdtempSync(join(tmpdir(), 'kubeproxy-sa-'));
    writeFileSync(join(saDir, 'token'), `${TOKEN}\n`);
    writeFileSync(join(saDir, 'namespace'), 'shop\n');
    process.env.KUBEPROXY_KUBERNETES_API = api.url;
    process.env.KUBEPROXY_SERVICEACCOUNT_DIR = saDir;
  });

  after(async () => {
    if (saved.api === undefined) delete process.env.KUBEPROXY_KUBERNETES_API;
    else process.env.KUBEPROXY_KUBERNETES_API = saved.api;
    if (saved.dir === undefined) delete process.env.KUBEPROXY_SERVICEACCOUNT_DIR;
    else process.env.KUBEPROXY_SERVICEACCOUNT_DIR = saved.dir;
    await api.close();
    await pods.close();
    rmSync(saDir, { recursive: true, force: true });
  });

  const slice = (name: string, endpoints: Parameters<typeof endpointSlice>[3]) =>
    endpointSlice('shop', name, 'web', endpoints, [{ name: 'http', port: pods.port }]);

  function proxy(port: number | string = 'http'): Promise<TestProxy> {
    return startProxy({ services: [{ name: 'web', domain: 'web.example.com', hosts: [], discovery: { kubernetes: { service: 'web', port } } }] });
  }

  it('serves the ready endpoints of the Service in the pod\'s namespace, by port name or number, with the service account token', async () => {
    api.put(slice('web-abc', [['127.0.0.2'], ['127.0.0.3'], ['127.0.0.4', { ready: false, serving: false }]]));
    api.put(endpointSlice('other', 'web-x', 'web', [['127.0.0.4']], [{ name: 'http', port: pods.port }]));
    for (const port of ['http', pods.port]) {
      const p = await proxy(port);
      try {
        assert.deepEqual(await pick(p), ['127.0.0.2', '127.0.0.3'], 'a not-ready pod and another namespace\'s slice get nothing');
        assert.ok(api.requests.some((r) => r.startsWith('GET /apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweb')));
      } finally {
        await p.close();
      }
    }
    api.delete('other', 'web-x');
  });

  it('a pod that becomes ready serves within 1 s of the watch event; a deleted slice takes its pods out', async () => {
    api.put(slice('web-abc', [['127.0.0.2']]));
    const p = await proxy();
    try {
      await until(p, (s) => s.resourceVersion !== null, 'the first list');
      await untilPlain(() => api.openWatches() > 0, 'a watch');
      api.put(slice('web-def', [['127.0.0.4']]));
      await until(p, (s) => s.addresses.length === 2, 'the new slice applied', 1000);
      assert.deepEqual(await pick(p), ['127.0.0.2', '127.0.0.4']);
      api.delete('shop', 'web-def');
      await until(p, (s) => s.addresses.length === 1, 'the deleted slice applied', 1000);
      assert.deepEqual(await pick(p), ['127.0.0.2']);
    } finally {
      await p.close();
      api.delete('shop', 'web-def');
    }
  });

  it('a terminating pod gets no new requests, and its in-flight request completes', async () => {
    api.put(slice('web-abc', [['127.0.0.2'], ['127.0.0.3']]));
    const p = await proxy();
    let release!: () => void;
    let arrived!: () => void;
    const arrival = new Promise<void>((r) => (arrived = r));
    held.set('127.0.0.2', { arrived, release: new Promise<void>((r) => (release = r)) });
    try {
      let slow: ReturnType<typeof request> | undefined;
      // Round robin or not, one of a few requests lands on 127.0.0.2 and is held there.
      const others: Array<ReturnType<typeof request>> = [];
      const landed = Promise.race([arrival.then(() => true), new Promise((r) => setTimeout(() => r(false), 3000))]);
      for (let i = 0; i < 4; i++) others.push(request(p.port, { host: 'web.example.com', path: '/slow' }));
      assert.equal(await landed, true, 'a request reached 127.0.0.2');
      slow = Promise.all(others).then((all) => all.find((r) => r.text === '127.0.0.2')!);

      api.put(slice('web-abc', [['127.0.0.2', { ready: false, serving: true, terminating: true }], ['127.0.0.3']]));
      await until(p, (s) => s.terminating.length === 1, 'the pod to terminate', 1000);
      const st = JSON.parse((await request(p.adminPort, { path: '/status' })).text) as { services: Array<{ name: string; discovery: KubernetesDiscoveryStatus }> };
      const web = st.services.find((x) => x.name === 'web')!;
      assert.deepEqual(web.discovery.terminating, [`127.0.0.2:${pods.port}`], '/status lists the terminating pod');
      assert.deepEqual(web.discovery.kubernetes, { service: 'web', namespace: 'shop', port: 'http' });
      assert.deepEqual(await pick(p), ['127.0.0.3'], 'new requests go to the ready pod only');

      release();
      const done = await slow;
      assert.equal(done.status, 200, 'the in-flight request to the terminating pod completes');
      assert.equal(done.text, '127.0.0.2');
    } finally {
      held.clear();
      release();
      await p.close();
    }
  });

  it('a Service whose EndpointSlices are all deleted keeps a zero-valued kubeproxy_inflight_requests series (KubeProxyNoHealthyUpstream relies on it)', async () => {
    api.put(slice('web-abc', [['127.0.0.2']]));
    const p = await proxy();
    try {
      await untilPlain(() => api.openWatches() > 0, 'a watch');
      api.delete('shop', 'web-abc');
      await until(p, (s) => s.addresses.length === 0, 'the set emptied', 1000);
      const metrics = (await request(p.adminPort, { path: '/metrics' })).text;
      assert.match(metrics, /^kubeproxy_inflight_requests\{service="web"\} 0$/m);
      assert.doesNotMatch(metrics, /^kubeproxy_instance_healthy\{service="web"/m, 'no instance left to report');
      assert.equal((await request(p.port, { host: 'web.example.com' })).status, 503);
    } finally {
      await p.close();
    }
  });

  it('a lost API connection keeps the last endpoints serving and the watch resumes after back-off', async () => {
    api.put(slice('web-abc', [['127.0.0.2'], ['127.0.0.3']]));
    const p = await proxy();
    try {
      await untilPlain(() => api.openWatches() > 0, 'a watch');
      api.down = true;
      api.dropWatches();
      await until(p, (s) => s.state === 'failing' && s.consecutiveFailures >= 2, 'two failed attempts');
      assert.deepEqual(await pick(p), ['127.0.0.2', '127.0.0.3'], 'both pods still serve');
      assert.match(p.runtime.kubernetes.status('web')?.lastError ?? '', /503/);
      const instance = p.runtime.snapshot.services.get('web')!.instances.find((i) => i.address === '127.0.0.3');

      api.down = false;
      api.put(slice('web-abc', [['127.0.0.3'], ['127.0.0.4']]));
      await until(p, (s) => s.state === 'ok' && s.addresses.join() === `127.0.0.3:${pods.port},127.0.0.4:${pods.port}`, 'recovery with the change made while down');
      assert.deepEqual(await pick(p), ['127.0.0.3', '127.0.0.4']);
      assert.equal(
        p.runtime.snapshot.services.get('web')!.instances.find((i) => i.address === '127.0.0.3'),
        instance,
        'the pod that stayed keeps its Instance (health, ejection, pool)',
      );
    } finally {
      api.down = false;
      await p.close();
    }
  });

  it('410 Gone lists again (start of a watch and mid-stream), and bookmarks move the resourceVersion without a change', async () => {
    api.put(slice('web-abc', [['127.0.0.2']]));
    const p = await proxy();
    try {
      await untilPlain(() => api.openWatches() > 0, 'a watch');
      api.put(slice('web-abc', [['127.0.0.2'], ['127.0.0.3']]));
      await until(p, (s) => s.addresses.length === 2, 'the change');
      // Another Service's change moves the store's version; only a bookmark tells this watch.
      const before = p.runtime.kubernetes.status('web')!.resourceVersion;
      api.put(endpointSlice('shop', 'api-1', 'api', [['127.0.0.9']]));
      api.bookmark();
      await until(p, (s) => s.resourceVersion !== before, 'the bookmark');
      assert.equal(p.runtime.kubernetes.status('web')!.addresses.length, 2, 'a bookmark changes no endpoint');

      // Mid-stream: the watch gets an ERROR event with a 410 Status, then the history is gone.
      const lists = () => api.requests.filter((r) => !r.includes('watch=1')).length;
      const listsBefore = lists();
      api.compact({ expireWatches: true });
      api.put(slice('web-abc', [['127.0.0.4']]));
      await until(p, (s) => s.addresses.join() === `127.0.0.4:${pods.port}`, 'the re-list after 410');
      assert.ok(lists() > listsBefore, 'the slices were listed again');
      assert.deepEqual(await pick(p), ['127.0.0.4']);

      // At the start of a watch: the connection drops, and the version it would resume from is compacted.
      api.compact();
      api.put(slice('web-abc', [['127.0.0.2']]));
      api.compact();
      api.dropWatches();
      await until(p, (s) => s.addresses.join() === `127.0.0.2:${pods.port}`, 'the re-list after a 410 answer');
      assert.ok(api.requests.length > 0);
    } finally {
      await p.close();
    }
  });
});

/** Waits (bounded) for a condition on the stand-in. */
async function untilPlain(ok: () => boolean, what: string, withinMs = 5000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
