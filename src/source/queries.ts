/**
 * Every statement the daemon runs against the source's permsync schema, in one place.
 * Parameters are always bound ($n), never interpolated; only the daemon's own limits are
 * written into the text.
 */
import { MAX_GENERATED_BYTES, MAX_RECORDED_COMMANDS, MAX_TEXT_BYTES } from '../capture/plan.js';

/**
 * A batch as the daemon reads it: no more of it than it can hold. A client string over
 * MAX_TEXT_BYTES, or a generated batch whose text is over MAX_GENERATED_BYTES, comes
 * without its text or statements (its size says why); a generated batch's text, which its
 * statements carry, never comes.
 */
export const BATCH_COLUMNS = `
  b.id::text, b.commit_seq::text, b.origin, b.source_xid::text, b.statement_started_at,
  b.committed_at, b.session_user_name, b.current_user_name, b.current_user_is_superuser,
  b.search_path, b.backend_pid,
  CASE WHEN b.statements IS NULL AND octet_length(b.query_text) <= ${MAX_TEXT_BYTES} THEN b.query_text END AS query_text,
  octet_length(b.query_text) AS text_bytes, b.query_masked, b.target_environment,
  CASE WHEN octet_length(b.query_text) <= ${MAX_GENERATED_BYTES} THEN b.statements END AS statements,
  b.not_replayable, b.temp_objects, a.command_tags, a.command_objects, a.identities`;

/**
 * Joined after `permsync.batches b` wherever BATCH_COLUMNS is read: its audit rows, read
 * once, and no more of them than capture records (one more says there were more).
 */
const BATCH_AUDIT = `
  CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(a.command_tag ORDER BY a.id), '{}') AS command_tags,
           coalesce(array_agg(a.object_identity ORDER BY a.id), '{}') AS command_objects,
           count(DISTINCT (a.current_user_name, a.search_path))::int AS identities
      FROM (SELECT * FROM permsync.audit_log l WHERE l.batch_id = b.id ORDER BY l.id LIMIT ${MAX_RECORDED_COMMANDS + 1}) a) a`;

/** The batches an environment has yet to carry, in commit order. */
export const FETCH_BATCHES_AFTER = `
  SELECT ${BATCH_COLUMNS},
         (SELECT x.execution_status FROM permsync.execution_log x
           WHERE x.batch_id = b.id AND x.environment_name = $2) AS previous_status
    FROM permsync.batches b ${BATCH_AUDIT}
   WHERE b.commit_seq > $1
     AND (b.target_environment IS NULL OR b.target_environment = $2)
     -- A reconcile batch is applied by reconcile itself, and logged with it: only a record here.
     AND b.origin <> 'reconcile'
   ORDER BY b.commit_seq
   LIMIT $3`;

/**
 * The batches committed after $1 for every environment, as the shared feed reads them
 * (apply/feed.ts): no environment has tried them yet, so none has an outcome.
 */
export const FETCH_NEW_BATCHES_AFTER = `
  SELECT ${BATCH_COLUMNS}, NULL::text AS previous_status
    FROM permsync.batches b ${BATCH_AUDIT}
   WHERE b.commit_seq > $1
     AND b.origin <> 'reconcile'
   ORDER BY b.commit_seq
   LIMIT $2`;

/** The batches written by the same client string as batch $1 (it may commit several transactions), in transaction order. */
export const FETCH_SIBLING_BATCH_IDS = `
  SELECT s.id::text
    FROM permsync.batches b
    JOIN permsync.batches s
      ON s.backend_pid = b.backend_pid AND s.statement_started_at = b.statement_started_at
     AND s.query_text = b.query_text AND s.origin = b.origin
   WHERE b.id = $1 AND s.commit_seq IS NOT NULL
   ORDER BY s.source_xid`;

export const MAX_COMMIT_SEQ = `SELECT coalesce(max(commit_seq), 0)::text AS seq FROM permsync.batches`;

/**
 * Batch b (permsync.batches) is one environment e (permsync.environments) has yet to
 * finish. Finished: success, skipped, dry_run; a permanent failure only where the
 * environment continues past them. (sql/0003_operator.sql's v_batch_outcomes says the same.)
 */
export const UNFINISHED_BY_ENVIRONMENT = `
  b.commit_seq > e.start_after_seq
  AND (b.target_environment IS NULL OR b.target_environment = e.name)
  AND NOT EXISTS (
        SELECT 1 FROM permsync.execution_log x
         WHERE x.batch_id = b.id AND x.environment_name = e.name
           AND (x.execution_status IN ('success', 'skipped', 'dry_run')
                OR (x.execution_status = 'failed' AND x.failure_kind = 'permanent'
                    AND e.on_permanent_failure = 'continue')))`;

/** Where an environment resumes: the last commit_seq before its first unfinished batch. */
export const RESUME_POINT = `
  SELECT coalesce((
           SELECT min(b.commit_seq) - 1
             FROM permsync.batches b
            WHERE ${UNFINISHED_BY_ENVIRONMENT}
         ), (SELECT coalesce(max(commit_seq), e.start_after_seq) FROM permsync.batches))::text AS seq,
         e.in_flight_through::text AS in_flight_through
    FROM permsync.environments e
   WHERE e.name = $1`;

/** Mirrors one environment of the configuration; a new one starts after the newest batch. */
export const UPSERT_ENVIRONMENT = `
  INSERT INTO permsync.environments (name, label, priority, enabled, on_permanent_failure, start_after_seq, updated_at)
  VALUES ($1, $2, $3, $4, $5, (SELECT coalesce(max(commit_seq), 0) FROM permsync.batches), now())
  ON CONFLICT (name) DO UPDATE
     SET label = EXCLUDED.label, priority = EXCLUDED.priority, enabled = EXCLUDED.enabled,
         on_permanent_failure = EXCLUDED.on_permanent_failure, updated_at = now()`;

export const DELETE_RULES = `DELETE FROM permsync.sync_rules WHERE environment_name = $1`;

export const INSERT_RULE = `
  INSERT INTO permsync.sync_rules (environment_name, position, rule_type, command_tag, role_pattern, schema_pattern)
  VALUES ($1, $2, $3, $4, $5, $6)`;

export const UPSERT_CONFIG = `
  INSERT INTO permsync.config (key, value, updated_at) VALUES ($1, $2, now())
  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`;

/**
 * One row per batch and environment. A later attempt at the same batch updates the
 * row and counts the retry; started_at keeps the first attempt. Many rows in one
 * statement ($1 is a JSON array, one object per row): an applier that carried a run of
 * batches together logs them in one round trip, in commit order (ids follow it).
 */
export const RECORD_EXECUTIONS = `
  INSERT INTO permsync.execution_log
         (batch_id, environment_name, commit_seq, applied_sql, execution_status, started_at, finished_at,
          duration_ms, result_message, error_code, error_detail, error_hint, failure_kind, server_version,
          connection_time_ms)
  SELECT batch_id, environment_name, commit_seq, applied_sql, execution_status, started_at, finished_at,
         duration_ms, result_message, error_code, error_detail, error_hint, failure_kind, server_version,
         connection_time_ms
    FROM ROWS FROM (jsonb_to_recordset($1::jsonb)
           AS (batch_id bigint, environment_name text, commit_seq bigint, applied_sql text, execution_status text,
               started_at timestamptz, finished_at timestamptz, duration_ms numeric, result_message text,
               error_code text, error_detail text, error_hint text, failure_kind text, server_version text,
               connection_time_ms numeric)) WITH ORDINALITY
         AS r (batch_id, environment_name, commit_seq, applied_sql, execution_status, started_at, finished_at,
               duration_ms, result_message, error_code, error_detail, error_hint, failure_kind, server_version,
               connection_time_ms, position)
   ORDER BY position
  ON CONFLICT (batch_id, environment_name) DO UPDATE
     SET applied_sql = EXCLUDED.applied_sql, execution_status = EXCLUDED.execution_status,
         finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms,
         result_message = EXCLUDED.result_message, error_code = EXCLUDED.error_code,
         error_detail = EXCLUDED.error_detail, error_hint = EXCLUDED.error_hint,
         failure_kind = EXCLUDED.failure_kind,
         server_version = coalesce(EXCLUDED.server_version, permsync.execution_log.server_version),
         connection_time_ms = coalesce(EXCLUDED.connection_time_ms, permsync.execution_log.connection_time_ms),
         retry_count = permsync.execution_log.retry_count + 1,
         last_retry_at = EXCLUDED.started_at`;

export const UPSERT_RETRY = `
  INSERT INTO permsync.retry_queue (batch_id, environment_name, attempts, next_attempt_at, last_error_code, last_error)
  VALUES ($1, $2, 1, $3, $4, $5)
  ON CONFLICT (batch_id, environment_name) DO UPDATE
     SET attempts = permsync.retry_queue.attempts + 1, next_attempt_at = EXCLUDED.next_attempt_at,
         last_error_code = EXCLUDED.last_error_code, last_error = EXCLUDED.last_error`;

export const DELETE_RETRY = `DELETE FROM permsync.retry_queue WHERE batch_id = $1 AND environment_name = $2`;

/** Writes a batch for role changes since the last snapshot; the batch id, or NULL. */
export const CAPTURE_ROLE_CHANGES = `SELECT permsync.capture_role_changes()::text AS batch`;

/** Whether the role snapshot holds password verifiers (sync_passwords on and permitted). */
export const PASSWORDS_TRACKED = `
  SELECT (SELECT value FROM permsync.config WHERE key = 'sync_passwords') = 'true' AS wanted,
         (permsync.role_state() ->> 'passwords')::boolean AS tracked`;

/** Failures are announced on this channel when settings.notify_on_failure is on (payload: JSON). */
export const FAILURE_CHANNEL = 'permsync_failure';
export const NOTIFY_FAILURE = `SELECT pg_notify('${FAILURE_CHANNEL}', $1)`;

/** Operators' switches (sql/0003_operator.sql): set by enable_sync(), enable_dry_run(), pause_environment() ... */
export const READ_SWITCHES = `
  SELECT coalesce((SELECT value FROM permsync.config WHERE key = 'sync_enabled'), 'true') = 'true' AS sync_enabled,
         coalesce((SELECT value FROM permsync.config WHERE key = 'dry_run'), 'false') = 'true' AS dry_run,
         coalesce((SELECT array_agg(name) FROM permsync.environments WHERE paused), '{}') AS paused`;

/** The channel the control functions notify on; payload {"action", "environment", "by"}. */
export const CONTROL_CHANNEL = 'permsync_control';

/** Written before a run of batches: after a crash, these may have applied unlogged. */
export const MARK_IN_FLIGHT = `UPDATE permsync.environments SET in_flight_through = $2 WHERE name = $1 AND in_flight_through < $2`;
/** Back to where it was: the batches marked after it were rolled back on the target, none of them applied. */
export const UNMARK_IN_FLIGHT = `UPDATE permsync.environments SET in_flight_through = $2 WHERE name = $1`;

/** Retention (sql/0003_operator.sql): what it deleted, per table. */
export const CLEANUP_OLD_LOGS = `SELECT * FROM permsync.cleanup_old_logs()`;

/** Environments no longer in the configuration stop counting (lag, retention) until they return. */
export const RETIRE_ENVIRONMENTS = `
  UPDATE permsync.environments SET enabled = false, updated_at = now()
   WHERE enabled AND NOT (name = ANY ($1::text[]))`;
