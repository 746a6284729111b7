import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RequestContext } from '../context.ts';
import { AccessLog, formatAccessLogLine, millisText, parseTraceparent, pathOnly, setAccessLogOutput } from './access-log.ts';

describe('parseTraceparent (W3C Trace Context §3.2)', () => {
  it('reads the trace id and the caller span id of a version-00 header', () => {
    assert.deepEqual(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), {
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      parentId: '00f067aa0ba902b7',
    });
  });
  it('accepts surrounding whitespace and fields appended by a later version', () => {
    assert.equal(parseTraceparent(' 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ')?.parentId, '00f067aa0ba902b7');
    assert.equal(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra')?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  });
  it('refuses invalid values', () => {
    for (const bad of [
      '',
      'garbage',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // all-zero trace id
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // all-zero parent id
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // forbidden version
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // upper case
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra', // version 00 has exactly 4 fields
      '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', // short trace id
    ]) {
      assert.equal(parseTraceparent(bad), undefined, bad);
    }
  });
});

describe('pathOnly', () => {
  it('drops the query and bounds the length', () => {
    assert.equal(pathOnly('/a/b?token=secret'), '/a/b');
    assert.equal(pathOnly('/a/b'), '/a/b');
    assert.equal(pathOnly('?x'), '');
    assert.equal(pathOnly(`/${'x'.repeat(5000)}`).length, 2048);
  });
});

describe('millisText', () => {
  it('writes what JSON writes for the milliseconds rounded to the microsecond', () => {
    const values = [0, -1, NaN, 0.0004, 0.0005, 0.001, 0.01, 0.1, 0.5, 1, 1.5, 2.05, 10.2, 999.9999, 123456.789, 86_400_000.001];
    for (let i = 0; i < 5000; i++) values.push(Math.random() * 10 ** (i % 7));
    for (const ms of values) assert.equal(millisText(ms), JSON.stringify(ms > 0 ? Math.round(ms * 1000) / 1000 : 0), String(ms));
  });
});

describe('formatAccessLogLine', () => {
  const make = (url: string, headers: Record<string, string>) => {
    // As a real IncomingMessage has them: the log reads rawHeaders.
    const req = { method: 'GET', url, httpVersion: '1.1', headers, rawHeaders: Object.entries(headers).flat() } as unknown as IncomingMessage;
    const ctx = new RequestContext(req, {} as ServerResponse, 'id-1', '10.0.0.1');
    ctx.host = 'a.test';
    return ctx;
  };

  it('is one valid JSON line in pino format, with absent values left out', () => {
    const ctx = make('/x?q=1', {});
    const text = formatAccessLogLine(ctx, 421, ctx.start + 1.23456, 40, 1_700_000_000_000);
    assert.ok(text.endsWith('}\n') && !text.slice(0, -1).includes('\n'));
    assert.deepEqual(JSON.parse(text), {
      level: 40,
      time: 1_700_000_000_000,
      name: 'kubeproxy.access',
      requestId: 'id-1',
      method: 'GET',
      host: 'a.test',
      path: '/x',
      status: 421,
      protocol: 'HTTP/1.1',
      durationMs: 1.235,
      bytesIn: 0,
      bytesOut: 0,
      retries: 0,
      clientIp: '10.0.0.1',
    });
  });

  it('gives each line its own level, also within the same millisecond', () => {
    const ctx = make('/', {});
    const levels = [30, 40, 30, 50].map((l) => (JSON.parse(formatAccessLogLine(ctx, 200, ctx.start, l, 1_700_000_000_000)) as { level: number }).level);
    assert.deepEqual(levels, [30, 40, 30, 50]);
    const line = JSON.parse(formatAccessLogLine(ctx, 200, ctx.start, 30, 1_700_000_000_001)) as { time: number };
    assert.equal(line.time, 1_700_000_000_001);
  });

  it('escapes quotes, backslashes and control characters in every string', () => {
    const nasty = 'a"b\\c\n{"level":60}\u0000\u001f\u007f é';
    const ctx = make('/p"q\\r', { 'user-agent': nasty });
    ctx.errorCause = 'bad_request';
    ctx.errorMessage = `invalid Host header "${nasty}"`;
    const line = JSON.parse(formatAccessLogLine(ctx, 400, ctx.start, 40, 0)) as Record<string, unknown>;
    assert.equal(line.userAgent, nasty);
    assert.equal(line.path, '/p"q\\r');
    assert.equal(line.errorMessage, `invalid Host header "${nasty}"`);
    assert.equal(line.level, 40);
  });

  it('writes every string as JSON.stringify does, lone surrogates escaped', () => {
    const odd = 'x\ud800y \udc00 ok \ud83d\ude00';
    const ctx = make('/a', { 'user-agent': odd });
    const text = formatAccessLogLine(ctx, 200, ctx.start, 30, 0);
    assert.ok(text.includes(`"userAgent":${JSON.stringify(odd)}`), text);
  });
});

describe('AccessLog output', () => {
  const make = (ua: string, message = '') => {
    const req = { method: 'GET', url: '/x', headers: {}, rawHeaders: ['User-Agent', ua] } as unknown as IncomingMessage;
    const ctx = new RequestContext(req, {} as ServerResponse, 'id-1', '10.0.0.1');
    ctx.host = 'a.test';
    ctx.errorMessage = message;
    return ctx;
  };
  const capture = () => {
    const chunks: Buffer[] = [];
    setAccessLogOutput({ write: (chunk: Buffer) => chunks.push(Buffer.from(chunk)) }, 'info');
    const log = new AccessLog({ sampling: 1, level: 'info' });
    setAccessLogOutput(undefined);
    return { log, chunks };
  };

  it('hands over whole lines only, multi-byte text intact, in order', () => {
    const { log, chunks } = capture();
    const agent = (i: number) => `client é ✓ 😀 ${'x'.repeat(200)} ${i}`;
    for (let i = 0; i < 2000; i++) log.write(make(agent(i)), 200, 0);
    log.flush();
    assert.ok(chunks.length > 1, 'more than one write');
    for (const c of chunks) assert.equal(c.at(-1), 0x0a, 'every write ends with a newline');
    const lines = Buffer.concat(chunks).toString('utf8').trimEnd().split('\n');
    assert.equal(lines.length, 2000);
    lines.forEach((l, i) => assert.equal((JSON.parse(l) as { userAgent: string }).userAgent, agent(i)));
  });

  it('writes a line longer than a destination buffer whole, after the lines before it', () => {
    const { log, chunks } = capture();
    log.write(make('first'), 200, 0);
    log.write(make('long', 'é'.repeat(40_000)), 502, 0);
    log.write(make('last'), 200, 0);
    log.flush();
    const lines = Buffer.concat(chunks).toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { userAgent: string; errorMessage?: string });
    assert.deepEqual(lines.map((l) => l.userAgent), ['first', 'long', 'last']);
    assert.equal(lines[1]!.errorMessage, 'é'.repeat(40_000));
  });
});
