import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { request } from './helpers/http.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

/** Opens a raw connection, sends `head`, and collects what comes back. */
async function rawClient(port: number, head: string) {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let data = '';
  socket.on('data', (d) => (data += d));
  socket.write(head);
  const waitFor = async (text: string) => {
    const deadline = Date.now() + 5000;
    while (!data.includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    return data;
  };
  return { socket, waitFor, text: () => data };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('upgrade', () => {
  let origin: Origin;
  let proxy: TestProxy;
  let seenHeaders: string[] = [];
  const upgraded: Array<{ destroy(): void }> = [];
  before(async () => {
    origin = await startOrigin((_req, res) => res.end('plain'));
    // A minimal upgrade server: answers 101 and then echoes bytes upper-cased.
    origin.server.on('upgrade', (req, socket) => {
      upgraded.push(socket);
      seenHeaders = req.rawHeaders;
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
    });
    proxy = await startProxy({ services: [{ name: 'ws', domain: 'ws.test', hosts: [{ port: origin.port }] }] });
  });
  after(async () => {
    for (const s of upgraded) s.destroy();
    await proxy.close();
    await origin.close();
  });

  test('an Upgrade request is tunnelled both ways after 101 Switching Protocols', async () => {
    const socket = connect(proxy.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    let data = '';
    socket.on('data', (d) => (data += d));
    const waitFor = async (text: string) => {
      const deadline = Date.now() + 5000;
      while (!data.includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    };
    await waitFor('\r\n\r\n');
    assert.match(data, /^HTTP\/1\.1 101 Switching Protocols/);
    socket.write('hello tunnel');
    await waitFor('HELLO TUNNEL');
    assert.ok(data.endsWith('HELLO TUNNEL'));
    const names = seenHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    assert.ok(names.includes('upgrade') && names.includes('x-forwarded-for') && names.includes('via'));
    socket.destroy();
  });

  test('an Upgrade request for an unknown host gets 421', async () => {
    const socket = connect(proxy.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET / HTTP/1.1\r\nHost: nope.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    let data = '';
    socket.on('data', (d) => (data += d));
    await once(socket, 'close');
    assert.match(data, /^HTTP\/1\.1 421/);
  });

  test('an HTTP/1.0 request with Upgrade is never tunnelled: 400 naming RFC 9110 section 7.8, the instance sees nothing', async () => {
    const tunnels = upgraded.length;
    const requests = origin.requests.length;
    const socket = connect(proxy.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /chat HTTP/1.0\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello');
    let data = '';
    socket.on('data', (d) => (data += d));
    await once(socket, 'close');
    assert.match(data, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(data, /Upgrade in an HTTP\/1\.0 request.*RFC 9110 section 7\.8/);
    assert.doesNotMatch(data, /HELLO|101/);
    assert.equal(upgraded.length, tunnels, 'no tunnel was opened');
    assert.equal(origin.requests.length, requests, 'nothing reached the instance');
  });
});

describe('upgrade: tunnels share the instance slots of requests', () => {
  let origin: Origin;
  let proxy: TestProxy;
  const upgraded: Array<{ destroy(): void }> = [];
  before(async () => {
    origin = await startOrigin((_req, res) => res.end('plain'));
    origin.server.on('upgrade', (_req, socket) => {
      upgraded.push(socket);
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.on('end', () => socket.end());
    });
    // One connection per instance; a queued request waits up to the connect timeout (10 s).
    proxy = await startProxy({
      services: [{ name: 'ws', domain: 'ws.test', hosts: [{ port: origin.port }], limits: { maxConnections: 1 }, timeouts: { connect: '10s' } }],
    });
  });
  after(async () => {
    for (const s of upgraded) s.destroy();
    await proxy.close();
    await origin.close();
  });

  test('a tunnel closing wakes a queued request', async () => {
    const tunnel = await rawClient(proxy.port, 'GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    assert.match(await tunnel.waitFor('\r\n\r\n'), /^HTTP\/1\.1 101/);
    let answered = false;
    const queued = request(proxy.port, { host: 'ws.test', path: '/after' }).then((r) => ((answered = true), r));
    // The tunnel holds the only slot: the request waits in the queue.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(answered, false, 'the request waits while the tunnel is open');
    tunnel.socket.end();
    // Well before the 10 s queue timeout (which would answer 503).
    const reply = await Promise.race([queued, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the queued request was not woken')), 5000))]);
    assert.equal(reply.status, 200);
    assert.equal(reply.text, 'plain');
  });
});

describe('upgrade: request ids', () => {
  let proxy: TestProxy;
  before(async () => {
    proxy = await startProxy({ services: [{ name: 'ws', domain: 'ws.test', hosts: [{ port: 9 }] }] });
  });
  after(() => proxy.close());

  for (const [what, value] of [['empty', ''], ['spaced', 'a b'], ['too long', 'x'.repeat(201)]] as const) {
    test(`an Upgrade request with an ${what} X-Request-Id gets a generated one in the proxy's answer`, async () => {
      const c = await rawClient(proxy.port, `GET / HTTP/1.1\r\nHost: nope.test\r\nX-Request-Id: ${value}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
      await once(c.socket, 'close');
      assert.match(c.text(), /^HTTP\/1\.1 421/);
      const id = /\r\nx-request-id: ([^\r]*)\r\n/i.exec(c.text())?.[1];
      assert.match(id ?? '', UUID);
    });
  }

  test('an Upgrade request keeps a valid X-Request-Id', async () => {
    const c = await rawClient(proxy.port, 'GET / HTTP/1.1\r\nHost: nope.test\r\nX-Request-Id: abc-123\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    await once(c.socket, 'close');
    assert.match(c.text(), /\r\nx-request-id: abc-123\r\n/i);
  });
});
