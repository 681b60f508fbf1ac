import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { PROMETHEUS_DIR, RULES, RULE_TESTS, allPanels, dashboard, dashboardExprs, metricNames, ruleTests, rules } from './support/monitoring.js';

/**
 * What operators load into Prometheus and Grafana (deploy/prometheus, deploy/grafana):
 * the rules pass promtool's checks and their unit tests, and the dashboard is a
 * well-formed model whose queries parse. alerts.test.ts holds them against a running daemon.
 */

const temporary: string[] = [];
afterAll(async () => {
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Runs promtool; its absence is a failure that says how to install it, never a skip. */
function promtool(args: string[], cwd = PROMETHEUS_DIR): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { cwd });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT'
          ? new Error(
              'promtool is not installed: it comes with the Debian package prometheus (apt-get install --no-install-recommends prometheus), which .ci/run installs',
            )
          : error,
      ),
    );
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** What each alert of the issue is called: held, lag, pending, leader (none or two), listener, role watcher, drift, daemon down. */
const ALERTS = [
  'PermsyncEnvironmentHeld',
  'PermsyncEnvironmentLagging',
  'PermsyncPendingGrowing',
  'PermsyncNoLeader',
  'PermsyncSeveralLeaders',
  'PermsyncListenerDisconnected',
  'PermsyncRoleWatcherFailing',
  'PermsyncDriftFound',
  'PermsyncDriftCheckFailing',
  'PermsyncRoleConflicts',
  'PermsyncSourceUnreachable',
  'PermsyncDaemonDown',
  'PermsyncDaemonsAllDown',
  'PermsyncMetricsAbsent',
];

describe('deploy/prometheus/permsync-alerts.yml', () => {
  it('passes promtool check rules and its unit tests', async () => {
    const check = await promtool(['check', 'rules', RULES]);
    expect(check.output).toContain(`SUCCESS: ${ALERTS.length} rules found`);
    expect(check.code).toBe(0);
    const test = await promtool(['test', 'rules', RULE_TESTS]);
    expect(test.output).toContain('SUCCESS');
    expect(test.code).toBe(0);
  });

  it('has each alert, with a duration, a severity, a summary naming where, and what to do', async () => {
    const all = await rules();
    expect(all.map((r) => r.alert)).toEqual(ALERTS);
    for (const rule of all) {
      expect(rule.for, rule.alert).toMatch(/^\d+m$/);
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toMatch(/\{\{ \$labels\.(environment|job|instance) \}\}|no daemon's metrics/);
      // A CLI command, an SQL function or view, or the service to look at.
      expect(rule.annotations?.description, rule.alert).toMatch(/`permsync [a-z-]+|SELECT |systemctl|\/readyz/);
    }
  });

  it('is tested firing for every alert, and quiet where it must be', async () => {
    const cases = (await ruleTests()).tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of ALERTS) {
      expect(
        cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0),
        `${alert} fires in a test`,
      ).toBe(true);
      expect(
        cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0),
        `${alert} stays quiet in a test`,
      ).toBe(true);
    }
  });
});

describe('deploy/grafana/permsync.json', () => {
  it('is a dashboard Grafana imports as is: a Prometheus data source variable, panels on the grid', async () => {
    const model = await dashboard();
    expect(model).toMatchObject({ title: 'permsync', uid: 'permsync', schemaVersion: expect.any(Number) });
    const variables = model.templating.list;
    expect(variables.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const panels = allPanels(model.panels);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    const cells = new Map<string, string>();
    for (const panel of panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x + w, panel.title).toBeLessThanOrEqual(24);
      // No two panels cover the same cell.
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.get(`${i},${j}`), `${panel.title} overlaps`).toBeUndefined();
          cells.set(`${i},${j}`, panel.title);
        }
      }
      if (panel.type === 'row') continue;
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, panel.title).toBe(refIds.length);
    }
    // Every variable a query uses is defined (or Grafana's own).
    const defined = new Set(variables.map((v) => v.name));
    for (const { panel, expr } of await dashboardExprs()) {
      for (const [, name] of expr.matchAll(/\$(\w+)/g))
        expect(name === '__rate_interval' || defined.has(name as string), `${panel.title}: $${name}`).toBe(true);
    }
  });

  it('shows per environment state, lag, pending, executions, apply latency; per source leader, listener, role watcher, drift, conflicts', async () => {
    const named = new Set((await dashboardExprs()).flatMap(({ expr }) => metricNames(expr)));
    for (const metric of [
      'permsync_environment_state',
      'permsync_environment_lag_seconds',
      'permsync_environment_pending_batches',
      'permsync_executions_total',
      'permsync_apply_duration_seconds_bucket',
      'permsync_leader',
      'permsync_listener_connected',
      'permsync_role_watcher_failing',
      'permsync_drift_differences',
      'permsync_role_conflicts',
    ])
      expect(named, metric).toContain(metric);
    const latency = (await dashboardExprs()).filter(({ expr }) => expr.includes('permsync_apply_duration_seconds_bucket'));
    expect(latency.map(({ expr }) => /histogram_quantile\((0\.\d+),/.exec(expr)?.[1])).toEqual(['0.5', '0.95', '0.99']);
  });

  it('has queries that parse as PromQL', async () => {
    // promtool checks rules, not bare queries: each query becomes a recording rule, its
    // Grafana variables replaced by values of their kind.
    const records = (await dashboardExprs()).map(({ panel, refId, expr }) => ({
      record: `dashboard:panel_${panel.id}_${refId}`,
      expr: expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', 'permsync').replaceAll('$environment', '.*'),
    }));
    const dir = await mkdtemp(join(tmpdir(), 'permsync-dashboard-'));
    temporary.push(dir);
    await writeFile(join(dir, 'panels.yml'), stringify({ groups: [{ name: 'dashboard', rules: records }] }));
    const check = await promtool(['check', 'rules', join(dir, 'panels.yml')], dir);
    expect(check.output).toContain(`SUCCESS: ${records.length} rules found`);
    expect(check.code).toBe(0);
  });
});
