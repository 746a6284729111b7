/**
 * WebSocket and other `Upgrade` requests (RFC 9110 §7.8): the request head is rewritten like any
 * other (hop-by-hop removed, X-Forwarded-*, Via), sent on a dedicated connection to one instance,
 * and from then on bytes are copied both ways untouched. The instance's answer, 101 or not, reaches
 * the client as it was sent.
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { tlsOptions, type Instance } from './instance.ts';

/** How long a tunnel stays half-closed (one side sent FIN) before both sides are closed. */
const HALF_CLOSE_GRACE_MS = 5000;

export interface TunnelRequest {
  method: string;
  path: string;
  headers: string[];
  head: Buffer;
}

/**
 * Opens the tunnel. `done` is called once, when both sides are closed, with the status of the
 * instance's answer (0 when none came); `failed` (before any byte came back from the instance)
 * lets the caller answer with an error status instead.
 */
export function openTunnel(
  instance: Instance,
  client: Duplex,
  req: TunnelRequest,
  connectTimeoutMs: number,
  failed: (err: NodeJS.ErrnoException | Error) => void,
  done: (status: number) => void,
): Socket {
  // https and h2 instances: TLS verified as their other traffic is, offering HTTP/1.1 by ALPN.
  const tls = instance.protocol === 'https' || instance.protocol === 'h2';
  const upstream = tls
    ? tlsConnect({ host: instance.address, port: instance.port, ...tlsOptions(instance), ALPNProtocols: ['http/1.1'] }).setNoDelay(true)
    : connect({ host: instance.address, port: instance.port, noDelay: true });
  let answered = false;
  let status = 0;
  let closed = 0;
  const closeOne = () => {
    if (++closed === 2) done(status);
  };
  const timer = connectTimeoutMs > 0 ? setTimeout(() => upstream.destroy(Object.assign(new Error('connect timed out'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), connectTimeoutMs) : undefined;
  upstream.once(tls ? 'secureConnect' : 'connect', () => {
    clearTimeout(timer);
    let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
    for (let i = 0; i < req.headers.length; i += 2) head += `${req.headers[i]}: ${req.headers[i + 1]}\r\n`;
    upstream.write(`${head}\r\n`);
    if (req.head.length > 0) upstream.write(req.head);
    client.pipe(upstream);
  });
  upstream.once('data', (chunk: Buffer) => {
    answered = true;
    // `HTTP/1.1 101 ...`: the status goes to passive health like any answer's.
    status = Number(chunk.toString('latin1', 9, 12)) || 0;
  });
  upstream.pipe(client);
  upstream.on('error', (err) => {
    clearTimeout(timer);
    if (!answered) failed(err);
    else client.destroy();
  });
  client.on('error', () => upstream.destroy());
  // Both sockets allow half-open connections (Node's http.Server does), so a FIN from one side is
  // passed on by pipe() but would leave the tunnel open for ever: once one side has ended, the
  // other gets HALF_CLOSE_GRACE_MS to finish, then both are destroyed.
  let ended = 0;
  let graceTimer: NodeJS.Timeout | undefined;
  const onEnd = () => {
    if (++ended === 2) {
      upstream.destroy();
      client.destroy();
      return;
    }
    graceTimer = setTimeout(() => {
      upstream.destroy();
      client.destroy();
    }, HALF_CLOSE_GRACE_MS);
  };
  upstream.once('end', onEnd);
  client.once('end', onEnd);
  upstream.once('close', () => {
    clearTimeout(timer);
    clearTimeout(graceTimer);
    if (answered) client.destroy();
    closeOne();
  });
  client.once('close', () => {
    clearTimeout(graceTimer);
    upstream.destroy();
    closeOne();
  });
  return upstream;
}
