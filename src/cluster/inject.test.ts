import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { injectRequest } from './inject.ts';

test('a request reaches a server that listens on no port, body and headers included', async (t) => {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json', allow: 'POST' });
      res.end(JSON.stringify({ method: req.method, url: req.url, token: req.headers['x-token'], body: Buffer.concat(chunks).toString() }));
    });
  });
  t.after(() => server.close());
  const reply = await injectRequest(server, {
    method: 'POST',
    url: '/cache/purge?service=web',
    headers: { 'x-token': 'abc', 'content-length': '999' },
    body: Buffer.from('hello').toString('base64'),
  });
  assert.equal(reply.status, 201);
  assert.equal(reply.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(reply.body), { method: 'POST', url: '/cache/purge?service=web', token: 'abc', body: 'hello' });
  assert.equal(server.listening, false);
});

test('a route that never answers fails the injected request after the timeout', async (t) => {
  const server = createServer(() => {});
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  await assert.rejects(injectRequest(server, { method: 'GET', url: '/hang', headers: {}, body: '' }, 100), /did not answer within 100 ms/);
});
