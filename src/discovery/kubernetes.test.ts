import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { endpointsOf, inClusterAccess, type EndpointSlice } from './kubernetes.ts';

function slice(name: string, endpoints: EndpointSlice['endpoints'], ports: EndpointSlice['ports'], addressType: EndpointSlice['addressType'] = 'IPv4'): EndpointSlice {
  return { metadata: { name }, addressType, endpoints, ports };
}

const ids = (list: Array<{ address: string; port: number }>) => list.map((e) => `${e.address}:${e.port}`);

describe('endpointsOf', () => {
  it('a port name picks each slice\'s port of that name (pods may use different numbers); a number is the pod port', () => {
    const slices = [
      slice('a', [{ addresses: ['10.0.0.1'] }], [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9090 }]),
      slice('b', [{ addresses: ['10.0.0.2'] }], [{ name: 'http', port: 8081 }]),
    ];
    assert.deepEqual(ids(endpointsOf(slices, 'http').ready), ['10.0.0.1:8080', '10.0.0.2:8081']);
    assert.deepEqual(ids(endpointsOf(slices, 9090).ready), ['10.0.0.1:9090']);
    assert.deepEqual(ids(endpointsOf(slices, 'grpc').ready), [], 'no such port: no endpoint');
  });

  it('an unnamed single-port Service matches the port name ""', () => {
    assert.deepEqual(ids(endpointsOf([slice('a', [{ addresses: ['10.0.0.1'] }], [{ name: '', port: 80 }])], '').ready), ['10.0.0.1:80']);
  });

  it('ready (or unset) serves, serving && terminating drains, the rest is left out', () => {
    const s = slice(
      'a',
      [
        { addresses: ['10.0.0.1'], conditions: { ready: true, serving: true, terminating: false } },
        { addresses: ['10.0.0.2'] },
        { addresses: ['10.0.0.3'], conditions: { ready: false, serving: true, terminating: true } },
        { addresses: ['10.0.0.4'], conditions: { ready: false, serving: false, terminating: true } },
        { addresses: ['10.0.0.5'], conditions: { ready: false, serving: false, terminating: false } },
      ],
      [{ name: 'http', port: 80 }],
    );
    const { ready, terminating } = endpointsOf([s], 'http');
    assert.deepEqual(ids(ready), ['10.0.0.1:80', '10.0.0.2:80']);
    assert.deepEqual(ids(terminating), ['10.0.0.3:80']);
  });

  it('an address listed in two slices (during a slice reshuffle) is one endpoint; FQDN slices are ignored', () => {
    const p = [{ name: 'http', port: 80 }];
    const slices = [slice('a', [{ addresses: ['10.0.0.1'] }], p), slice('b', [{ addresses: ['10.0.0.1'] }], p), slice('c', [{ addresses: ['web.example.com'] }], p, 'FQDN')];
    assert.deepEqual(ids(endpointsOf(slices, 'http').ready), ['10.0.0.1:80']);
  });
});

describe('inClusterAccess', () => {
  it('reads KUBERNETES_SERVICE_HOST/PORT and the service account\'s token, CA and namespace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-sa-'));
    try {
      writeFileSync(join(dir, 'token'), 'tok\n');
      writeFileSync(join(dir, 'ca.crt'), 'CA');
      writeFileSync(join(dir, 'namespace'), 'edge');
      const access = inClusterAccess({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443', KUBEPROXY_SERVICEACCOUNT_DIR: dir })!;
      assert.equal(access.server, 'https://[fd00::1]:6443');
      assert.equal(access.token(), 'tok');
      assert.equal(access.ca, 'CA');
      assert.equal(access.namespace, 'edge');
      writeFileSync(join(dir, 'token'), 'rotated');
      assert.equal(access.token(), 'rotated', 'the token is read again: bound tokens rotate');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('outside a cluster with no override there is no API', () => {
    assert.equal(inClusterAccess({ KUBEPROXY_SERVICEACCOUNT_DIR: '/nonexistent' }), undefined);
  });
});
