/** A small HTTP client for tests: raw headers kept, body collected, no connection reuse surprises. */
import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string | string[]> | string[];
  body?: string | Buffer;
  agent?: Agent | false;
  timeoutMs?: number;
}

export function request(port: number, opts: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> | string[] = Array.isArray(opts.headers)
      ? [...(opts.host ? ['host', opts.host] : []), ...opts.headers]
      : { ...(opts.host ? { host: opts.host } : {}), ...opts.headers };
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers,
        agent: opts.agent ?? false,
        setHost: opts.host === undefined && !Array.isArray(opts.headers) && !(opts.headers && 'host' in opts.headers),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString() });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 20_000, () => req.destroy(new Error('test request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Sends raw bytes on a new TCP connection and returns everything the server sent until it closed (or the timeout). */
export async function rawRequest(port: number, data: string | Buffer, timeoutMs = 5000): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.write(data);
  });
}

/** Splits a raw HTTP/1.1 response into head and body, decoding a chunked body. */
export function parseRawResponse(raw: string): { head: string; body: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split);
  let body = raw.slice(split + 4);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    let out = '';
    let rest = body;
    for (;;) {
      const lineEnd = rest.indexOf('\r\n');
      const size = parseInt(rest.slice(0, lineEnd), 16);
      if (!size) break;
      out += rest.slice(lineEnd + 2, lineEnd + 2 + size);
      rest = rest.slice(lineEnd + 2 + size + 2);
    }
    body = out;
  }
  return { head, body };
}
