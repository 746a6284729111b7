/**
 * `services[].tls.ca`: the CA bundle an `https` or `h2` service's instances are verified against.
 * The path is resolved against the config file's directory (kept absolute in the Config) and the
 * file is read and checked at every load and reload, so a SIGHUP after the file changed gives new
 * connections the new CA (upstream/instance.ts makes a new pool when the PEM differs).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ServiceConfig, UpstreamTlsConfig } from './schema.ts';

/** The PEM read at load, by the config object it belongs to. */
const loaded = new WeakMap<UpstreamTlsConfig, string>();

/**
 * Resolves and reads every service's `tls.ca`; returns `proxy.services[i].tls.ca: ...` problems.
 * `base` is the config file's directory.
 */
export function loadUpstreamCas(services: readonly ServiceConfig[], base: string): string[] {
  const problems: string[] = [];
  services.forEach((s, i) => {
    const tls = s.tls;
    if (tls?.ca === undefined) return;
    const given = tls.ca;
    tls.ca = resolve(base, given);
    try {
      loaded.set(tls, readCa(tls.ca));
    } catch (err) {
      problems.push(`proxy.services[${i}].tls.ca: ${JSON.stringify(given)} ${(err as Error).message}`);
    }
  });
  return problems;
}

/** The PEM of `tls.ca` (read at load; read now for a Config that was not loaded from a file). */
export function upstreamCa(tls: UpstreamTlsConfig): string | undefined {
  if (tls.ca === undefined) return undefined;
  return loaded.get(tls) ?? readCa(tls.ca);
}

function readCa(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? 'cannot be read: no such file' : code === 'EISDIR' ? 'is a directory, not a file' : `cannot be read: ${code ?? (err as Error).message}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g);
  if (blocks === null) throw new Error('holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new Error(`holds a certificate that does not parse: ${(err as Error).message}`);
    }
  }
  return pem;
}
