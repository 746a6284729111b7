/**
 * The status page on the admin port: GET / (the HTML shell), /status-page.js and
 * /status-page.css, built by `npm run build` from admin/page/ into dist/admin/page/. The script
 * polls /status every second and draws it. Everything comes from this listener (clusters often
 * have no internet), and the Content-Security-Policy allows nothing else: no inline script or
 * style, no other origin, no frames, no forms.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export const STATUS_PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** src/admin/ and dist/admin/ are both two levels below the package root, where dist/ is. */
const BUILT = new URL('../../dist/admin/page/', import.meta.url);

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>KubeProxy status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/status-page.css">
<script src="/status-page.js" defer></script>
</head>
<body>
<header>
  <h1>KubeProxy</h1>
  <span id="readiness" class="pill">loading</span>
  <span id="summary" class="muted"></span>
  <span id="updated" class="muted"></span>
</header>
<p id="problem" class="banner" hidden></p>
<main>
  <section id="totals" class="cards" aria-label="totals"></section>
  <section>
    <h2>Services</h2>
    <div class="scroll"><table id="services">
      <thead><tr><th>Service</th><th class="wide">Domains</th><th class="wide">Balancer</th><th class="num">Req/s</th><th class="num">Errors</th><th class="num">p50</th><th class="num">p99</th><th class="num">In flight</th><th class="num">Retries</th><th class="num" title="retries the retry budget refused, since start">Budget refusals</th><th class="num">Instances up</th></tr></thead>
    </table></div>
  </section>
  <section>
    <h2>Instances</h2>
    <div class="tools">
      <input id="filter" type="search" placeholder="filter by service or address" aria-label="filter instances">
      <label><input id="problems" type="checkbox"> only instances out of rotation</label>
      <span id="instance-count" class="muted"></span>
    </div>
    <div class="scroll"><table id="instances">
      <thead><tr><th>Service</th><th>Instance</th><th>State</th><th class="num">In flight</th><th class="num">Ejections</th><th>Last error</th></tr></thead>
    </table></div>
  </section>
  <div class="pair">
    <section>
      <h2>Cache</h2>
      <dl id="cache" class="facts"></dl>
    </section>
    <section>
      <h2>Config</h2>
      <dl id="config" class="facts"></dl>
      <div class="scroll"><table id="workers" hidden>
        <thead><tr><th>Worker</th><th class="num">pid</th><th>State</th><th class="num">Restarts</th><th class="num">Requests</th><th class="num">In flight</th></tr></thead>
      </table></div>
    </section>
  </div>
</main>
<footer class="muted">Read-only view of <a href="/status">/status</a>, refreshed every second. Metrics: <a href="/metrics">/metrics</a>.</footer>
</body>
</html>
`;

const SECURITY_HEADERS = [
  'content-security-policy',
  STATUS_PAGE_CSP,
  'x-content-type-options',
  'nosniff',
  'referrer-policy',
  'no-referrer',
  'cache-control',
  'no-store',
];

/** Built files, read once (a missing build is told at each request, so a later build is picked up). */
const assets = new Map<string, Buffer>();

function asset(name: string): Buffer | undefined {
  let body = assets.get(name);
  if (body === undefined) {
    try {
      body = readFileSync(new URL(name, BUILT));
    } catch {
      return undefined;
    }
    assets.set(name, body);
  }
  return body;
}

function serve(res: ServerResponse, type: string, body: Buffer | string | undefined): void {
  let status = 200;
  if (body === undefined) {
    status = 503;
    type = 'text/plain; charset=utf-8';
    body = 'the status page is not built: run `npm run build`\n';
  }
  res.writeHead(status, ['content-type', type, 'content-length', String(Buffer.byteLength(body)), ...SECURITY_HEADERS]);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Adds the page's three routes through `route` (AdminServer.route, or the cluster primary's table). */
export function registerStatusPage(route: (key: string, handler: Route) => void): void {
  route('GET /', (_req, res) => serve(res, 'text/html; charset=utf-8', HTML));
  route('GET /status-page.js', (_req, res) => serve(res, 'text/javascript; charset=utf-8', asset('status-page.js')));
  route('GET /status-page.css', (_req, res) => serve(res, 'text/css; charset=utf-8', asset('status-page.css')));
}
