// The cache-hit ceiling: a node:http server answering the /cacheable body from memory.
// Env: PORT.
import http from 'node:http';

const BODY = Buffer.from('Hello, World!');
const HEADERS = { 'content-type': 'text/plain', 'content-length': BODY.length, 'cache-control': 'public, max-age=3600' };

http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  req.resume();
  res.writeHead(200, HEADERS);
  res.end(BODY);
}).listen(Number(process.env.PORT), '127.0.0.1');

const ppid = process.ppid;
setInterval(() => { if (process.ppid !== ppid) process.exit(0); }, 1000).unref();
