import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { startDns, type TestDns } from '../../test/helpers/dns.ts';
import type { DnsDiscoveryConfig, ServiceConfig } from '../config/schema.ts';
import { DnsDiscovery, EMPTY_CONFIRMATIONS, type ResolveEvent } from './dns.ts';

type Discovery = DnsDiscoveryConfig;

function service(name: string, discovery: Partial<Discovery> & { dns: string }): ServiceConfig {
  return {
    name,
    domains: [`${name}.test`],
    hosts: [],
    discovery: { port: 8080, interval: 60_000, weight: 1, ...discovery },
    cache: true,
    plugins: [],
  } as ServiceConfig;
}

/** A discovery that records its onChange calls and resolution events. */
function recorder(servers: string[]) {
  const changes: string[] = [];
  const events: ResolveEvent[] = [];
  const d = new DnsDiscovery({ onChange: (s) => changes.push(s) });
  d.onResolve((e) => events.push(e));
  const configure = (...services: ServiceConfig[]) => d.configure({ services, dnsServers: servers });
  return { d, changes, events, configure };
}

describe('DNS discovery', () => {
  let dns: TestDns;
  before(async () => {
    dns = await startDns();
  });
  after(() => dns.close());

  it('turns every A and AAAA record into an instance on the configured port and weight', async () => {
    dns.set('web.ns.svc.cluster.local', ['10.0.0.2', '10.0.0.1', 'fd00::5']);
    const { d, changes, events, configure } = recorder([dns.server]);
    configure(service('web', { dns: 'web.ns.svc.cluster.local', port: 9000, weight: 3 }));
    assert.deepEqual(d.hosts('web'), [], 'nothing before the first answer');
    assert.equal(d.status('web')?.state, 'pending');
    await d.resolveNow('web');
    assert.deepEqual(d.hosts('web'), [
      { address: '10.0.0.1', port: 9000, weight: 3 },
      { address: '10.0.0.2', port: 9000, weight: 3 },
      { address: 'fd00::5', port: 9000, weight: 3 },
    ]);
    assert.deepEqual(changes, ['web']);
    assert.equal(events.at(-1)?.outcome, 'success');
    assert.equal(events.at(-1)?.addresses, 3);
    const st = d.status('web')!;
    assert.equal(st.state, 'ok');
    assert.equal(st.lastError, null);
    assert.ok(st.lastSuccessAt !== null && Date.parse(st.lastSuccessAt) > 0);
    d.close();
  });

  it('reports a change only when the set of addresses changed', async () => {
    dns.set('api.test', ['10.1.0.1']);
    const { d, changes, configure } = recorder([dns.server]);
    configure(service('api', { dns: 'api.test' }));
    await d.resolveNow('api');
    await d.resolveNow('api');
    assert.deepEqual(changes, ['api'], 'the same answer twice is one change');
    dns.set('api.test', ['10.1.0.1', '10.1.0.2']);
    await d.resolveNow('api');
    assert.deepEqual(changes, ['api', 'api']);
    assert.deepEqual(d.status('api')?.addresses, ['10.1.0.1', '10.1.0.2']);
    d.close();
  });

  it('keeps the last good addresses while the DNS server answers SERVFAIL, and says so in its status', async () => {
    dns.set('flaky.test', ['10.2.0.1', '10.2.0.2']);
    const { d, changes, events, configure } = recorder([dns.server]);
    configure(service('flaky', { dns: 'flaky.test' }));
    await d.resolveNow('flaky');
    const goodAt = d.status('flaky')!.lastSuccessAt;
    dns.fail('servfail');
    try {
      await d.resolveNow('flaky');
      await d.resolveNow('flaky');
    } finally {
      dns.fail(undefined);
    }
    assert.deepEqual(d.status('flaky')?.addresses, ['10.2.0.1', '10.2.0.2']);
    assert.equal(d.hosts('flaky').length, 2);
    assert.deepEqual(changes, ['flaky'], 'a failure changes nothing');
    const st = d.status('flaky')!;
    assert.equal(st.state, 'failing');
    assert.equal(st.consecutiveFailures, 2);
    assert.match(st.lastError ?? '', /ESERVFAIL resolving flaky\.test/);
    assert.equal(st.lastSuccessAt, goodAt);
    assert.deepEqual(
      events.map((e) => [e.outcome, e.code, e.addresses]),
      [
        ['success', undefined, 2],
        ['failure', 'ESERVFAIL', 2],
        ['failure', 'ESERVFAIL', 2],
      ],
    );
    await d.resolveNow('flaky');
    assert.equal(d.status('flaky')?.state, 'ok');
    assert.equal(d.status('flaky')?.consecutiveFailures, 0);
    d.close();
  });

  it('keeps the last good addresses when the DNS server is unreachable', async () => {
    // A UDP port with nothing bound: the query is refused at once (ICMP port unreachable).
    const sock = createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const deadPort = sock.address().port;
    await new Promise<void>((resolve) => sock.close(() => resolve()));

    dns.set('gone.test', ['10.3.0.1']);
    const d = new DnsDiscovery({ onChange: () => {} });
    d.configure({ services: [service('gone', { dns: 'gone.test' })], dnsServers: [dns.server] });
    await d.resolveNow('gone');
    d.configure({ services: [service('gone', { dns: 'gone.test' })], dnsServers: [`127.0.0.1:${deadPort}`] });
    await d.resolveNow('gone');
    assert.deepEqual(d.status('gone')?.addresses, ['10.3.0.1']);
    assert.equal(d.status('gone')?.state, 'failing');
    assert.match(d.status('gone')?.lastError ?? '', /^E[A-Z]+ resolving gone\.test/);
    d.close();
  });

  it(`empties a service only after ${EMPTY_CONFIRMATIONS} empty answers in a row (a spurious NXDOMAIN is ignored)`, async () => {
    dns.set('scale.test', ['10.4.0.1']);
    const { d, changes, events, configure } = recorder([dns.server]);
    configure(service('scale', { dns: 'scale.test' }));
    await d.resolveNow('scale');
    dns.set('scale.test', []);
    await d.resolveNow('scale');
    dns.set('scale.test', ['10.4.0.1']);
    await d.resolveNow('scale');
    assert.deepEqual(d.status('scale')?.addresses, ['10.4.0.1'], 'one NXDOMAIN between good answers changes nothing');
    assert.deepEqual(changes, ['scale']);

    dns.set('scale.test', []);
    for (let i = 1; i < EMPTY_CONFIRMATIONS; i++) {
      await d.resolveNow('scale');
      assert.deepEqual(d.status('scale')?.addresses, ['10.4.0.1']);
      assert.equal(events.at(-1)?.code, 'EEMPTY');
      assert.match(d.status('scale')?.lastError ?? '', /no A\/AAAA records for scale\.test/);
    }
    await d.resolveNow('scale');
    assert.deepEqual(d.status('scale')?.addresses, [], 'scaled to zero');
    assert.equal(d.status('scale')?.state, 'ok');
    assert.deepEqual(changes, ['scale', 'scale']);
    d.close();
  });

  it('starts empty without waiting when the name has no records yet', async () => {
    const { d, changes, configure } = recorder([dns.server]);
    configure(service('later', { dns: 'later.test' }));
    await d.resolveNow('later');
    assert.equal(d.status('later')?.state, 'ok');
    assert.deepEqual(d.hosts('later'), []);
    assert.deepEqual(changes, []);
    d.close();
  });

  it('a new config keeps the addresses of an unchanged name, applies a new port at once and drops removed services', async () => {
    dns.set('keep.test', ['10.5.0.1']);
    dns.set('drop.test', ['10.6.0.1']);
    const { d, configure } = recorder([dns.server]);
    configure(service('keep', { dns: 'keep.test', port: 80 }), service('drop', { dns: 'drop.test' }));
    await Promise.all([d.resolveNow('keep'), d.resolveNow('drop')]);
    configure(service('keep', { dns: 'keep.test', port: 81, weight: 2 }));
    assert.deepEqual(d.hosts('keep'), [{ address: '10.5.0.1', port: 81, weight: 2 }]);
    assert.equal(d.status('keep')?.state, 'ok');
    assert.equal(d.status('drop'), undefined);
    assert.deepEqual(d.hosts('drop'), []);
    d.close();
  });

  it('a renamed target keeps its old addresses until the new name answers', async () => {
    dns.set('old.test', ['10.7.0.1']);
    dns.set('new.test', ['10.7.0.2']);
    const { d, configure } = recorder([dns.server]);
    configure(service('moved', { dns: 'old.test' }));
    await d.resolveNow('moved');
    configure(service('moved', { dns: 'new.test' }));
    assert.deepEqual(d.status('moved')?.addresses, ['10.7.0.1']);
    assert.equal(d.status('moved')?.state, 'pending');
    await d.resolveNow('moved');
    assert.deepEqual(d.status('moved')?.addresses, ['10.7.0.2']);
    d.close();
  });

  it('polls every interval once started, so a new pod joins without any call', async () => {
    dns.set('poll.test', ['10.8.0.1']);
    let changed!: () => void;
    let changes = 0;
    const d = new DnsDiscovery({
      onChange: () => {
        changes++;
        if (changes === 2) changed();
      },
    });
    d.configure({ services: [service('poll', { dns: 'poll.test', interval: 100 })], dnsServers: [dns.server] });
    await d.start();
    assert.deepEqual(d.status('poll')?.addresses, ['10.8.0.1'], 'start() waits for the first answer');
    const second = new Promise<void>((resolve) => (changed = resolve));
    dns.set('poll.test', ['10.8.0.1', '10.8.0.9']);
    await second;
    assert.deepEqual(d.status('poll')?.addresses, ['10.8.0.1', '10.8.0.9']);
    d.close();
  });

  it('a listener that throws does not stop later resolutions', async () => {
    dns.set('robust.test', ['10.9.0.1']);
    const d = new DnsDiscovery({ onChange: () => {} });
    const off = d.onResolve(() => {
      throw new Error('metrics broke');
    });
    d.configure({ services: [service('robust', { dns: 'robust.test' })], dnsServers: [dns.server] });
    await d.resolveNow('robust');
    off();
    dns.set('robust.test', ['10.9.0.2']);
    await d.resolveNow('robust');
    assert.deepEqual(d.status('robust')?.addresses, ['10.9.0.2']);
    d.close();
  });
});
