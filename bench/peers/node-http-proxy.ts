// http-proxy (node-http-proxy) with a keep-alive agent, its usual production setup.
// Env: PORT, UPSTREAM.
import http from 'node:http';
import httpProxy from 'http-proxy';

const proxy = httpProxy.createProxyServer({
  target: process.env.UPSTREAM ?? 'http://127.0.0.1:19001',
  agent: new http.Agent({ keepAlive: true, maxSockets: 256 }),
});
proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502).end();
  else res.destroy();
});

http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => proxy.web(req, res))
  .listen(Number(process.env.PORT), '127.0.0.1');

const ppid = process.ppid;
setInterval(() => { if (process.ppid !== ppid) process.exit(0); }, 1000).unref();
