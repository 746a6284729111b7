/**
 * The process logger (pino, JSON lines on stdout). One instance, so tests and the CLI can set
 * the level in one place.
 */
import { pino, type Logger } from 'pino';

export let log: Logger = pino({ name: 'kubeproxy', level: process.env.KUBEPROXY_LOG_LEVEL ?? 'info' });

export function setLogLevel(level: string): void {
  log.level = process.env.KUBEPROXY_LOG_LEVEL ?? level;
}

/** For tests: route logs elsewhere (or silence them). */
export function setLogger(logger: Logger): void {
  log = logger;
}
