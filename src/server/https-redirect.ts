/**
 * `proxy.tls.redirectHttp`: the plain listener's answer to every request, a 308 to the same URL
 * over https (308 keeps the method and body, RFC 9110 §15.4.9), on the TLS listener's port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { ProxyError } from '../errors.ts';
import type { RequestHandlers } from './listener.ts';
import { errorBody, errorHead } from './respond.ts';
import { parseTarget } from './validate.ts';

export function httpsRedirect(tlsPort: () => number): RequestHandlers {
  const redirect = (req: IncomingMessage, res: ServerResponse): void => {
    // The body is not read: the client sends it again to the new URL.
    req.resume();
    const target = parseTarget(req);
    if (typeof target === 'string') {
      const err = new ProxyError('bad_request', target);
      const body = errorBody(err);
      res.writeHead(err.status, errorHead(err, randomUUID(), body));
      res.end(body);
      return;
    }
    const port = tlsPort();
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    const location = `https://${host}${port === 443 ? '' : `:${port}`}${target.path}`;
    res.writeHead(308, { location, 'content-length': '0' });
    res.end();
  };
  return { onRequest: redirect, onCheckContinue: redirect };
}
