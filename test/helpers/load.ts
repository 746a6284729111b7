/** A small, bounded load generator for e2e tests: N requests, C at a time, every outcome kept. */
import { Agent, request as httpRequest } from 'node:http';

export interface Outcome {
  /** Response status, or 0 when the request failed without one. */
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** The error code or message when status is 0. */
  error?: string;
  /** Index of the request, in the order requests were started. */
  index: number;
}

export interface LoadOptions {
  total: number;
  concurrency: number;
  host: string;
  path?: string | ((index: number) => string);
  method?: string | ((index: number) => string);
  /** Keep-alive connections to the proxy (default) or a new connection per request. */
  keepAlive?: boolean;
  /** Called before each request is started; return false to stop starting new ones. */
  before?: (index: number) => boolean | Promise<boolean>;
  timeoutMs?: number;
}

export async function runLoad(port: number, opts: LoadOptions): Promise<Outcome[]> {
  const agent = opts.keepAlive === false ? false : new Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const outcomes: Outcome[] = [];
  let next = 0;
  let stopped = false;
  const worker = async (): Promise<void> => {
    while (!stopped && next < opts.total) {
      const index = next++;
      if (opts.before !== undefined && !(await opts.before(index))) {
        stopped = true;
        return;
      }
      const path = typeof opts.path === 'function' ? opts.path(index) : (opts.path ?? '/');
      outcomes.push(await one(port, opts, path, index, agent));
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  if (agent !== false) agent.destroy();
  return outcomes.sort((a, b) => a.index - b.index);
}

function one(port: number, opts: LoadOptions, path: string, index: number, agent: Agent | false): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: typeof opts.method === 'function' ? opts.method(index) : (opts.method ?? 'GET'), headers: { host: opts.host }, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), headers: res.headers, index }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, body: '', headers: {}, error: err.code ?? err.message, index }));
    });
    req.setTimeout(opts.timeoutMs ?? 20_000, () => req.destroy(Object.assign(new Error('timed out'), { code: 'TEST_TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, body: '', headers: {}, error: err.code ?? err.message, index }));
    req.end();
  });
}

/** `{200: 290, 503: 10}` — for assertion messages. */
export function statusCounts(outcomes: readonly Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.status === 0 ? `error:${o.error}` : String(o.status);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** Resolves when `cond()` is true, polling every `everyMs`; rejects after `timeoutMs`. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
