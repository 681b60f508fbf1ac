import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/daemon.js';
import { dashboardExprs, metricNames, ruleTests, rules, seriesShape, TARGET_LABELS } from './support/monitoring.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { Exposition } from './support/prometheus.js';

/**
 * The alert rules and the dashboard (deploy/prometheus, deploy/grafana) name only metrics
 * a running daemon exports, with the labels it gives them; alerts.unit.test.ts checks the
 * files themselves.
 */

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
    await waitFor(() => daemon.isLeader(), 10_000, 'the daemon to lead');
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
      expect(
        m
          .labelSets('permsync_environment_state')
          .filter((l) => l.environment === environment)
          .map((l) => l.state)
          .sort(),
      ).toEqual(['disabled', 'failing', 'held', 'ok', 'paused', 'pending', 'sync_disabled']);
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
    await waitFor(
      async () => {
        const { rows } = await p.sourceClient.query<{ environment: string; state: string }>(
          'SELECT environment, state FROM permsync.v_environment_status',
        );
        seen = { view: Object.fromEntries(rows.map((r) => [r.environment, r.state])), metrics: await exportedStates() };
        return JSON.stringify(seen) === JSON.stringify({ view: expected, metrics: expected });
      },
      10_000,
      `the states ${JSON.stringify(expected)}`,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; last seen ${JSON.stringify(seen)}`);
    });
  }

  it('says held for an environment held by a permanent failure, and each other state, as v_environment_status does', async () => {
    await statesBecome({ dev: 'ok', prod: 'held' });
    // Skipped by an operator, the batch no longer holds prod.
    const {
      rows: [held],
    } = await p.sourceClient.query<{ id: string }>(
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
