/**
 * What drift and reconcile read and write in the source's permsync schema (permsync.drift_checks,
 * permsync.record_reconcile and what they rely on).
 * Parameters are always bound ($n), never interpolated.
 */

export const INSERT_DRIFT_CHECK = `
  INSERT INTO permsync.drift_checks (environment, differences, summary) VALUES ($1, $2, $3)`;

/** Batches skipped as not replayable since the environment last matched (permsync.unreplayable_since_match). */
export const UNREPLAYABLE_SINCE_MATCH = `
  SELECT batch_id::text AS batch_id, finished_at FROM permsync.unreplayable_since_match($1)`;

export const RECORD_RECONCILE = `
  SELECT permsync.record_reconcile($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)::text AS batch_id`;

/** Whether the session may record a reconcile: asked before anything is applied. */
export const MAY_RECORD_RECONCILE = `
  SELECT has_function_privilege(
           'permsync.record_reconcile(text, text, boolean, jsonb, text, timestamptz, timestamptz, numeric, text, text, numeric)',
           'EXECUTE') AS ok`;
