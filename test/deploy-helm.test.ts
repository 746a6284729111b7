/**
 * The Helm chart, checked without a cluster or a helm binary: its values against
 * values.schema.json, its templates rendered by test/helpers/helm-template.ts (a renderer of the
 * Go-template subset the chart uses) into objects validated against the Kubernetes schemas, and
 * what it hands the proxy (config, args, probes, ports) against the real CLI and admin server.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { parse as parseYaml } from 'yaml';
import { validateConfig } from '../src/config/load.ts';
import { CHART, ROOT, readText, readYaml, runCli, tempFile } from './helpers/deploy.ts';
import { mergeValues, renderChart, renderedObjects, TemplateError, type RenderedChart } from './helpers/helm-template.ts';
import { request } from './helpers/http.ts';
import { startProxy } from './helpers/proxy.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as object;
const validateValues = new Ajv({ allErrors: true, strict: true, strictRequired: false }).compile(schema);
const defaults = readYaml('deploy/helm/kubeproxy/values.yaml');
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
  metrics: {
    serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
    prometheusRule: { enabled: true },
    dashboard: { enabled: true, namespace: 'monitoring' },
  },
};

function schemaErrors(values: unknown): string[] {
  return validateValues(values) ? [] : (validateValues.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
}

function objects(r: RenderedChart): Obj[] {
  return renderedObjects(r).map((o) => o.object as Obj);
}

function kind(r: RenderedChart, k: string): Obj {
  const found = objects(r).filter((o) => o.kind === k);
  assert.equal(found.length, 1, `one ${k} rendered`);
  return found[0]!;
}

function container(r: RenderedChart): Obj {
  return kind(r, 'Deployment').spec.template.spec.containers[0];
}

/** The config.yaml the pods read: the ConfigMap's data, as rendered. */
function renderedConfig(r: RenderedChart): string {
  return kind(r, 'ConfigMap').data['config.yaml'] as string;
}

const MODELS: Record<string, new (o: Obj) => { validate(): void }> = {
  Deployment,
  Service,
  ConfigMap,
  ServiceAccount,
  HorizontalPodAutoscaler,
  PodDisruptionBudget,
};

describe('Helm chart values', () => {
  it('values.yaml passes values.schema.json', () => {
    assert.deepEqual(schemaErrors(defaults), []);
  });

  it('every deploy/examples/values-*.yaml, merged over values.yaml as helm does, passes values.schema.json', () => {
    assert.ok(EXAMPLES.length > 0, 'at least one example values file');
    for (const file of EXAMPLES) assert.deepEqual(schemaErrors(mergeValues(defaults, readYaml(file))), [], file);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['a replica count that is not a number', { replicaCount: 'two' }, /^\/replicaCount must be integer/],
    ['a Service port above 65535', { service: { port: 70000 } }, /^\/service\/port must be <= 65535/],
    ['a Service type Kubernetes does not have', { service: { type: 'Ingress' } }, /^\/service\/type must be equal to one of the allowed values/],
    ['an unknown pull policy', { image: { pullPolicy: 'Sometimes' } }, /^\/image\/pullPolicy must be equal to one of the allowed values/],
    ['admin port 0', { config: { proxy: { admin: { port: 0 } } } }, /^\/config\/proxy\/admin\/port must be >= 1/],
    ['the admin server turned off (the probes need it)', { config: { proxy: { admin: { enabled: false } } } }, /^\/config\/proxy\/admin\/enabled must be equal to constant/],
    ['an admin address the kubelet cannot reach', { config: { proxy: { admin: { address: '127.0.0.1' } } } }, /^\/config\/proxy\/admin\/address must be equal to one of the allowed values/],
    ['no services', { config: { proxy: { services: [] } } }, /^\/config\/proxy\/services must NOT have fewer than 1 items/],
    ['a service with neither hosts nor discovery', { config: { proxy: { services: [{ name: 'x', domain: 'x.test' }] } } }, /^\/config\/proxy\/services\/0 must have required property/],
    ['autoscaling to at most 0 replicas', { autoscaling: { maxReplicas: 0 } }, /^\/autoscaling\/maxReplicas must be >= 1/],
    ['a PDB budget that is neither a number nor a percentage', { podDisruptionBudget: { maxUnavailable: 'half' } }, /^\/podDisruptionBudget\/maxUnavailable must/],
    ['a CPU request that is not a quantity', { resources: { requests: { cpu: 'lots' } } }, /^\/resources\/requests\/cpu must/],
    ['a misspelt top-level key', { replicas: 3 }, /^\/ must NOT have additional properties/],
    ['a scrape interval without a unit', { metrics: { serviceMonitor: { interval: 30 } } }, /^\/metrics\/serviceMonitor\/interval must be string/],
    ['a negative grace period', { terminationGracePeriodSeconds: -1 }, /^\/terminationGracePeriodSeconds must be >= 1/],
  ];
  for (const [what, override, message] of bad) {
    it(`helm install refuses ${what}`, () => {
      const errors = schemaErrors(mergeValues(defaults, override));
      assert.ok(
        errors.some((e) => message.test(e)),
        `expected an error matching ${message}, got ${JSON.stringify(errors)}`,
      );
    });
  }
});

describe('Helm chart templates', () => {
  const cases: Array<[string, unknown[]]> = [
    ['the default values', []],
    ...EXAMPLES.map((f): [string, unknown[]] => [f, [readYaml(f)]]),
    ['every option switched on', [ALL_ON]],
    ['autoscaling off', [{ autoscaling: { enabled: false }, podDisruptionBudget: { enabled: false }, serviceAccount: { create: false }, topologySpread: { enabled: false } }]],
  ];
  for (const [what, overrides] of cases) {
    it(`render with ${what} to valid Kubernetes objects`, () => {
      const r = renderChart(CHART, overrides, { name: 'edge', namespace: 'web' });
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
      assert.match(r.files.get('templates/NOTES.txt') ?? '', /port-forward/);
    });
  }

  it('the config the pods read passes `kubeproxy --check` (values.yaml and each example)', async () => {
    for (const [what, overrides] of [['values.yaml', []], ...EXAMPLES.map((f) => [f, [readYaml(f)]])] as Array<[string, unknown[]]>) {
      const file = tempFile('config.yaml', renderedConfig(renderChart(CHART, overrides)));
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
    const r = renderChart(CHART);
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
    const r = renderChart(CHART);
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
      const monitor = kind(renderChart(CHART, [ALL_ON]), 'ServiceMonitor');
      const scrape = await request(proxy.adminPort, { path: monitor.spec.endpoints[0].path });
      assert.equal(scrape.status, 200, 'the ServiceMonitor path serves metrics');
      assert.match(scrape.text, /kubeproxy_/);
    } finally {
      await proxy.close();
    }
  });

  it('the Service routes to the named ports and the ServiceMonitor scrapes the admin port with honorLabels', () => {
    const r = renderChart(CHART, [ALL_ON]);
    const svc = kind(r, 'Service');
    const deployment = kind(r, 'Deployment');
    assert.deepEqual(
      (svc.spec.ports as Obj[]).map((p) => p.targetPort),
      ['http', 'admin'],
    );
    assert.deepEqual(svc.spec.selector, deployment.spec.selector.matchLabels);
    for (const [k, v] of Object.entries(svc.spec.selector as Obj)) assert.equal(deployment.spec.template.metadata.labels[k], v);
    const monitor = kind(r, 'ServiceMonitor');
    assert.equal(monitor.spec.endpoints[0].port, 'admin');
    assert.equal(monitor.spec.endpoints[0].honorLabels, true);
    assert.deepEqual(monitor.spec.selector.matchLabels, svc.spec.selector);
    assert.equal(monitor.metadata.labels.release, 'prometheus');
  });

  it('the pod runs hardened: non-root, no privilege escalation, no capabilities, read-only root with /tmp writable', () => {
    const r = renderChart(CHART);
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

  it('terminationGracePeriodSeconds outlasts shutdown.delay + drainTimeout (values.yaml and each example)', () => {
    for (const [what, overrides] of [['values.yaml', []], ...EXAMPLES.map((f) => [f, [readYaml(f)]])] as Array<[string, unknown[]]>) {
      const r = renderChart(CHART, overrides);
      const { delay, drainTimeout } = validateConfig(parseYaml(renderedConfig(r))).proxy.shutdown;
      const grace = kind(r, 'Deployment').spec.template.spec.terminationGracePeriodSeconds as number;
      assert.ok(grace * 1000 > delay + drainTimeout, `${what}: ${grace}s > ${delay}ms + ${drainTimeout}ms`);
    }
  });

  it('the HPA scales the Deployment on CPU, and on kubeproxy_inflight_requests when asked; it then owns the replica count', () => {
    const plain = renderChart(CHART);
    const hpa = kind(plain, 'HorizontalPodAutoscaler');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: kind(plain, 'Deployment').metadata.name });
    assert.deepEqual(
      (hpa.spec.metrics as Obj[]).map((m) => m.resource?.name ?? m.pods?.metric.name),
      ['cpu'],
    );
    assert.equal(kind(plain, 'Deployment').spec.replicas, undefined, 'no replicas field fighting the HPA');

    const custom = kind(renderChart(CHART, [ALL_ON]), 'HorizontalPodAutoscaler');
    const pods = (custom.spec.metrics as Obj[]).find((m) => m.type === 'Pods');
    assert.equal(pods?.pods.metric.name, 'kubeproxy_inflight_requests');
    assert.equal(pods?.pods.target.averageValue, '50');
    assert.match(readText('src/metrics/metrics.ts'), /name: 'kubeproxy_inflight_requests'/, 'the proxy exports the metric');

    const fixed = renderChart(CHART, [{ autoscaling: { enabled: false }, replicaCount: 3 }]);
    assert.equal(kind(fixed, 'Deployment').spec.replicas, 3);
    assert.equal(objects(fixed).filter((o) => o.kind === 'HorizontalPodAutoscaler').length, 0);
  });

  it('autoscaling on CPU without a CPU request fails to render with a clear message', () => {
    assert.throws(() => renderChart(CHART, [{ resources: { requests: { cpu: null } } }]), (err: Error) => {
      assert.ok(err instanceof TemplateError);
      assert.match(err.message, /autoscaling on CPU needs resources.requests.cpu/);
      return true;
    });
  });

  it('a config change reaches the pods by hot reload; configChecksum instead rolls them', () => {
    const plain = kind(renderChart(CHART), 'Deployment');
    assert.equal(plain.spec.template.metadata.annotations?.['checksum/config'], undefined);
    const a = kind(renderChart(CHART, [{ configChecksum: true }]), 'Deployment');
    const b = kind(renderChart(CHART, [{ configChecksum: true, config: { proxy: { log: { level: 'debug' } } } }]), 'Deployment');
    assert.match(a.spec.template.metadata.annotations['checksum/config'], /^[0-9a-f]{64}$/);
    assert.notEqual(a.spec.template.metadata.annotations['checksum/config'], b.spec.template.metadata.annotations['checksum/config']);
    assert.equal(validateConfig(parseYaml(renderedConfig(renderChart(CHART)))).proxy.watch, true, 'the proxy watches its config file');
  });

  it('the PodDisruptionBudget keeps all but one pod by default, and minAvailable wins when given', () => {
    const pdb = kind(renderChart(CHART), 'PodDisruptionBudget');
    assert.equal(pdb.spec.maxUnavailable, 1);
    const min = kind(renderChart(CHART, [{ podDisruptionBudget: { minAvailable: '50%' } }]), 'PodDisruptionBudget');
    assert.deepEqual([min.spec.minAvailable, min.spec.maxUnavailable], ['50%', undefined]);
  });
});

describe('monitoring files shipped in the chart', () => {
  for (const name of ['kubeproxy-rules.yaml', 'grafana-dashboard.json']) {
    it(`files/${name} is a copy of deploy/monitoring/${name} (run node scripts/sync-chart-files.mjs)`, () => {
      assert.equal(readText(`deploy/helm/kubeproxy/files/${name}`), readText(`deploy/monitoring/${name}`));
    });
  }

  it('the PrometheusRule carries the rule groups of deploy/monitoring/kubeproxy-rules.yaml', () => {
    const rule = kind(renderChart(CHART, [ALL_ON]), 'PrometheusRule');
    assert.deepEqual(rule.spec, readYaml<Obj>('deploy/monitoring/kubeproxy-rules.yaml'));
    assert.ok(rule.spec.groups.length > 0);
  });

  it("the dashboard ConfigMap holds the dashboard JSON under the label Grafana's sidecar looks for", () => {
    const maps = objects(renderChart(CHART, [ALL_ON])).filter((o) => o.kind === 'ConfigMap' && o.metadata.labels.grafana_dashboard === '1');
    assert.equal(maps.length, 1);
    assert.equal(maps[0]!.metadata.namespace, 'monitoring');
    const [json] = Object.values(maps[0]!.data as Record<string, string>);
    assert.deepEqual(JSON.parse(json!), JSON.parse(readText('deploy/monitoring/grafana-dashboard.json')));
  });

  it('ServiceMonitor, PrometheusRule and the dashboard are off by default', () => {
    const kinds = objects(renderChart(CHART)).map((o) => `${o.kind}/${o.metadata.name}`);
    assert.deepEqual(kinds.sort(), ['ConfigMap/kubeproxy', 'Deployment/kubeproxy', 'HorizontalPodAutoscaler/kubeproxy', 'PodDisruptionBudget/kubeproxy', 'Service/kubeproxy', 'ServiceAccount/kubeproxy']);
  });
});
