/**
 * Admin endpoints that remove cache entries (on the admin listener only, never through the proxy):
 *
 *   POST /cache/purge?url=<absolute URL>   every stored variant of that URL; the service is the
 *                                          one the URL's host routes to, as for a request
 *   POST /cache/purge?service=<name>       every entry of a service
 *
 * The answer is JSON: `{"service": "web", "url": "...", "removed": 2}` (removed = stored
 * variants deleted, 0 when nothing was stored). Bad input is a 400 naming the problem; an
 * unknown service or a host no service answers is a 404. The `url` value must be
 * percent-encoded when it has a query with `&` (`curl --get --data-urlencode url=... -X POST`),
 * otherwise its query would be cut at the first `&`: a parameter other than url/service is
 * refused with a message saying so.
 *
 * With a shared tier (proxy.cache.shared) a purge removes the entries from Redis and tells every
 * other process to drop its memory copies (invalidation-bus.ts). When Redis does not answer, the
 * purge answers 503 saying so: this process's memory is purged, and the Redis delete is replayed
 * once Redis answers again (tiered-store.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { json, type AdminServer } from '../admin/server.ts';
import { normaliseHost } from '../routing/host.ts';
import type { Snapshot } from '../snapshot.ts';
import type { CacheLayer } from './layer.ts';
import { splitAbsoluteTarget } from './key.ts';

export interface PurgeHost {
  readonly snapshot: Snapshot;
  readonly cache: CacheLayer;
}

export function registerPurgeRoutes(admin: AdminServer, host: PurgeHost): void {
  admin.route('POST /cache/purge', (req, res, url) => purge(host, req, res, url));
}

async function purge(host: PurgeHost, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  req.resume();
  const params = url.searchParams;
  for (const name of params.keys()) {
    if (name !== 'url' && name !== 'service') {
      return fail(res, 400, `unknown parameter "${name}": give url=<absolute URL> or service=<name> (percent-encode a url whose query has "&")`);
    }
  }
  const target = params.getAll('url');
  const service = params.getAll('service');
  if (target.length + service.length !== 1) {
    return fail(res, 400, 'give exactly one of url=<absolute URL> or service=<name>');
  }
  const snapshot = host.snapshot;
  if (service.length === 1) {
    const name = service[0]!;
    if (name === '') return fail(res, 400, 'service is empty: give service=<name>');
    if (!snapshot.services.has(name)) return fail(res, 404, `no service named "${name}" is configured`);
    const removed = await shared(res, host.cache.purgeService(name));
    if (removed !== undefined) json(res, 200, { service: name, removed });
    return;
  }
  const raw = target[0]!;
  const parts = splitAbsoluteTarget(raw);
  if (parts === undefined) return fail(res, 400, `url must be an absolute http:// or https:// URL, got ${JSON.stringify(raw.slice(0, 200))}`);
  const hostName = normaliseHost(parts.authority);
  if (hostName === undefined) return fail(res, 400, `url has an invalid host ${JSON.stringify(parts.authority.slice(0, 200))}`);
  const routed = snapshot.router.match(hostName);
  if (routed === undefined) return fail(res, 404, `no service is configured for host "${hostName}"`);
  const removed = await shared(res, host.cache.purgeUrl(routed.name, raw));
  if (removed !== undefined) json(res, 200, { service: routed.name, url: raw, removed });
}

/** The purge's count, or undefined once a 503 said that the shared tier did not answer. */
async function shared(res: ServerResponse, purge: Promise<number>): Promise<number | undefined> {
  try {
    return await purge;
  } catch (err) {
    fail(res, 503, `the shared cache did not answer (${(err as Error).message}): this process's memory was purged; the shared delete is retried when it answers`);
    return undefined;
  }
}

function fail(res: ServerResponse, status: number, message: string): void {
  json(res, status, { error: message });
}
