/**
 * The key a consistent-hash service balances a request by (`hashKey`: client-ip, path or
 * header:<name>), the same for requests, their background refreshes and upgrades, so a client's
 * WebSocket lands on the instance its requests go to.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { HashKeySource } from './service.ts';

/** undefined when the service does not hash, or the header is absent. */
export function balancerKey(source: HashKeySource | undefined, clientIp: string, path: string, req: { readonly headers: IncomingHttpHeaders }): string | undefined {
  if (source === undefined) return undefined;
  if (source.kind === 'client-ip') return clientIp;
  if (source.kind === 'path') return path;
  // Node's view of the field (repeated lines joined, the first of singleton fields), read only here.
  const v = req.headers[source.name];
  return Array.isArray(v) ? v.join(',') : v;
}
