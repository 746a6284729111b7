/**
 * One end-to-end case run over HTTP/1.1 and over HTTP/2 on the TLS listener: `bothProtocols`
 * declares the test twice, each with a client speaking its protocol (node:https, node:http2).
 */
import { test } from 'node:test';
import { connect, type ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';

export type Protocol = 'HTTP/1.1' | 'HTTP/2';
export const PROTOCOLS: readonly Protocol[] = ['HTTP/1.1', 'HTTP/2'];

export interface BothReply {
  status: number;
  /** Lower-case names; repeated fields joined as node:http joins them. */
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface BothRequest {
  method?: string;
  path?: string;
  host: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** HTTP/1.1: send Content-Length (default); HTTP/2: send the content-length field (default: none). */
  contentLength?: boolean;
}

export interface ProtocolClient {
  protocol: Protocol;
  request(r: BothRequest): Promise<BothReply>;
  close(): void;
}

/** Where the cases connect: the TLS port and the CA (PEM) that signs its certificate. */
export interface TlsTarget {
  port: number;
  ca: string;
}

export function protocolClient(protocol: Protocol, target: TlsTarget): ProtocolClient {
  return protocol === 'HTTP/1.1' ? h1Client(target) : h2Client(target);
}

/** Declares `name (HTTP/1.1)` and `name (HTTP/2)`, each given its own client. */
export function bothProtocols(name: string, target: () => TlsTarget, fn: (client: ProtocolClient) => Promise<void>): void {
  for (const protocol of PROTOCOLS) {
    test(`${name} (${protocol})`, async () => {
      const client = protocolClient(protocol, target());
      try {
        await fn(client);
      } finally {
        client.close();
      }
    });
  }
}

function h1Client(target: TlsTarget): ProtocolClient {
  return {
    protocol: 'HTTP/1.1',
    request: (r) =>
      new Promise((resolve, reject) => {
        const headers: Record<string, string> = { host: r.host, ...r.headers };
        if (r.body !== undefined && r.contentLength === false) headers['transfer-encoding'] = 'chunked';
        const req = httpsRequest(
          { host: '127.0.0.1', port: target.port, method: r.method ?? 'GET', path: r.path ?? '/', servername: r.host.replace(/:\d+$/, ''), headers, ca: target.ca, agent: false },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString() }));
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(r.body);
      }),
    close: () => {},
  };
}

function h2Client(target: TlsTarget): ProtocolClient {
  const sessions = new Map<string, ClientHttp2Session>();
  const session = (servername: string): ClientHttp2Session => {
    let s = sessions.get(servername);
    if (s === undefined || s.closed || s.destroyed) {
      s = connect(`https://127.0.0.1:${target.port}`, { ca: target.ca, servername });
      s.on('error', () => {});
      sessions.set(servername, s);
    }
    return s;
  };
  return {
    protocol: 'HTTP/2',
    request: (r) =>
      new Promise((resolve, reject) => {
        const headers: Record<string, string> = { ':method': r.method ?? 'GET', ':path': r.path ?? '/', ':authority': r.host, ...r.headers };
        if (r.body !== undefined && r.contentLength === true) headers['content-length'] = String(Buffer.byteLength(r.body));
        const stream = session(r.host.replace(/:\d+$/, '')).request(headers, { endStream: r.body === undefined });
        const chunks: Buffer[] = [];
        let status = 0;
        let got: Record<string, string | string[] | undefined> = {};
        stream.on('response', (h) => {
          status = Number(h[':status']);
          got = { ...h } as Record<string, string | string[] | undefined>;
          delete got[':status'];
        });
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => resolve({ status, headers: got, text: Buffer.concat(chunks).toString() }));
        stream.on('error', reject);
        if (r.body !== undefined) stream.end(r.body);
      }),
    close: () => {
      for (const s of sessions.values()) s.close();
    },
  };
}
