/**
 * The status page on the admin port, in a real browser: headless Chromium (Debian's `chromium`,
 * listed in .ci/apt-packages) driven by playwright-core. A real proxy with origin processes;
 * the page must show services and instances, follow an instance that dies within 5 s, load
 * nothing from anywhere but the admin port under its Content-Security-Policy, read well at
 * 1280 px and 390 px in both themes, and draw 200 services × 50 instances without freezing.
 * The 1280 px screenshot is docs/status-page.png (the README shows it).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { request } from './helpers/http.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { spawnOrigin, type OriginProcess } from './helpers/origin-process.ts';
import { startProxy, type TestProxy } from './helpers/proxy.ts';
import { spawnProxy, type ChildProxy } from './helpers/child.ts';

// The callbacks given to page.evaluate and waitForFunction run in the browser; this file is
// compiled without the DOM library, so the few browser globals they use are declared here.
declare const document: any;
declare const getComputedStyle: (el: unknown) => { backgroundColor: string };

const CHROMIUM = process.env.KUBEPROXY_TEST_CHROMIUM ?? '/usr/bin/chromium';
/**
 * The README's screenshot is rewritten only when asked (KUBEPROXY_UPDATE_SCREENSHOTS=1), so a
 * test run leaves the checkout clean; otherwise the screenshots go to the browser's temp profile.
 */
const UPDATE_SCREENSHOTS = process.env.KUBEPROXY_UPDATE_SCREENSHOTS === '1';
const README_SHOT = fileURLToPath(new URL('../docs/status-page.png', import.meta.url));

let profile: string;
let browser: BrowserContext;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`headless Chromium is not installed at ${CHROMIUM}: install the Debian package "chromium" (it is in .ci/apt-packages), or set KUBEPROXY_TEST_CHROMIUM`);
  }
  profile = await mkdtemp(join(tmpdir(), 'kubeproxy-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    colorScheme: 'light',
  });
});

after(async () => {
  await browser?.close();
  if (profile !== undefined) await rm(profile, { recursive: true, force: true });
});

/** Opens the admin page, recording every URL the page asks for and every console error. */
async function open(adminPort: number): Promise<{ page: Page; urls: string[]; errors: string[]; csp: string | undefined }> {
  const page = await browser.newPage();
  const urls: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => urls.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  const res = await page.goto(`http://127.0.0.1:${adminPort}/`);
  assert.equal(res?.status(), 200);
  return { page, urls, errors, csp: res?.headers()['content-security-policy'] };
}

/** The text of the state cell of an instance row ("service\ninstance" is the row's key). */
function stateOf(page: Page, service: string, id: string): Promise<string | null> {
  return page.evaluate(
    ([s, i]) => {
      for (const tr of document.querySelectorAll('#instances tbody tr')) {
        if (tr.dataset.key === `${s}\n${i}`) return tr.cells[2]?.textContent ?? null;
      }
      return null;
    },
    [service, id] as const,
  );
}

describe('the status page of a running proxy', () => {
  let shopOrigins: OriginProcess[];
  let api: Origin;
  let proxy: TestProxy;
  let traffic: NodeJS.Timeout;

  before(async () => {
    shopOrigins = await Promise.all(['shop-a', 'shop-b', 'shop-c'].map((n) => spawnOrigin(n)));
    api = await startOrigin((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=600' });
      res.end(`api ${req.url}`);
    });
    proxy = await startProxy({
      cache: { enabled: true },
      services: [
        {
          name: 'shop',
          domains: ['shop.test', 'www.shop.test'],
          loadBalancer: 'round-robin',
          hosts: shopOrigins.map((o) => ({ port: o.port })),
          healthCheck: { path: '/', interval: '200ms', unhealthyThreshold: 1, healthyThreshold: 1 },
        },
        { name: 'api', domain: 'api.test', loadBalancer: 'least-request', hosts: [{ port: api.port }] },
      ],
    });
    // Steady traffic, so the last minute has requests, latencies and cache hits to show.
    let n = 0;
    traffic = setInterval(() => {
      n++;
      void request(proxy.port, { path: `/item/${n % 4}`, headers: { host: 'api.test' } }).catch(() => {});
      void request(proxy.port, { path: `/p/${n}`, headers: { host: 'shop.test' } }).catch(() => {});
    }, 20);
  });

  after(async () => {
    clearInterval(traffic);
    await proxy?.close();
    await api?.close();
    await Promise.all((shopOrigins ?? []).map((o) => o.kill()));
  });

  test('shows every service and instance, turns a killed instance unhealthy within 5 s, and loads nothing from elsewhere', async () => {
    const { page, urls, errors, csp } = await open(proxy.adminPort);
    assert.match(csp ?? '', /default-src 'none'/);
    assert.match(csp ?? '', /script-src 'self'/);
    assert.match(csp ?? '', /style-src 'self'/);
    assert.match(csp ?? '', /connect-src 'self'/);
    assert.doesNotMatch(csp ?? '', /unsafe-inline|unsafe-eval/);

    await page.waitForSelector('#services tbody tr');
    const services = await page.$$eval('#services tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    assert.deepEqual(
      services.map((r) => r[0]),
      ['shop', 'api'],
    );
    const shop = services[0]!;
    assert.equal(shop[1], 'shop.test, www.shop.test');
    assert.equal(shop[2], 'round-robin');
    assert.equal(shop[10], '3 / 3');
    for (const o of shopOrigins) assert.match((await stateOf(page, 'shop', `127.0.0.1:${o.port}`)) ?? '', /^healthy$/);

    // The last minute fills in: requests per second and a cache hit ratio above zero.
    await page.waitForFunction(() => {
      const cells = document.querySelectorAll('#services tbody tr')[1]?.querySelectorAll('td');
      return cells !== undefined && cells[3]!.textContent !== '0' && cells[5]!.textContent !== '–';
    });
    await page.waitForFunction(() => /[1-9]/.test(document.querySelector('#totals .card:nth-child(3) strong')?.textContent ?? ''));

    const victim = shopOrigins[1]!;
    const id = `127.0.0.1:${victim.port}`;
    const killedAt = performance.now();
    await victim.kill();
    await page.waitForFunction(
      (key) => {
        for (const tr of document.querySelectorAll('#instances tbody tr')) {
          if (tr.dataset.key === key) return /unhealthy|ejected/.test(tr.cells[2]?.textContent ?? '');
        }
        return false;
      },
      `shop\n${id}`,
      { timeout: 5000 },
    );
    const seenAfterMs = Math.round(performance.now() - killedAt);
    console.log(`# status page: killed instance shown out of rotation after ${seenAfterMs} ms`);
    await page.waitForFunction(() => document.querySelector('#services tbody tr')?.querySelectorAll('td')[10]?.textContent === '2 / 3');

    // Let one more refresh settle the cards, then the screenshot the README shows.
    await page.waitForTimeout(1100);
    const shot = await page.screenshot({ path: UPDATE_SCREENSHOTS ? README_SHOT : join(profile, 'status-page.png'), fullPage: true });
    assert.ok(shot.length > 10_000, 'the screenshot has content');

    const admin = `http://127.0.0.1:${proxy.adminPort}/`;
    const elsewhere = urls.filter((u) => !u.startsWith(admin) && !u.startsWith('data:'));
    assert.deepEqual(elsewhere, [], 'every request the page made went to the admin port');
    assert.ok(urls.includes(`${admin}status`), 'the page polled /status');
    assert.deepEqual(errors, [], 'no console error (a CSP violation would be one)');
    await page.close();
  });

  test('follows the system theme and fits a phone (390 px) as well as 1280 px', async () => {
    const { page } = await open(proxy.adminPort);
    await page.waitForSelector('#instances tbody tr');
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const light = await background();
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await background();
    assert.notEqual(light, dark);
    const luminance = (rgb: string) => rgb.match(/\d+/g)!.slice(0, 3).reduce((n, v) => n + Number(v), 0);
    assert.ok(luminance(dark) < 150 && luminance(light) > 600, `light ${light}, dark ${dark}`);

    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: 844 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.equal(overflow, 0, `the page itself does not scroll sideways at ${width} px (wide tables scroll in their box)`);
      const visible = await page.isVisible('#services tbody tr td:first-child');
      assert.ok(visible, `service names are visible at ${width} px`);
    }
    await page.screenshot({ path: join(process.env.KUBEPROXY_SCREENSHOTS_DIR ?? profile, 'status-page-phone-dark.png'), fullPage: true });
    await page.close();
  });
});

describe('the status page of a cluster (workers: 2)', () => {
  let origins: OriginProcess[];
  let proxy: ChildProxy;

  before(async () => {
    origins = await Promise.all(['one', 'two'].map((n) => spawnOrigin(n)));
    proxy = await spawnProxy({
      workers: 2,
      services: [
        {
          name: 'web',
          domain: 'web.test',
          hosts: origins.map((o) => ({ port: o.port })),
          healthCheck: { path: '/', interval: '200ms', unhealthyThreshold: 1, healthyThreshold: 1 },
        },
      ],
    });
  });

  after(async () => {
    await proxy?.cleanup();
    await Promise.all((origins ?? []).map((o) => o.kill()));
  });

  test("shows the primary's merged view: each instance once, both workers, and an instance that died", async () => {
    const { page, errors } = await open(proxy.adminPort);
    await page.waitForFunction(() => document.querySelectorAll('#workers tbody tr').length === 2);
    const workers = await page.$$eval('#workers tbody tr td:nth-child(3)', (cells) => cells.map((c) => c.textContent ?? ''));
    assert.deepEqual(workers, ['ready', 'ready']);
    assert.equal(await page.textContent('#summary').then((t) => t?.startsWith('2 workers')), true);
    assert.equal(await page.$$eval('#instances tbody tr', (rows) => rows.length), 2, 'an instance both workers use is one row');
    const id = `127.0.0.1:${origins[0]!.port}`;
    await origins[0]!.kill();
    await page.waitForFunction(
      (key) => {
        for (const tr of document.querySelectorAll('#instances tbody tr')) {
          if (tr.dataset.key === key) return /unhealthy|ejected/.test(tr.cells[2]?.textContent ?? '');
        }
        return false;
      },
      `web\n${id}`,
      { timeout: 5000 },
    );
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('the status page at 200 services × 50 instances', () => {
  let proxy: TestProxy;
  const SERVICES = 200;
  const INSTANCES = 50;

  before(async () => {
    proxy = await startProxy({
      services: Array.from({ length: SERVICES }, (_, s) => ({
        name: `svc-${s}`,
        domain: `svc-${s}.test`,
        // Never asked: no request goes to these in this test.
        hosts: Array.from({ length: INSTANCES }, (_, i) => ({ address: `10.${s >> 8}.${s & 255}.${i + 1}`, port: 8080 })),
      })),
    });
  });

  after(() => proxy?.close());

  test('draws 10,000 instance rows without freezing and refreshes them in place', async () => {
    const { page } = await open(proxy.adminPort);
    const started = Date.now();
    await page.waitForFunction((n) => document.querySelectorAll('#instances tbody tr').length === n, SERVICES * INSTANCES, { timeout: 15_000 });
    const firstMs = Date.now() - started;
    // The page's own figure: fetch + draw of the latest refresh (an update in place).
    await page.waitForFunction(() => Number(document.body.dataset.draws ?? '0') >= 3, undefined, { timeout: 10_000 });
    const refreshMs = Number(await page.evaluate(() => document.body.dataset.refreshMs));
    const drawMs = Number(await page.evaluate(() => document.body.dataset.drawMs));
    // The page stays responsive: typing into the filter hides rows at once.
    const filterStarted = Date.now();
    await page.fill('#filter', 'svc-199');
    await page.waitForFunction(() => document.querySelector('#instance-count')?.textContent === '50 of 10,000 instances');
    const filterMs = Date.now() - filterStarted;
    console.log(`# status page at ${SERVICES}×${INSTANCES}: first draw ${firstMs} ms, refresh ${refreshMs} ms (of which drawing in place ${drawMs} ms), filter ${filterMs} ms`);
    assert.ok(firstMs < 10_000, `first draw took ${firstMs} ms`);
    assert.ok(refreshMs < 1000, `a refresh took ${refreshMs} ms: it must stay under the 1 s poll interval`);
    assert.ok(filterMs < 2000, `filtering took ${filterMs} ms`);
    await page.close();
  });
});
