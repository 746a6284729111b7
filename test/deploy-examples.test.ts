/**
 * The Kubernetes walk-through's pieces fit together without editing: the demo upstream manifests
 * are valid objects, their headless Service is the name and port values-demo.yaml discovers, and
 * the demo container's command runs the package's demo upstream with arguments it accepts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service } from 'kubernetes-models/v1';
import { ROOT, readText, readYaml, readYamlDocuments } from './helpers/deploy.ts';
import { helmTemplate } from './helpers/helm.ts';
import { request } from './helpers/http.ts';
import { deadPort } from './helpers/origin.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const MANIFESTS = 'deploy/examples/demo-upstream/demo-upstream.yaml';
const docs = readYamlDocuments(MANIFESTS) as Obj[];
const deployment = docs.find((d) => d.kind === 'Deployment')!;
const service = docs.find((d) => d.kind === 'Service')!;
const demoContainer = deployment.spec.template.spec.containers[0] as Obj;

describe('demo upstream manifests', () => {
  it('are a valid Deployment and Service for the Kubernetes schemas', () => {
    assert.deepEqual(docs.map((d) => d.kind).sort(), ['Deployment', 'Service']);
    assert.doesNotThrow(() => new Deployment(deployment).validate());
    assert.doesNotThrow(() => new Service(service).validate());
  });

  it("the Service is headless and selects the Deployment's pods on the container's port", () => {
    assert.equal(service.spec.clusterIP, 'None', 'headless: DNS answers with one A record per ready pod');
    for (const [k, v] of Object.entries(service.spec.selector as Obj)) assert.equal(deployment.spec.template.metadata.labels[k], v);
    assert.equal(service.metadata.namespace, deployment.metadata.namespace);
    const port = service.spec.ports[0] as Obj;
    const target = (demoContainer.ports as Obj[]).find((p) => p.name === port.targetPort || p.containerPort === port.targetPort);
    assert.ok(target, 'the Service targets a container port');
    assert.ok(demoContainer.readinessProbe, 'only ready pods are published in DNS');
  });

  it('values-demo.yaml discovers the demo pods by the headless Service name and the pod port', () => {
    const values = readYaml<Obj>('deploy/examples/values-demo.yaml');
    const discovered = (values.config.proxy.services as Obj[]).map((s) => s.discovery).filter(Boolean);
    assert.equal(discovered.length, 1);
    assert.equal(discovered[0].dns, `${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`);
    // DNS of a headless Service gives pod IPs: the port is the pod's, not the Service's.
    const podPort = (demoContainer.ports as Obj[]).find((p) => p.name === service.spec.ports[0].targetPort)!.containerPort;
    assert.equal(discovered[0].port, podPort);
    // The chart's own example points at the same place, so a bare `helm install` finds the demo too.
    const chartDefault = (readYaml<Obj>('deploy/helm/kubeproxy/values.yaml').config.proxy.services as Obj[])[0]!.discovery;
    assert.deepEqual([chartDefault.dns, chartDefault.port], [discovered[0].dns, discovered[0].port]);
  });

  it("the demo runs the proxy's image with the package's demo-upstream bin", async () => {
    const chart = await helmTemplate();
    const proxyImage = chart.objects.find((o) => o.kind === 'Deployment')!.spec.template.spec.containers[0].image as string;
    assert.equal(demoContainer.image, proxyImage);
    const [node, bin] = demoContainer.command as string[];
    assert.equal(node, 'node');
    const pkg = JSON.parse(readText('package.json')) as { bin: Record<string, string> };
    assert.ok(Object.values(pkg.bin).includes(bin!), `${bin} is a bin of package.json`);
  });

  it('the demo container args start a demo upstream that answers with its pod name and exits 0 on SIGTERM', async () => {
    const port = await deadPort();
    const podName = 'demo-upstream-7d9c-x2x4q';
    // What the kubelet runs: $(POD_NAME) expanded, the port swapped for a free one on this machine.
    const args = (demoContainer.args as string[]).map((a) => (a === '$(POD_NAME)' ? podName : a === String(demoContainer.ports[0].containerPort) ? String(port) : a));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', "import { demoMain } from './src/demo/upstream.ts'; demoMain(process.argv.slice(1)).then((c) => process.exit(c));", '--', ...args],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('listening')) resolve();
        });
        void exited.then((code) => reject(new Error(`demo upstream exited ${code}: ${stderr}`)));
      });
      const reply = await request(port, { path: '/hello' });
      assert.equal(reply.status, 200);
      assert.equal((JSON.parse(reply.text) as { instance: string }).instance, podName);
      const health = await request(port, { path: '/healthz' });
      assert.equal(health.status, 200, 'the readiness probe path answers');
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
