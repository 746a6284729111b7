import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, test } from 'node:test';
import { pino } from 'pino';
import { ProxyError } from '../errors.ts';
import { log, setLogger } from '../log.ts';
import { LINES_PER_SECOND, RefusalLog } from './refusal-log.ts';

const saved = log;
afterEach(() => setLogger(saved));

function capture(): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  setLogger(pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, done) => (lines.push(JSON.parse(c.toString())), done()) })));
  return lines;
}

test('a refused request is logged as a warning with its status, cause, message, id and client', () => {
  const lines = capture();
  new RefusalLog().write(new ProxyError('bad_request', 'invalid method'), 'id-1', '10.0.0.7');
  assert.equal(lines.length, 1);
  assert.deepEqual(
    { level: lines[0]!.level, msg: lines[0]!.msg, status: lines[0]!.status, errorCause: lines[0]!.errorCause, errorMessage: lines[0]!.errorMessage, requestId: lines[0]!.requestId, clientIp: lines[0]!.clientIp },
    { level: 40, msg: 'request refused by the listener', status: 400, errorCause: 'bad_request', errorMessage: 'invalid method', requestId: 'id-1', clientIp: '10.0.0.7' },
  );
});

test('a flood of refusals writes a few lines a second, and the next line says how many were left out', () => {
  const lines = capture();
  let now = 1_000_000;
  const refusals = new RefusalLog(() => now);
  for (let i = 0; i < 100; i++) refusals.write(new ProxyError('headers_too_large', 'too large'), `id-${i}`, '10.0.0.7');
  assert.equal(lines.length, LINES_PER_SECOND);
  assert.ok(lines.every((l) => l.notLogged === undefined));
  now += 1000;
  refusals.write(new ProxyError('bad_request', 'x'), 'id-next', '10.0.0.7');
  assert.equal(lines.length, LINES_PER_SECOND + 1);
  assert.equal(lines.at(-1)!.notLogged, 100 - LINES_PER_SECOND);
  refusals.write(new ProxyError('bad_request', 'x'), 'id-after', '10.0.0.7');
  assert.equal(lines.at(-1)!.notLogged, undefined, 'counted once');
});
