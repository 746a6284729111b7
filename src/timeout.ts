/** A promise bounded in time, shared by plugin loading, plugin hooks and the shared cache tier. */

/**
 * `p`, or a rejection with `late()` once `ms` have passed (the timer is cleared either way);
 * `ms <= 0` waits as long as it takes.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, late: () => Error): Promise<T> {
  if (ms <= 0) return p;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}
