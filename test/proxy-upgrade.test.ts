import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

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
});
