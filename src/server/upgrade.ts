/**
 * The `upgrade` listener: routes an Upgrade request (WebSocket, h2c…) by Host like any other and
 * tunnels it to one instance of the service. The tunnel holds an instance slot for its whole life
 * (upstream/slot.ts): it counts against maxConnections, and closing it wakes a queued request and
 * reports the instance's answer to passive health. Open tunnels are tracked so shutdown can wait
 * for them.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ProxyError, finalAttemptError, upstreamError } from '../errors.ts';
import { balancerKey } from '../upstream/hash-key.ts';
import { upstreamRequestHeaders } from '../upstream/headers.ts';
import { acquireSlot, releaseSlot } from '../upstream/slot.ts';
import type { Snapshot } from '../snapshot.ts';
import type { Service } from '../upstream/service.ts';
import { openTunnel } from '../upstream/tunnel.ts';
import { clientIp } from './accept.ts';
import type { PipelineHost } from './host.ts';
import { requestId } from './request-id.ts';
import { scanRequestHeaders } from './request-fields.ts';
import { upgradeHooks, type UpgradeDecision } from './hooks.ts';
import { sendRawAnswer, sendRawError } from './respond.ts';
import { clientScheme, connectionScheme, parseTarget } from './validate.ts';

export class UpgradeHandler {
  /** Open tunnels, for graceful shutdown. */
  readonly open = new Set<Duplex>();

  constructor(private readonly host: PipelineHost) {}

  readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const snapshot = this.host.snapshot;
    // The same reading of the request as for any other (validate phase), with the same id rule.
    const fields = scanRequestHeaders(req.rawHeaders);
    const id = requestId(fields.requestId);
    const ip = clientIp(req);
    socket.on('error', () => socket.destroy());
    const target = parseTarget(req, fields, clientScheme(connectionScheme(req), fields, snapshot.isTrusted(ip)));
    if (typeof target === 'string') return sendRawError(socket, new ProxyError('bad_request', target), id);
    if (this.host.draining) return sendRawError(socket, new ProxyError('draining', 'the proxy is shutting down'), id);
    const service = snapshot.router.match(target.host);
    if (service === undefined) return sendRawError(socket, new ProxyError('no_route', `no service is configured for host "${target.host}"`), id);
    // Plugins' onRequest hooks guard upgrades as they guard requests (an auth plugin's 401).
    const hooked = upgradeHooks(snapshot, service.name, { method: req.method!, path: target.path, host: target.host, rawHeaders: req.rawHeaders, clientIp: ip, id });
    if (hooked === undefined) return this.tunnel(req, socket, head, snapshot, service, target, req.rawHeaders, id, ip);
    const decided = (d: UpgradeDecision): void => {
      if (d.error !== undefined) return sendRawError(socket, d.error, id);
      if (d.answer !== undefined) return sendRawAnswer(socket, d.answer.status, d.answer.headers, d.answer.body, id);
      // The client may have gone while an async hook ran.
      if (!socket.destroyed) this.tunnel(req, socket, head, snapshot, service, { ...target, path: d.path }, d.headers, id, ip);
    };
    if (hooked instanceof Promise) hooked.then(decided, (err: unknown) => sendRawError(socket, new ProxyError('plugin_error', String(err)), id));
    else decided(hooked);
  };

  /** Picks an instance and opens the tunnel to it, with the request's (possibly rewritten) path and header lines. */
  private tunnel(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    snapshot: Snapshot,
    service: Service,
    target: { host: string; authority: string; path: string },
    rawHeaders: readonly string[],
    id: string,
    ip: string,
  ): void {
    const instance = service.pick({ hashKey: balancerKey(service.hashKey, ip, target.path, req) });
    if (instance === undefined) {
      return sendRawError(socket, new ProxyError('no_healthy_instance', `no instance of service "${service.name}" is available`), id);
    }
    const headers = upstreamRequestHeaders(rawHeaders, {
      clientIp: ip,
      trust: snapshot,
      host: target.host,
      authority: target.authority,
      requestId: id,
      via: snapshot.via,
      upstreamHost: service.upstreamHost,
      proto: connectionScheme(req),
      upgrade: true,
    });
    acquireSlot(instance, service);
    this.open.add(socket);
    let failure: ProxyError | undefined;
    openTunnel(
      instance,
      socket,
      { method: req.method!, path: target.path, headers, head },
      service.timeouts.connect,
      (err) => {
        failure = upstreamError(err, instance.id);
        sendRawError(socket, finalAttemptError(service.name, failure), id);
      },
      (status) => {
        this.open.delete(socket);
        releaseSlot(this.host, instance, service, failure === undefined ? status : 0, failure);
      },
    );
  }
}
