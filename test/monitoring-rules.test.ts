/**
 * Validates deploy/monitoring/kubeproxy-rules.yaml with promtool and runs its
 * unit tests (kubeproxy-rules.test.yaml). promtool comes from Debian's
 * `prometheus` package (listed in .ci/apt-packages). A missing promtool is a
 * failure, not a skip, unless KUBEPROXY_SKIP_PROMTOOL=1 is set explicitly.
 * PROMTOOL may point at another promtool binary.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MONITORING = join(ROOT, 'deploy', 'monitoring');
const RULES = join(MONITORING, 'kubeproxy-rules.yaml');
const RULE_TESTS = join(MONITORING, 'kubeproxy-rules.test.yaml');
const PROMTOOL = process.env.PROMTOOL || 'promtool';
const SKIP = process.env.KUBEPROXY_SKIP_PROMTOOL === '1';

function promtool(args: string[], cwd = ROOT): { status: number | null; output: string; missing: boolean } {
  // A bound, not a speed check: the rule tests evaluate hours of series (~20 s alone, more on a busy machine).
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 240_000 });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  if (r.error && !missing) throw r.error;
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}`, missing };
}

function requirePromtool(): void {
  const { missing, status, output } = promtool(['--version']);
  assert.ok(
    !missing,
    `promtool not found (${PROMTOOL}). Install the Debian package that provides it: ` +
      `apt-get install -y --no-install-recommends prometheus (listed in .ci/apt-packages), ` +
      `or set KUBEPROXY_SKIP_PROMTOOL=1 to skip these checks explicitly.`,
  );
  assert.equal(status, 0, `promtool --version failed:\n${output}`);
}

const skip = SKIP ? 'KUBEPROXY_SKIP_PROMTOOL=1' : false;

describe('Prometheus rules (promtool)', () => {
  it('promtool is installed', { skip }, () => {
    requirePromtool();
  });

  it('promtool check rules accepts kubeproxy-rules.yaml', { skip }, () => {
    requirePromtool();
    const r = promtool(['check', 'rules', 'deploy/monitoring/kubeproxy-rules.yaml']);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: \d+ rules found/);
  });

  it('promtool test rules passes kubeproxy-rules.test.yaml', { skip }, () => {
    requirePromtool();
    const r = promtool(['test', 'rules', 'deploy/monitoring/kubeproxy-rules.test.yaml']);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('promtool test rules fails when an expectation is wrong (the harness can fail)', { skip }, () => {
    requirePromtool();
    const dir = mkdtempSync(join(tmpdir(), 'kubeproxy-rules-'));
    try {
      copyFileSync(RULES, join(dir, 'kubeproxy-rules.yaml'));
      const tests = readFileSync(RULE_TESTS, 'utf8');
      // Expect the fast-burn page one hour too early: it must not fire then.
      const broken = tests.replace(
        /(- eval_time: )420m(\n\s+alertname: KubeProxyAvailabilityFastBurn\n\s+exp_alerts:\n\s+- exp_labels:)/,
        '$1390m$2',
      );
      assert.notEqual(broken, tests, 'test file changed shape: update this mutation');
      writeFileSync(join(dir, 'kubeproxy-rules.test.yaml'), broken);
      const r = promtool(['test', 'rules', 'kubeproxy-rules.test.yaml'], dir);
      assert.notEqual(r.status, 0, r.output);
      assert.match(r.output, /FAILED/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
