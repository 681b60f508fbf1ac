-- permsync 0004: drift checks and reconcile. Idempotent: safe to run again.
--
-- `permsync drift` and the daemon's scheduled check compare each environment with the
-- source, by name, and record the result here; `permsync reconcile --apply` converges an
-- environment and records what it ran as a batch (origin 'reconcile') with its outcome.

-- ── Drift checks ──────────────────────────────────────────────────────────────────────
-- One row per environment and check. differences is NULL when the check could not run
-- (summary then holds {"error": ...}); otherwise summary counts the differences by
-- category ({"role": 1, "privileges": 3, ...}), with the statements that would converge
-- them ("statements") and how many of them the configuration excludes ("excluded_by_configuration").
CREATE TABLE IF NOT EXISTS permsync.drift_checks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment text NOT NULL,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    differences integer CHECK (differences >= 0),
    summary     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS drift_checks_env_idx ON permsync.drift_checks (environment, checked_at);

-- One row per environment (registered or checked): its last check, and when it last
-- matched the source. state: 'unchecked', 'error' (the last check could not run),
-- 'drifted' or 'matches'.
CREATE OR REPLACE VIEW permsync.v_drift_status AS
SELECT e.environment,
       CASE WHEN l.id IS NULL THEN 'unchecked'
            WHEN l.differences IS NULL THEN 'error'
            WHEN l.differences > 0 THEN 'drifted'
            ELSE 'matches'
       END AS state,
       l.checked_at AS last_checked_at,
       l.differences AS last_differences,
       l.summary AS last_summary,
       (SELECT max(c.checked_at) FROM permsync.drift_checks c
         WHERE c.environment = e.environment AND c.differences = 0) AS last_matched_at
  FROM (SELECT name AS environment FROM permsync.environments
        UNION
        SELECT DISTINCT environment FROM permsync.drift_checks) e
  LEFT JOIN LATERAL (SELECT c.* FROM permsync.drift_checks c
                      WHERE c.environment = e.environment
                      ORDER BY c.checked_at DESC, c.id DESC LIMIT 1) l ON true
 ORDER BY e.environment;

-- The batches the daemon skipped for an environment because their statements could not
-- be cut out of the query string (DO blocks, functions, dynamic SQL: result_message
-- 'not replayable: ...'), since the environment last matched the source. Drift points
-- them out, so that they are never silently dropped. Security definer so that
-- permsync_reader, who reads views only, may run drift.
CREATE OR REPLACE FUNCTION permsync.unreplayable_since_match(env text)
RETURNS TABLE (batch_id bigint, commit_seq bigint, finished_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT x.batch_id, x.commit_seq, x.finished_at
      FROM permsync.execution_log x
     WHERE x.environment_name = env
       AND x.execution_status = 'skipped'
       AND x.result_message LIKE 'not replayable:%'
       AND x.finished_at > coalesce((SELECT max(c.checked_at) FROM permsync.drift_checks c
                                      WHERE c.environment = env AND c.differences = 0), '-infinity')
     ORDER BY x.commit_seq
$fn$;

-- ── Reconcile ─────────────────────────────────────────────────────────────────────────
-- Records a reconcile that has already committed on the environment: the batch (origin
-- 'reconcile', for that environment only, the plan masked in query_text, the statements
-- in the shape permsync.role_statement() gives them) and its execution_log row, status
-- success, in one transaction. The daemon must not carry such a batch again: its fetch
-- leaves origin 'reconcile' out (see docs/drift.md).
-- commit_seq is taken now rather than at commit, since the execution_log row needs it:
-- assign_commit_seq's advisory lock is then held from nextval to commit all the same, so
-- commit_seq order is still commit order. Security definer: the daemon's role may not
-- write batches directly.
CREATE OR REPLACE FUNCTION permsync.record_reconcile(
    env text, plan_text text, plan_masked boolean, statements jsonb, applied_sql text,
    started_at timestamptz, finished_at timestamptz, duration_ms numeric, result_message text,
    server_version text, connection_time_ms numeric)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    batch bigint;
    seq   bigint;
BEGIN
    IF env IS NULL OR jsonb_typeof(statements) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'record_reconcile needs an environment and an array of statements'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SET CONSTRAINTS permsync.zz_assign_commit_seq IMMEDIATE;
    INSERT INTO permsync.batches (origin, query_text, query_masked, statements, target_environment,
                                  current_user_name, current_user_is_superuser, search_path)
    VALUES ('reconcile', plan_text, plan_masked, statements, env, session_user, false, 'pg_catalog')
    RETURNING id INTO batch;
    SET CONSTRAINTS permsync.zz_assign_commit_seq DEFERRED;
    SELECT b.commit_seq INTO seq FROM permsync.batches b WHERE b.id = batch;
    INSERT INTO permsync.audit_log (batch_id, command_tag, object_type, object_identity, current_user_name)
    SELECT batch, s ->> 'kind', 'reconcile', s ->> 'role', session_user FROM jsonb_array_elements(statements) s;
    INSERT INTO permsync.execution_log (batch_id, environment_name, commit_seq, applied_sql, execution_status,
                                        started_at, finished_at, duration_ms, result_message, server_version,
                                        connection_time_ms)
    VALUES (batch, env, seq, applied_sql, 'success', started_at, finished_at, duration_ms, result_message,
            server_version, connection_time_ms);
    RETURN batch;
END
$fn$;

-- ── Privileges ────────────────────────────────────────────────────────────────────────
-- As in 0003: no function for PUBLIC; the daemon's role records checks and reconciles
-- (the CLI runs with the daemon's configuration); readers see the view, operators the table.
REVOKE ALL ON FUNCTION permsync.record_reconcile(text, text, boolean, jsonb, text, timestamptz, timestamptz,
                                                 numeric, text, text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permsync.record_reconcile(text, text, boolean, jsonb, text, timestamptz, timestamptz,
                                                    numeric, text, text, numeric)
   TO permsync_daemon, permsync_admin;
REVOKE ALL ON FUNCTION permsync.unreplayable_since_match(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permsync.unreplayable_since_match(text) TO permsync_reader, permsync_daemon;
GRANT SELECT ON permsync.v_drift_status TO permsync_reader;
GRANT SELECT ON permsync.drift_checks TO permsync_operator;
GRANT SELECT, INSERT ON permsync.drift_checks TO permsync_daemon;
