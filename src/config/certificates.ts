/**
 * A certificate and key pair of `proxy.tls.certificates`: its PEM files read and checked (the key
 * matches the certificate) into a secure context, with the DNS names SNI selects it by. Used at
 * config load (errors name the key) and by the TLS listener when the files change.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';

export interface CertificatePair {
  /** Absolute paths of the PEM files. */
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  /** SAN DNS names, lower case (`*.example.com` for a wildcard). */
  names: string[];
  context: SecureContext;
}

/** Reads and checks a pair; throws an Error naming the file and the problem. */
export function readCertificatePair(certFile: string, keyFile: string, minVersion: 'TLSv1.2' | 'TLSv1.3'): CertificatePair {
  const cert = readPem(certFile, 'certificate');
  const key = readPem(keyFile, 'key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`${certFile} is not a PEM certificate (${(err as Error).message})`);
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key, minVersion });
  } catch (err) {
    // OpenSSL checks here that the key is the certificate's ("key values mismatch").
    throw new Error(`${keyFile} is not a usable key for ${certFile} (${(err as Error).message})`);
  }
  return { certFile, keyFile, cert, key, names: sanDnsNames(x509), context };
}

function readPem(file: string, what: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (pem.length === 0) throw new Error(`${what} file ${file} is empty`);
  return pem;
}

/** `DNS:a.example.com, DNS:*.example.com, IP Address:…` → the DNS names, lower case. */
export function sanDnsNames(x509: X509Certificate): string[] {
  const san = x509.subjectAltName;
  if (san === undefined) return [];
  const names: string[] = [];
  for (const part of san.split(/,\s*/)) if (part.startsWith('DNS:')) names.push(part.slice(4).toLowerCase().replace(/\.$/, ''));
  return names;
}

/**
 * The pair for an SNI name: a SAN equal to it, then a one-label wildcard (`*.example.com` covers
 * `a.example.com`, not `a.b.example.com` nor `example.com`; RFC 6125 §6.4.3), else the first.
 */
export function pickCertificate<T extends { names: readonly string[] }>(pairs: readonly T[], servername: string): T {
  const name = servername.toLowerCase().replace(/\.$/, '');
  for (const p of pairs) if (p.names.includes(name)) return p;
  const dot = name.indexOf('.');
  if (dot > 0) {
    const wildcard = `*${name.slice(dot)}`;
    for (const p of pairs) if (p.names.includes(wildcard)) return p;
  }
  return pairs[0]!;
}
