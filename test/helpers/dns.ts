/**
 * A real DNS server (UDP, `dns2`) on 127.0.0.1 whose answers a test changes while the proxy runs,
 * and "pods": HTTP servers on several loopback addresses sharing one port, as the pods behind a
 * Kubernetes headless Service do.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIPv6, type AddressInfo } from 'node:net';
import dns2 from 'dns2';

const { Packet } = dns2;
/** Response codes (RFC 1035 §4.1.1; REFUSED = 5). dns2 has them at run time but not in its types. */
const RCODE = { SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

export type DnsFailure = 'servfail' | 'refused';

export interface TestDns {
  port: number;
  /** `127.0.0.1:PORT`, for `proxy.dnsServers`. */
  server: string;
  /** Sets the A and AAAA records of `name` (IPv6 addresses become AAAA); `[]` answers NXDOMAIN. */
  set(name: string, addresses: readonly string[]): void;
  /** Answers every query with this error code until called with undefined. */
  fail(mode: DnsFailure | undefined): void;
  /** Queries received so far. */
  readonly queries: number;
  close(): Promise<void>;
}

export async function startDns(records: Record<string, readonly string[]> = {}): Promise<TestDns> {
  const zone = new Map<string, readonly string[]>();
  const norm = (name: string) => name.toLowerCase().replace(/\.$/, '');
  for (const [name, addresses] of Object.entries(records)) zone.set(norm(name), addresses);
  let failure: DnsFailure | undefined;
  let queries = 0;
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      queries++;
      const response = Packet.createResponseFromRequest(request);
      const question = request.questions[0];
      if (failure !== undefined) {
        response.header.rcode = failure === 'servfail' ? RCODE.SERVFAIL : RCODE.REFUSED;
        void send(response);
        return;
      }
      const addresses = question ? zone.get(norm(question.name)) : undefined;
      if (question === undefined || addresses === undefined || addresses.length === 0) {
        response.header.rcode = RCODE.NXDOMAIN;
        void send(response);
        return;
      }
      const wantV6 = question.type === Packet.TYPE.AAAA;
      for (const address of addresses) {
        if (isIPv6(address) !== wantV6) continue;
        response.answers.push(Packet.createResourceFromQuestion(question, { ttl: 5, address }));
      }
      void send(response);
    },
  });
  const bound = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  const port = bound.udp!.port;
  return {
    port,
    server: `127.0.0.1:${port}`,
    set: (name, addresses) => void zone.set(norm(name), addresses),
    fail: (mode) => void (failure = mode),
    get queries() {
      return queries;
    },
    close: () => server.close(),
  };
}

export interface Pod {
  address: string;
  server: Server;
  /** Requests received, in order. */
  requests: IncomingMessage[];
}

export interface Pods {
  port: number;
  pods: Pod[];
  close(): Promise<void>;
}

/**
 * One HTTP server per address, all on the same port (the port a headless Service's records
 * share). Linux routes all of 127.0.0.0/8 to loopback, so `127.0.0.2`, `127.0.0.3`… need no setup.
 */
export async function startPods(
  addresses: readonly string[],
  handler: (pod: Pod, req: IncomingMessage, res: ServerResponse) => void,
): Promise<Pods> {
  for (let attempt = 0; ; attempt++) {
    const started: Pod[] = [];
    try {
      let port = 0;
      for (const address of addresses) {
        const pod: Pod = { address, server: createServer(), requests: [] };
        pod.server.keepAliveTimeout = 30_000;
        pod.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
          pod.requests.push(req);
          handler(pod, req, res);
        });
        started.push(pod);
        await new Promise<void>((resolve, reject) => {
          pod.server.once('error', reject);
          pod.server.listen(port, address, () => resolve());
        });
        port = (pod.server.address() as AddressInfo).port;
      }
      return { port, pods: started, close: () => closeAll(started) };
    } catch (err) {
      await closeAll(started);
      // The first server's free port may be taken on another address: try another port.
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

async function closeAll(pods: readonly Pod[]): Promise<void> {
  await Promise.all(
    pods.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (!p.server.listening) return resolve();
          p.server.closeAllConnections();
          p.server.close(() => resolve());
        }),
    ),
  );
}
