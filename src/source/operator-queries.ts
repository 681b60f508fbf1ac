/**
 * Every statement the operator commands of the CLI run against the source, in one place.
 * They use only the operator's views and functions of schema permsync, so that the
 * permsync_* roles decide who may run them. Parameters are always bound ($n), never interpolated.
 */

export const ENVIRONMENT_STATUS = `
  SELECT environment, label, state, enabled, paused, sync_enabled, dry_run, last_success_at,
         success_count::int, failed_count::int, skipped_count::int, dry_run_count::int,
         pending_batches::int, oldest_pending_batch_id::text, oldest_pending_age_seconds,
         blocking_error_code, blocking_error, role_conflicts::int
    FROM permsync.v_environment_status
   ORDER BY priority, environment`;

/** The caller's session supplies CURRENT_USER and search_path (the function's defaults). */
export const MANUAL_SYNC = `SELECT permsync.manual_sync($1, $2)::text AS batch_id`;

export const RETRY_FAILED = `
  SELECT environment_name, batch_id::text, commit_seq::text, failure_kind, error_code, error_message
    FROM permsync.retry_failed($1)`;

export const CLEANUP_OLD_LOGS = `
  SELECT execution_log_deleted::int, audit_log_deleted::int, batches_deleted::int
    FROM permsync.cleanup_old_logs()`;

export const PAUSE_ENVIRONMENT = `SELECT permsync.pause_environment($1)`;

export const RESUME_ENVIRONMENT = `SELECT permsync.resume_environment($1)`;

export const SKIP_BATCH = `
  SELECT environment_name, batch_id::text, commit_seq::text, was
    FROM permsync.skip_batch($1, $2, $3)`;
