import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FRAMING, MirroredHeaderMap, RawHeaderMap } from './header-map.ts';

test('header names are case-insensitive and repeated fields join with a comma', () => {
  const h = new RawHeaderMap(['Accept', 'text/html', 'X-Tag', 'a', 'x-tag', 'b']);
  assert.equal(h.get('accept'), 'text/html');
  assert.equal(h.get('X-TAG'), 'a, b');
  assert.deepEqual(h.getAll('x-tag'), ['a', 'b']);
  assert.equal(h.has('ACCEPT'), true);
  assert.equal(h.get('missing'), null);
  assert.equal(h.changed, false);
});

test('set replaces every field of that name in place, append adds one, delete removes all', () => {
  const raw = ['Host', 'web.test', 'X-Tag', 'a', 'Accept', '*/*', 'x-tag', 'b'];
  const h = new RawHeaderMap(raw);
  h.set('x-tag', 'c');
  assert.deepEqual(raw, ['Host', 'web.test', 'X-Tag', 'c', 'Accept', '*/*']);
  h.append('Set-Cookie', 'a=1');
  h.append('set-cookie', 'b=2');
  assert.deepEqual(h.getAll('set-cookie'), ['a=1', 'b=2']);
  h.delete('SET-COOKIE');
  h.set('x-new', '1');
  assert.deepEqual(raw, ['Host', 'web.test', 'X-Tag', 'c', 'Accept', '*/*', 'x-new', '1']);
  assert.deepEqual([...h], [['Host', 'web.test'], ['X-Tag', 'c'], ['Accept', '*/*'], ['x-new', '1']]);
  assert.equal(h.changed, true);
});

test('a header value with CR or LF, or a bad name, is refused (no header injection)', () => {
  const h = new RawHeaderMap([]);
  assert.throws(() => h.set('x-a', 'a\r\nSet-Cookie: evil=1'), /x-a: value contains CR, LF or NUL/);
  assert.throws(() => h.append('bad name', 'v'), /invalid header name "bad name"/);
  assert.throws(() => h.set('x-n', 1 as unknown as string), /value must be a string/);
  assert.deepEqual(h.raw, []);
});

test('a plugin cannot change the fields that frame the body', () => {
  const h = new RawHeaderMap(['Content-Length', '5'], FRAMING);
  assert.throws(() => h.set('content-length', '0'), /content-length frames the body/);
  assert.throws(() => h.delete('Transfer-Encoding'), /frames the body/);
  assert.throws(() => h.append('transfer-encoding', 'chunked'), /frames the body/);
  assert.equal(h.get('content-length'), '5');
});

test('a mirrored view reads the first array and changes both', () => {
  const client = ['Host', 'web.test', 'Accept', 'a'];
  const upstream = ['Host', 'web.test', 'X-Forwarded-For', '1.2.3.4', 'Accept', 'a'];
  const h = new MirroredHeaderMap(new RawHeaderMap(client), new RawHeaderMap(upstream));
  h.set('accept', 'b');
  h.append('x-user', 'ada');
  h.delete('host');
  assert.equal(h.get('x-forwarded-for'), null, 'reads see the client\'s headers');
  assert.deepEqual(client, ['Accept', 'b', 'x-user', 'ada']);
  assert.deepEqual(upstream, ['X-Forwarded-For', '1.2.3.4', 'Accept', 'b', 'x-user', 'ada']);
  assert.equal(h.changed, true);
});

test('a borrowed array is read as it is and copied on the first change, never changed itself', () => {
  const received = ['Host', 'web.test', 'Accept', 'a'];
  const copies: string[][] = [];
  class Borrowing extends RawHeaderMap {
    protected override copied(raw: string[]): void {
      copies.push(raw);
    }
  }
  const h = new Borrowing(received, FRAMING, true);
  assert.equal(h.get('accept'), 'a');
  h.delete('x-missing');
  assert.equal(h.raw, received, 'reads and a delete of nothing make no copy');
  assert.throws(() => h.set('content-length', '1'), /frames the body/);
  assert.equal(copies.length, 0, 'a refused change makes no copy');
  h.set('accept', 'b');
  h.append('x-user', 'ada');
  assert.deepEqual(received, ['Host', 'web.test', 'Accept', 'a']);
  assert.equal(copies.length, 1);
  assert.equal(h.raw, copies[0]);
  assert.deepEqual(h.raw, ['Host', 'web.test', 'Accept', 'b', 'x-user', 'ada']);
  assert.equal(h.changed, true);
});
