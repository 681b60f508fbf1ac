import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/daemon.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { Exposition } from './support/prometheus.js';

/**
 * What operators load into Prometheus and Grafana (deploy/prometheus, deploy/grafana):
 * the rules pass promtool's checks and their unit tests, the dashboard is a well-formed
 * model whose queries parse, and both name only metrics a running daemon exports.
 */

const PROMETHEUS_DIR = join(PACKAGE_ROOT, 'deploy', 'prometheus');
const RULES = join(PROMETHEUS_DIR, 'permsync-alerts.yml');
const RULE_TESTS = join(PROMETHEUS_DIR, 'permsync-alerts.test.yml');
const DASHBOARD = join(PACKAGE_ROOT, 'deploy', 'grafana', 'permsync.json');


interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleTests {
  tests: {
    name: string;
    input_series: { series: string; values: string }[];
    alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[];
  }[];
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { type: string; uid: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  templating: { list: { type: string; name: string; query: unknown }[] };
  panels: Panel[];
}

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
      reject(error.code === 'ENOENT'
        ? new Error('promtool is not installed: it comes with the Debian package prometheus (apt-get install --no-install-recommends prometheus), which .ci/run installs')
        : error),
    );
    child.on('close', (code) => resolve({ code, output }));
  });
}

async function rules(): Promise<Rule[]> {
  const file = parse(await readFile(RULES, 'utf8')) as { groups: { rules: Rule[] }[] };
  return file.groups.flatMap((g) => g.rules);
}

async function ruleTests(): Promise<RuleTests> {
  return parse(await readFile(RULE_TESTS, 'utf8')) as RuleTests;
}

async function dashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
}

/** Every panel, those inside rows included. */
function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

async function dashboardExprs(): Promise<{ panel: Panel; refId: string; expr: string }[]> {
  return allPanels((await dashboard()).panels).flatMap((panel) => (panel.targets ?? []).map((t) => ({ panel, refId: t.refId, expr: t.expr })));
}

/** The permsync metrics a PromQL expression names. */
const metricNames = (expr: string) => [...expr.matchAll(/\bpermsync_[a-z0-9_]+\b/g)].map((m) => m[0]);

/** The metric and label names of a promtool input series: `name{label="value",...}`. */
function seriesShape(series: string): { name: string; labels: string[] } {
  const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?$/.exec(series);
  if (!match) throw new Error(`not a series: ${series}`);
  return { name: match[1] as string, labels: [...(match[2] ?? '').matchAll(/(\w+)="/g)].map((m) => m[1] as string) };
}

/** The labels Prometheus adds to what it scrapes (job, instance) or an operator adds as a target label (source). */
const TARGET_LABELS = ['job', 'instance', 'source'];

/** What each alert of the issue is called: held, lag, pending, leader (none or two), listener, role watcher, drift, daemon down. */
const ALERTS = [
  'PermsyncEnvironmentHeld', 'PermsyncEnvironmentLagging', 'PermsyncPendingGrowing', 'PermsyncNoLeader', 'PermsyncSeveralLeaders',
  'PermsyncListenerDisconnected', 'PermsyncRoleWatcherFailing', 'PermsyncDriftFound', 'PermsyncDriftCheckFailing',
  'PermsyncRoleConflicts', 'PermsyncSourceUnreachable', 'PermsyncDaemonDown', 'PermsyncDaemonsAllDown', 'PermsyncMetricsAbsent',
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
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0), `${alert} fires in a test`).toBe(true);
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0), `${alert} stays quiet in a test`).toBe(true);
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
      for (const [, name] of expr.matchAll(/\$(\w+)/g)) expect(name === '__rate_interval' || defined.has(name as string), `${panel.title}: $${name}`).toBe(true);
    }
  });

  it('shows per environment state, lag, pending, executions, apply latency; per source leader, listener, role watcher, drift, conflicts', async () => {
    const named = new Set((await dashboardExprs()).flatMap(({ expr }) => metricNames(expr)));
    for (const metric of [
      'permsync_environment_state', 'permsync_environment_lag_seconds', 'permsync_environment_pending_batches',
      'permsync_executions_total', 'permsync_apply_duration_seconds_bucket', 'permsync_leader', 'permsync_listener_connected',
      'permsync_role_watcher_failing', 'permsync_drift_differences', 'permsync_role_conflicts',
    ]) expect(named, metric).toContain(metric);
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

describe('against a running daemon', () => {
  let p: Pipeline;
  let daemon: Daemon;

  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${daemon.http.port}/metrics`);
    expect(res.status).toBe(200);
    return new Exposition(await res.text());
  };

  /** Every sample name the daemon's registry declares: a histogram's _bucket, _sum and _count, a counter's own _total name. */
  const exported = (m: Exposition) =>
    new Set([...m.types].flatMap(([name, type]) => (type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name])));

  beforeAll(async () => {
    p = await startPipeline(['dev', 'prod']);
    // prod lacks the table: a grant on it fails there for good and holds prod.
    await p.everywhere('CREATE ROLE app');
    await p.sourceClient.query(`SET permsync.capture = 'off'; CREATE TABLE orders (id int); RESET permsync.capture`);
    await p.env('dev').client.query('CREATE TABLE orders (id int)');
    await p.adopt();
    // A drift check every second, so that its gauge has samples to look at.
    daemon = await p.startDaemon({ ...p.config({ settings: { driftCheckCron: '* * * * * *' } }), log: { level: 'error' } });
    await waitFor(async () => daemon.isLeader(), 10_000, 'the daemon to lead');
    await p.dba('GRANT SELECT ON orders TO app');
    await p.settle();
    await waitFor(async () => (await scrape()).labelSets('permsync_drift_differences').length === 2, 20_000, 'a drift check');
  });

  afterAll(async () => {
    await p?.close();
  });

  /** Each environment's state as /metrics says it: one state at 1, the others at 0. */
  async function exportedStates(): Promise<Record<string, string>> {
    const m = await scrape();
    const states: Record<string, string> = {};
    for (const labels of m.labelSets('permsync_environment_state')) {
      const environment = labels.environment as string;
      expect(m.labelSets('permsync_environment_state').filter((l) => l.environment === environment).map((l) => l.state).sort())
        .toEqual(['disabled', 'failing', 'held', 'ok', 'paused', 'pending', 'sync_disabled']);
      if (m.value('permsync_environment_state', labels) === 1) {
        expect(states[environment], `${environment} has one state`).toBeUndefined();
        states[environment] = labels.state as string;
      }
    }
    return states;
  }

  /** Waits until v_environment_status and /metrics both say `expected`. */
  async function statesBecome(expected: Record<string, string>): Promise<void> {
    let seen: unknown;
    await waitFor(async () => {
      const { rows } = await p.sourceClient.query<{ environment: string; state: string }>('SELECT environment, state FROM permsync.v_environment_status');
      seen = { view: Object.fromEntries(rows.map((r) => [r.environment, r.state])), metrics: await exportedStates() };
      return JSON.stringify(seen) === JSON.stringify({ view: expected, metrics: expected });
    }, 10_000, `the states ${JSON.stringify(expected)}`).catch((error: Error) => {
      throw new Error(`${error.message}; last seen ${JSON.stringify(seen)}`);
    });
  }

  it('says held for an environment held by a permanent failure, and each other state, as v_environment_status does', async () => {
    await statesBecome({ dev: 'ok', prod: 'held' });
    // Skipped by an operator, the batch no longer holds prod.
    const { rows: [held] } = await p.sourceClient.query<{ id: string }>(
      "SELECT batch_id::text AS id FROM permsync.execution_log WHERE environment_name = 'prod' AND execution_status = 'failed'",
    );
    await p.sourceClient.query("SELECT * FROM permsync.skip_batch('prod', $1, 'no orders table in prod')", [held?.id]);
    await statesBecome({ dev: 'ok', prod: 'ok' });

    await p.sourceClient.query("SELECT permsync.pause_environment('prod')");
    await statesBecome({ dev: 'ok', prod: 'paused' });
    await p.sourceClient.query("SELECT permsync.resume_environment('prod')");
    await p.sourceClient.query('SELECT permsync.disable_sync()');
    await statesBecome({ dev: 'sync_disabled', prod: 'sync_disabled' });
    await p.sourceClient.query('SELECT permsync.enable_sync()');

    // prod unreachable: the grant fails there, and is retried.
    await p.env('prod').proxy.cut();
    await p.dba('GRANT INSERT ON orders TO app');
    await statesBecome({ dev: 'ok', prod: 'failing' });
    await p.env('prod').proxy.open();
    await p.settle();
  });

  it('says when the role watcher fails its checks, and when it recovers', async () => {
    const failed = (m: Exposition) => m.value('permsync_role_watcher_checks_total', { result: 'failed' }) ?? NaN;
    const before = await scrape();
    expect(before.value('permsync_role_watcher_failing')).toBe(0);
    expect(failed(before)).toBe(0);
    await p.sourceClient.query('ALTER FUNCTION permsync.capture_role_changes() RENAME TO capture_role_changes_away');
    try {
      await expect.poll(async () => (await scrape()).value('permsync_role_watcher_failing')).toBe(1);
      expect(failed(await scrape())).toBeGreaterThan(0);
    } finally {
      await p.sourceClient.query('ALTER FUNCTION permsync.capture_role_changes_away() RENAME TO capture_role_changes');
    }
    await expect.poll(async () => (await scrape()).value('permsync_role_watcher_failing')).toBe(0);
  });

  it('exports every metric a rule or a dashboard panel names, and each is on the dashboard or in a rule', async () => {
    const names = exported(await scrape());
    const fromRules = (await rules()).flatMap((r) => metricNames(r.expr));
    const fromPanels = (await dashboardExprs()).flatMap(({ expr }) => metricNames(expr));
    const named = new Set([...fromRules, ...fromPanels]);
    expect(named.size).toBeGreaterThan(10);
    const missing = [...named].filter((name) => !names.has(name));
    expect(missing, 'named by a rule or a panel, not exported').toEqual([]);
    // A metric the daemon exports that nothing shows is one an operator never sees.
    const unseen = [...names].filter((name) => name.startsWith('permsync_') && !named.has(name) && !/_(sum|count)$/.test(name));
    expect(unseen, 'exported, on no panel and in no rule').toEqual([]);
  });

  it('is what the rule tests feed promtool: the same metric and label names', async () => {
    const m = await scrape();
    const names = exported(m);
    for (const test of (await ruleTests()).tests) {
      for (const { series } of test.input_series) {
        const { name, labels } = seriesShape(series);
        if (name === 'up') continue;
        expect(names.has(name), `${test.name}: ${name} is exported`).toBe(true);
        const exportedLabels = m.labelSets(name)[0];
        expect(exportedLabels, `${name} has a sample`).toBeDefined();
        expect(labels.filter((l) => !TARGET_LABELS.includes(l)).sort(), `${test.name}: ${series}`).toEqual(Object.keys(exportedLabels ?? {}).sort());
      }
    }
  });
});
