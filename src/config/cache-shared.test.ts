/** proxy.cache.shared.redis (schema.ts): defaults, the URL from the environment, and path-precise errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from './load.ts';

const config = (redis: unknown) => ({
  proxy: { cache: { shared: { redis } }, services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: 8081 }] }] },
});

function problem(redis: unknown): string {
  try {
    validateConfig(config(redis));
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the config was accepted');
}

test('a URL alone turns the shared tier on, with safe defaults', () => {
  const shared = validateConfig(config({ url: 'redis://redis:6379' })).proxy.cache.shared;
  assert.deepEqual(shared, { redis: { url: 'redis://redis:6379', keyPrefix: 'kubeproxy:', timeout: 50, maxTtl: 86_400_000, breaker: { failures: 5, cooldown: 5000 } } });
});

test('without the shared block there is no shared tier', () => {
  const c = validateConfig({ proxy: { services: [{ name: 'web', domain: 'web.test', hosts: [{ address: '127.0.0.1', port: 8081 }] }] } });
  assert.equal(c.proxy.cache.shared, undefined);
});

test('urlEnv reads the URL from the environment (a Secret), and says when it is missing or wrong', () => {
  process.env.KUBEPROXY_TEST_REDIS_URL = 'rediss://user:secret@redis.example:6380/2';
  try {
    assert.equal(validateConfig(config({ urlEnv: 'KUBEPROXY_TEST_REDIS_URL' })).proxy.cache.shared?.redis.url, 'rediss://user:secret@redis.example:6380/2');
    process.env.KUBEPROXY_TEST_REDIS_URL = 'http://user:secret@redis';
    const msg = problem({ urlEnv: 'KUBEPROXY_TEST_REDIS_URL' });
    assert.match(msg, /proxy\.cache\.shared\.redis\.urlEnv: environment variable KUBEPROXY_TEST_REDIS_URL: expected the scheme redis:\/\/ or rediss:\/\//);
    assert.doesNotMatch(msg, /secret/, 'the password is never echoed');
  } finally {
    delete process.env.KUBEPROXY_TEST_REDIS_URL;
  }
  assert.match(problem({ urlEnv: 'KUBEPROXY_TEST_REDIS_URL' }), /proxy\.cache\.shared\.redis\.urlEnv: environment variable KUBEPROXY_TEST_REDIS_URL is not set/);
  assert.match(problem({ urlEnv: 'not a name' }), /proxy\.cache\.shared\.redis\.urlEnv: expected an environment variable name/);
});

test('bad values are named by their path', () => {
  assert.match(problem({}), /proxy\.cache\.shared\.redis\.url: give exactly one of url or urlEnv/);
  assert.match(problem({ url: 'redis://a', urlEnv: 'X' }), /give exactly one of url or urlEnv/);
  assert.match(problem({ url: 'redis://a:b@host/x' }), /proxy\.cache\.shared\.redis\.url: expected a database number/);
  assert.match(problem({ url: 'not a url' }), /proxy\.cache\.shared\.redis\.url: expected a URL like/);
  assert.match(problem({ url: 'redis://a', timeout: 0 }), /proxy\.cache\.shared\.redis\.timeout: expected a duration above 0/);
  assert.match(problem({ url: 'redis://a', timeout: 50 }), /proxy\.cache\.shared\.redis\.timeout: expected a duration like/);
  assert.match(problem({ url: 'redis://a', keyPrefix: '' }), /proxy\.cache\.shared\.redis\.keyPrefix: expected a prefix/);
  assert.match(problem({ url: 'redis://a', breaker: { failures: 0 } }), /proxy\.cache\.shared\.redis\.breaker\.failures: expected integer 1-1000/);
  assert.match(problem({ url: 'redis://a', host: 'x' }), /proxy\.cache\.shared\.redis/);
});
