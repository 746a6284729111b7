// fastify 5 + @fastify/http-proxy (reply-from over undici), default options.
// Env: PORT, UPSTREAM.
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
await app.register(proxy, { upstream: process.env.UPSTREAM ?? 'http://127.0.0.1:19001' });
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });

const ppid = process.ppid;
setInterval(() => { if (process.ppid !== ppid) process.exit(0); }, 1000).unref();
