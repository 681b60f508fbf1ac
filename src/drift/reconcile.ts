import type pg from 'pg';
import { ROLE_OIDS, Target } from '../target/target.js';
import type { Config, EnvironmentConfig } from '../config/schema.js';
import { describeError, PermsyncError, UsageError } from '../errors.js';
import { openSession, readSourceCatalog, readTargetCatalog } from './check.js';
import type { EnvironmentResult } from './format.js';
import { mayRecordReconcile, recordReconcile, unreplayableHints } from './history.js';
import { buildReport, type DriftReport } from '../plan/report.js';
import { roleScope } from '../config/rules.js';
import { readManagedRoles, recordManagedRoles } from '../source/store.js';

export interface ReconcileOptions {
  apply: boolean;
  dropExtraRoles: boolean;
}

export interface ReconcileResult {
  /** The comparison and the plan. */
  plan: EnvironmentResult;
  /** The plan ran and committed, and was recorded as this batch. */
  applied?: { batchId: string; statements: number; durationMs: number; notes: string[] };
  /** The plan failed on the environment: its transaction rolled back, nothing changed, nothing recorded. */
  failure?: string;
  /** The comparison after applying: what is left (objects, which are never created; skipped statements). */
  after?: EnvironmentResult;
}

/**
 * Converges one environment on the source. The plan runs in one transaction on the
 * environment, through the same Target the daemon applies with; only once it has
 * committed is it recorded on the source as a batch (origin 'reconcile') with its
 * execution_log row, in one transaction, so the logs show exactly what ran. Nothing
 * needs a daemon: this is also how a new environment is brought up (bootstrap).
 *
 * The environment is read before the source: a change the daemon carried there is then
 * already on the source when it is read, so the plan never takes it back.
 */
export async function reconcile(
  config: Config,
  environment: EnvironmentConfig,
  source: pg.ClientBase,
  options: ReconcileOptions,
): Promise<ReconcileResult> {
  const session = await openSession(environment.url, environment.name, config.settings);
  try {
    const compareNow = async (): Promise<DriftReport> => {
      const target = await readTargetCatalog(session, config.settings);
      const catalog = await readSourceCatalog(source, config.settings);
      const managed = await readManagedRoles(source, environment.name);
      return buildReport(environment, config.settings, roleScope(config), catalog, target, { ...options, managed });
    };
    const report = await compareNow();
    const hints = report.differences.length > 0 ? await unreplayableHints(source, environment.name) : [];
    const plan: EnvironmentResult = { environment: environment.name, report, hints };
    if (!options.apply || report.plan.length === 0) return { plan };
    // What runs is always recorded: a user who could not record it may not run it.
    if (!(await mayRecordReconcile(source))) {
      throw new UsageError('the source user may not record a reconcile (it needs permsync_daemon or permsync_admin): nothing was applied');
    }

    const target = new Target(environment, config.settings, () => {});
    // The roles the plan creates become permsync's there, recorded before the target commits.
    const creates = new Map(
      report.plan.flatMap((s) =>
        s.kind === 'CREATE ROLE' ? [[s, { name: s.grantees[0] as string, sourceOid: s.sourceOids?.[s.grantees[0] as string] }] as const] : [],
      ),
    );
    let result;
    try {
      result = await target.execute({ searchPath: 'pg_catalog' }, report.plan, async (session, took) => {
        const made = new Map(took.flatMap((s) => creates.get(s) ?? []).map((c) => [c.name, c.sourceOid]));
        if (made.size === 0) return;
        const { rows } = await session.query<{ oid: number; name: string }>(ROLE_OIDS, [[...made.keys()]]);
        await recordManagedRoles(
          source,
          environment.name,
          rows.map((r) => ({ ...r, sourceOid: made.get(r.name) })),
          'created',
        );
      });
    } finally {
      await target.close();
    }
    if (result.error) {
      const at = result.error.failedSql !== undefined ? ` at "${result.error.failedSql}"` : '';
      const detail = [result.error.detail, result.error.hint].filter(Boolean).join('; ');
      return {
        plan,
        failure: `${result.error.message}${result.error.code ? ` (SQLSTATE ${result.error.code})` : ''}${at}${detail ? `: ${detail}` : ''}`,
      };
    }
    let batchId: string;
    try {
      batchId = await recordReconcile(source, environment.name, report.plan, result);
    } catch (error) {
      throw new PermsyncError(
        `the plan was applied to ${environment.name} and committed, but recording it on the source failed: ${describeError(error)}` +
          ' (`permsync drift` shows the environment as it is now)',
        { exitCode: 2, cause: error },
      );
    }
    const after = await compareNow();
    return {
      plan,
      applied: { batchId, statements: report.plan.length, durationMs: result.durationMs, notes: result.notes },
      after: { environment: environment.name, report: after, hints: [] },
    };
  } finally {
    await session.end().catch(() => {});
  }
}
