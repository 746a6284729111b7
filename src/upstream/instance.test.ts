import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { OutlierDetector } from '../health/passive.ts';
import { forward } from './client.ts';
import { Instance, type PoolSettings } from './instance.ts';

// undici closes an idle keep-alive connection after keepAliveTimeout (the server below sends no
// Keep-Alive hint); the instance checks its pool once per keepAliveTimeout.
const settings: PoolSettings = { connectTimeout: 2000, responseTimeout: 5000, idleTimeout: 5000, keepAliveTimeout: 100, maxConnections: 0, protocol: 'http1', tls: undefined };

let server: Server;
let port = 0;

before(async () => {
  server = createServer((req, res) => {
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    const status = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('status') ?? 200);
    setTimeout(() => res.writeHead(status, { 'content-type': 'text/plain' }).end('ok'), delay);
  });
  // No Keep-Alive header: undici's own keepAliveTimeout decides when an idle connection closes.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

/** One GET through the instance; resolves with the status. */
function get(instance: Instance, path = '/'): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    forward(instance, { method: 'GET', path, headers: ['host', 'test'], body: null }, {
      onResponse: (s) => (status = s),
      onData: () => true,
      onEnd: () => resolve(status),
      onError: (err) => reject(err),
    });
  });
}

/** Waits (bounded) until `cond` holds; false if it never did. */
async function eventually(cond: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

describe('instance connection pool', () => {
  test('an instance that never got a request holds no connection pool', () => {
    const instance = new Instance('web', '127.0.0.1', port, 1, settings);
    assert.equal(instance.hasPool, false);
    instance.update(2, { ...settings, connectTimeout: 1000 });
    assert.equal(instance.hasPool, false, 'a reload does not make a pool either');
  });

  test('the first request makes the pool; it is closed once idle, and the next request gets a new one', async () => {
    const instance = new Instance('web', '127.0.0.1', port, 1, settings);
    assert.equal(await get(instance), 200);
    assert.equal(instance.hasPool, true);
    assert.ok(await eventually(() => !instance.hasPool), 'the idle pool was closed');
    assert.equal(await get(instance), 200, 'a request after the pool closed is served');
    assert.equal(instance.hasPool, true);
    await instance.close(1000);
  });

  test('a pool with a request in flight is not closed as idle', async () => {
    const instance = new Instance('web', '127.0.0.1', port, 1, settings);
    // Several idle periods pass while the response is outstanding.
    const status = get(instance, '/?delay=500');
    await sleep(400);
    assert.equal(instance.hasPool, true);
    assert.equal(await status, 200);
    await instance.close(1000);
  });

  test('an instance keeps its ejection, health and failure count when its pool closes', async () => {
    const instance = new Instance('web', '127.0.0.1', port, 1, settings);
    const other = new Instance('web', '127.0.0.2', port, 1, settings);
    const service = {
      name: 'web',
      instances: [instance, other],
      outlier: { enabled: true, consecutiveFailures: 2, baseEjectionTime: 60_000, maxEjectionTime: 60_000, maxEjectionPercent: 50 },
    };
    const detector = new OutlierDetector<Instance>();
    try {
      // One 5xx: counted, not yet ejected.
      detector.record(instance, service, await get(instance, '/?status=503'), undefined);
      assert.equal(instance.ejected, false);
      instance.healthy = false;
      assert.ok(await eventually(() => !instance.hasPool), 'the idle pool was closed');
      assert.equal(instance.healthy, false, 'health is kept');
      // The second 5xx in a row, on a new pool, ejects it: the count survived the first pool.
      detector.record(instance, service, await get(instance, '/?status=503'), undefined);
      assert.equal(instance.ejected, true);
      assert.ok(await eventually(() => !instance.hasPool), 'the idle pool was closed again');
      assert.equal(instance.ejected, true, 'ejection is kept');
      assert.equal(instance.available(), false);
    } finally {
      detector.stop();
      await instance.close(1000);
    }
  });

  test('a closed instance refuses new requests and makes no new pool', async () => {
    const instance = new Instance('web', '127.0.0.1', port, 1, settings);
    assert.equal(await get(instance), 200);
    await instance.close(1000);
    assert.equal(instance.hasPool, false);
    await assert.rejects(get(instance), /upstream|closed/i);
    assert.equal(instance.hasPool, false);
  });
});
