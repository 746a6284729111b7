// Rewrites the request path before routing and the cache (NGINX `rewrite`, Envoy `regex_rewrite`):
// the instance sees the new path, and the cache keys the response by it. The query string is kept.
//   proxy:
//     plugins:
//       - module: ./plugins/path-rewrite.mjs
//         options: { match: "^/api/v1/", replace: "/" }   # /api/v1/users?x=1 -> /users?x=1

/** @type {import('kubeproxy').PluginFactory<{ match?: string, replace?: string }>} */
export default function pathRewrite(options) {
  if (typeof options.match !== 'string' || options.match === '') throw new Error('options.match: expected a regular expression');
  if (typeof options.replace !== 'string') throw new Error('options.replace: expected a string (may use $1, $2, ...)');
  const match = new RegExp(options.match);
  const replace = options.replace;
  return {
    name: 'path-rewrite',
    onRequest(ctx) {
      const full = ctx.request.path;
      const q = full.indexOf('?');
      const path = q === -1 ? full : full.slice(0, q);
      const rewritten = path.replace(match, replace);
      if (rewritten === path) return;
      // A rewrite to an empty path still asks for the root.
      ctx.request.path = (rewritten.startsWith('/') ? rewritten : `/${rewritten}`) + (q === -1 ? '' : full.slice(q));
    },
  };
}
