/**
 * One health-check request to an instance, spoken as the instance's own traffic is
 * (`services[].protocol`): HTTP/1.1 over TCP or TLS through undici, h2c or h2 through a
 * node:http2 session of its own. Every probe opens its own connection and closes it: a probe also
 * checks that the instance accepts connections (and, over TLS, that its certificate verifies).
 */
import { connect as h2connect, constants as h2 } from 'node:http2';
import { Client, request, type Dispatcher } from 'undici';
import { tlsConnector, tlsOptions, type Instance } from '../upstream/instance.ts';

export interface ProbeRequest {
  path: string;
  host: string;
  timeout: number;
  signal: AbortSignal;
}

const HEADERS = { 'user-agent': 'kubeproxy-health-check', accept: '*/*' };
/** A probe's body is read and dropped, up to this much. */
const BODY_LIMIT = 64 * 1024;

/** The status the instance answered; rejects on a connection, TLS or protocol error. */
export function probeStatus(instance: Instance, dispatcher: Dispatcher, req: ProbeRequest): Promise<number> {
  const protocol = instance.protocol;
  if (protocol === 'h2c' || protocol === 'h2') return probeH2(instance, req);
  return probeH1(instance, protocol === 'https' ? undefined : dispatcher, req);
}

async function probeH1(instance: Instance, shared: Dispatcher | undefined, req: ProbeRequest): Promise<number> {
  // https: a client of its own per probe, with the service's CA, name and verification.
  const own = shared === undefined ? new Client(instance.origin, { connect: tlsConnector(instance, req.timeout) }) : undefined;
  try {
    const res = await request(`${instance.origin}${req.path}`, {
      dispatcher: own ?? shared,
      method: 'GET',
      headers: { host: req.host, ...HEADERS },
      // One connection per probe: each probe also checks that the instance accepts connections.
      reset: true,
      headersTimeout: req.timeout,
      bodyTimeout: req.timeout,
      signal: req.signal,
    });
    await res.body.dump({ limit: BODY_LIMIT, signal: req.signal });
    return res.statusCode;
  } finally {
    if (own !== undefined) void own.destroy().catch(() => {});
  }
}

function probeH2(instance: Instance, req: ProbeRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = h2connect(instance.origin, instance.protocol === 'h2' ? { ...tlsOptions(instance), ALPNProtocols: ['h2'] } : {});
    let settled = false;
    const done = (err: Error | undefined, status = 0) => {
      if (settled) return;
      settled = true;
      req.signal.removeEventListener('abort', onAbort);
      session.destroy();
      if (err) reject(err);
      else resolve(status);
    };
    const onAbort = () => done(req.signal.reason instanceof Error ? req.signal.reason : new Error('aborted'));
    req.signal.addEventListener('abort', onAbort, { once: true });
    session.on('error', (err) => done(err));
    const stream = session.request({ [h2.HTTP2_HEADER_PATH]: req.path, [h2.HTTP2_HEADER_AUTHORITY]: req.host, ...HEADERS });
    let status = 0;
    let read = 0;
    stream.on('response', (headers) => {
      status = Number(headers[h2.HTTP2_HEADER_STATUS]);
    });
    stream.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > BODY_LIMIT) done(undefined, status);
    });
    stream.on('end', () => done(undefined, status));
    stream.on('error', (err) => done(err));
  });
}
