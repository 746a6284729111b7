// The Bun.serve front's adapter objects, on Node (Request, Response and ReadableStream are the web
// standard ones on both runtimes); the front itself runs on Bun only, in the Bun leg of the tests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BunRequest, BunResponse } from './bun-front.ts';
import { bunFront } from './front.ts';

async function text(res: BunResponse): Promise<string> {
  const r = res.response ?? (await res.later());
  return r.text();
}

test('a request reads as node:http would give it: method, origin-form target, header lines, client address', async () => {
  const request = new Request('http://shop.example/a/b?x=1&y=%20', { method: 'POST', headers: { host: 'shop.example', 'x-one': '1' }, body: 'hello', duplex: 'half' } as RequestInit);
  const req = new BunRequest(request, { address: '10.0.0.7', port: 5555 });
  assert.equal(req.method, 'POST');
  assert.equal(req.url, '/a/b?x=1&y=%20');
  assert.deepEqual(req.rawHeaders.filter((_, i) => i % 2 === 0).sort(), ['content-type', 'host', 'x-one']);
  assert.equal(req.headers['x-one'], '1');
  assert.equal(req.socket.remoteAddress, '10.0.0.7');
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(Buffer.from(c as Uint8Array));
  assert.equal(Buffer.concat(chunks).toString(), 'hello');
  assert.equal(req.complete, true);
});

test('a request without a body ends at once', async () => {
  const req = new BunRequest(new Request('http://e/'), null);
  const chunks: unknown[] = [];
  for await (const c of req) chunks.push(c);
  assert.deepEqual(chunks, []);
  assert.equal(req.socket.remoteAddress, '');
});

test('an answer written in one turn goes out as one piece, with its status, reason and fields', async () => {
  const res = new BunResponse('GET');
  res.writeHead(201, 'Made', ['content-type', 'text/plain', 'x-a', '1', 'x-a', '2', 'transfer-encoding', 'chunked', 'keep-alive', 'timeout=5']);
  res.write('hel');
  res.end('lo');
  assert.ok(res.response, 'the Response exists before the turn ends');
  assert.equal(res.response.status, 201);
  assert.equal(res.response.statusText, 'Made');
  assert.equal(res.response.headers.get('x-a'), '1, 2');
  assert.equal(res.response.headers.get('transfer-encoding'), null, 'Bun frames the body itself');
  assert.equal(res.response.headers.get('keep-alive'), null);
  assert.equal(await text(res), 'hello');
});

test("'finish' and 'close' follow the end, once; a HEAD answer has no body", async () => {
  const res = new BunResponse('HEAD');
  const events: string[] = [];
  res.on('finish', () => events.push('finish'));
  res.on('close', () => events.push('close'));
  res.writeHead(200, ['content-length', '5']);
  res.end();
  assert.equal(res.headersSent, true);
  assert.equal(res.writableFinished, false, 'finished after the turn, as node:http reports it');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events, ['finish', 'close']);
  assert.equal(res.writableFinished, true);
  assert.equal(res.response!.body, null);
  assert.equal(res.response!.headers.get('content-length'), '5');
});

test('a connection that must close says so: Connection: close is kept, other Connection values are not', () => {
  const res = new BunResponse('GET');
  res.shouldKeepAlive = false;
  res.writeHead(200, ['connection', 'keep-alive', 'content-type', 'text/plain']);
  res.end('x');
  assert.equal(res.response!.headers.get('connection'), 'close');
  const err = new BunResponse('GET');
  err.writeHead(400, ['connection', 'close', 'content-type', 'text/plain']);
  err.end('bad');
  assert.equal(err.response!.headers.get('connection'), 'close');
});

test('a long answer streams with back-pressure: write() says when to wait, drain says when to go on', async () => {
  const res = new BunResponse('GET');
  res.writeHead(200, ['content-type', 'application/octet-stream']);
  const chunk = Buffer.alloc(16 * 1024, 'a');
  let accepted = 0;
  while (res.write(chunk)) accepted++;
  assert.ok(accepted < 8, `stopped after ${accepted} chunks`);
  const drained = new Promise<void>((r) => res.once('drain', () => r()));
  const response = res.response ?? (await res.later());
  const reader = response.body!.getReader();
  let read = 0;
  const first = await reader.read();
  read += first.value!.length;
  await drained;
  res.end();
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    read += r.value.length;
  }
  assert.equal(read, (accepted + 1) * chunk.length);
});

test('an answer cut after its head ends the stream with an error; the client leaving closes it once', async () => {
  const res = new BunResponse('GET');
  let closes = 0;
  res.on('close', () => closes++);
  res.writeHead(200, ['content-type', 'text/plain']);
  res.write('part');
  await new Promise((r) => setImmediate(r));
  res.destroy(new Error('instance reset'));
  res.clientGone();
  assert.equal(res.destroyed, true);
  assert.equal(closes, 1);
  await assert.rejects(res.response!.text());
});

test('a status outside 200-999 is refused before anything is sent, as node:http refuses it', () => {
  const res = new BunResponse('GET');
  assert.throws(() => res.writeHead(99, []), RangeError);
  assert.equal(res.headersSent, false);
});

test('KUBEPROXY_BUN_FRONT picks the front on Bun; a wrong value is an error naming it', () => {
  assert.equal(bunFront({}), 'node');
  assert.equal(bunFront({ KUBEPROXY_BUN_FRONT: 'serve' }), 'serve');
  assert.equal(bunFront({ KUBEPROXY_BUN_FRONT: 'node' }), 'node');
  assert.throws(() => bunFront({ KUBEPROXY_BUN_FRONT: 'uws' }), /KUBEPROXY_BUN_FRONT: "uws" is not a front \(use serve or node\)/);
});
