/**
 * The TLS listener (`proxy.tls`): the client Listener over TLS, running the same Pipeline. SNI
 * picks the certificate whose SAN names match (config/certificates.ts); the PEM files are watched
 * and re-read when they change (a Kubernetes Secret mount swaps its `..data` symlink, cert-manager
 * renews), for new handshakes only: open connections keep theirs. A pair that fails to load is
 * logged and the one before it keeps serving. Failed handshakes are counted by a bounded reason.
 */
import type { Http2SecureServer } from 'node:http2';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { ProxyConfig, TlsConfig } from '../config/schema.ts';
import { pickCertificate, readCertificatePair, type CertificatePair } from '../config/certificates.ts';
import { watchConfig, type ConfigWatcher } from '../config/watch.ts';
import { log } from '../log.ts';
import { currentRuntime } from '../runtime/select.ts';
import { H2Front, type SessionCutReason } from './h2-front.ts';
import { Listener, type RequestHandlers } from './listener.ts';
import { bunTlsServer, serveBoth } from './tls-bun.ts';
import type { UpgradeHandler } from './upgrade.ts';

/** Label values of kubeproxy_tls_handshake_errors_total. */
export const TLS_FAILURE_REASONS = ['protocol_version', 'no_shared_cipher', 'certificate', 'not_tls', 'alpn', 'timeout', 'reset', 'other'] as const;
export type TlsFailureReason = (typeof TLS_FAILURE_REASONS)[number];

/** What the TLS listener reports (the metrics). */
export interface TlsEvents {
  handshakeError(reason: TlsFailureReason): void;
  sessionCut(reason: SessionCutReason): void;
}

/**
 * How one port serves HTTP/1.1 and h2. On Node an https.Server, whose 'secureConnection' listener
 * hands the sockets that chose h2 to the h2 front's own server; on Bun one http2 server with
 * `allowHTTP1` for both (tls-bun.ts says why).
 */
const ONE_SERVER_FOR_BOTH = currentRuntime === 'bun';

export class TlsListener {
  readonly listener: Listener;
  /** The sessions of connections that chose h2 (ALPN); HTTP/1.1 ones stay with `listener`. */
  readonly h2: H2Front;
  /** In config order; [0] is the default (no SNI, or no SAN matches). */
  private pairs: CertificatePair[];
  private watchers: ConfigWatcher[] = [];
  private config: TlsConfig;

  constructor(
    pipeline: RequestHandlers,
    upgrade: UpgradeHandler,
    client: ProxyConfig['client'],
    config: TlsConfig,
    events: TlsEvents,
  ) {
    this.config = config;
    this.pairs = config.certificates.map((c) => readCertificatePair(c.cert, c.key, config.minVersion));
    const first = this.pairs[0]!;
    const secure = {
      cert: first.cert,
      key: first.key,
      minVersion: config.minVersion,
      // RFC 7301: h2 preferred; clients without ALPN get HTTP/1.1.
      ALPNProtocols: ['h2', 'http/1.1'],
      SNICallback: (servername: string, done: (err: Error | null, ctx?: SecureContext) => void) => done(null, pickCertificate(this.pairs, servername).context),
      // A client that opens a connection and never finishes the handshake holds it no longer than one sending no headers.
      handshakeTimeout: client.headerTimeout,
    };
    this.listener = ONE_SERVER_FOR_BOTH
      ? new Listener(pipeline, upgrade, client, secure, (options) => bunTlsServer(options, client))
      : new Listener(pipeline, upgrade, client, secure);
    const server = this.listener.server;
    // https.Server answers a failed handshake as a malformed HTTP request ('clientError'): it is counted here instead.
    server.removeAllListeners('tlsClientError');
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      events.handshakeError(failureReason(err));
      socket.destroy();
    });
    const onCut = (reason: SessionCutReason): void => {
      log.warn({ reason }, 'HTTP/2 session cut off with GOAWAY');
      events.sessionCut(reason);
    };
    if (ONE_SERVER_FOR_BOTH) {
      this.h2 = new H2Front(pipeline, client, onCut, server as unknown as Http2SecureServer);
      serveBoth(server, this.h2);
    } else {
      // The same port serves both: a connection that chose h2 goes to the h2 front, the others to https.Server's own listener.
      this.h2 = new H2Front(pipeline, client, onCut);
      const h1 = server.listeners('secureConnection')[0] as (socket: TLSSocket) => void;
      server.removeAllListeners('secureConnection');
      server.on('secureConnection', (socket: TLSSocket) => (socket.alpnProtocol === 'h2' ? this.h2.accept(socket) : h1.call(server, socket)));
    }
    this.watch();
  }

  listen(address: string, port: number): Promise<void> {
    return this.listener.listen(address, port);
  }

  address(): { address: string; port: number } {
    return this.listener.address();
  }

  get listening(): boolean {
    return this.listener.server.listening;
  }

  /** A reload: the client limits, and the certificates as the new config lists them (already checked by config/load.ts). */
  configure(client: ProxyConfig['client'], config: TlsConfig): void {
    this.listener.applyClientConfig(client);
    this.h2.applyClientConfig(client);
    const same = JSON.stringify(config.certificates) === JSON.stringify(this.config.certificates) && config.minVersion === this.config.minVersion;
    this.config = config;
    if (same) return;
    try {
      this.use(config.certificates.map((c) => readCertificatePair(c.cert, c.key, config.minVersion)));
    } catch (err) {
      log.error({ err: (err as Error).message }, 'TLS certificates of the new config could not be loaded; the running ones keep serving');
    }
    this.unwatch();
    this.watch();
  }

  drain(timeoutMs: number, busy: () => boolean): Promise<void> {
    this.unwatch();
    this.h2.goaway();
    return this.listener.drain(timeoutMs, busy);
  }

  private use(pairs: CertificatePair[]): void {
    const defaultChanged = pairs[0] !== this.pairs[0];
    this.pairs = pairs;
    // Connections without SNI use the server's own context: it follows the default pair.
    if (defaultChanged) {
      const first = pairs[0]!;
      (this.listener.server as unknown as { setSecureContext(o: object): void }).setSecureContext({ cert: first.cert, key: first.key, minVersion: this.config.minVersion });
    }
  }

  /** Both files of every pair: a change of either re-reads the pair. */
  private watch(): void {
    this.config.certificates.forEach((c, i) => {
      const reread = (): void => this.reread(i);
      const onError = (err: Error): void => log.warn({ err: err.message, file: c.cert }, 'cannot watch a TLS certificate file; a reload re-reads it');
      this.watchers.push(watchConfig(c.cert, reread, { onError }), watchConfig(c.key, reread, { onError }));
    });
  }

  private unwatch(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  private reread(index: number): void {
    const c = this.config.certificates[index];
    if (c === undefined) return;
    try {
      const pair = readCertificatePair(c.cert, c.key, this.config.minVersion);
      const pairs = [...this.pairs];
      pairs[index] = pair;
      this.use(pairs);
      log.info({ cert: c.cert, names: pair.names }, 'TLS certificate reloaded');
    } catch (err) {
      // Mid-renewal (the certificate written, not yet its key) or broken: the pair before keeps serving.
      log.error({ err: (err as Error).message }, 'TLS certificate could not be reloaded; the previous one keeps serving');
    }
  }
}

/** The bounded reason of a failed handshake, from OpenSSL's error code. */
export function failureReason(err: NodeJS.ErrnoException): TlsFailureReason {
  const code = err.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (code === 'ERR_SSL_HTTP_REQUEST' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_HTTPS_PROXY_REQUEST') return 'not_tls';
  if (/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|NO_PROTOCOLS_AVAILABLE|VERSION_TOO_LOW/.test(code)) return 'protocol_version';
  if (code === 'ERR_SSL_NO_SHARED_CIPHER') return 'no_shared_cipher';
  if (/APPLICATION_PROTOCOL/.test(code)) return 'alpn';
  if (/CERTIFICATE|UNKNOWN_CA|DECRYPT_ERROR/.test(code)) return 'certificate';
  return 'other';
}
