/**
 * A stand-in for the Kubernetes API server's EndpointSlice endpoints (no cluster runs here). It
 * speaks the real list/watch wire format of discovery.k8s.io/v1 (API concepts, "Efficient
 * detection of changes"):
 * - GET .../namespaces/NS/endpointslices?labelSelector=kubernetes.io/service-name=S answers an
 *   EndpointSliceList with metadata.resourceVersion;
 * - the same with watch=1&resourceVersion=RV streams one JSON watch event per line (ADDED,
 *   MODIFIED, DELETED, BOOKMARK when allowWatchBookmarks=true, ERROR), starting after RV;
 * - a resourceVersion older than the compaction point answers 410 Gone with a Status object
 *   (or, for a running watch, an ERROR event carrying that Status);
 * - requests without `Authorization: Bearer <token>` get 401 when a token is set.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}

export interface KubeApi {
  url: string;
  /** Requests seen, as `METHOD path?query`. */
  requests: string[];
  /** Creates or replaces an EndpointSlice (ADDED or MODIFIED event). */
  put(slice: Obj): void;
  delete(namespace: string, name: string): void;
  /** Sends a BOOKMARK with the current resourceVersion to every watch that asked for them. */
  bookmark(): void;
  /** Forgets history up to now: watches from an older resourceVersion get 410 Gone. */
  compact(options?: { expireWatches?: boolean }): void;
  /** Ends every open watch stream (a lost connection or an API server restart). */
  dropWatches(): void;
  /** While true every request is refused with 503 (the API down). */
  down: boolean;
  openWatches(): number;
  close(): Promise<void>;
}

/** An EndpointSlice of `service` in `namespace`, endpoints given as [ip, conditions]. */
export function endpointSlice(
  namespace: string,
  name: string,
  service: string,
  endpoints: Array<[string, { ready?: boolean; serving?: boolean; terminating?: boolean }?]>,
  ports: Array<{ name: string; port: number }> = [{ name: 'http', port: 8080 }],
): Obj {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    endpoints: endpoints.map(([ip, conditions], i) => ({
      addresses: [ip],
      conditions: { ready: true, serving: true, terminating: false, ...conditions },
      targetRef: { kind: 'Pod', name: `${service}-${i}`, namespace },
    })),
    ports: ports.map((p) => ({ ...p, protocol: 'TCP' })),
  };
}

export async function startKubeApi(opts: { token?: string } = {}): Promise<KubeApi> {
  let rv = 1000;
  let compactedAt = 0;
  const objects = new Map<string, Obj>(); // namespace/name
  const history: Event[] = [];
  const watches = new Set<{ res: ServerResponse; namespace: string; service: string; bookmarks: boolean }>();
  const requests: string[] = [];

  const matches = (o: Obj, namespace: string, service: string) =>
    o.metadata.namespace === namespace && o.metadata.labels?.['kubernetes.io/service-name'] === service;

  function status(res: ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
  }

  function send(w: { res: ServerResponse }, type: string, object: Obj): void {
    if (w.res.writableEnded || w.res.destroyed) return;
    w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  function record(type: Event['type'], object: Obj): void {
    rv++;
    const stored = { ...object, metadata: { ...object.metadata, resourceVersion: String(rv) } };
    history.push({ rv, type, object: stored });
    for (const w of watches) if (matches(stored, w.namespace, w.service)) send(w, type, stored);
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${req.url}`);
    if (api.down) return status(res, 503, 'ServiceUnavailable', 'the API server is down');
    if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) {
      return status(res, 401, 'Unauthorized', 'Unauthorized');
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/.exec(url.pathname);
    const selector = /^kubernetes\.io\/service-name=(.+)$/.exec(url.searchParams.get('labelSelector') ?? '');
    if (!m || !selector) return status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    const namespace = decodeURIComponent(m[1]!);
    const service = selector[1]!;
    if (url.searchParams.get('watch') !== '1' && url.searchParams.get('watch') !== 'true') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        kind: 'EndpointSliceList',
        apiVersion: 'discovery.k8s.io/v1',
        metadata: { resourceVersion: String(rv) },
        items: [...objects.values()].filter((o) => matches(o, namespace, service)),
      }));
      return;
    }
    const from = Number(url.searchParams.get('resourceVersion') ?? rv);
    if (from < compactedAt) return status(res, 410, 'Expired', `too old resource version: ${from} (${compactedAt})`);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const w = { res, namespace, service, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' };
    watches.add(w);
    res.on('close', () => watches.delete(w));
    for (const e of history) if (e.rv > from && matches(e.object, namespace, service)) send(w, e.type, e.object);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const api: KubeApi = {
    url: `http://127.0.0.1:${port}`,
    requests,
    down: false,
    put(slice) {
      const key = `${slice.metadata.namespace}/${slice.metadata.name}`;
      const type = objects.has(key) ? 'MODIFIED' : 'ADDED';
      objects.set(key, slice);
      record(type, slice);
    },
    delete(namespace, name) {
      const key = `${namespace}/${name}`;
      const o = objects.get(key);
      if (!o) return;
      objects.delete(key);
      record('DELETED', o);
    },
    bookmark() {
      for (const w of watches) {
        if (w.bookmarks) send(w, 'BOOKMARK', { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(rv) } });
      }
    },
    compact({ expireWatches = false } = {}) {
      compactedAt = rv + 1;
      history.length = 0;
      if (expireWatches) {
        for (const w of watches) {
          send(w, 'ERROR', { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 });
          w.res.end();
          watches.delete(w);
        }
      }
    },
    dropWatches() {
      for (const w of watches) w.res.destroy();
    },
    openWatches: () => watches.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const w of watches) w.res.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return api;
}
