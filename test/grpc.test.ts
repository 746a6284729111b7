/**
 * gRPC through the proxy: a real @grpc/grpc-js client on the h2 TLS front, a real @grpc/grpc-js
 * server as an h2c instance. Messages are plain Buffers (no .proto needed to move bytes).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type IncomingHttpHeaders } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { certDir, makeCertificate, type TestCertificate } from './helpers/certs.ts';
import { deadPort } from './helpers/origin.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';

const bytes = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const EchoService = {
  unary: { path: '/test.Echo/Unary', requestStream: false, responseStream: false, ...bytes },
  serverStream: { path: '/test.Echo/ServerStream', requestStream: false, responseStream: true, ...bytes },
  fail: { path: '/test.Echo/Fail', requestStream: false, responseStream: false, ...bytes },
  slow: { path: '/test.Echo/Slow', requestStream: false, responseStream: false, ...bytes },
  slowStream: { path: '/test.Echo/SlowStream', requestStream: false, responseStream: true, ...bytes },
  chat: { path: '/test.Echo/Chat', requestStream: true, responseStream: true, ...bytes },
} satisfies grpc.ServiceDefinition;
const EchoClient = grpc.makeGenericClientConstructor(EchoService, 'Echo');
/** Details with characters grpc-message percent-encodes. */
const DETAILS = 'quota of 100% used: réessayez';

type Unary = (request: Buffer, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, value?: Buffer) => void) => grpc.ClientUnaryCall;

function call(client: grpc.Client, method: 'unary' | 'fail' | 'slow', request: string, options: grpc.CallOptions = {}): Promise<{ err: grpc.ServiceError | null; value: string | undefined }> {
  return new Promise((resolve) => {
    (client as unknown as Record<string, Unary>)[method]!(Buffer.from(request), new grpc.Metadata(), options, (err, value) => resolve({ err, value: value?.toString() }));
  });
}

describe('gRPC through the h2 front to an h2c instance', () => {
  let dir: ReturnType<typeof certDir>;
  let front: TestCertificate;
  let server: grpc.Server;
  let proxy: TestProxy;
  let tlsPort: number;
  const clients: grpc.Client[] = [];

  const client = (authority: string): grpc.Client => {
    const c = new EchoClient(`127.0.0.1:${tlsPort}`, grpc.credentials.createSsl(Buffer.from(front.cert)), {
      'grpc.ssl_target_name_override': authority,
      'grpc.default_authority': authority,
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = certDir();
    front = makeCertificate(dir.dir, 'front', ['*.grpc.test']);
    server = new grpc.Server();
    server.addService(EchoService, {
      unary: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(`echo:${c.request.toString()}`)),
      serverStream: (c: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const n = Number(c.request.toString());
        for (let i = 0; i < n; i++) c.write(Buffer.from(`message ${i}`));
        c.end();
      },
      fail: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: DETAILS }),
      slow: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        setTimeout(() => cb(null, Buffer.from('late')), 3000).unref();
      },
      // Answers each message as it comes, before the client has finished sending.
      chat: (c: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        c.on('data', (m: Buffer) => c.write(Buffer.from(`re:${m.toString()}`)));
        c.on('end', () => c.end());
      },
      // One message at once, the next after 3 s.
      slowStream: (c: grpc.ServerWritableStream<Buffer, Buffer>) => {
        c.write(Buffer.from('first'));
        setTimeout(() => c.end(), 3000).unref();
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    proxy = await startProxy({
      tls: { listen: { address: '127.0.0.1', port: 0 }, certificates: [{ cert: front.certFile, key: front.keyFile }] },
      services: [
        { name: 'echo', domain: 'echo.grpc.test', protocol: 'h2c', hosts: [{ port }] },
        { name: 'gone', domain: 'gone.grpc.test', protocol: 'h2c', hosts: [{ port: await deadPort() }] },
        { name: 'half', domain: 'half.grpc.test', protocol: 'h2c', loadBalancer: 'round-robin', hosts: [{ port: await deadPort() }, { port }] },
      ],
    });
    tlsPort = proxy.runtime.tls!.address().port;
  });
  after(async () => {
    for (const c of clients) c.close();
    await proxy.close();
    server.forceShutdown();
    dir.cleanup();
  });

  test('a unary call gets its answer', async () => {
    const { err, value } = await call(client('echo.grpc.test'), 'unary', 'hello');
    assert.equal(err, null);
    assert.equal(value, 'echo:hello');
  });

  test('a server-streaming call gets every message, in order, and ends OK', async () => {
    const stream = (client('echo.grpc.test') as unknown as Record<string, (r: Buffer) => grpc.ClientReadableStream<Buffer>>).serverStream!(Buffer.from('5'));
    const messages: string[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve, reject) => {
      stream.on('data', (m: Buffer) => messages.push(m.toString()));
      stream.on('status', resolve);
      stream.on('error', reject);
    });
    assert.deepEqual(messages, ['message 0', 'message 1', 'message 2', 'message 3', 'message 4']);
    assert.equal(status.code, grpc.status.OK);
  });

  test('a bidirectional call: each message is answered while the client is still sending', async () => {
    const chat = (client('echo.grpc.test') as unknown as Record<string, () => grpc.ClientDuplexStream<Buffer, Buffer>>).chat!();
    const replies: string[] = [];
    const done = new Promise<grpc.StatusObject>((resolve, reject) => {
      chat.on('status', resolve);
      chat.on('error', reject);
    });
    for (const word of ['one', 'two', 'three']) {
      const reply = new Promise<string>((resolve) => chat.once('data', (m: Buffer) => resolve(m.toString())));
      chat.write(Buffer.from(word));
      // The answer to this message arrives before the next one is sent.
      replies.push(await reply);
    }
    chat.end();
    assert.equal((await done).code, grpc.status.OK);
    assert.deepEqual(replies, ['re:one', 're:two', 're:three']);
  });

  test("the instance's error status and message reach the client intact", async () => {
    const { err } = await call(client('echo.grpc.test'), 'fail', 'x');
    assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(err?.details, DETAILS);
  });

  test('a deadline shorter than the handler: DEADLINE_EXCEEDED', async () => {
    const { err } = await call(client('echo.grpc.test'), 'slow', 'x', { deadline: Date.now() + 300 });
    assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED);
  });

  test('the proxy itself ends a call at its grpc-timeout with DEADLINE_EXCEEDED', async () => {
    // A raw h2 client that sends grpc-timeout but never cancels: only the proxy can end the call.
    const session = connect(`https://127.0.0.1:${tlsPort}`, { ca: front.cert, servername: 'echo.grpc.test' });
    try {
      const started = performance.now();
      const head = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/test.Echo/Slow', ':authority': 'echo.grpc.test', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
        s.on('response', resolve);
        s.on('error', reject);
        s.end(Buffer.from([0, 0, 0, 0, 1, 120]));
        s.resume();
      });
      assert.equal(head[':status'], 200);
      assert.equal(head['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED));
      assert.match(String(head['grpc-message']), /deadline of 300 ms \(grpc-timeout\) exceeded/);
      assert.ok(performance.now() - started < 2500, 'well before the handler answers (3 s)');
    } finally {
      session.close();
    }
  });

  test('a stream under way at its grpc-timeout ends with DEADLINE_EXCEEDED in its trailers', async () => {
    const session = connect(`https://127.0.0.1:${tlsPort}`, { ca: front.cert, servername: 'echo.grpc.test' });
    try {
      const seen = await new Promise<{ head: IncomingHttpHeaders; trailers: IncomingHttpHeaders; bytes: number }>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/test.Echo/SlowStream', ':authority': 'echo.grpc.test', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '500m' });
        let head: IncomingHttpHeaders = {};
        let bytes = 0;
        s.on('response', (h) => (head = h));
        s.on('data', (d: Buffer) => (bytes += d.length));
        s.on('trailers', (trailers) => resolve({ head, trailers, bytes }));
        s.on('error', reject);
        s.on('close', () => reject(new Error(`closed without trailers (rst ${s.rstCode})`)));
        s.end(Buffer.from([0, 0, 0, 0, 1, 120]));
      });
      assert.equal(seen.head[':status'], 200);
      assert.equal(seen.head['grpc-status'], undefined, 'the instance had started its answer');
      assert.equal(seen.bytes, 5 + 'first'.length, 'the message sent before the deadline');
      assert.equal(seen.trailers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED));
    } finally {
      session.close();
    }
  });

  test('calls to a service with one instance down all succeed: a refused connection sent nothing, so the call goes to the other', async () => {
    const c = client('half.grpc.test');
    for (let i = 0; i < 4; i++) {
      const { err, value } = await call(c, 'unary', `call${i}`);
      assert.equal(err, null, `call ${i}`);
      assert.equal(value, `echo:call${i}`);
    }
  });

  test('an instance that is down: UNAVAILABLE naming the cause', async () => {
    const { err } = await call(client('gone.grpc.test'), 'unary', 'x');
    assert.equal(err?.code, grpc.status.UNAVAILABLE);
    assert.match(err?.details ?? '', /could be reached.*ECONNREFUSED/);
  });
});
