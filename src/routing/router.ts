/**
 * Host → service. Exact names first, then the longest matching `*.` wildcard (a wildcard
 * matches any depth of subdomain, as NGINX's `*.example.com` does, but not the bare domain).
 */
export class Router<S> {
  private readonly exact = new Map<string, S>();
  /** Suffixes (".example.com") sorted longest first, so the first match is the most specific. */
  private readonly wildcards: Array<{ suffix: string; target: S }> = [];

  constructor(
    routes: Iterable<{ domains: readonly string[]; target: S }>,
    private readonly fallback?: S,
  ) {
    for (const { domains, target } of routes) {
      for (const d of domains) {
        if (d.startsWith('*.')) this.wildcards.push({ suffix: d.slice(1), target });
        else this.exact.set(d, target);
      }
    }
    this.wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  /** `host` is an already normalised host (see normaliseHost). */
  match(host: string): S | undefined {
    const hit = this.exact.get(host);
    if (hit !== undefined) return hit;
    for (const w of this.wildcards) {
      if (host.length > w.suffix.length && host.endsWith(w.suffix)) return w.target;
    }
    return this.fallback;
  }
}
