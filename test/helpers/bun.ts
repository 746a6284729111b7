/** Whether the end-to-end tests can start Bun: false, or the reason they are skipped (node:test's `skip`). */
import { bunBinary } from '../../src/runtime/bun-binary.ts';

export const noBun: false | string = (() => {
  try {
    bunBinary();
    return false;
  } catch (err) {
    return `bun is not installed: ${(err as Error).message}`;
  }
})();
