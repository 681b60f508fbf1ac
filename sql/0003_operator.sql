-- permsync 0003: the operator's surface. Views to watch the pipeline, functions to steer
-- it, roles to hand both out, and an append-only audit log. Idempotent: safe to run again.
--
-- Control notifications. Every control function below ends with
--   pg_notify('permsync_control', <payload>)
-- which PostgreSQL delivers when the caller's transaction commits (never if it rolls back).
-- The payload is a JSON object with exactly three keys:
--   {"action": "enable_sync" | "disable_sync" | "enable_dry_run" | "disable_dry_run"
--             | "pause" | "resume" | "retry",
--    "environment": null | "<environment name>",
--    "by": "<session_user of the caller>"}
-- "environment" is a name for pause and resume, a name or null (every environment) for
-- retry, and null for the four global switches.
-- A notification is a wake-up, not the state. The state is in permsync.config
-- (sync_enabled, dry_run: 'true' or 'false') and permsync.environments.paused, for the
-- daemon to read at start and at each poll too, since a notification sent while its
-- listener is reconnecting is lost. Only "retry" has no stored state: it asks a running
-- daemon to re-attempt now the failed batch each environment (or the one named) waits
-- on; a daemon re-attempts it when it starts anyway, and a retry lost with the listener
-- is repeated by calling retry_failed again.
--
-- Security definer functions here run as the role that installed permsync (a superuser,
-- as the event trigger requires): each pins search_path to pg_catalog and names every
-- permsync object with its schema, so nothing a caller puts on their search_path can
-- stand in for what the function uses.

-- ── What every environment has yet to finish ──────────────────────────────────────────
-- One row per committed batch and environment it concerns: the outcome there, and whether
-- the environment is done with it. "finished" is the daemon's own rule (RESUME_POINT in
-- src/source/queries.ts): success, skipped and dry_run are finished; a permanent failure
-- is finished only where on_permanent_failure = 'continue'; a batch at or before
-- start_after_seq is behind the environment. Every lag figure below derives from here.
CREATE OR REPLACE VIEW permsync.v_batch_outcomes AS
SELECT b.id AS batch_id,
       b.commit_seq,
       b.committed_at,
       e.name AS environment_name,
       coalesce(x.execution_status, 'pending') AS status,
       x.failure_kind,
       x.error_code,
       x.result_message,
       x.finished_at,
       b.commit_seq <= e.start_after_seq
         OR coalesce(x.execution_status IN ('success', 'skipped', 'dry_run')
                     OR (x.execution_status = 'failed' AND x.failure_kind = 'permanent'
                         AND e.on_permanent_failure = 'continue'), false) AS finished
  FROM permsync.batches b
  JOIN permsync.environments e ON b.target_environment IS NULL OR b.target_environment = e.name
  LEFT JOIN permsync.execution_log x ON x.batch_id = b.id AND x.environment_name = e.name
 WHERE b.commit_seq IS NOT NULL
   AND (b.commit_seq > e.start_after_seq OR x.id IS NOT NULL);

-- ── Switches ──────────────────────────────────────────────────────────────────────────
-- Operator switches. They outlive daemon restarts, so the daemon's mirror of its
-- configuration file into this table must leave them alone.
INSERT INTO permsync.config (key, value, description) VALUES
    ('sync_enabled', 'true', 'false stops the daemon applying; capture keeps recording. permsync.enable_sync() / disable_sync()'),
    ('dry_run', 'false', 'true makes the daemon log what it would apply instead of applying it. permsync.enable_dry_run() / disable_dry_run()')
ON CONFLICT (key) DO NOTHING;

-- Helpers of the control functions. Not granted to anyone: they run as the owner, from
-- the security definer functions that call them.
CREATE OR REPLACE FUNCTION permsync.notify_control(action text, env text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT pg_notify('permsync_control',
                     json_build_object('action', action, 'environment', env, 'by', session_user)::text);
$fn$;

CREATE OR REPLACE FUNCTION permsync.set_switch(switch text, turn_on boolean, action text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO permsync.config (key, value, updated_at) VALUES (switch, turn_on::text, now())
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
    SELECT permsync.notify_control(action, NULL);
$fn$;

-- Raises undefined_object, naming the environment and the known ones, unless it exists.
CREATE OR REPLACE FUNCTION permsync.require_environment(env text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF env IS NULL THEN
        RAISE EXCEPTION 'an environment name is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM permsync.environments e WHERE e.name = env) THEN
        RAISE EXCEPTION 'no environment named "%"', env
            USING ERRCODE = 'undefined_object',
                  HINT = coalesce('known environments: '
                                  || (SELECT string_agg(e.name, ', ' ORDER BY e.priority, e.name) FROM permsync.environments e),
                                  'no environment is registered yet: the daemon registers them from its configuration when it starts');
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION permsync.enable_sync() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('sync_enabled', true, 'enable_sync') $fn$;

CREATE OR REPLACE FUNCTION permsync.disable_sync() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('sync_enabled', false, 'disable_sync') $fn$;

CREATE OR REPLACE FUNCTION permsync.enable_dry_run() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('dry_run', true, 'enable_dry_run') $fn$;

CREATE OR REPLACE FUNCTION permsync.disable_dry_run() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('dry_run', false, 'disable_dry_run') $fn$;

-- paused survives daemon restarts: the daemon's mirror of its configuration never writes it.
CREATE OR REPLACE FUNCTION permsync.pause_environment(env text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM permsync.require_environment(env);
    UPDATE permsync.environments e SET paused = true WHERE e.name = env;
    PERFORM permsync.notify_control('pause', env);
END
$fn$;

CREATE OR REPLACE FUNCTION permsync.resume_environment(env text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM permsync.require_environment(env);
    UPDATE permsync.environments e SET paused = false WHERE e.name = env;
    PERFORM permsync.notify_control('resume', env);
END
$fn$;

-- Queues SQL for every environment, or only env, as a batch like the captured ones: it is
-- ordered at commit and carried by the same pipeline. On each target it runs as the
-- caller's login (session_user), as a captured statement runs as its author: an operator
-- cannot get there what it may not do itself. invoker_search_path says how to read
-- unqualified names; its default is the caller's. As in capture, a text mentioning a
-- password is stored with its string literals masked.
CREATE OR REPLACE FUNCTION permsync.manual_sync(
    sql text,
    env text DEFAULT NULL,
    invoker_search_path text DEFAULT pg_catalog.current_setting('search_path'))
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    masked boolean := sql ~* 'password';
    batch  bigint;
BEGIN
    IF sql IS NULL OR btrim(sql) = '' THEN
        RAISE EXCEPTION 'manual_sync needs the SQL to carry' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF env IS NOT NULL THEN
        PERFORM permsync.require_environment(env);
    END IF;
    INSERT INTO permsync.batches (origin, query_text, query_masked, current_user_name,
                                  current_user_is_superuser, search_path, target_environment)
    VALUES ('manual', CASE WHEN masked THEN permsync.mask_string_literals(sql) ELSE sql END, masked, session_user,
            coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user), false),
            invoker_search_path, env)
    RETURNING id INTO batch;
    PERFORM pg_notify('permsync', batch::text);
    RETURN batch;
END
$fn$;

-- The failed executions a retry re-attempts: the one each environment (or env) waits on.
CREATE OR REPLACE FUNCTION permsync.retry_failed(env text DEFAULT NULL)
RETURNS TABLE (environment_name text, batch_id bigint, commit_seq bigint, failure_kind text,
               error_code text, error_message text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF env IS NOT NULL THEN
        PERFORM permsync.require_environment(env);
    END IF;
    PERFORM permsync.notify_control('retry', env);
    RETURN QUERY
        SELECT o.environment_name, o.batch_id, o.commit_seq, o.failure_kind, o.error_code, o.result_message
          FROM permsync.v_batch_outcomes o
         WHERE o.status = 'failed' AND NOT o.finished AND (env IS NULL OR o.environment_name = env)
         ORDER BY o.environment_name, o.commit_seq;
END
$fn$;

-- ── Status ────────────────────────────────────────────────────────────────────────────
-- One row per environment. state, most urgent first:
--   disabled       enabled = false in the daemon's configuration: nothing is carried there
--   held           the oldest unfinished batch failed permanently: it waits for a person
--   failing        the oldest unfinished batch failed transiently: the daemon retries it
--   paused         pause_environment(): nothing is carried until resume_environment()
--   sync_disabled  disable_sync(): nothing is carried anywhere until enable_sync()
--   pending        batches wait and nothing failed: being carried, or no daemon runs
--   ok             nothing waits
-- Counts cover executions that finished in the last `hours` hours. Security definer so
-- that permsync_reader, who reads views only, can read v_environment_status built on it.
CREATE OR REPLACE FUNCTION permsync.get_sync_status(hours integer DEFAULT 24)
RETURNS TABLE (environment text, label text, priority integer, enabled boolean, paused boolean,
               sync_enabled boolean, dry_run boolean, state text, last_success_at timestamptz,
               success_count bigint, failed_count bigint, skipped_count bigint, dry_run_count bigint,
               pending_batches bigint, oldest_pending_batch_id bigint, oldest_pending_age_seconds double precision,
               blocking_error_code text, blocking_error text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH switches AS (
        SELECT coalesce((SELECT c.value FROM permsync.config c WHERE c.key = 'sync_enabled'), 'true')::boolean AS sync_enabled,
               coalesce((SELECT c.value FROM permsync.config c WHERE c.key = 'dry_run'), 'false')::boolean AS dry_run
    )
    SELECT e.name, e.label, e.priority, e.enabled, e.paused, s.sync_enabled, s.dry_run,
           CASE WHEN NOT e.enabled THEN 'disabled'
                WHEN head.status = 'failed' AND head.failure_kind = 'permanent' THEN 'held'
                WHEN head.status = 'failed' THEN 'failing'
                WHEN e.paused THEN 'paused'
                WHEN NOT s.sync_enabled THEN 'sync_disabled'
                WHEN head.batch_id IS NOT NULL THEN 'pending'
                ELSE 'ok'
           END,
           (SELECT max(x.finished_at) FROM permsync.execution_log x
             WHERE x.environment_name = e.name AND x.execution_status = 'success'),
           recent.success, recent.failed, recent.skipped, recent.dry_run,
           (SELECT count(*) FROM permsync.v_batch_outcomes o WHERE o.environment_name = e.name AND NOT o.finished),
           head.batch_id,
           extract(epoch FROM now() - head.committed_at)::double precision,
           CASE WHEN head.status = 'failed' THEN head.error_code END,
           CASE WHEN head.status = 'failed' THEN head.result_message END
      FROM permsync.environments e
     CROSS JOIN switches s
     CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE x.execution_status = 'success') AS success,
                   count(*) FILTER (WHERE x.execution_status = 'failed') AS failed,
                   count(*) FILTER (WHERE x.execution_status = 'skipped') AS skipped,
                   count(*) FILTER (WHERE x.execution_status = 'dry_run') AS dry_run
              FROM permsync.execution_log x
             WHERE x.environment_name = e.name AND x.finished_at > now() - hours * interval '1 hour') recent
      LEFT JOIN LATERAL (
            SELECT o.* FROM permsync.v_batch_outcomes o
             WHERE o.environment_name = e.name AND NOT o.finished
             ORDER BY o.commit_seq LIMIT 1) head ON true
     ORDER BY e.priority, e.name
$fn$;

-- ── Views ─────────────────────────────────────────────────────────────────────────────
CREATE OR REPLACE VIEW permsync.v_environment_status AS
SELECT * FROM permsync.get_sync_status(24);

-- Batches committed in the last 7 days, newest first, with their outcome in each
-- environment they concern ('pending' where nothing is recorded yet).
CREATE OR REPLACE VIEW permsync.v_recent_batches AS
SELECT b.id AS batch_id, b.commit_seq, b.origin, b.committed_at, b.session_user_name, b.current_user_name,
       b.target_environment,
       coalesce((SELECT array_agg(a.command_tag ORDER BY a.id) FROM permsync.audit_log a WHERE a.batch_id = b.id),
                '{}') AS command_tags,
       b.query_text, b.query_masked,
       coalesce(o.outcomes, '{}') AS outcomes,
       coalesce(o.success, 0) AS success_count,
       coalesce(o.failed, 0) AS failed_count,
       coalesce(o.skipped, 0) AS skipped_count,
       coalesce(o.dry_run, 0) AS dry_run_count,
       coalesce(o.unfinished, 0) AS unfinished_count
  FROM permsync.batches b
  LEFT JOIN LATERAL (
        SELECT jsonb_object_agg(o.environment_name, o.status) AS outcomes,
               count(*) FILTER (WHERE o.status = 'success') AS success,
               count(*) FILTER (WHERE o.status = 'failed') AS failed,
               count(*) FILTER (WHERE o.status = 'skipped') AS skipped,
               count(*) FILTER (WHERE o.status = 'dry_run') AS dry_run,
               count(*) FILTER (WHERE NOT o.finished) AS unfinished
          FROM permsync.v_batch_outcomes o WHERE o.batch_id = b.id) o ON true
 WHERE b.commit_seq IS NOT NULL AND b.committed_at > now() - interval '7 days'
 ORDER BY b.commit_seq DESC;

CREATE OR REPLACE VIEW permsync.v_execution_details AS
SELECT x.id AS execution_id, x.batch_id, x.commit_seq, x.environment_name, e.label AS environment_label,
       b.origin, b.committed_at, b.session_user_name, b.current_user_name, b.target_environment,
       b.query_text, b.query_masked, x.applied_sql, x.execution_status, x.failure_kind,
       x.started_at, x.finished_at, x.duration_ms, x.result_message, x.error_code, x.error_detail, x.error_hint,
       x.retry_count, x.last_retry_at, x.server_version, x.connection_time_ms
  FROM permsync.execution_log x
  JOIN permsync.batches b ON b.id = x.batch_id
  LEFT JOIN permsync.environments e ON e.name = x.environment_name;

-- retry_state: 'retrying' (transient: the daemon tries again at next_attempt_at),
-- 'held' (permanent: the environment waits until permsync.retry_failed() or a restart),
-- 'passed' (permanent, and the environment continues past failures: never re-attempted;
-- drift shows what is missing there).
CREATE OR REPLACE VIEW permsync.v_failed_syncs AS
SELECT x.id AS execution_id, x.batch_id, x.commit_seq, x.environment_name, b.query_text, x.applied_sql,
       x.error_code, x.result_message AS error_message, x.error_detail, x.error_hint, x.failure_kind,
       CASE WHEN o.finished THEN 'passed'
            WHEN x.failure_kind = 'permanent' THEN 'held'
            ELSE 'retrying'
       END AS retry_state,
       x.retry_count, x.started_at AS first_attempt_at, x.finished_at AS last_attempt_at,
       r.attempts AS queued_attempts, r.next_attempt_at
  FROM permsync.execution_log x
  JOIN permsync.batches b ON b.id = x.batch_id
  LEFT JOIN permsync.v_batch_outcomes o ON o.batch_id = x.batch_id AND o.environment_name = x.environment_name
  LEFT JOIN permsync.retry_queue r ON r.batch_id = x.batch_id AND r.environment_name = x.environment_name
 WHERE x.execution_status = 'failed'
 ORDER BY x.finished_at DESC;

-- Each permission command the capture saw, with its batch's outcome per environment.
CREATE OR REPLACE VIEW permsync.v_audit_trail AS
SELECT a.id AS audit_id, a.logged_at, a.command_tag, a.object_type, a.object_identity, a.schema_name,
       a.in_extension, a.session_user_name, a.current_user_name, a.batch_id, b.commit_seq, b.origin,
       b.query_text, b.query_masked,
       coalesce((SELECT jsonb_object_agg(o.environment_name, o.status)
                   FROM permsync.v_batch_outcomes o WHERE o.batch_id = a.batch_id), '{}') AS outcomes
  FROM permsync.audit_log a
  JOIN permsync.batches b ON b.id = a.batch_id
 ORDER BY a.id DESC;

-- Durations cover executions that ran statements (success, failed); skipped and dry runs
-- take no time on the target and would only dilute the average. Days are in the session's
-- time zone.
CREATE OR REPLACE VIEW permsync.v_sync_daily_summary AS
SELECT x.finished_at::date AS day, x.environment_name,
       count(*) AS executions,
       count(*) FILTER (WHERE x.execution_status = 'success') AS success_count,
       count(*) FILTER (WHERE x.execution_status = 'failed') AS failed_count,
       count(*) FILTER (WHERE x.execution_status = 'skipped') AS skipped_count,
       count(*) FILTER (WHERE x.execution_status = 'dry_run') AS dry_run_count,
       round(avg(x.duration_ms) FILTER (WHERE x.execution_status IN ('success', 'failed')), 3) AS avg_duration_ms,
       max(x.duration_ms) FILTER (WHERE x.execution_status IN ('success', 'failed')) AS max_duration_ms
  FROM permsync.execution_log x
 GROUP BY 1, 2
 ORDER BY 1 DESC, 2;

-- ── Retention ─────────────────────────────────────────────────────────────────────────
-- Deletes what the retention settings (config log_retention_days, audit_retention_days;
-- 90 and 365 when absent) let go:
-- * each environment's start_after_seq first moves up to where the daemon would resume
--   there (RESUME_POINT): the batches before it are finished in order, so they no longer
--   need their execution_log rows to count as finished. Without this, deleting an old
--   success row would make the daemon replay that batch at its next start.
-- * execution_log rows older than log_retention_days, at or before that point (or of an
--   environment no longer registered). A failure the environment still waits on stays.
-- * batches older than audit_retention_days that no enabled environment has left to
--   finish, with their audit_log, execution_log and retry_queue rows. A disabled
--   environment does not keep history alive: re-enabled, it is brought up to date by
--   reconcile.
-- permsync.retention = 'on' for the duration of the call is what the audit_log guard
-- lets through (see audit_log_guard).
CREATE OR REPLACE FUNCTION permsync.cleanup_old_logs()
RETURNS TABLE (execution_log_deleted bigint, audit_log_deleted bigint, batches_deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET permsync.retention = 'on'
AS $fn$
DECLARE
    log_days   integer := coalesce((SELECT c.value FROM permsync.config c WHERE c.key = 'log_retention_days'), '90')::integer;
    audit_days integer := coalesce((SELECT c.value FROM permsync.config c WHERE c.key = 'audit_retention_days'), '365')::integer;
    doomed     bigint[];
    n          bigint;
BEGIN
    UPDATE permsync.environments e
       SET start_after_seq = w.seq
      FROM (SELECT e2.name,
                   coalesce((SELECT min(o.commit_seq) - 1 FROM permsync.v_batch_outcomes o
                              WHERE o.environment_name = e2.name AND NOT o.finished),
                            (SELECT max(b.commit_seq) FROM permsync.batches b)) AS seq
              FROM permsync.environments e2) w
     WHERE w.name = e.name AND w.seq > e.start_after_seq;

    DELETE FROM permsync.execution_log x
     WHERE x.finished_at < now() - log_days * interval '1 day'
       AND NOT EXISTS (SELECT FROM permsync.environments e
                        WHERE e.name = x.environment_name AND x.commit_seq > e.start_after_seq);
    GET DIAGNOSTICS n = ROW_COUNT;
    execution_log_deleted := n;

    doomed := ARRAY(
        SELECT b.id FROM permsync.batches b
         WHERE b.commit_seq IS NOT NULL
           AND b.committed_at < now() - audit_days * interval '1 day'
           AND NOT EXISTS (SELECT FROM permsync.v_batch_outcomes o
                             JOIN permsync.environments e ON e.name = o.environment_name
                            WHERE o.batch_id = b.id AND NOT o.finished AND e.enabled));
    DELETE FROM permsync.retry_queue r WHERE r.batch_id = ANY (doomed);
    DELETE FROM permsync.execution_log x WHERE x.batch_id = ANY (doomed);
    GET DIAGNOSTICS n = ROW_COUNT;
    execution_log_deleted := execution_log_deleted + n;
    DELETE FROM permsync.audit_log a WHERE a.batch_id = ANY (doomed);
    GET DIAGNOSTICS n = ROW_COUNT;
    audit_log_deleted := n;
    DELETE FROM permsync.batches b WHERE b.id = ANY (doomed);
    GET DIAGNOSTICS n = ROW_COUNT;
    batches_deleted := n;
    RETURN NEXT;
END
$fn$;

-- ── Append-only audit log ─────────────────────────────────────────────────────────────
-- UPDATE and TRUNCATE are refused always, DELETE unless it comes from cleanup_old_logs.
-- The GUC alone would prove nothing: any session can SET a custom parameter. What a
-- caller cannot fake is current_user: inside the security definer cleanup_old_logs it
-- is the function's owner, and the GUC is set only for the duration of that call (the
-- function's SET clause). So a DELETE passes only with both, and a role that merely
-- holds DELETE on the table, or sets the GUC, is refused. The owner, the installing
-- superuser, could set the GUC by hand and delete, and could disable the trigger
-- anyway: no trigger binds a superuser. This guards against everyone else, and against
-- accidents.
CREATE OR REPLACE FUNCTION permsync.audit_log_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF tg_op = 'DELETE'
       AND current_setting('permsync.retention', true) = 'on'
       AND current_user = (SELECT pg_get_userbyid(p.proowner) FROM pg_proc p
                            WHERE p.oid = 'permsync.cleanup_old_logs()'::regprocedure) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'permsync.audit_log is append-only: % refused', tg_op
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'old audit records are removed by permsync.cleanup_old_logs() after audit_retention_days';
END
$fn$;

DROP TRIGGER IF EXISTS audit_log_append_only ON permsync.audit_log;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON permsync.audit_log
    FOR EACH ROW EXECUTE FUNCTION permsync.audit_log_guard();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON permsync.audit_log;
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON permsync.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION permsync.audit_log_guard();

-- ── Roles ─────────────────────────────────────────────────────────────────────────────
-- Cluster-wide, so created only when missing (two databases of one cluster may both run
-- permsync), NOLOGIN: a DBA grants them to login roles, e.g.
--   GRANT permsync_daemon TO permsync_svc;   -- the login the daemon connects as
--   GRANT permsync_operator TO dba_team;
-- permsync_reader < permsync_operator < permsync_admin: each holds the one before it.
-- Uninstall leaves them in place (they may be granted to people, or used in another
-- database); see sql/uninstall.sql.
DO $do$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['permsync_admin', 'permsync_operator', 'permsync_reader', 'permsync_daemon'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object THEN
                NULL; -- created meanwhile by an install in another database
            END;
        END IF;
    END LOOP;
END
$do$;
GRANT permsync_reader TO permsync_operator;
GRANT permsync_operator TO permsync_admin;

-- Functions are executable by PUBLIC unless revoked, schema or not: revoke every one,
-- then grant each to the roles that need it. A later migration that adds a function must
-- do the same (test/operator.test.ts checks that PUBLIC can execute none).
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA permsync FROM PUBLIC;

-- permsync_reader: the views, nothing else (get_sync_status is what v_environment_status reads).
GRANT USAGE ON SCHEMA permsync TO permsync_reader;
GRANT SELECT ON permsync.v_environment_status, permsync.v_recent_batches, permsync.v_execution_details,
                permsync.v_failed_syncs, permsync.v_audit_trail, permsync.v_sync_daily_summary,
                permsync.v_batch_outcomes
   TO permsync_reader;
GRANT EXECUTE ON FUNCTION permsync.get_sync_status(integer) TO permsync_reader;

-- permsync_operator: also the tables, read-only, and the day-to-day controls. Not what
-- may hold password verifiers: batches.statements and role_snapshot (so SELECT * on
-- batches is refused; the views show everything else).
GRANT SELECT ON permsync.environments, permsync.sync_rules, permsync.config, permsync.audit_log,
                permsync.execution_log, permsync.retry_queue, permsync.schema_migrations
   TO permsync_operator;
GRANT SELECT (id, commit_seq, origin, source_xid, statement_started_at, captured_at, committed_at, database_name,
              session_user_name, current_user_name, current_user_is_superuser, search_path, backend_pid,
              client_addr, application_name, query_text, query_masked, target_environment)
   ON permsync.batches TO permsync_operator;
GRANT EXECUTE ON FUNCTION permsync.manual_sync(text, text, text), permsync.retry_failed(text),
                          permsync.pause_environment(text), permsync.resume_environment(text)
   TO permsync_operator;

-- permsync_admin: also the global switches and retention. No direct writes: the tables
-- are either logs, written only by capture and the daemon, or mirrors of the daemon's
-- configuration file, rewritten at each start; what an admin may change goes through a
-- function, which also tells the daemon.
GRANT EXECUTE ON FUNCTION permsync.enable_sync(), permsync.disable_sync(), permsync.enable_dry_run(),
                          permsync.disable_dry_run(), permsync.cleanup_old_logs()
   TO permsync_admin;

-- permsync_daemon: exactly what src/source/queries.ts reads, writes and calls. It writes
-- batches only through capture_role_changes, and may not touch paused or start_after_seq
-- (operators' and retention's), nor the audit log.
GRANT USAGE ON SCHEMA permsync TO permsync_daemon;
GRANT SELECT ON permsync.environments, permsync.sync_rules, permsync.config, permsync.batches,
                permsync.audit_log, permsync.execution_log, permsync.retry_queue, permsync.schema_migrations
   TO permsync_daemon;
GRANT EXECUTE ON FUNCTION permsync.capture_role_changes(), permsync.role_state() TO permsync_daemon;
-- Retention runs on the daemon's schedule (settings.cleanup_cron).
GRANT EXECUTE ON FUNCTION permsync.cleanup_old_logs() TO permsync_daemon;
GRANT INSERT, UPDATE (label, priority, enabled, on_permanent_failure, in_flight_through, updated_at) ON permsync.environments TO permsync_daemon;
GRANT INSERT, DELETE ON permsync.sync_rules TO permsync_daemon;
GRANT INSERT, UPDATE ON permsync.config, permsync.execution_log TO permsync_daemon;
GRANT INSERT, UPDATE, DELETE ON permsync.retry_queue TO permsync_daemon;
