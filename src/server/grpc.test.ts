import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RequestContext } from '../context.ts';
import { ProxyError } from '../errors.ts';
import { grpcErrorHead, grpcTimeout, isGrpc } from './grpc.ts';

function ctx(method: string, headers: string[]): RequestContext {
  const req = { method, rawHeaders: headers } as unknown as IncomingMessage;
  const c = new RequestContext(req, {} as ServerResponse, 'id-1', '127.0.0.1');
  c.requestHeaders = headers;
  return c;
}

test('a POST with content-type application/grpc (or +proto, or parameters) is a gRPC call; gRPC-Web and GETs are not', () => {
  for (const type of ['application/grpc', 'application/grpc+proto', 'Application/GRPC; charset=utf-8']) assert.equal(isGrpc(ctx('POST', ['content-type', type])), true, type);
  for (const type of ['application/grpc-web', 'application/grpcx', 'application/json']) assert.equal(isGrpc(ctx('POST', ['content-type', type])), false, type);
  assert.equal(isGrpc(ctx('GET', ['content-type', 'application/grpc'])), false);
});

test('grpc-timeout is read in every unit, rounded up to a millisecond; a malformed one is ignored', () => {
  const of = (v: string) => grpcTimeout(ctx('POST', ['grpc-timeout', v]));
  assert.equal(of('2H'), 7_200_000);
  assert.equal(of('3M'), 180_000);
  assert.equal(of('5S'), 5000);
  assert.equal(of('250m'), 250);
  assert.equal(of('1500u'), 2);
  assert.equal(of('1n'), 1);
  for (const bad of ['', '5', 'S', '123456789S', '5s', '-5S', '1.5S']) assert.equal(of(bad), undefined, JSON.stringify(bad));
  assert.equal(grpcTimeout(ctx('POST', [])), undefined);
});

test('the proxy answers a gRPC call with a gRPC status, its message percent-encoded', () => {
  const head = grpcErrorHead(new ProxyError('timeout', 'deadline 100% gone: é'), 'id-1');
  const get = (name: string) => head[head.indexOf(name) + 1];
  assert.equal(get('content-type'), 'application/grpc');
  assert.equal(get('grpc-status'), '4');
  assert.equal(get('grpc-message'), 'deadline 100%25 gone: %C3%A9');
  assert.equal(grpcErrorHead(new ProxyError('no_healthy_instance', 'x'), 'id')[3], '14');
});
