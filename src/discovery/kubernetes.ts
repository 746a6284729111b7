/**
 * EndpointSlice discovery: each service with `discovery: { kubernetes: { service, namespace?, port } }`
 * follows the `discovery.k8s.io/v1` EndpointSlices labelled `kubernetes.io/service-name=<service>`
 * through the Kubernetes API, as ingress-nginx, Envoy Gateway and Traefik do: a list, then a watch
 * from the list's resourceVersion (API concepts, "Efficient detection of changes").
 *
 * - Endpoints with `conditions.ready` (unset means ready) serve. `serving && terminating` ones are
 *   left out of the set: the registry then drains them (no new requests, in-flight ones finish
 *   within shutdown.drainTimeout); /status lists them as terminating.
 * - A watch event applies at once (one change per event burst, on the next tick).
 * - Watch bookmarks (allowWatchBookmarks) only move the resourceVersion on; a watch that ends
 *   (the server's timeout) resumes from it. 410 Gone (the version is too old) lists again.
 * - A lost API connection or an error answer keeps the last known set and retries with
 *   exponential back-off (with jitter), as client-go's reflector does.
 *
 * In a pod, the API is https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT with the service
 * account's token and CA (the token file is re-read for each request: bound tokens rotate).
 * KUBEPROXY_KUBERNETES_API and KUBEPROXY_SERVICEACCOUNT_DIR override both (tests, kubectl proxy).
 *
 * Like dns.ts this module only watches and remembers; the runtime turns hosts() into instances.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import type { KubernetesDiscoveryConfig, ProxyConfig } from '../config/schema.ts';
import { log } from '../log.ts';
import type { HostSpec } from '../upstream/registry.ts';

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Watches end server-side after this long and resume from the last resourceVersion. */
const WATCH_TIMEOUT_SECONDS = 300;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;

/** Where the API server is and how to authenticate to it. */
export interface ApiAccess {
  /** `https://10.96.0.1:443` in a pod. */
  server: string;
  /** Bearer token, read at each request (undefined: none, e.g. through `kubectl proxy`). */
  token: () => string | undefined;
  /** CA bundle for the server's certificate. */
  ca?: string;
  /** The pod's namespace: the default for `discovery.kubernetes.namespace`. */
  namespace: string;
}

/** In-cluster access from the environment; undefined outside a cluster with no override. */
export function inClusterAccess(env: NodeJS.ProcessEnv = process.env): ApiAccess | undefined {
  const dir = env.KUBEPROXY_SERVICEACCOUNT_DIR ?? SERVICE_ACCOUNT_DIR;
  const file = (name: string): string | undefined => {
    const path = join(dir, name);
    return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
  };
  let server = env.KUBEPROXY_KUBERNETES_API;
  if (server === undefined && env.KUBERNETES_SERVICE_HOST) {
    const host = env.KUBERNETES_SERVICE_HOST.includes(':') ? `[${env.KUBERNETES_SERVICE_HOST}]` : env.KUBERNETES_SERVICE_HOST;
    server = `https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`;
  }
  if (server === undefined) return undefined;
  return { server: server.replace(/\/$/, ''), token: () => file('token'), ca: file('ca.crt'), namespace: file('namespace') ?? 'default' };
}

/** The parts of a discovery.k8s.io/v1 EndpointSlice read here. */
export interface EndpointSlice {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints?: Array<{
    addresses: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
    targetRef?: { kind?: string; name?: string };
  }>;
  ports?: Array<{ name?: string | null; port?: number | null; protocol?: string }> | null;
}

/** What `/status` shows for a service with EndpointSlice discovery. */
export interface KubernetesDiscoveryStatus {
  kubernetes: { service: string; namespace: string; port: number | string };
  state: 'pending' | 'ok' | 'failing';
  /** Ready endpoints in use, `address:port`, sorted. */
  addresses: string[];
  /** serving && terminating endpoints: draining, no new requests. */
  terminating: string[];
  resourceVersion: string | null;
  lastErrorAt: string | null;
  lastError: string | null;
  consecutiveFailures: number;
}

interface Endpoint {
  address: string;
  port: number;
}

/** Ready and terminating endpoints of a set of slices, on the port named or numbered `port`. */
export function endpointsOf(slices: Iterable<EndpointSlice>, port: number | string): { ready: Endpoint[]; terminating: Endpoint[] } {
  const ready = new Map<string, Endpoint>();
  const terminating = new Map<string, Endpoint>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    // A name is the Service port's name (unnamed single port: ""); a number is the pod port.
    const match = (slice.ports ?? []).find((p) => (typeof port === 'number' ? p.port === port : (p.name ?? '') === port));
    const number = match?.port;
    if (typeof number !== 'number') continue;
    for (const e of slice.endpoints ?? []) {
      const c = e.conditions ?? {};
      // KEP-1672: ready unset means ready; terminating endpoints are never ready.
      const isReady = c.ready !== false && c.terminating !== true;
      const isDraining = !isReady && c.serving === true && c.terminating === true;
      for (const address of e.addresses) {
        const key = `${address}:${number}`;
        if (isReady) ready.set(key, { address, port: number });
        else if (isDraining) terminating.set(key, { address, port: number });
      }
    }
  }
  for (const key of ready.keys()) terminating.delete(key);
  const sorted = (m: Map<string, Endpoint>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, e]) => e);
  return { ready: sorted(ready), terminating: sorted(terminating) };
}

class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

interface Watch {
  service: string;
  config: KubernetesDiscoveryConfig;
  namespace: string;
  slices: Map<string, EndpointSlice>;
  resourceVersion: string | undefined;
  ready: Endpoint[];
  terminating: Endpoint[];
  state: KubernetesDiscoveryStatus['state'];
  lastErrorAt: number | undefined;
  lastError: string | undefined;
  consecutiveFailures: number;
  abort: AbortController;
  listed: Promise<void>;
  applyQueued: boolean;
}

export interface KubernetesDiscoveryOptions {
  /** Called when a service's endpoint set changed; read the new set with `hosts(service)`. */
  onChange: (service: string) => void;
  /** Where the API is; default: in-cluster (see inClusterAccess). */
  access?: ApiAccess;
}

export class KubernetesDiscovery {
  private readonly watches = new Map<string, Watch>();
  private access: ApiAccess | undefined;
  private dispatcher: Dispatcher | undefined;
  private started = false;
  private closed = false;

  constructor(private readonly options: KubernetesDiscoveryOptions) {
    this.access = options.access;
  }

  /** Applies a config: starts watching new services, stops removed or changed ones (kept ones keep their set). */
  configure(proxy: Pick<ProxyConfig, 'services'>): void {
    const wanted = new Map<string, KubernetesDiscoveryConfig>();
    for (const s of proxy.services) if (s.discovery && 'kubernetes' in s.discovery) wanted.set(s.name, s.discovery);
    for (const [name, w] of [...this.watches]) {
      const next = wanted.get(name);
      const same = next && next.kubernetes.service === w.config.kubernetes.service && (next.kubernetes.namespace ?? '') === (w.config.kubernetes.namespace ?? '');
      if (same) {
        // A new port or weight applies to the slices already known.
        const portChanged = next.kubernetes.port !== w.config.kubernetes.port;
        w.config = next;
        if (portChanged) this.recompute(w);
      } else {
        this.stopWatch(name);
      }
    }
    for (const [name, config] of wanted) {
      if (this.watches.has(name)) continue;
      if (wanted.size > 0 && this.access === undefined) this.access = inClusterAccess();
      const namespace = config.kubernetes.namespace ?? this.access?.namespace ?? 'default';
      const w: Watch = {
        service: name,
        config,
        namespace,
        slices: new Map(),
        resourceVersion: undefined,
        ready: [],
        terminating: [],
        state: 'pending',
        lastErrorAt: undefined,
        lastError: undefined,
        consecutiveFailures: 0,
        abort: new AbortController(),
        listed: Promise.resolve(),
        applyQueued: false,
      };
      this.watches.set(name, w);
      if (this.started) this.run(w);
    }
  }

  /** Lists every service once (so the proxy starts with its instances), then keeps watching. */
  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    for (const w of this.watches.values()) this.run(w);
    await Promise.all([...this.watches.values()].map((w) => w.listed));
  }

  hosts(service: string): HostSpec[] {
    const w = this.watches.get(service);
    if (w === undefined) return [];
    return w.ready.map((e) => ({ address: e.address, port: e.port, weight: w.config.weight }));
  }

  status(service: string): KubernetesDiscoveryStatus | undefined {
    const w = this.watches.get(service);
    if (w === undefined) return undefined;
    return {
      kubernetes: { service: w.config.kubernetes.service, namespace: w.namespace, port: w.config.kubernetes.port },
      state: w.state,
      addresses: w.ready.map((e) => `${e.address}:${e.port}`),
      terminating: w.terminating.map((e) => `${e.address}:${e.port}`),
      resourceVersion: w.resourceVersion ?? null,
      lastErrorAt: w.lastErrorAt === undefined ? null : new Date(w.lastErrorAt).toISOString(),
      lastError: w.lastError ?? null,
      consecutiveFailures: w.consecutiveFailures,
    };
  }

  close(): void {
    this.closed = true;
    for (const name of [...this.watches.keys()]) this.stopWatch(name);
    void this.dispatcher?.close().catch(() => {});
  }

  private stopWatch(name: string): void {
    this.watches.get(name)?.abort.abort();
    this.watches.delete(name);
  }

  /** Starts the list/watch loop; `w.listed` settles after the first list (or its first failure). */
  private run(w: Watch): void {
    let settle!: () => void;
    w.listed = new Promise((resolve) => (settle = resolve));
    void this.loop(w, settle);
  }

  private async loop(w: Watch, listed: () => void): Promise<void> {
    const signal = w.abort.signal;
    while (!signal.aborted) {
      try {
        if (w.resourceVersion === undefined) await this.list(w);
        listed();
        await this.watch(w);
      } catch (err) {
        listed();
        if (signal.aborted) return;
        if (err instanceof ApiError && err.status === 410) {
          // The version is too old to watch from (compacted): list again, at once.
          w.resourceVersion = undefined;
          continue;
        }
        w.state = 'failing';
        w.consecutiveFailures++;
        w.lastErrorAt = Date.now();
        w.lastError = (err as Error).message;
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(w.consecutiveFailures - 1, 16));
        const wait = delay / 2 + Math.random() * (delay / 2);
        log.warn({ service: w.service, err: w.lastError, retryInMs: Math.round(wait) }, 'EndpointSlice watch failed; keeping the last known endpoints');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
      }
    }
  }

  private path(w: Watch, query: Record<string, string>): string {
    const params = new URLSearchParams({ labelSelector: `kubernetes.io/service-name=${w.config.kubernetes.service}`, ...query });
    return `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(w.namespace)}/endpointslices?${params.toString()}`;
  }

  private async call(w: Watch, query: Record<string, string>): Promise<Dispatcher.ResponseData> {
    const access = this.access;
    if (access === undefined) {
      throw new Error('no Kubernetes API: KUBERNETES_SERVICE_HOST is unset (not in a pod) and KUBEPROXY_KUBERNETES_API is not given');
    }
    this.dispatcher ??= new Agent({ connect: access.ca ? { ca: access.ca } : {}, bodyTimeout: 0, headersTimeout: 10_000 });
    const token = access.token();
    const res = await request(`${access.server}${this.path(w, query)}`, {
      dispatcher: this.dispatcher,
      signal: w.abort.signal,
      headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => '');
      let message = text.slice(0, 200);
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        // not a Status object
      }
      throw new ApiError(`API answered ${res.statusCode}: ${message}`, res.statusCode);
    }
    return res;
  }

  private async list(w: Watch): Promise<void> {
    const res = await this.call(w, {});
    const list = (await res.body.json()) as { metadata?: { resourceVersion?: string }; items?: EndpointSlice[] };
    w.slices = new Map((list.items ?? []).map((s) => [s.metadata.name, s]));
    w.resourceVersion = list.metadata?.resourceVersion;
    this.succeeded(w);
    this.recompute(w);
  }

  /** One watch request, until the server ends it; events apply as they arrive. */
  private async watch(w: Watch): Promise<void> {
    const res = await this.call(w, {
      watch: '1',
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(WATCH_TIMEOUT_SECONDS),
      ...(w.resourceVersion ? { resourceVersion: w.resourceVersion } : {}),
    });
    let buffered = '';
    for await (const chunk of res.body) {
      buffered += (chunk as Buffer).toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) this.event(w, JSON.parse(line) as { type: string; object: Record<string, unknown> });
      }
    }
    if (w.state === 'failing') this.succeeded(w);
  }

  private event(w: Watch, e: { type: string; object: Record<string, unknown> }): void {
    if (e.type === 'ERROR') {
      const status = e.object as { code?: number; message?: string };
      throw new ApiError(`watch error ${status.code ?? ''}: ${status.message ?? ''}`, status.code ?? 500);
    }
    const slice = e.object as unknown as EndpointSlice;
    if (slice.metadata?.resourceVersion) w.resourceVersion = slice.metadata.resourceVersion;
    if (w.state === 'failing') this.succeeded(w);
    if (e.type === 'BOOKMARK') return;
    if (e.type === 'DELETED') w.slices.delete(slice.metadata.name);
    else if (e.type === 'ADDED' || e.type === 'MODIFIED') w.slices.set(slice.metadata.name, slice);
    else return;
    // A burst of events (a rollout touches several slices) becomes one change.
    if (!w.applyQueued) {
      w.applyQueued = true;
      setImmediate(() => {
        w.applyQueued = false;
        if (!w.abort.signal.aborted) this.recompute(w);
      });
    }
  }

  private succeeded(w: Watch): void {
    w.state = 'ok';
    w.consecutiveFailures = 0;
  }

  private recompute(w: Watch): void {
    const { ready, terminating } = endpointsOf(w.slices.values(), w.config.kubernetes.port);
    const key = (list: Endpoint[]) => list.map((e) => `${e.address}:${e.port}`).join(',');
    const changed = key(ready) !== key(w.ready);
    w.ready = ready;
    w.terminating = terminating;
    if (changed) this.options.onChange(w.service);
  }
}
