/**
 * A warn line for each request the listener refuses before the pipeline (server/listener.ts:
 * what Node's parser rejects, headers too large or too slow, HTTP/0.9, HTTP/1.0 with
 * Transfer-Encoding, a version other than 1.x, CONNECT). Those never reach the access log.
 * At most LINES_PER_SECOND lines a second, so a scanner or a flood of garbage cannot flood the
 * log; the next line written says how many were left out (`notLogged`). The metrics count all.
 */
import type { ProxyError } from '../errors.ts';
import { log } from '../log.ts';

export const LINES_PER_SECOND = 5;

export class RefusalLog {
  private windowStart = -Infinity;
  private lines = 0;
  private notLogged = 0;

  constructor(private readonly now: () => number = Date.now) {}

  write(refusal: ProxyError, requestId: string, clientIp: string | undefined): void {
    const t = this.now();
    if (t - this.windowStart >= 1000) {
      this.windowStart = t;
      this.lines = 0;
    }
    if (this.lines >= LINES_PER_SECOND) {
      this.notLogged++;
      return;
    }
    this.lines++;
    const notLogged = this.notLogged;
    this.notLogged = 0;
    log.warn(
      { status: refusal.status, errorCause: refusal.kind, errorMessage: refusal.message, requestId, clientIp, ...(notLogged > 0 ? { notLogged } : {}) },
      'request refused by the listener',
    );
  }
}
