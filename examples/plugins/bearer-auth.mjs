// Answers 401 unless the request carries `Authorization: Bearer <token>` with one of the allowed
// tokens (RFC 6750 §2.1, §3). No instance is contacted and the cache is not consulted for a refused
// request. Tokens are compared in constant time, so response timing does not reveal how much of a
// guess was right.
//   proxy:
//     plugins:
//       - module: ./plugins/bearer-auth.mjs
//         options:
//           tokensEnv: API_TOKENS     # comma-separated tokens from the environment (keeps them out of the config)
//           # tokens: [dev-token]     # or listed here
//           realm: api
//           publicPaths: [/healthz]   # path prefixes that need no token
//           forwardToken: false       # remove Authorization before the request goes upstream
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * A dot segment (RFC 3986 §3.3), also percent-encoded or around an encoded or back slash: an
 * instance that resolves it could serve `/healthz/../admin` as `/admin`, so such a path is never public.
 */
const DOT_SEGMENT = /(?:^|\/|\\|%2f|%5c)(?:\.|%2e){1,2}(?:\/|\\|%2f|%5c|\?|$)/i;

/**
 * @typedef {{ tokens?: string[], tokensEnv?: string, realm?: string, publicPaths?: string[], forwardToken?: boolean }} BearerOptions
 * @type {import('kubeproxy').PluginFactory<BearerOptions>}
 */
export default function bearerAuth(options) {
  const fromEnv = options.tokensEnv ? (process.env[options.tokensEnv] ?? '').split(',') : [];
  const tokens = [...(options.tokens ?? []), ...fromEnv].map((t) => t.trim()).filter((t) => t !== '');
  if (tokens.length === 0) throw new Error('options: no token (give tokens, or tokensEnv naming a non-empty variable)');
  // Digests have one length, which timingSafeEqual needs; comparing digests hides the token's length too.
  const digests = tokens.map(digest);
  const realm = String(options.realm ?? 'kubeproxy').replace(/["\\]/g, '');
  const publicPaths = options.publicPaths ?? [];
  const forwardToken = options.forwardToken ?? true;

  return {
    name: 'bearer-auth',
    onRequest(ctx) {
      if (isPublic(ctx.request.path, publicPaths)) return;
      const header = ctx.request.headers.get('authorization');
      const m = header === null ? null : /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
      if (m === null) {
        // RFC 6750 §3.1: a request without credentials gets the challenge and no error code.
        return ctx.respond(401, 'a bearer token is required\n', { 'www-authenticate': `Bearer realm="${realm}"`, 'cache-control': 'no-store' });
      }
      const given = digest(m[1]);
      let ok = false;
      // Every token is compared (no early exit): the time taken does not say which one matched.
      for (const d of digests) ok = timingSafeEqual(given, d) || ok;
      if (!ok) {
        return ctx.respond(401, 'the bearer token is not valid\n', {
          'www-authenticate': `Bearer realm="${realm}", error="invalid_token"`,
          'cache-control': 'no-store',
        });
      }
      if (!forwardToken) ctx.request.headers.delete('authorization');
    },
  };
}

/** `/healthz` makes `/healthz`, `/healthz?x` and `/healthz/...` public; `/static/` everything under it. */
function isPublic(path, publicPaths) {
  if (publicPaths.length === 0 || DOT_SEGMENT.test(path)) return false;
  return publicPaths.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`) || path.startsWith(`${p}?`));
}

function digest(token) {
  return createHash('sha256').update(token).digest();
}
