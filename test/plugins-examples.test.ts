/**
 * The example plugins of examples/plugins/, each loaded the way a user loads it (a path relative
 * to the config's directory) into a real proxy in front of a real origin.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startProxy, type ProxyHandle } from '../src/index.ts';
import { rawRequest, request } from './helpers/http.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

const EXAMPLES = fileURLToPath(new URL('../examples', import.meta.url));

async function proxyWith(t: TestContext, origin: Origin, proxy: Record<string, unknown>, service: Record<string, unknown> = {}): Promise<ProxyHandle> {
  const handle = await startProxy(
    {
      proxy: {
        listen: { address: '127.0.0.1', port: 0 },
        admin: { address: '127.0.0.1', port: 0 },
        ...proxy,
        services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: origin.port }], ...service }],
      },
    },
    { baseDir: EXAMPLES },
  );
  t.after(() => handle.stop());
  return handle;
}

async function echoOrigin(t: TestContext): Promise<Origin> {
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url, team: req.headers['x-team'] ?? null, auth: req.headers.authorization ?? null }));
  });
  t.after(() => origin.close());
  return origin;
}

test('team-header: the origin sees X-Team and the client sees X-Served-By', async (t) => {
  const origin = await echoOrigin(t);
  const proxy = await proxyWith(t, origin, { plugins: [{ module: './plugins/team-header.mjs', options: { team: 'blue' } }] });
  const r = await request(proxy.port, { host: 'web.test', path: '/x' });
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.text).team, 'blue');
  assert.equal(r.headers['x-served-by'], 'kubeproxy');
});

test('bearer-auth: no token or a wrong one gets a 401 with WWW-Authenticate and reaches no instance; the right one passes', async (t) => {
  const origin = await echoOrigin(t);
  const proxy = await proxyWith(t, origin, {
    plugins: [{ module: './plugins/bearer-auth.mjs', options: { tokens: ['s3cret-token'], realm: 'api', publicPaths: ['/healthz'] } }],
  });
  const none = await request(proxy.port, { host: 'web.test', path: '/private' });
  assert.equal(none.status, 401);
  assert.equal(none.headers['www-authenticate'], 'Bearer realm="api"');
  assert.equal(none.headers['cache-control'], 'no-store');
  assert.equal(none.text, 'a bearer token is required\n');
  const wrong = await request(proxy.port, { host: 'web.test', path: '/private', headers: { authorization: 'Bearer s3cret-tokeN' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers['www-authenticate'], 'Bearer realm="api", error="invalid_token"');
  assert.equal(origin.requests.length, 0, 'the origin saw none of the refused requests');

  const right = await request(proxy.port, { host: 'web.test', path: '/private', headers: { authorization: 'Bearer s3cret-token' } });
  assert.equal(right.status, 200);
  assert.equal(JSON.parse(right.text).auth, 'Bearer s3cret-token');
  const open = await request(proxy.port, { host: 'web.test', path: '/healthz' });
  assert.equal(open.status, 200, 'a public path needs no token');
  for (const sneaky of ['/healthz/../private', '/healthz/%2e%2e/private', '/healthz/..%2fprivate', '/healthz/.%2E/private']) {
    assert.equal((await request(proxy.port, { host: 'web.test', path: sneaky })).status, 401, `${sneaky} is not public`);
  }
  assert.equal(origin.requests.length, 2);
});

test('bearer-auth refused requests are never answered from the cache', async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.setHeader('cache-control', 'public, max-age=300');
    res.end('secret page');
  });
  t.after(() => origin.close());
  const proxy = await proxyWith(t, origin, { plugins: [{ module: './plugins/bearer-auth.mjs', options: { tokens: ['t0k'] } }] });
  const fill = await request(proxy.port, { host: 'web.test', path: '/page', headers: { authorization: 'Bearer t0k' } });
  assert.equal(fill.text, 'secret page');
  const anonymous = await request(proxy.port, { host: 'web.test', path: '/page' });
  assert.equal(anonymous.status, 401, 'a stored page is not served to a request without the token');
});

test('bearer-auth guards WebSocket upgrades too: 401 without the token, 101 through to the instance with it', async (t) => {
  const origin = await echoOrigin(t);
  const upgraded: string[] = [];
  origin.server.on('upgrade', (req, socket) => {
    upgraded.push(String(req.url));
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
  });
  const proxy = await proxyWith(t, origin, { plugins: [{ module: './plugins/bearer-auth.mjs', options: { tokens: ['ws-token'] } }] });
  const upgrade = (auth: string) =>
    rawRequest(proxy.port, `GET /chat HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n${auth}\r\n`, 5000);
  const refused = await upgrade('');
  assert.match(refused, /^HTTP\/1\.1 401 /);
  assert.match(refused, /www-authenticate: Bearer realm="kubeproxy"/i);
  assert.deepEqual(upgraded, [], 'the instance saw no upgrade');
  const accepted = await upgrade('Authorization: Bearer ws-token\r\n');
  assert.match(accepted, /^HTTP\/1\.1 101 /);
  assert.deepEqual(upgraded, ['/chat']);
});

test('path-rewrite: the origin sees the rewritten path, query kept, and the cache keys by it', async (t) => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    res.setHeader('cache-control', 'max-age=300');
    res.end(`origin saw ${req.url}`);
  });
  t.after(() => origin.close());
  const proxy = await proxyWith(t, origin, { plugins: [{ module: './plugins/path-rewrite.mjs', options: { match: '^/api/v1/', replace: '/' } }] });
  const a = await request(proxy.port, { host: 'web.test', path: '/api/v1/users?page=2' });
  assert.equal(a.text, 'origin saw /users?page=2');
  // Another spelling of the same rewritten path is the same cache entry: the origin is not asked again.
  const b = await request(proxy.port, { host: 'web.test', path: '/users?page=2' });
  assert.equal(b.text, 'origin saw /users?page=2');
  assert.equal(origin.requests.length, 1, 'the second request was a cache hit on the rewritten key');
  assert.match(String(b.headers['cache-status']), /hit/);
});

test('service plugins run after the proxy-level ones, and only for their service', async (t) => {
  const origin = await echoOrigin(t);
  const proxy = await proxyWith(
    t,
    origin,
    { plugins: [{ module: './plugins/team-header.mjs', options: { team: 'proxy-wide' } }] },
    { plugins: [{ module: './plugins/team-header.mjs', options: { team: 'web-team' } }] },
  );
  const r = await request(proxy.port, { host: 'web.test', path: '/' });
  assert.equal(JSON.parse(r.text).team, 'web-team', 'the service plugin ran last');
});
