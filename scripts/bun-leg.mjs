// The Bun leg of the end-to-end suite (`node scripts/run-tests.mjs --runtime bun`): which test
// files run there, and the tests it skips, each with the reason. The README's "Running on Bun"
// section shows this list; keep them in step.
//
// On this leg the test files run on Node as always and every proxy they start is a `kubeproxy`
// process under Bun (test/helpers/proxy.ts and child.ts, KUBEPROXY_TEST_RUNTIME=bun). Two kinds of
// skips follow: Bun differences (BUN_*: the proxy behaves differently or fails there), and tests
// that look inside the proxy's process (they pass on Node, where the proxy runs in the test's
// own process; nothing about Bun is learnt from them).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

// ---- Bun differences ----------------------------------------------------------------------
const BUN_MAX_CONNECTIONS =
  "Bun: its node:http server counts a connection over client.maxConnections ('drop') but leaves it open, so the plain port's connection past the limit is never closed (the TLS port's is, and the rest of the test passes on Bun); the test also waits on the TLS listener's open connections read from the in-process Runtime";
const BUN_MODULE_CACHE =
  'Bun: import() keys its module cache by path and ignores the ?v=<mtime> query src/plugins/load.ts adds, so a reload keeps the old code of an edited plugin file';
const BUN_PARSER =
  "Bun: its HTTP/1.1 parser is not llhttp; malformed requests still get a 400 and a closed connection and never reach an instance, but the reason differs (Content-Length with Transfer-Encoding reads 'invalid Transfer-Encoding', a bad chunk has no 'LF after chunk data'), and a request line claiming HTTP/2.0 gets 400 where Node's gets 505";
const BUN_TLS_WORDING =
  "Bun: its TLS (BoringSSL) words the refusal 'self signed certificate' where Node's OpenSSL says 'self-signed certificate'; the 502 and the code DEPTH_ZERO_SELF_SIGNED_CERT are the same";

// ---- the test looks inside the proxy's process ----------------------------------------------
const IN_PROCESS = "reads or drives the proxy's in-process Runtime (cache, snapshot, health or outlier events, undici diagnostics channels)";
const CLOCK = "moves the cache's clock (test/helpers/cache.ts useClock), which lives in the proxy's process";
const ACCESS_LOG = 'captures the access log in the test process (setAccessLogOutput)';
const SAME_EVENT_LOOP =
  "assumes the proxy shares the test's event loop: when the 5 refusals come back, the origin (in the test process) has not accepted the 2 admitted requests yet; it fails the same way with the proxy as a Node process";
const REQUEST_END_HOOK =
  "its before() hook records each request's protocol through the in-process Runtime (runtime.onRequestEnd), so none of its cases can start; with that line taken out, all of them but the ALPN one (which reads those records) pass on Bun";
const CLOSE_IS_ASYNC = "expects close() to fail readiness before it returns, as Runtime.shutdown() does in-process; a SIGTERM to a process takes effect later";

/**
 * Whole files: `test` absent. Otherwise the test's exact name, and `suite`, the name of the
 * describe() it is in (Node 20 runs a test whose suite matches the name pattern, see below).
 */
export const BUN_LEG_SKIPS = [
  { file: 'test/tls-listener.test.ts', suite: 'TLS port refusals in the metrics', test: 'connections over maxConnections are counted per listener, a handshake that never starts times out into the metrics, a malformed request over TLS counts like on the plain port', reason: BUN_MAX_CONNECTIONS },
  { file: 'test/h2-front.test.ts', reason: REQUEST_END_HOOK },
  { file: 'test/upstream-protocols.test.ts', suite: 'instances over https, h2 and h2c', test: 'an instance whose certificate tls.ca did not sign: 502 naming the refusal', reason: BUN_TLS_WORDING },
  { file: 'test/upstream-protocols.test.ts', suite: 'instances over https, h2 and h2c', test: 'h2 over TLS: the instance gets HTTP/2, with the method, Host as authority and the body', reason: BUN_TLS_WORDING },
  { file: 'test/upstream-protocols.test.ts', suite: 'instances over https, h2 and h2c', test: "an h2 instance's trailers reach an h2 client, and an HTTP/1.1 client only with TE: trailers", reason: IN_PROCESS },
  { file: 'test/observability-admin.test.ts', test: '/readyz turns 503 during the shutdown delay while requests still succeed', reason: CLOSE_IS_ASYNC },
  { file: 'test/cache-collapsing.test.ts', test: "a waiting request whose client leaves is dropped, the others are still served", reason: IN_PROCESS },
  { file: 'test/cache-collapsing.test.ts', test: "collapsed requests go upstream themselves when the answer may not be stored", reason: IN_PROCESS },
  { file: 'test/cache-collapsing.test.ts', test: "collapsing: 10 concurrent misses for one URL make exactly 1 upstream request", reason: IN_PROCESS },
  { file: 'test/cache-collapsing.test.ts', test: "concurrent revalidations of one stale entry make one conditional request", reason: CLOCK },
  { file: 'test/cache-ranges.test.ts', test: "a range is cut from an entry another proxy stored in the shared tier (Redis), across its 64 KiB chunks", reason: IN_PROCESS },
  { file: 'test/cache-ranges.test.ts', test: "a range request on a miss fetches the full object once, stores it and answers its range; the next range is a hit", reason: CLOCK },
  { file: 'test/cache-ranges.test.ts', test: "requests for different ranges collapsed on one miss each get their own slice from one origin request", reason: IN_PROCESS },
  { file: 'test/cache-stale-on-error.test.ts', test: "every instance answering 503: the stale copy is served with fwd-status=503", reason: CLOCK },
  { file: 'test/cache-stale-on-error.test.ts', test: "every instance down: the stale copy is served, its Cache-Status says stale-on-error, and it counts as stale", reason: CLOCK },
  { file: 'test/cache-stale-on-error.test.ts', test: "must-revalidate: with every instance down or answering 503 the client gets the error, never the stale copy", reason: CLOCK },
  { file: 'test/cache-stale-on-error.test.ts', test: "past proxy.cache.staleOnError the error goes through; stale-if-error replaces that limit", reason: CLOCK },
  { file: 'test/cache-stale-on-error.test.ts', test: "staleOnError 0 turns it off: without stale-if-error the error goes through", reason: CLOCK },
  { file: 'test/cache-storage.test.ts', test: "Age is present on every cached response and grows; Date is the origin's", reason: CLOCK },
  { file: 'test/cache-storage.test.ts', test: "a reload keeps the entries; one that opts a service out drops its entries", reason: IN_PROCESS },
  { file: 'test/cache-storage.test.ts', test: "an entry is fresh for its max-age, then stale; without validators (and staleOnError 0) it is then dropped", reason: CLOCK },
  { file: 'test/cache-streaming.test.ts', test: "a body larger than maxObjectSize streams through and is not stored", reason: IN_PROCESS },
  { file: 'test/cache-validation.test.ts', test: "a 304 revalidation updates the stored headers, never Content-Length, and is served from the cache", reason: CLOCK },
  { file: 'test/cache-validation.test.ts', test: "a 5xx is cached only for as long as its own headers say", reason: CLOCK },
  { file: 'test/cache-validation.test.ts', test: "a full response to a revalidation replaces the entry", reason: CLOCK },
  { file: 'test/cache-validation.test.ts', test: "errors the proxy generates (502/503/504) are never stored", reason: IN_PROCESS },
  { file: 'test/cache-validation.test.ts', test: "must-revalidate: when the origin is down a stale entry is never served, the answer is 504", reason: CLOCK },
  { file: 'test/cache-validation.test.ts', test: "only-if-cached answers 504 when nothing is stored, and never contacts the origin", reason: CLOCK },
  { file: 'test/cache-validation.test.ts', test: "stale-if-error: the stale entry is served when no instance can be reached", reason: CLOCK },
  { file: 'test/cache-validation.test.ts', test: "stale-if-error: the stale entry is served when the instance answers 5xx", reason: CLOCK },
  { file: 'test/cache-validation.test.ts', test: "stale-while-revalidate: stale is served at once and the entry is refreshed in the background once", reason: CLOCK },
  { file: 'test/cache-validation.test.ts', test: "with staleOnError 0 and no stale-if-error a failed revalidation passes the error on and keeps the entry", reason: CLOCK },
  { file: 'test/discovery-dns.test.ts', suite: 'DNS service discovery', test: "a config reload keeps the discovered pods without waiting for DNS", reason: IN_PROCESS },
  { file: 'test/discovery-dns.test.ts', suite: 'DNS service discovery', test: "a failing DNS server keeps the last pods serving, and /status reports the error and the last success", reason: IN_PROCESS },
  { file: 'test/discovery-dns.test.ts', suite: 'DNS service discovery', test: "a pod that leaves DNS gets no new requests, and its in-flight request still completes", reason: IN_PROCESS },
  { file: 'test/discovery-dns.test.ts', suite: 'DNS service discovery', test: "a pod that stays keeps its instance and its pooled connection when another pod joins", reason: IN_PROCESS },
  { file: 'test/discovery-dns.test.ts', suite: 'DNS service discovery', test: "routes to the pods the DNS name lists, and a new pod starts receiving traffic when DNS lists it", reason: IN_PROCESS },
  { file: 'test/discovery-dns.test.ts', suite: 'DNS service discovery', test: "static hosts and discovered pods serve the same service", reason: IN_PROCESS },
  { file: 'test/discovery-kubernetes.test.ts', suite: 'EndpointSlice discovery', test: "410 Gone lists again (start of a watch and mid-stream), and bookmarks move the resourceVersion without a change", reason: IN_PROCESS },
  { file: 'test/discovery-kubernetes.test.ts', suite: 'EndpointSlice discovery', test: "a Service whose EndpointSlices are all deleted keeps a zero-valued kubeproxy_inflight_requests series (KubeProxyNoHealthyUpstream relies on it)", reason: IN_PROCESS },
  { file: 'test/discovery-kubernetes.test.ts', suite: 'EndpointSlice discovery', test: "a lost API connection keeps the last endpoints serving and the watch resumes after back-off", reason: IN_PROCESS },
  { file: 'test/discovery-kubernetes.test.ts', suite: 'EndpointSlice discovery', test: "a pod that becomes ready serves within 1 s of the watch event; a deleted slice takes its pods out", reason: IN_PROCESS },
  { file: 'test/discovery-kubernetes.test.ts', suite: 'EndpointSlice discovery', test: "a terminating pod gets no new requests, and its in-flight request completes", reason: IN_PROCESS },
  { file: 'test/observability-access-log.test.ts', suite: 'access log', test: "a failed request is logged at warn with its error cause and message", reason: ACCESS_LOG },
  { file: 'test/observability-access-log.test.ts', suite: 'access log', test: "a successful request is one JSON line with its fields; the query and credentials are never logged", reason: ACCESS_LOG },
  { file: 'test/observability-access-log.test.ts', suite: 'access log', test: "an invalid traceparent is passed through but records no trace id", reason: ACCESS_LOG },
  { file: 'test/observability-access-log.test.ts', suite: 'access log', test: "proxy.log.level warn keeps only the failed requests in the access log", reason: ACCESS_LOG },
  { file: 'test/observability-access-log.test.ts', suite: 'access log', test: "the cache result is recorded: a miss, then a hit with no instance and no upstream time", reason: ACCESS_LOG },
  { file: 'test/observability-access-log.test.ts', suite: 'access log', test: "with sampling 0, successful requests are not logged but errors and 5xx always are", reason: ACCESS_LOG },
  { file: 'test/observability-access-log.test.ts', suite: 'access log', test: "with sampling 0.5, about half of the successful requests are logged", reason: ACCESS_LOG },
  { file: 'test/observability-metrics.test.ts', suite: 'metrics after known traffic', test: "a reload counts, and the series of a service and an instance that left disappear", reason: IN_PROCESS },
  { file: 'test/plugins-cli.test.ts', test: "a SIGHUP reload imports an edited plugin file, and keeps the running one when the edit is broken", reason: BUN_MODULE_CACHE },
  { file: 'test/resilience-failover.test.ts', test: "killing an instance mid-load fails no request; it is ejected, and readmitted once it is back", reason: IN_PROCESS },
  { file: 'test/resilience-health.test.ts', test: "a reload keeps the health of instances that stay, and removing the check puts them back", reason: IN_PROCESS },
  { file: 'test/resilience-health.test.ts', test: "an instance failing its health check leaves rotation after N probes and comes back after M good ones", reason: IN_PROCESS },
  { file: 'test/resilience-health.test.ts', test: "expectedStatus, host and path are honoured: a 204 list and a custom Host", reason: IN_PROCESS },
  { file: 'test/resilience-health.test.ts', test: "probes never pile up on an instance that does not answer", reason: IN_PROCESS },
  { file: 'test/resilience-instance-death.test.ts', test: "a request with a body in flight on an instance that dies may fail, and none is sent to it later", reason: IN_PROCESS },
  { file: 'test/resilience-instance-death.test.ts', test: "an instance SIGKILLed under load (c=128) fails no GET, HEAD or OPTIONS and gets nothing once seen dead", reason: IN_PROCESS },
  { file: 'test/resilience-instance-death.test.ts', test: "an instance SIGKILLed under load (c=32) fails no GET, HEAD or OPTIONS and gets nothing once seen dead", reason: IN_PROCESS },
  { file: 'test/resilience-instance-death.test.ts', test: "with every instance answering 503, upstream attempts stay within 1.25 x the client requests", reason: IN_PROCESS },
  { file: 'test/resilience-limits.test.ts', test: "beyond maxConnections and maxPending, requests get a fast 503 with Retry-After; the queued ones are served", reason: SAME_EVENT_LOOP },
  { file: 'test/resilience-malformed.test.ts', test: "a chunked body that turns malformed while it streams: the client gets 400, the instance never gets a complete request", reason: BUN_PARSER },
  { file: 'test/resilience-malformed.test.ts', test: "a request line claiming HTTP/2.0 gets 505 and a closed connection, and never reaches an instance", reason: BUN_PARSER },
  { file: 'test/resilience-malformed.test.ts', test: "malformed and smuggling requests get 400 and a closed connection, and never reach an instance", reason: BUN_PARSER },
  { file: 'test/resilience-malformed.test.ts', test: "requests the listener refuses are counted in kubeproxy_errors_total by cause and logged as warnings", reason: BUN_PARSER },
  { file: 'test/resilience-recovery.test.ts', test: "an instance ejected for its 503s that comes back healthy while the other is dead gets traffic at once", reason: IN_PROCESS },
  { file: 'test/resilience-reload.test.ts', test: "a reload whose snapshot cannot be built changes nothing: same instances, weights, discovery and routes", reason: IN_PROCESS },
  { file: 'test/resilience-reload.test.ts', test: "in-flight requests and open WebSockets finish on the config they started with", reason: IN_PROCESS },
];

/** The end-to-end files that start a proxy (through the helpers), less the skipped files. */
export function bunLegFiles(root) {
  const skipped = new Set(BUN_LEG_SKIPS.filter((s) => s.test === undefined).map((s) => s.file));
  return readdirSync(join(root, 'test'))
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => `test/${f}`)
    .filter((f) => !skipped.has(f) && /helpers\/(proxy|child)\.ts'/.test(readFileSync(join(root, f), 'utf8')))
    .sort();
}

/**
 * The node:test flag that skips the listed tests. Node >= 22 has --test-skip-pattern. Node 20 only
 * has --test-name-pattern, and runs a test when its own name or any ancestor's matches: the
 * pattern matches every name but the skipped tests, their suites and the root test ('<root>');
 * a suite still runs the tests in it that match by their own name.
 */
export function bunLegSkipFlag(nodeMajor) {
  const quote = (n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const tests = BUN_LEG_SKIPS.filter((s) => s.test !== undefined);
  const names = tests.map((s) => quote(s.test));
  if (nodeMajor >= 22) return `--test-skip-pattern=^(?:.* )?(?:${names.join('|')})$`;
  const suites = [...new Set(tests.flatMap((s) => (s.suite === undefined ? [] : [quote(s.suite)])))];
  return `--test-name-pattern=^(?!(?:${[...names, ...suites, '<root>'].join('|')})$)`;
}
