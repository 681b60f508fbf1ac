import type pg from 'pg';
import type { ExecutionResult } from '../target/target.js';
import { toRecord } from '../capture/batch.js';
import type { Statement } from '../sql/statement.js';
import type { DriftReport } from '../plan/report.js';
import * as driftSql from './source-queries.js';
import { describeReport } from './format.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** What permsync.drift_checks keeps of a check: NULL differences and the error when it could not run. */
export function summarize(report: DriftReport | undefined, error?: string): { differences: number | null; summary: Record<string, unknown> } {
  if (!report) return { differences: null, summary: { error: error ?? 'unknown error' } };
  const byCategory: Record<string, number> = {};
  for (const d of describeReport(report)) byCategory[d.category] = (byCategory[d.category] ?? 0) + 1;
  return {
    differences: report.differences.length,
    summary: {
      ...byCategory,
      excluded_by_configuration: report.excludedByConfiguration,
      statements: report.plan.length,
      // What the notes say (password verifiers not compared, say) qualifies a match: it goes with the record.
      ...(report.notes.length > 0 && { notes: report.notes }),
    },
  };
}

export async function recordCheck(source: Queryable, environment: string, report: DriftReport | undefined, error?: string): Promise<void> {
  const { differences, summary } = summarize(report, error);
  await source.query(driftSql.INSERT_DRIFT_CHECK, [environment, differences, JSON.stringify(summary)]);
}

/** A hint line when batches for the environment could not be replayed since it last matched the source. */
export async function unreplayableHints(source: Queryable, environment: string): Promise<string[]> {
  const { rows } = await source.query<{ batch_id: string; finished_at: Date }>(driftSql.UNREPLAYABLE_SINCE_MATCH, [environment]);
  if (rows.length === 0) return [];
  const shown = rows
    .slice(0, 10)
    .map((r) => r.batch_id)
    .join(', ');
  return [
    `${rows.length} batch(es) for ${environment} could not be replayed since it last matched the source ` +
      `(batch ${shown}${rows.length > 10 ? ', ...' : ''}): permission commands run in a DO block, a function or dynamic SQL. ` +
      'Their effect is among the differences above; see permsync.v_execution_details for what they were',
  ];
}

/** Whether the source user may record a reconcile (permsync_daemon or permsync_admin). */
export async function mayRecordReconcile(source: Queryable): Promise<boolean> {
  const { rows } = await source.query<{ ok: boolean }>(driftSql.MAY_RECORD_RECONCILE);
  return rows[0]?.ok === true;
}

/**
 * Records a reconcile that committed on the environment: the batch, with the statements
 * in the shape permsync.role_statement() gives them, and its success in execution_log.
 */
export async function recordReconcile(source: Queryable, environment: string, plan: Statement[], result: ExecutionResult): Promise<string> {
  const statements = plan.map(toRecord);
  const { rows } = await source.query<{ batch_id: string }>(driftSql.RECORD_RECONCILE, [
    environment,
    statements.map((s) => `${s.display};`).join('\n'),
    statements.some((s) => s.display !== s.sql),
    JSON.stringify(statements),
    result.appliedSql,
    result.startedAt,
    result.finishedAt,
    result.durationMs.toFixed(3),
    result.notes.length > 0 ? result.notes.join('; ') : null,
    result.serverVersion ?? null,
    result.connectionTimeMs?.toFixed(3) ?? null,
  ]);
  const batchId = rows[0]?.batch_id;
  if (batchId === undefined) throw new Error('permsync.record_reconcile() returned no batch');
  return batchId;
}
