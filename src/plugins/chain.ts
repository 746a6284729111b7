/**
 * Runs the plugins' hooks of one request, in config order. Synchronous hooks run in a plain loop
 * (no Promise is made); the first hook that returns a Promise moves the rest of the run onto an
 * async path. A hook that throws, rejects or outlives its plugin's `timeout` ends the run with a
 * `plugin_error` ProxyError (500) naming the plugin; the failure is reported (log + metric) once.
 */
import { ProxyError } from '../errors.ts';
import { withTimeout } from '../timeout.ts';
import type {
  HeaderMap,
  HookName,
  HookResult,
  LogHookContext,
  Plugin,
  PluginLogRecord,
  PluginResponse,
  PluginUpstreamRequest,
  RequestHookContext,
  ResponseHookContext,
  UpstreamHookContext,
} from './api.ts';
import { FRAMING, RawHeaderMap } from './header-map.ts';

/** A plugin as loaded from the config. */
export interface LoadedPlugin {
  readonly plugin: Plugin;
  /** Where the config names it: `proxy.plugins[0]`, `proxy.services[2].plugins[1]`. */
  readonly where: string;
  /** Longest time an async hook of this plugin may take (ms); a late one fails its request. */
  readonly timeout: number;
}

/** Told of every failing hook: the runtime logs it and counts kubeproxy_plugin_errors_total{plugin,hook}. */
export type PluginFailureSink = (plugin: LoadedPlugin, hook: HookName, err: unknown) => void;

interface Hook {
  readonly fn: (ctx: HookContext) => HookResult;
  readonly loaded: LoadedPlugin;
  /** The plugin's position in the chain: its `ctx.state` slot. */
  readonly slot: number;
}

/**
 * The plugins that apply to a request: the proxy-level ones, then (for a service's chain) the
 * service's own. Built once per snapshot; a chain without any hook of a kind has an empty list.
 */
export class PluginChain {
  readonly onRequest: readonly Hook[];
  /** The service's own onRequest hooks: they run after routing (the proxy-level ones ran before). */
  readonly onRoutedRequest: readonly Hook[];
  readonly onUpstreamRequest: readonly Hook[];
  readonly onResponse: readonly Hook[];
  readonly onLog: readonly Hook[];

  constructor(
    readonly plugins: readonly LoadedPlugin[],
    readonly report: PluginFailureSink,
    /** How many of `plugins` are proxy-level (they come first). */
    inherited = plugins.length,
  ) {
    this.onRequest = hooks(plugins, 'onRequest');
    this.onRoutedRequest = this.onRequest.filter((h) => h.slot >= inherited);
    this.onUpstreamRequest = hooks(plugins, 'onUpstreamRequest');
    this.onResponse = hooks(plugins, 'onResponse');
    this.onLog = hooks(plugins, 'onLog');
  }
}

function hooks(plugins: readonly LoadedPlugin[], name: HookName): Hook[] {
  const out: Hook[] = [];
  plugins.forEach((loaded, slot) => {
    const fn = loaded.plugin[name];
    if (typeof fn === 'function') out.push({ fn: fn.bind(loaded.plugin) as Hook['fn'], loaded, slot });
  });
  return out;
}

/** `ctx.respond()`'s answer, for the pipeline to send (it adds Content-Length and X-Request-Id). */
export interface PluginAnswer {
  readonly status: number;
  /** The plugin's header pairs, with a text/plain content-type for a string body that names none. */
  readonly headers: string[];
  readonly body: string | Buffer;
}

/** A header view that says whether a plugin changed it. */
export type TrackedHeaderMap = HeaderMap & { readonly changed: boolean };

/** The request as plugins see it. `path` is writable in onRequest only (a rewrite). */
export class HookRequest {
  /** Set when onRequest assigned `path`. */
  pathChanged = false;
  /** @internal the hook context, to know which hook is running. */
  owner: HookContext | undefined = undefined;

  constructor(
    readonly method: string,
    private currentPath: string,
    public host: string,
    /** Replaced by the pipeline once the request for the instances exists (its changes must reach both). */
    public headers: TrackedHeaderMap,
    readonly clientIp: string,
    readonly id: string,
  ) {}

  get path(): string {
    return this.currentPath;
  }

  set path(value: string) {
    if (this.owner?.running !== 'onRequest') throw new TypeError('request.path can only be changed in onRequest');
    // RFC 9112 §3.2.1: origin-form is an absolute path and an optional query, no spaces or controls.
    if (typeof value !== 'string' || !/^\/[\x21-\x7e]*$/.test(value)) {
      throw new TypeError(`request.path must start with "/" and hold no spaces or control characters, got ${JSON.stringify(value)}`);
    }
    this.currentPath = value;
    this.pathChanged = true;
  }
}

/**
 * One request's context for every hook of every plugin: made on the request's first hook, so a
 * request that no plugin sees never builds one. Its `request` and `response` views are made when a
 * hook first reads them (`makeRequest`, `makeResponse`): a hook that never looks costs neither.
 */
export class HookContext implements RequestHookContext, UpstreamHookContext, ResponseHookContext, LogHookContext {
  /** The hook running now; '' between hooks. */
  running: HookName | '' = '';
  /** The state slot of the plugin running now. */
  private slot = 0;
  private states: Array<Map<unknown, unknown> | undefined> | undefined = undefined;
  /** What `respond()` asked for. */
  answer: PluginAnswer | undefined = undefined;
  /** A hook of this request failed: the error answer goes out without running hooks again. */
  failed = false;
  /** Set by the pipeline before onUpstreamRequest and onLog run. */
  upstream!: PluginUpstreamRequest;
  log!: PluginLogRecord;
  private req: HookRequest | undefined;
  /** undefined before onResponse (as `ctx.response` reads then); null: made on the first read. */
  private res: PluginResponse | null | undefined = undefined;

  constructor(
    /** undefined: made by `makeRequest` when first read. */
    request: HookRequest | undefined,
    public service: string | undefined,
    /** The chain the request runs: the proxy-level one, then its service's once routed. */
    public chain: PluginChain,
  ) {
    this.req = request;
    if (request !== undefined) request.owner = this;
  }

  get request(): HookRequest {
    let r = this.req;
    if (r === undefined) {
      r = this.req = this.makeRequest();
      r.owner = this;
    }
    return r;
  }

  /** The request view if anything read it, without making it: undefined means no hook changed the request. */
  get requestIfMade(): HookRequest | undefined {
    return this.req;
  }

  get response(): PluginResponse {
    if (this.res === null) this.res = this.makeResponse();
    return this.res!;
  }

  /** @internal onResponse is about to run: `response` is made on its first read, over the head as it is now. */
  offerResponse(): void {
    this.res = null;
  }

  /** The request view, for a context made without one. */
  protected makeRequest(): HookRequest {
    throw new TypeError('this hook context has no request');
  }

  /** The response view, once offered (`offerResponse`). */
  protected makeResponse(): PluginResponse {
    throw new TypeError('this hook context has no response');
  }

  get state(): Map<unknown, unknown> {
    const states = (this.states ??= []);
    return (states[this.slot] ??= new Map());
  }

  respond(status: number, body?: string | Uint8Array, headers?: Record<string, string>): void {
    if (this.running !== 'onRequest') throw new TypeError('respond() can only be called in onRequest');
    if (this.answer !== undefined) throw new TypeError('respond() was already called for this request');
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new TypeError(`respond(): status must be an integer 200-599, got ${String(status)}`);
    if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) throw new TypeError('respond(): body must be a string or a Uint8Array');
    // The length is the proxy's to state (FRAMING): a plugin's own could disagree with the body.
    const raw = new RawHeaderMap([], FRAMING);
    if (headers !== undefined) for (const [name, value] of Object.entries(headers)) raw.append(name, value);
    if (typeof body === 'string' && body !== '' && !raw.has('content-type')) raw.append('content-type', 'text/plain; charset=utf-8');
    const bytes = body === undefined ? '' : typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    this.answer = { status, headers: raw.raw, body: bytes };
  }

  /** @internal */
  enter(hook: HookName, slot: number): void {
    this.running = hook;
    this.slot = slot;
  }
}

/** The outcome of a run: undefined when every hook finished, or the error the request ends with. */
export type HookOutcome = ProxyError | undefined;

/**
 * Runs `hooks` in order over `ctx`. Returns the outcome directly when every hook was synchronous,
 * a Promise of it once one returned a Promise. Never throws, and the Promise never rejects.
 * onRequest stops after a hook that called respond().
 */
export function runHooks(chain: PluginChain, hooks: readonly Hook[], name: HookName, ctx: HookContext): HookOutcome | Promise<HookOutcome> {
  for (let i = 0; i < hooks.length; i++) {
    const hook = hooks[i]!;
    ctx.enter(name, hook.slot);
    let result: HookResult;
    try {
      result = hook.fn(ctx);
    } catch (err) {
      ctx.running = '';
      return failure(chain, hook, name, err);
    }
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      return continueAsync(chain, hooks, name, ctx, i, result as Promise<void>);
    }
    if (ctx.answer !== undefined) break;
  }
  ctx.running = '';
  return undefined;
}

async function continueAsync(chain: PluginChain, hooks: readonly Hook[], name: HookName, ctx: HookContext, from: number, first: Promise<void>): Promise<HookOutcome> {
  let pending: HookResult = first;
  for (let i = from; i < hooks.length; i++) {
    const hook = hooks[i]!;
    try {
      if (i !== from) {
        ctx.enter(name, hook.slot);
        pending = hook.fn(ctx);
      }
      if (pending !== undefined && typeof (pending as Promise<void>).then === 'function') {
        // The hook keeps its slot while it waits: `ctx.state` after an await still finds its own Map.
        await withTimeout(pending as Promise<void>, hook.loaded.timeout, () => new HookTimeout(hook.loaded.timeout));
        ctx.enter(name, hook.slot);
      }
    } catch (err) {
      ctx.running = '';
      return failure(chain, hook, name, err);
    }
    if (ctx.answer !== undefined) break;
  }
  ctx.running = '';
  return undefined;
}

class HookTimeout extends Error {
  constructor(ms: number) {
    super(`did not finish within ${ms} ms`);
    this.name = 'HookTimeout';
  }
}

function failure(chain: PluginChain, hook: Hook, name: HookName, err: unknown): ProxyError {
  chain.report(hook.loaded, name, err);
  const why = err instanceof HookTimeout ? ` (${err.message})` : '';
  // The client learns which plugin failed, not its error text (that goes to the log).
  return new ProxyError('plugin_error', `plugin "${hook.loaded.plugin.name}" failed in ${name}${why}`, false, { cause: err });
}
