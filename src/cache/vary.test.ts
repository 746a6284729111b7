import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VARY_NORMALISERS, normalizeVaryValue } from './vary.ts';

const lang = (v: string) => normalizeVaryValue('Accept-Language', v);

test('Accept-Language values that differ in case, spacing or the order of equal weights are one value', () => {
  assert.equal(lang('en-US, fr'), 'en-us,fr');
  assert.equal(lang('fr,en-us'), 'en-us,fr');
  assert.equal(lang('  FR ,  EN-us ,fr'), 'en-us,fr');
  assert.equal(lang('de;q=0.5, en-GB;q=0.8, en;q=0.8'), lang('en;Q=0.80,en-gb ; q=0.8,de;q=0.500'));
  assert.equal(lang('en;q=1, fr;q=1.000'), 'en,fr');
});

test('Accept-Language weights are kept: a different preference is a different value', () => {
  assert.notEqual(lang('en, fr;q=0.5'), lang('fr, en;q=0.5'));
  assert.notEqual(lang('en'), lang('en;q=0.8'));
  assert.equal(lang('fr;q=0.5, en'), 'en,fr;q=0.5');
  assert.equal(lang('*;q=0.1, en'), 'en,*;q=0.1');
});

test('an Accept-Language weight outside the grammar is only lower-cased, not reordered', () => {
  assert.equal(lang('fr;q=high, EN'), 'fr;q=high,en');
  assert.equal(lang('fr;level=1, en'), 'fr;level=1,en');
});

test('Accept-Encoding members are lower-cased, de-duplicated and sorted', () => {
  assert.equal(normalizeVaryValue('accept-encoding', 'BR, gzip ;q=0.5,br'), 'br,gzip;q=0.5');
});

test('fields without a normaliser only get whitespace folded, case and order kept', () => {
  assert.equal(normalizeVaryValue('X-Tenant', '  A ,  b  c '), 'A,b c');
  assert.equal(VARY_NORMALISERS['x-tenant'], undefined);
});
