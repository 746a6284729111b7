// An origin server in a process of its own, so a test can SIGKILL it as a node dies in a cluster.
// Usage: node origin-process.mjs <name> <port|0> [mode]; prints {"port":N} once listening.
// Modes: "ok" (200, body = name), "503" (every answer 503).
import { createServer } from 'node:http';

const [name = 'origin', portArg = '0', mode = 'ok'] = process.argv.slice(2);
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const status = mode === '503' ? 503 : 200;
    res.writeHead(status, { 'content-type': 'text/plain', 'x-origin': name });
    res.end(status === 200 ? name : `${name} is unavailable`);
  });
});
server.keepAliveTimeout = 30_000;
server.listen(Number(portArg), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
