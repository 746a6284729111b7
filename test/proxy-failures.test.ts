import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { deadPort, namedOrigin, startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { request } from './helpers/http.ts';

describe('failures', () => {
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
  });
  async function proxyFor(services: Parameters<typeof startProxy>[0]['services'], extra: Record<string, unknown> = {}): Promise<TestProxy> {
    const p = await startProxy({ services, ...extra });
    closers.push(() => p.close());
    return p;
  }
  async function origin(o: Promise<Origin>): Promise<Origin> {
    const started = await o;
    closers.push(() => started.close());
    return started;
  }

  test('a refused connection is retried on another instance, for GET and for a POST whose body was not sent', async () => {
    const good = await origin(namedOrigin('good'));
    const proxy = await proxyFor([{ name: 's', domain: 's.test', hosts: [{ port: await deadPort() }, { port: good.port }] }]);
    for (let i = 0; i < 6; i++) {
      const r = await request(proxy.port, { host: 's.test' });
      assert.equal(r.status, 200);
      assert.equal(r.text, 'good');
    }
    const post = await request(proxy.port, { host: 's.test', method: 'POST', body: 'payload' });
    assert.equal(post.status, 200);
  });

  test('when every instance refuses, the client gets a 503 naming the cause, with Retry-After', async () => {
    const proxy = await proxyFor([{ name: 'dead', domain: 'dead.test', hosts: [{ port: await deadPort() }, { port: await deadPort() }] }]);
    const r = await request(proxy.port, { host: 'dead.test' });
    assert.equal(r.status, 503);
    assert.match(r.text, /no instance of service "dead" could be reached .*cannot connect to instance 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    assert.equal(r.headers['retry-after'], '1');
    assert.ok(r.headers['x-request-id']);
  });

  test('an instance that resets the connection before answering a POST gets a 502, and the POST is not replayed', async () => {
    let posts = 0;
    const resetting = await origin(
      startOrigin((req) => {
        posts++;
        req.socket.destroy();
      }),
    );
    const other = await origin(startOrigin((req) => {
      posts++;
      req.socket.destroy();
    }));
    const proxy = await proxyFor([{ name: 'rst', domain: 'rst.test', hosts: [{ port: resetting.port }, { port: other.port }] }]);
    const r = await request(proxy.port, { host: 'rst.test', method: 'POST', body: 'order=1' });
    assert.equal(r.status, 502);
    assert.match(r.text, /closed the connection/);
    assert.equal(posts, 1, 'a POST whose body was sent must not be sent again');
  });

  test('an instance slower than the response timeout gets a 504', async () => {
    const slow = await origin(
      startOrigin((_req, res) => {
        const t = setTimeout(() => res.end('late'), 3000);
        res.on('close', () => clearTimeout(t));
      }),
    );
    const proxy = await proxyFor([{ name: 'slow', domain: 'slow.test', hosts: [{ port: slow.port }], timeouts: { response: '200ms' } }]);
    const r = await request(proxy.port, { host: 'slow.test' });
    assert.equal(r.status, 504);
    assert.match(r.text, /did not answer in time/);
  });

  test('an instance that resets the connection mid-response cuts the client response instead of faking success', async () => {
    const broken = await origin(
      startOrigin((_req, res) => {
        res.writeHead(200, { 'content-length': '100' });
        res.write('partial');
        setTimeout(() => res.socket?.destroy(), 20);
      }),
    );
    const proxy = await proxyFor([{ name: 'b', domain: 'b.test', hosts: [{ port: broken.port }] }]);
    await assert.rejects(request(proxy.port, { host: 'b.test' }));
  });

  test('a slow instance never stalls requests to other services', async () => {
    const slow = await origin(
      startOrigin((_req, res) => {
        const t = setTimeout(() => res.end('slow'), 1500);
        res.on('close', () => clearTimeout(t));
      }),
    );
    const fast = await origin(namedOrigin('fast'));
    const proxy = await proxyFor([
      { name: 'slow', domain: 'slow.test', hosts: [{ port: slow.port }] },
      { name: 'fast', domain: 'fast.test', hosts: [{ port: fast.port }] },
    ]);
    const order: string[] = [];
    const slowOnes = Array.from({ length: 20 }, () => request(proxy.port, { host: 'slow.test' }).then(() => order.push('slow')));
    await new Promise((r) => setTimeout(r, 50));
    const fastOnes = Array.from({ length: 20 }, () => request(proxy.port, { host: 'fast.test' }).then((r) => order.push(r.text)));
    await Promise.all([...slowOnes, ...fastOnes]);
    assert.deepEqual(order.slice(0, 20), Array(20).fill('fast'));
  });

  test('a request is only ever sent to an instance of its own service', async () => {
    const a1 = await origin(namedOrigin('a1'));
    const a2 = await origin(namedOrigin('a2'));
    const b1 = await origin(namedOrigin('b1'));
    const proxy = await proxyFor([
      { name: 'a', domain: 'a.test', hosts: [{ port: a1.port }, { port: a2.port }] },
      { name: 'b', domain: 'b.test', hosts: [{ port: b1.port }] },
    ]);
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add((await request(proxy.port, { host: i % 2 ? 'a.test' : 'b.test' })).text + (i % 2 ? '@a' : '@b'));
    assert.deepEqual([...seen].sort(), ['a1@a', 'a2@a', 'b1@b']);
  });

  test('round-robin alternates exactly between two instances', async () => {
    const x = await origin(namedOrigin('x'));
    const y = await origin(namedOrigin('y'));
    const proxy = await proxyFor([{ name: 'rr', domain: 'rr.test', loadBalancer: 'round-robin', hosts: [{ port: x.port }, { port: y.port }] }]);
    const got: string[] = [];
    for (let i = 0; i < 10; i++) got.push((await request(proxy.port, { host: 'rr.test' })).text);
    assert.equal(got.filter((v) => v === 'x').length, 5);
    for (let i = 1; i < got.length; i++) assert.notEqual(got[i], got[i - 1]);
  });

  test('consistent-hash on a header keeps a user on one instance', async () => {
    const origins = [await origin(namedOrigin('h1')), await origin(namedOrigin('h2')), await origin(namedOrigin('h3'))];
    const proxy = await proxyFor([
      { name: 'ch', domain: 'ch.test', loadBalancer: 'consistent-hash', hashKey: 'header:X-User', hosts: origins.map((o) => ({ port: o.port })) },
    ]);
    const owners = new Map<string, Set<string>>();
    for (let i = 0; i < 40; i++) {
      const user = `user-${i % 8}`;
      const r = await request(proxy.port, { host: 'ch.test', headers: { 'x-user': user } });
      (owners.get(user) ?? owners.set(user, new Set()).get(user)!).add(r.text);
    }
    for (const [user, set] of owners) assert.equal(set.size, 1, `${user} moved between instances`);
  });
});
