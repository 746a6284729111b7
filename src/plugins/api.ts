/**
 * The plugin API: what a plugin module exports and what its hooks see. Only types live here, so a
 * plugin written in TypeScript can `import type { PluginFactory } from 'kubeproxy'` without
 * loading any of the proxy.
 *
 * A plugin module's default export is a factory: it takes the `options` mapping from the config and
 * returns the plugin (its name and hooks). Hooks run at fixed points of every request (the phases of
 * docs/architecture.md), in config order: `proxy.plugins` first, then the service's `plugins`.
 */

/** Headers as the proxy holds them: names are case-insensitive; `get` joins repeated fields with ", ". */
export interface HeaderMap {
  get(name: string): string | null;
  /** Every value of a repeated field, in order (Set-Cookie must not be joined). */
  getAll(name: string): string[];
  has(name: string): boolean;
  /** Replaces every field of that name with one. */
  set(name: string, value: string): void;
  /** Adds a field line, keeping the ones already there. */
  append(name: string, value: string): void;
  delete(name: string): void;
  /** [name, value] per field line, names as received (not lower-cased). */
  entries(): IterableIterator<[string, string]>;
  [Symbol.iterator](): IterableIterator<[string, string]>;
}

/** The client's request. */
export interface PluginRequest {
  readonly method: string;
  /**
   * Path and query as sent upstream. Writable in `onRequest` (a rewrite): the cache key and
   * the upstream request use the new value; in later hooks it is read-only.
   */
  path: string;
  /** The Host the request was routed by, normalised (lower case, no default port). */
  readonly host: string;
  /** The request's headers. Changes in `onRequest` reach the instance and the cache's Vary matching. */
  readonly headers: HeaderMap;
  readonly clientIp: string;
  /** X-Request-Id: the client's if valid, otherwise generated. */
  readonly id: string;
}

/** The response about to be sent to the client (an instance's, a cache hit, or the proxy's own error). */
export interface PluginResponse {
  /** Writable: the status this client gets. */
  status: number;
  /** Headers this client gets. Changing them never changes a stored cache entry. */
  readonly headers: HeaderMap;
}

/** One attempt to one instance (there may be several: retries). */
export interface PluginUpstreamRequest {
  /** `address:port` of the instance this attempt goes to. */
  readonly instance: string;
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
  /** The headers sent to the instance (after hop-by-hop removal, X-Forwarded-*, Via). */
  readonly headers: HeaderMap;
  readonly method: string;
  readonly path: string;
}

/** The request's record after it ended, as written to the access log; read-only. */
export interface PluginLogRecord {
  readonly id: string;
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly status: number;
  /** Service name, or undefined when the request matched none. */
  readonly service: string | undefined;
  /** `address:port` of the instance that answered last, if any. */
  readonly instance: string | undefined;
  readonly attempts: number;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** RFC 9211 Cache-Status sent, or '' when the cache was not involved. */
  readonly cacheStatus: string;
  /** The ProxyError kind the request ended with (`plugin_error`, `timeout`, ...), if any. */
  readonly errorCause: string | undefined;
  readonly errorMessage: string;
  readonly clientIp: string;
}

/** What every hook gets. One context per request, shared by its hooks. */
export interface PluginContext {
  readonly request: PluginRequest;
  /** Name of the routed service; undefined in a proxy-level `onRequest` (it runs before routing). */
  readonly service: string | undefined;
  /** Data this plugin keeps between its hooks of one request (one Map per plugin and request). */
  readonly state: Map<unknown, unknown>;
}

export interface RequestHookContext extends PluginContext {
  /**
   * Answers the request at once: no instance is contacted and the cache is not consulted.
   * The hooks after this one in `onRequest` do not run; `onResponse` and `onLog` do.
   * A string body is sent as text/plain unless `headers` names a content-type.
   */
  respond(status: number, body?: string | Uint8Array, headers?: Record<string, string>): void;
}

export interface UpstreamHookContext extends PluginContext {
  readonly upstream: PluginUpstreamRequest;
}

export interface ResponseHookContext extends PluginContext {
  readonly response: PluginResponse;
}

export interface LogHookContext extends PluginContext {
  readonly log: PluginLogRecord;
}

/** A hook may return nothing (runs synchronously) or a Promise (the request waits for it). */
export type HookResult = void | Promise<void>;

export interface Plugin {
  /** Names the plugin in errors, logs and the kubeproxy_plugin_errors_total{plugin} label. */
  name: string;
  /** Proxy-level: before routing and the cache. Service-level: after routing, before the cache key. */
  onRequest?(ctx: RequestHookContext): HookResult;
  /** Before each attempt is sent to an instance (cache misses and revalidations only). */
  onUpstreamRequest?(ctx: UpstreamHookContext): HookResult;
  /** Before the client sees the response head: instance answers, cache hits, the proxy's own errors. */
  onResponse?(ctx: ResponseHookContext): HookResult;
  /** After the request ended (answered or cut); cannot change anything the client saw. */
  onLog?(ctx: LogHookContext): HookResult;
  /** When the config that loaded this plugin is replaced (reload) or the proxy stops. */
  close?(): HookResult;
}

/** The default export of a plugin module. It may be async (e.g. to read a key file at start). */
export type PluginFactory<Options = Record<string, unknown>> = (options: Options) => Plugin | Promise<Plugin>;

export type HookName = 'onRequest' | 'onUpstreamRequest' | 'onResponse' | 'onLog';
