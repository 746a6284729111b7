/**
 * The one X-Request-Id rule, for requests and upgrades alike: a client's id is kept when it is 1 to
 * 200 visible ASCII characters (no space, no control character: it is written into response heads
 * and log lines as it is); anything else, or none, gets a fresh UUID.
 */
import { randomUUID } from 'node:crypto';

const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/** `incoming` is the field as received (repeated lines joined with ", ", which the rule refuses). */
export function requestId(incoming: string | undefined): string {
  return incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}
