import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getHeader, getHeaderLines, hasHeader, removeHeaders, setHeader, splitList } from './headers.ts';

const raw = ['Content-Type', 'text/html', 'cache-control', 'max-age=60', 'X-A', '1', 'CACHE-CONTROL', 'public'];

test('header names are read case-insensitively', () => {
  assert.equal(getHeader(raw, 'Content-type'), 'text/html');
  assert.equal(hasHeader(raw, 'x-a'), true);
  assert.equal(getHeader(raw, 'missing'), undefined);
});

test('repeated header lines are joined with ", " in order', () => {
  assert.equal(getHeader(raw, 'Cache-Control'), 'max-age=60, public');
  assert.deepEqual(getHeaderLines(raw, 'cache-control'), ['max-age=60', 'public']);
});

test('removing and setting headers never mutates the original array', () => {
  const copy = [...raw];
  assert.deepEqual(removeHeaders(raw, ['Cache-Control']), ['Content-Type', 'text/html', 'X-A', '1']);
  assert.deepEqual(setHeader(raw, 'cache-control', 'no-store'), [
    'Content-Type', 'text/html', 'cache-control', 'no-store', 'X-A', '1',
  ]);
  assert.deepEqual(setHeader(['A', '1'], 'Age', '5'), ['A', '1', 'Age', '5']);
  assert.deepEqual(raw, copy);
});

test('list members split on commas but not inside quoted strings, empty members dropped', () => {
  assert.deepEqual(splitList(' a , "b,c" ,, d '), ['a', '"b,c"', 'd']);
  assert.deepEqual(splitList('W/"x,y", "z"'), ['W/"x,y"', '"z"']);
});
