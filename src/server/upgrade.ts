/**
 * The `upgrade` listener: routes an Upgrade request (WebSocket, h2c…) by Host like any other and
 * tunnels it to one instance of the service. Open tunnels are tracked so shutdown can wait for them.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { errorHeaders, finalAttemptError, upstreamError } from '../errors.ts';
import { upstreamRequestHeaders } from '../upstream/headers.ts';
import { openTunnel, rawErrorResponse } from '../upstream/tunnel.ts';
import { clientIp, parseTarget, type PipelineHost } from './pipeline.ts';

export class UpgradeHandler {
  /** Open tunnels, for graceful shutdown. */
  readonly open = new Set<Duplex>();

  constructor(private readonly host: PipelineHost) {}

  readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const snapshot = this.host.snapshot;
    const incomingId = req.headers['x-request-id'];
    const id = typeof incomingId === 'string' && incomingId.length <= 200 ? incomingId : randomUUID();
    socket.on('error', () => socket.destroy());
    const target = parseTarget(req);
    if (typeof target === 'string') return rawErrorResponse(socket, 400, target, id);
    if (this.host.draining) return rawErrorResponse(socket, 503, 'the proxy is shutting down', id);
    const service = snapshot.router.match(target.host);
    if (service === undefined) return rawErrorResponse(socket, 421, `no service is configured for host "${target.host}"`, id);
    const ip = clientIp(req);
    const hashSource = service.hashKey;
    const hashKey = hashSource === undefined ? undefined : hashSource.kind === 'client-ip' ? ip : hashSource.kind === 'path' ? target.path : String(req.headers[hashSource.name] ?? '');
    const instance = service.pick({ hashKey });
    if (instance === undefined) return rawErrorResponse(socket, 503, `no instance of service "${service.name}" is available`, id);
    const headers = upstreamRequestHeaders(req.rawHeaders, {
      clientIp: ip,
      trusted: snapshot.isTrusted(ip),
      host: target.host,
      requestId: id,
      via: snapshot.via,
      upstreamHost: service.upstreamHost ?? target.hostHeader,
      upgrade: true,
    });
    instance.inflight++;
    this.open.add(socket);
    openTunnel(
      instance,
      socket,
      { method: req.method!, path: target.path, headers, head },
      service.timeouts.connect,
      (err) => {
        const mapped = upstreamError(err, instance.id);
        this.host.attemptEnded(instance, service, 0, mapped);
        const final = finalAttemptError(service.name, mapped);
        rawErrorResponse(socket, final.status, final.message, id, errorHeaders(final));
      },
      () => {
        instance.inflight--;
        this.open.delete(socket);
      },
    );
  };
}
