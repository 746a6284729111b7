/**
 * `npm start`: starts a demo upstream for every loopback host in the config, then the proxy, in
 * one process, so `curl -H 'Host: my-service.my-company.com' localhost:8080/` answers at once.
 */
import { loadConfigFile, ConfigError } from '../config/load.ts';
import { main } from '../cli.ts';
import { startDemoUpstream } from './upstream.ts';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export async function launchDemo(argv: string[]): Promise<number> {
  const i = argv.findIndex((a) => a === '--config' || a === '-c');
  const path = i >= 0 ? argv[i + 1] : process.env.KUBEPROXY_CONFIG;
  if (!path) {
    process.stderr.write('kubeproxy-demo: pass --config FILE\n');
    return 64;
  }
  try {
    const config = loadConfigFile(path);
    for (const service of config.proxy.services) {
      for (const [n, host] of service.hosts.entries()) {
        if (!LOOPBACK.has(host.address)) continue;
        const name = `${service.name}-${n + 1}`;
        await startDemoUpstream({ port: host.port, address: host.address === 'localhost' ? '127.0.0.1' : host.address, name });
        process.stdout.write(`demo upstream ${name} on ${host.address}:${host.port}\n`);
      }
    }
    const p = config.proxy;
    const first = p.services[0]!;
    process.stdout.write(
      `\nTry:  curl -H 'Host: ${first.domain ?? first.domains[0]}' http://localhost:${p.listen.port}/hello\n` +
        (p.admin.enabled ? `      curl http://localhost:${p.admin.port}/status\n\n` : '\n'),
    );
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kubeproxy: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  return main(argv);
}
