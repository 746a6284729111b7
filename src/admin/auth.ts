/**
 * Who may change state through the admin port. Reads (/healthz, /readyz, /metrics, /status) are
 * open; every other method (POST /cache/purge today) needs `Authorization: Bearer <token>`
 * (RFC 6750 §2.1) matching `proxy.admin.token` (or the content of `proxy.admin.tokenFile`,
 * which config/load.ts reads into `token` at every load and reload).
 *
 * - no token configured: 403 naming the keys that enable these endpoints;
 * - no or a wrong token: 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3).
 *
 * The comparison is over SHA-256 digests with crypto.timingSafeEqual: equal lengths whatever the
 * client sends, and a time that does not depend on how many leading bytes match.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** Methods that only read; every other one changes state and needs the token. */
export function isReadOnly(method: string | undefined): boolean {
  return method === 'GET' || method === 'HEAD';
}

export interface Refusal {
  status: 401 | 403;
  message: string;
  headers: string[];
}

const REALM = 'Bearer realm="kubeproxy-admin"';

/** undefined when the request may go on, otherwise the answer to give. */
export function refuse(headers: IncomingHttpHeaders, token: string | undefined): Refusal | undefined {
  if (token === undefined) {
    return {
      status: 403,
      message: 'state-changing admin endpoints are disabled: set proxy.admin.token or proxy.admin.tokenFile to enable them',
      headers: [],
    };
  }
  const given = bearer(headers.authorization);
  if (given === undefined) {
    return { status: 401, message: 'this admin endpoint needs "Authorization: Bearer <token>" (proxy.admin.token)', headers: ['www-authenticate', REALM] };
  }
  if (!timingSafeEqual(digest(given), digest(token))) {
    return { status: 401, message: 'the bearer token is not the one configured in proxy.admin', headers: ['www-authenticate', `${REALM}, error="invalid_token"`] };
  }
  return undefined;
}

/** The credentials of `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1). */
function bearer(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const match = /^bearer +(\S+) *$/i.exec(value);
  return match?.[1];
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
