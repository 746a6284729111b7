/**
 * Runs one HTTP request through an http.Server that does not listen, over an in-memory stream.
 *
 * A worker's admin routes (cache purge, and whatever else is registered on its AdminServer)
 * live on a server that never binds a port: the primary serves the admin port and forwards
 * requests here. Going through real HTTP objects, rather than calling a handler with fake
 * req/res, keeps every route working unchanged. Node documents injecting any Duplex into an
 * http.Server with `server.emit('connection', stream)`, and http.request takes any Duplex from
 * `createConnection`.
 */
import { request, type Server } from 'node:http';
import { Duplex } from 'node:stream';
import type { AdminReply, AdminRequest } from './messages.ts';

export function injectRequest(server: Server, req: AdminRequest, timeoutMs = 10_000): Promise<AdminReply> {
  const [client, serverSide] = duplexPair();
  server.emit('connection', serverSide);
  const headers: Record<string, string | string[] | undefined> = { ...req.headers, connection: 'close' };
  delete headers['content-length'];
  delete headers['transfer-encoding'];
  const body = Buffer.from(req.body, 'base64');
  if (body.length > 0) headers['content-length'] = String(body.length);
  return new Promise<AdminReply>((resolve, reject) => {
    // Not out.setTimeout(): it needs a net.Socket.
    const timer = setTimeout(() => out.destroy(new Error(`admin route did not answer within ${timeoutMs} ms`)), timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      client.destroy();
      serverSide.destroy();
    };
    const out = request({ method: req.method, path: req.url, headers, createConnection: () => client }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 500, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        done();
      });
      res.on('error', (err) => {
        reject(err);
        done();
      });
    });
    out.on('error', (err) => {
      reject(err);
      done();
    });
    out.end(body);
  });
}

/** Two Duplex streams wired to each other (stream.duplexPair exists only from Node 22.6). */
function duplexPair(): [Duplex, Duplex] {
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        peer().push(chunk);
        callback();
      },
      final(callback) {
        peer().push(null);
        callback();
      },
    });
  const a: Duplex = make(() => b);
  const b: Duplex = make(() => a);
  return [a, b];
}
