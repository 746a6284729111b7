// Adds a header to every request (before routing and the cache) and one to every response.
//   proxy:
//     plugins:
//       - module: ./plugins/team-header.mjs
//         options: { team: blue }

/** @type {import('kubeproxy').PluginFactory<{ team?: string }>} */
export default function teamHeader(options) {
  const team = options.team;
  if (typeof team !== 'string' || team === '') throw new Error('options.team: expected a team name');
  return {
    name: 'team-header',
    onRequest(ctx) {
      ctx.request.headers.set('x-team', team);
    },
    onResponse(ctx) {
      ctx.response.headers.set('x-served-by', 'kubeproxy');
    },
  };
}
