#!/usr/bin/env node
// Copies the monitoring files that the Helm chart ships (`.Files.Get` only reads files inside
// the chart) from deploy/monitoring/ into deploy/helm/kubeproxy/files/.
// test/deploy-helm.test.ts fails when a copy differs from its original: run this, then commit both.
// Usage: node scripts/sync-chart-files.mjs
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
export const CHART_FILES = ['kubeproxy-rules.yaml', 'grafana-dashboard.json'];

for (const name of CHART_FILES) {
  copyFileSync(join(root, 'deploy/monitoring', name), join(root, 'deploy/helm/kubeproxy/files', name));
  console.log(`deploy/monitoring/${name} -> deploy/helm/kubeproxy/files/${name}`);
}
