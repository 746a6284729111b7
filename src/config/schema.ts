/**
 * The config schema: every key, its default, and the `Config` type inferred from it.
 * Objects are strict (a typo is an error, never silently ignored). The assignment's original
 * format (`proxy.listen`, `proxy.services[].name/domain/hosts[].address/port`) is a subset.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration, parseSize, show } from './units.ts';
import { BALANCER_KINDS, DEFAULT_BALANCER } from '../balancer/index.ts';

const durationValue = z.unknown().transform((v, ctx) => {
  const r = parseDuration(v);
  if (typeof r === 'number') return r;
  ctx.addIssue({ code: 'custom', message: r.error, input: v });
  return z.NEVER;
});
const duration = (fallback: string) => durationValue.prefault(fallback);

const size = (fallback: string) =>
  z
    .unknown()
    .transform((v, ctx) => {
      const r = parseSize(v);
      if (typeof r === 'number') return r;
      ctx.addIssue({ code: 'custom', message: r.error, input: v });
      return z.NEVER;
    })
    .prefault(fallback);

const intIn = (min: number, max: number) =>
  z.custom<number>((v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max, {
    error: (iss) => `expected integer ${min}-${max}, got ${show(iss.input)}`,
  });

const port = intIn(1, 65535);
/** Listening ports also take 0: the OS picks a free one (tests, side-cars). */
const listenPort = intIn(0, 65535);

const address = z.string().min(1, { error: 'expected an address, got ""' });

/** RFC 6750 §2.1: a Bearer token is visible ASCII without spaces. */
export const BEARER_TOKEN = /^[\x21-\x7e]+$/;
const bearerToken = z.string().refine((v) => BEARER_TOKEN.test(v), {
  error: (iss) => `expected visible ASCII characters without spaces (a Bearer token, RFC 6750 §2.1), got ${typeof iss.input === 'string' ? `${iss.input.length} character(s)` : show(iss.input)}`,
});

/** A DNS name or a `*.` wildcard; stored lower-case and without a trailing dot. */
const domainName = z
  .string()
  .transform((v) => v.trim().toLowerCase().replace(/\.$/, ''))
  .refine((v) => /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(v), {
    error: (iss) => `expected a host name like "api.example.com" or "*.example.com", got ${show(iss.input)}`,
  });

const cidr = z.string().refine(
  (v) => {
    const [ip, bits, extra] = v.split('/');
    if (extra !== undefined || !ip) return false;
    const family = isIP(ip);
    if (family === 0) return false;
    if (bits === undefined) return true;
    const n = Number(bits);
    return Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128);
  },
  { error: (iss) => `expected an IP address or CIDR like "10.0.0.0/8", got ${show(iss.input)}` },
);

/** The names of balancer/index.ts's BALANCERS table. */
const balancerKind = z.enum(BALANCER_KINDS);

/** `client-ip`, `path`, or `header:NAME`. */
const hashKey = z.string().refine((v) => v === 'client-ip' || v === 'path' || /^header:[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(v), {
  error: (iss) => `expected "client-ip", "path" or "header:NAME", got ${show(iss.input)}`,
});

const hostEntry = z.strictObject({
  address,
  port,
  weight: intIn(1, 1000).default(1),
});

const timeouts = z.strictObject({
  /** TCP connect to an instance. */
  connect: duration('5s'),
  /** Waiting for the response headers after the request was sent (504 after it). */
  response: duration('60s'),
  /** Idle time between two body chunks from the instance. */
  idle: duration('60s'),
  /** Whole request, first byte in to last byte out; 0 = unlimited. */
  request: duration('0'),
  /** How long an idle pooled connection to an instance is kept open. */
  keepAlive: duration('4s'),
});

const healthCheck = z.strictObject({
  path: z.string().startsWith('/', { error: 'expected a path starting with "/"' }).default('/healthz'),
  interval: duration('10s'),
  timeout: duration('2s'),
  expectedStatus: z
    .union([intIn(100, 599), z.array(intIn(100, 599)).min(1), z.string().regex(/^[1-5]xx$/, { error: 'expected a status, a list of statuses or a class like "2xx"' })])
    .default('2xx'),
  healthyThreshold: intIn(1, 100).default(2),
  unhealthyThreshold: intIn(1, 100).default(3),
  /** Host header of the probe; defaults to the service's first domain. */
  host: z.string().optional(),
});

const outlierDetection = z.strictObject({
  enabled: z.boolean().default(true),
  consecutiveFailures: intIn(1, 1000).default(5),
  baseEjectionTime: duration('30s'),
  maxEjectionTime: duration('5m'),
  /** Never eject more than this share of a service's instances at once. */
  maxEjectionPercent: intIn(0, 100).default(50),
});

const retryPolicy = z.strictObject({
  attempts: intIn(0, 10).default(2),
  on: z.array(intIn(500, 599)).default([502, 503, 504]),
  /** Retries in flight may be at most this share of a service's other requests in flight (retry budget; 100 = off). */
  budgetPercent: intIn(0, 100).default(20),
  /** Retries always allowed while fewer than this many are in flight (Envoy's min_retry_concurrency). */
  minRetryConcurrency: intIn(0, 10000).default(3),
});

const limits = z.strictObject({
  /** Concurrent connections to one instance; 0 = unlimited. */
  maxConnections: intIn(0, 1_000_000).default(0),
  /** Requests of one service waiting for a connection; beyond it a fast 503. */
  maxPending: intIn(0, 1_000_000).default(1024),
});

/*
 * Per-service overrides of the proxy-level blocks: the same keys, none defaulted, so that what a
 * service leaves out falls back to the proxy-level value and not to the built-in default.
 */
const serviceTimeouts = z.strictObject({
  connect: durationValue.optional(),
  response: durationValue.optional(),
  idle: durationValue.optional(),
  request: durationValue.optional(),
  keepAlive: durationValue.optional(),
});
const serviceRetries = z.strictObject({
  attempts: intIn(0, 10).optional(),
  on: z.array(intIn(500, 599)).optional(),
  budgetPercent: intIn(0, 100).optional(),
  minRetryConcurrency: intIn(0, 10000).optional(),
});
const serviceLimits = z.strictObject({
  maxConnections: intIn(0, 1_000_000).optional(),
  maxPending: intIn(0, 1_000_000).optional(),
});
const serviceOutlier = z.strictObject({
  enabled: z.boolean().optional(),
  consecutiveFailures: intIn(1, 1000).optional(),
  baseEjectionTime: durationValue.optional(),
  maxEjectionTime: durationValue.optional(),
  maxEjectionPercent: intIn(0, 100).optional(),
});

/**
 * DNS service discovery: every A and AAAA record of `dns` is an instance on `port`, re-resolved
 * every `interval`. Kubernetes headless Services answer one record per ready pod. The name is
 * queried as given (no search domains), so use the full name: `web.default.svc.cluster.local`.
 */
const discovery = z.strictObject({
  dns: z
    .string()
    .transform((v) => v.trim().toLowerCase())
    .refine((v) => /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/.test(v), {
      error: (iss) => `expected a DNS name like "web.default.svc.cluster.local", got ${show(iss.input)}`,
    }),
  port,
  // Below 100ms a resolution loop would only load the DNS server.
  interval: duration('5s').refine((v) => v >= 100, { error: 'expected at least 100ms' }),
  weight: intIn(1, 1000).default(1),
});

/** A Kubernetes object name (RFC 1123 label, as Service and Namespace names are). */
const k8sName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, {
  error: (iss) => `expected a Kubernetes name like "web" (lower-case letters, digits, "-"), got ${show(iss.input)}`,
});

/**
 * EndpointSlice discovery (src/discovery/kubernetes.ts): the ready endpoints of Service `service`
 * in `namespace` (default: the pod's own), on `port`: a Service port's name, or a pod port number.
 */
const kubernetesDiscovery = z.strictObject({
  kubernetes: z.strictObject({
    service: k8sName,
    namespace: k8sName.optional(),
    port: z.union([port, z.string().min(1).max(63)]),
  }),
  weight: intIn(1, 1000).default(1),
});

export type DnsDiscoveryConfig = z.infer<typeof discovery>;
export type KubernetesDiscoveryConfig = z.infer<typeof kubernetesDiscovery>;

/** `10.96.0.10`, `127.0.0.1:5353` or `[fd00::a]:53`. */
const dnsServer = z.string().refine(
  (v) => {
    if (isIP(v) !== 0) return true;
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:]+):(\d+)$/.exec(v);
    if (!m || isIP(m[1]!) === 0) return false;
    const n = Number(m[2]);
    return Number.isInteger(n) && n >= 1 && n <= 65535;
  },
  { error: (iss) => `expected an IP address with an optional port like "10.96.0.10" or "127.0.0.1:5353", got ${show(iss.input)}` },
);

/**
 * A plugin (docs/plugins.md): an ES module whose default export takes `options` and returns hooks.
 * `module` is a path relative to the config file's directory (`./plugins/auth.mjs`) or a package
 * name. Modules are imported when the config is loaded (start, reload, --check).
 */
const pluginEntry = z.strictObject({
  module: z.string().min(1, { error: 'expected a module path like "./plugins/auth.mjs" or a package name' }),
  options: z.looseObject({}).default({}),
  /** Longest an async hook may take; past it the request gets a 500 naming the plugin. */
  timeout: duration('10s'),
});
export type PluginConfig = z.output<typeof pluginEntry>;

/**
 * How a service's instances are spoken to (upstream/instance.ts): `http1` HTTP/1.1 (the default),
 * `h2c` HTTP/2 without TLS (prior knowledge, RFC 9113 §3.3), `https` HTTP/1.1 over TLS, `h2`
 * HTTP/2 over TLS (ALPN h2).
 */
export const UPSTREAM_PROTOCOLS = ['http1', 'h2c', 'https', 'h2'] as const;
export type UpstreamProtocol = (typeof UPSTREAM_PROTOCOLS)[number];
const upstreamProtocol = z.enum(UPSTREAM_PROTOCOLS, {
  error: (iss) => `expected one of ${UPSTREAM_PROTOCOLS.map((p) => `"${p}"`).join(', ')}, got ${show(iss.input)}`,
});

/**
 * TLS to the instances of an `https` or `h2` service. `ca` (PEM, relative to the config file,
 * read at every load and reload by config/load.ts) replaces the system's CAs; `serverName` is the
 * name sent by SNI and checked in the certificate (default: the instance's address, so an IP
 * address must be in the certificate); `verify: false` accepts any certificate.
 */
const upstreamTls = z.strictObject({
  ca: z.string().min(1, { error: 'expected a file path, got ""' }).optional(),
  serverName: z
    .string()
    .refine((v) => /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/.test(v), {
      error: (iss) => `expected a host name like "api.internal", got ${show(iss.input)}`,
    })
    .optional(),
  verify: z.boolean().default(true),
});
export type UpstreamTlsConfig = z.output<typeof upstreamTls>;

const serviceSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, {
      error: (iss) => `expected a name of letters, digits, ".", "_" or "-", got ${show(iss.input)}`,
    }),
    domain: domainName.optional(),
    domains: z.array(domainName).default([]),
    hosts: z.array(hostEntry).default([]),
    discovery: z.union([discovery, kubernetesDiscovery]).optional(),
    loadBalancer: balancerKind.optional(),
    hashKey: hashKey.optional(),
    timeouts: serviceTimeouts.optional(),
    retries: serviceRetries.optional(),
    limits: serviceLimits.optional(),
    healthCheck: healthCheck.optional(),
    outlierDetection: serviceOutlier.optional(),
    /** `false` opts this service out of the shared cache. */
    cache: z.boolean().default(true),
    /** Host header sent upstream: the client's (default) or a fixed one. */
    upstreamHost: z.string().optional(),
    /** Run after the proxy-level plugins; their onRequest runs after routing, before the cache key. */
    plugins: z.array(pluginEntry).default([]),
    /** Default http1 (left out of the parsed config so that services built in code need not name it). */
    protocol: upstreamProtocol.optional(),
    tls: upstreamTls.optional(),
  })
  .superRefine((s, ctx) => {
    if (s.tls !== undefined && s.protocol !== 'https' && s.protocol !== 'h2') {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: `only for protocol "https" or "h2" (protocol is "${s.protocol ?? 'http1'}")` });
    }
    if (!s.domain && s.domains.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['domain'], message: 'is required (or give "domains")' });
    }
    if (s.hosts.length === 0 && !s.discovery) {
      ctx.addIssue({ code: 'custom', path: ['hosts'], message: 'expected at least one host (or "discovery")' });
    }
    const seen = new Set<string>();
    s.hosts.forEach((h, i) => {
      const id = `${h.address}:${h.port}`;
      if (seen.has(id)) ctx.addIssue({ code: 'custom', path: ['hosts', i], message: `duplicate host ${id}` });
      seen.add(id);
    });
  });

const filePath = z.string().min(1, { error: 'expected a file path, got ""' });

/**
 * The TLS listener (server/tls.ts): HTTPS on its own port. Certificate and key paths are relative
 * to the config file; config/load.ts resolves them and checks each pair at every load (errors name
 * the key); server/tls.ts re-reads them when they change.
 */
const tlsListener = z.strictObject({
  listen: z.strictObject({ address: address.default('0.0.0.0'), port: listenPort.default(8443) }).prefault({}),
  /** PEM files; SNI picks the one whose SAN names match (exact, then wildcard); the first is the default. */
  certificates: z.array(z.strictObject({ cert: filePath, key: filePath })).min(1, { error: 'expected at least one certificate' }),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  /** The plain listener answers every request with a 308 to the same URL over https. */
  redirectHttp: z.boolean().default(false),
});

// ---- proxy.cache.shared (issue 15) ---------------------------------------------------------

/** A redis:// or rediss:// URL, or the message saying why not (the password is never echoed). */
export function checkRedisUrl(v: string): string | undefined {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return `expected a URL like "redis://redis:6379" or "rediss://user:password@host:6380/0", got ${v.includes('@') ? 'a value that does not parse' : show(v)}`;
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return `expected the scheme redis:// or rediss:// (TLS), got "${u.protocol}//"`;
  if (u.hostname === '') return 'expected a host, as in "redis://redis:6379"';
  if (u.pathname !== '' && u.pathname !== '/' && !/^\/(\d|[1-9]\d{1,3})$/.test(u.pathname)) return `expected a database number as the path ("/0"), got ${show(u.pathname)}`;
  if (u.search !== '' || u.hash !== '') return 'expected no query or fragment';
  return undefined;
}

const redisTier = z
  .strictObject({
    /** The server; give this or `urlEnv`. */
    url: z.string().optional(),
    /** The name of an environment variable holding the URL (the Helm chart passes it from a Secret). */
    urlEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: (iss) => `expected an environment variable name like "REDIS_URL", got ${show(iss.input)}` }).optional(),
    /** Prefix of every key and of the invalidation channel: proxies sharing a prefix share entries. */
    keyPrefix: z.string().min(1, { error: 'expected a prefix like "kubeproxy:", got ""' }).max(200).default('kubeproxy:'),
    /** Longest wait for Redis on a lookup; then the request goes on as a miss. */
    timeout: duration('50ms'),
    /** Longest time an entry is kept in Redis, whatever its freshness. */
    maxTtl: duration('24h'),
    /** After `failures` errors or timeouts in a row Redis is skipped for `cooldown`, then tried again. */
    breaker: z.strictObject({ failures: intIn(1, 1000).default(5), cooldown: duration('5s') }).prefault({}),
  })
  .transform((r, ctx) => {
    if ((r.url === undefined) === (r.urlEnv === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'give exactly one of url or urlEnv' });
      return z.NEVER;
    }
    const url = r.url ?? process.env[r.urlEnv!] ?? '';
    const path = r.url === undefined ? 'urlEnv' : 'url';
    const problem = url === '' ? `environment variable ${r.urlEnv} is not set` : checkRedisUrl(url);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', path: [path], message: r.url === undefined && url !== '' ? `environment variable ${r.urlEnv}: ${problem}` : problem });
      return z.NEVER;
    }
    if (r.timeout <= 0) {
      ctx.addIssue({ code: 'custom', path: ['timeout'], message: 'expected a duration above 0 (a lookup must never wait for Redis unbounded)' });
      return z.NEVER;
    }
    if (r.maxTtl < 1000) {
      ctx.addIssue({ code: 'custom', path: ['maxTtl'], message: 'expected at least "1s"' });
      return z.NEVER;
    }
    return { ...r, url };
  });

const sharedCache = z.strictObject({ redis: redisTier });

const proxySchema = z
  .strictObject({
    listen: z.strictObject({ address: address.default('0.0.0.0'), port: listenPort.default(8080) }).prefault({}),
    tls: tlsListener.optional(),
    admin: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Loopback by default: the admin port can purge the cache; the Helm chart sets 0.0.0.0 for probes. */
        address: address.default('127.0.0.1'),
        port: listenPort.default(9901),
        /** Bearer token for state-changing admin endpoints (admin/auth.ts); without one they answer 403. */
        token: bearerToken.optional(),
        /** File holding the token (a mounted Secret), read at every load and reload; relative to the config file. */
        tokenFile: z.string().min(1, { error: 'expected a file path, got ""' }).optional(),
      })
      .superRefine((a, ctx) => {
        if (a.token !== undefined && a.tokenFile !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['tokenFile'], message: 'give either token or tokenFile, not both' });
        }
      })
      .prefault({}),
    workers: z.union([z.literal('auto'), intIn(1, 256)]).default(1),
    loadBalancer: balancerKind.default(DEFAULT_BALANCER),
    hashKey: hashKey.default('client-ip'),
    /** Service answering requests whose Host matches no domain; otherwise 421. */
    defaultService: z.string().optional(),
    /** Peers whose X-Forwarded-* headers are trusted and appended to; others are replaced. */
    trustedProxies: z.array(cidr).default([]),
    /** DNS servers for service discovery; default: the system's (resolv.conf). */
    dnsServers: z.array(dnsServer).min(1).optional(),
    /** The pseudonym added to Via (RFC 9110 §7.6.3); `false` adds no Via. */
    via: z.union([z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/), z.literal(false)]).default('kubeproxy'),
    timeouts: timeouts.prefault({}),
    retries: retryPolicy.prefault({}),
    limits: limits.prefault({}),
    outlierDetection: outlierDetection.prefault({}),
    client: z
      .strictObject({
        headerTimeout: duration('10s'),
        requestTimeout: duration('5m'),
        keepAliveTimeout: duration('5s'),
        maxHeaderSize: size('16KiB'),
        maxBodySize: size('0'),
        maxConnections: intIn(0, 10_000_000).default(0),
      })
      .prefault({}),
    cache: z
      .strictObject({
        enabled: z.boolean().default(true),
        maxSize: size('256MiB'),
        maxObjectSize: size('8MiB'),
        /** RFC 9213 targeted fields that override Cache-Control for this cache, first wins. */
        targetedFields: z.array(z.string()).default(['KubeProxy-Cache-Control', 'CDN-Cache-Control']),
        /** Cap of the heuristic freshness lifetime (RFC 9111 §4.2.2). */
        heuristicMax: duration('24h'),
        /** How long concurrent misses for one key wait for the first one. */
        collapseTimeout: duration('10s'),
        /**
         * How long past freshness a stored response may answer when no instance can (RFC 9111
         * §4.2.4), unless it forbids it; an explicit stale-if-error replaces this. 0: off.
         */
        staleOnError: duration('1h'),
        /** A second tier in Redis or Valkey behind the memory one, shared by every replica and worker (cache/tiered-store.ts). */
        shared: sharedCache.optional(),
      })
      .prefault({}),
    metrics: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
    accessLog: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Share of successful requests logged (errors are always logged). */
        sampling: z.number().min(0).max(1).default(1),
      })
      .prefault({}),
    log: z
      .strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') })
      .prefault({}),
    shutdown: z
      .strictObject({
        /** After SIGTERM, keep serving this long while readiness fails (endpoint removal). */
        delay: duration('0'),
        /** Then wait at most this long for in-flight requests. */
        drainTimeout: duration('30s'),
      })
      .prefault({}),
    /** Watch the config file and reload on change (SIGHUP always reloads). */
    watch: z.boolean().default(true),
    /** Plugins for every request, in order; their onRequest runs before routing and the cache. */
    plugins: z.array(pluginEntry).default([]),
    services: z.array(serviceSchema).min(1, { error: 'expected at least one service' }),
  })
  .superRefine((p, ctx) => {
    const names = new Map<string, number>();
    const domains = new Map<string, string>();
    p.services.forEach((s, i) => {
      if (names.has(s.name)) {
        ctx.addIssue({ code: 'custom', path: ['services', i, 'name'], message: `duplicate service name "${s.name}" (also services[${names.get(s.name)}])` });
      }
      names.set(s.name, i);
      for (const d of serviceDomains(s)) {
        const owner = domains.get(d);
        if (owner !== undefined && owner !== s.name) {
          ctx.addIssue({ code: 'custom', path: ['services', i, 'domains'], message: `domain "${d}" is already used by service "${owner}"` });
        }
        domains.set(d, s.name);
      }
    });
    if (p.defaultService !== undefined && !names.has(p.defaultService)) {
      ctx.addIssue({ code: 'custom', path: ['defaultService'], message: `no service is named "${p.defaultService}"` });
    }
  });

export const configSchema = z.strictObject({ proxy: proxySchema });

export type Config = z.output<typeof configSchema>;
export type ProxyConfig = Config['proxy'];
export type ServiceConfig = ProxyConfig['services'][number];
export type HostConfig = ServiceConfig['hosts'][number];
export type TimeoutsConfig = ProxyConfig['timeouts'];
export type RetryConfig = ProxyConfig['retries'];
export type LimitsConfig = ProxyConfig['limits'];
export type HealthCheckConfig = NonNullable<ServiceConfig['healthCheck']>;
export type OutlierConfig = ProxyConfig['outlierDetection'];
export type TlsConfig = NonNullable<ProxyConfig['tls']>;
export type BalancerKindName = z.output<typeof balancerKind>;

/** All names of a service, `domain` first, de-duplicated. */
export function serviceDomains(s: { domain?: string | undefined; domains: readonly string[] }): string[] {
  return [...new Set([...(s.domain ? [s.domain] : []), ...s.domains])];
}
