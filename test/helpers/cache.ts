/**
 * Helpers for the cache's end-to-end tests: a virtual clock shared by the proxy's cache and the
 * test origins (so time can pass without sleeping), Cache-Status parsing, admin POSTs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TestContext } from 'node:test';
import { formatHttpDate } from '../../src/cache/directives.ts';
import { cacheKey } from '../../src/cache/key.ts';
import { request, type Reply, type RequestOptions } from './http.ts';
import { until } from './load.ts';
import { startOrigin, type Origin } from './origin.ts';
import { TEST_RUNTIME } from './child.ts';
import { TEST_ADMIN_TOKEN, startProxy, type TestProxy } from './proxy.ts';

export interface TestClock {
  /** Epoch ms: real time plus every `advance` so far. */
  now(): number;
  /** The HTTP-date of now(), for the origin's Date header. */
  httpDate(): string;
  advance(ms: number): void;
}

/**
 * Makes `proxy`'s cache read this clock. Origins should send `date: clock.httpDate()`: the
 * cache computes ages from the Date header against its own clock (RFC 9111 §4.2.3), so both
 * must move together.
 */
export function useClock(proxy: TestProxy): TestClock {
  let offset = 0;
  const clock: TestClock = {
    now: () => Date.now() + offset,
    httpDate: () => formatHttpDate(Date.now() + offset),
    advance: (ms) => {
      offset += ms;
    },
  };
  // A proxy process (the Bun leg, see proxy.ts) keeps its own clock: real time, no advance.
  if (TEST_RUNTIME !== 'node') {
    clock.advance = () => {
      throw new Error(`the cache clock of a ${TEST_RUNTIME} proxy process cannot be moved from the test`);
    };
    return clock;
  }
  proxy.runtime.cache.now = clock.now;
  return clock;
}

/** Our member of the Cache-Status field (the last one), or undefined. */
export function cacheStatus(r: Reply): string | undefined {
  const lines: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) {
    if (r.rawHeaders[i]!.toLowerCase() === 'cache-status') lines.push(r.rawHeaders[i + 1]!);
  }
  if (lines.length === 0) return undefined;
  const members = lines.join(', ').split(/,\s*(?=[a-z"])/i);
  return members[members.length - 1];
}

/** POST on the admin port, with the test proxies' admin token. */
export function adminPost(proxy: TestProxy, path: string): Promise<Reply> {
  return request(proxy.adminPort, { method: 'POST', path, host: '127.0.0.1', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
}

/** The primary key the cache uses for a GET of `path` on `host` (plain http). */
export function keyOf(service: string, host: string, path: string): string {
  return cacheKey(service, 'GET', { scheme: 'http', authority: host, target: path })!;
}

/** Resolves once `n` requests wait for the in-flight fetch of `key`. */
export function waitersOf(proxy: TestProxy, key: string, n: number): Promise<void> {
  return until(() => (proxy.runtime.cache.flights.get(key)?.waiting ?? 0) >= n, `${n} requests collapsed on ${key}`);
}

export interface CacheSetup {
  origin: Origin;
  proxy: TestProxy;
  clock: TestClock;
  /** A request to the proxy for host `web.test`. */
  get(path: string, opts?: RequestOptions): Promise<Reply>;
  /** Requests the origin received for `path` (path and query). */
  hits(path: string): number;
}

export interface SetupOptions {
  /** `proxy.cache` settings. */
  cache?: Record<string, unknown>;
  /** Extra settings of the `web` service. */
  service?: Record<string, unknown>;
  /** Extra top-level `proxy` settings. */
  proxy?: Record<string, unknown>;
}

/**
 * One origin, one proxy with a service `web` (domain web.test) in front of it, and a virtual
 * clock; all closed when the test ends. The handler gets the clock to date its responses.
 */
export async function cachedService(
  t: TestContext,
  handler: (req: IncomingMessage, res: ServerResponse, clock: TestClock) => void,
  options: SetupOptions = {},
): Promise<CacheSetup> {
  let clock: TestClock | undefined;
  const origin = await startOrigin((req, res) => handler(req, res, clock!));
  t.after(() => origin.close());
  const proxy = await startProxy({
    ...options.proxy,
    cache: options.cache ?? {},
    services: [{ name: 'web', domain: 'web.test', hosts: [{ port: origin.port }], ...options.service }],
  });
  t.after(() => proxy.close());
  clock = useClock(proxy);
  return {
    origin,
    proxy,
    clock,
    get: (path, opts = {}) => request(proxy.port, { host: 'web.test', path, ...opts }),
    hits: (path) => origin.requests.filter((r) => r.url === path).length,
  };
}
