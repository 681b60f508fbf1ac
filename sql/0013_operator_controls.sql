-- permsync 0013: what operators ask for is stored state, and notifications only wake the
-- daemon. Idempotent: safe to run again.
--
-- NOTIFY has no ACL: any login may send on any channel, and LISTEN to any. So:
-- * permsync_control carries no payload. What an operator asks for is in tables only the
--   control functions (security definer, granted to the permsync_* roles) write: the
--   switches in permsync.config (guarded below), environments.paused, and
--   environments.retry_requested, a counter a retry or a skip raises. The daemon reads
--   them at start, on every wake-up, after a reconnect and at every poll, and retries an
--   environment whose counter went up: a request made while its listener was down is
--   found at the next read, and a forged wake-up only makes it read the same state again.
-- * permsync_failure carries no payload either (see src/source/queries.ts NOTIFY_FAILURE):
--   what failed is in v_failed_syncs, for whoever may read it.
-- * Every control function leaves a row in permsync.operator_actions (append-only): who,
--   when, what, which environment and batch, and why.
--
-- Operators may skip a batch for one environment (skip_batch): it is recorded as that
-- batch's outcome there (execution_log status 'skipped'), which the daemon never
-- overwrites and never runs again.
--
-- Capturing password verifiers (sync_passwords in permsync.config) is an admin's switch:
-- enable_password_sync() / disable_password_sync(). The daemon's role may write
-- permsync.config (it mirrors its settings there) but not this key: it could otherwise
-- turn capture on and read every verifier, superusers' included.

-- ── Stored requests ───────────────────────────────────────────────────────────────────
-- Raised by retry_failed() and skip_batch(); the daemon may not write it (its UPDATE grant
-- on environments names its own columns).
ALTER TABLE permsync.environments ADD COLUMN IF NOT EXISTS retry_requested bigint NOT NULL DEFAULT 0;

-- One row per operator action. acted_by is the login (session_user), as in the batches.
CREATE TABLE IF NOT EXISTS permsync.operator_actions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    acted_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    acted_by         name NOT NULL DEFAULT session_user,
    action           text NOT NULL,
    environment_name text,
    batch_id         bigint,
    reason           text
);

-- Append-only, as audit_log: no UPDATE, DELETE or TRUNCATE, whoever asks (the owner, a
-- superuser, can drop the trigger; nobody else can get past it).
CREATE OR REPLACE FUNCTION permsync.operator_actions_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION 'permsync.operator_actions is append-only: % refused', tg_op
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

DROP TRIGGER IF EXISTS operator_actions_append_only ON permsync.operator_actions;
CREATE TRIGGER operator_actions_append_only
    BEFORE UPDATE OR DELETE ON permsync.operator_actions
    FOR EACH ROW EXECUTE FUNCTION permsync.operator_actions_guard();
DROP TRIGGER IF EXISTS operator_actions_no_truncate ON permsync.operator_actions;
CREATE TRIGGER operator_actions_no_truncate
    BEFORE TRUNCATE ON permsync.operator_actions
    FOR EACH STATEMENT EXECUTE FUNCTION permsync.operator_actions_guard();

CREATE OR REPLACE VIEW permsync.v_operator_actions AS
SELECT a.id, a.acted_at, a.acted_by, a.action, a.environment_name, a.batch_id, b.commit_seq, a.reason
  FROM permsync.operator_actions a
  LEFT JOIN permsync.batches b ON b.id = a.batch_id
 ORDER BY a.id DESC;

-- Records an action and wakes the daemon. Not granted to anyone: the control functions
-- call it as its owner.
CREATE OR REPLACE FUNCTION permsync.record_control(action text, env text, batch bigint, reason text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO permsync.operator_actions (action, environment_name, batch_id, reason) VALUES (action, env, batch, reason);
    SELECT permsync.wake('permsync_control', '');
$fn$;

-- What every control function of 0003 ends with: now a record and a bare wake-up.
CREATE OR REPLACE FUNCTION permsync.notify_control(action text, env text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.record_control(action, env, NULL, NULL) $fn$;

-- ── Switches only their functions write ───────────────────────────────────────────────
-- sync_enabled, dry_run and sync_passwords are written only by the owner, which is who the
-- security definer control functions run as, and superusers (the DBAs, whom no trigger
-- binds anyway). Anyone else (the daemon's role, which may write the rest of the table) is
-- refused, naming the function to use.
CREATE OR REPLACE FUNCTION permsync.config_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    switch text;
BEGIN
    IF tg_op <> 'INSERT' THEN
        IF OLD.key IN ('sync_enabled', 'dry_run', 'sync_passwords') THEN
            switch := OLD.key;
        END IF;
    END IF;
    IF tg_op <> 'DELETE' THEN
        IF NEW.key IN ('sync_enabled', 'dry_run', 'sync_passwords') THEN
            switch := NEW.key;
        END IF;
    END IF;
    IF switch IS NOT NULL
       AND current_user <> (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = 'permsync.config'::regclass)
       AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'permsync.config: "%" is an admin''s switch; % refused', switch, tg_op
            USING ERRCODE = 'insufficient_privilege',
                  HINT = CASE switch
                             WHEN 'sync_enabled' THEN 'permsync.enable_sync() / disable_sync() set it (permsync_admin)'
                             WHEN 'dry_run' THEN 'permsync.enable_dry_run() / disable_dry_run() set it (permsync_admin)'
                             ELSE 'permsync.enable_password_sync() / disable_password_sync() set it (permsync_admin)'
                         END;
    END IF;
    RETURN CASE WHEN tg_op = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;

-- Until now the daemon wrote sync_passwords from its configuration file: what it says was
-- not an admin's choice, so capture starts off. Only the first run of this file does this
-- (the guard does not exist yet), so a later run keeps what an admin has set since.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = 'permsync.config'::regclass AND t.tgname = 'config_switches') THEN
        INSERT INTO permsync.config (key, value, updated_at) VALUES ('sync_passwords', 'false', now())
        ON CONFLICT (key) DO UPDATE SET value = 'false', updated_at = now();
    END IF;
END
$do$;
UPDATE permsync.config
   SET description = 'true makes the source capture password verifiers for the daemon to carry (settings.sync_passwords). permsync.enable_password_sync() / disable_password_sync()'
 WHERE key = 'sync_passwords';

DROP TRIGGER IF EXISTS config_switches ON permsync.config;
CREATE TRIGGER config_switches
    BEFORE INSERT OR UPDATE OR DELETE ON permsync.config
    FOR EACH ROW EXECUTE FUNCTION permsync.config_guard();

CREATE OR REPLACE FUNCTION permsync.enable_password_sync() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('sync_passwords', true, 'enable_password_sync') $fn$;

CREATE OR REPLACE FUNCTION permsync.disable_password_sync() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('sync_passwords', false, 'disable_password_sync') $fn$;

-- ── Retry and skip ────────────────────────────────────────────────────────────────────
-- The failed executions a retry re-attempts: the one each environment (or env) waits on.
-- The request is stored (retry_requested): a daemon that is down or reconnecting carries
-- it out when it next reads the source.
CREATE OR REPLACE FUNCTION permsync.retry_failed(env text DEFAULT NULL)
RETURNS TABLE (environment_name text, batch_id bigint, commit_seq bigint, failure_kind text,
               error_code text, error_message text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF env IS NOT NULL THEN
        PERFORM permsync.require_environment(env);
    END IF;
    UPDATE permsync.environments e SET retry_requested = e.retry_requested + 1 WHERE env IS NULL OR e.name = env;
    PERFORM permsync.notify_control('retry', env);
    RETURN QUERY
        SELECT o.environment_name, o.batch_id, o.commit_seq, o.failure_kind, o.error_code, o.result_message
          FROM permsync.v_batch_outcomes o
         WHERE o.status = 'failed' AND NOT o.finished AND (env IS NULL OR o.environment_name = env)
         ORDER BY o.environment_name, o.commit_seq;
END
$fn$;

-- Gives up on one batch in one environment: its outcome there becomes 'skipped', with who
-- skipped it and why, and the environment goes on with the batches after it. Any batch
-- the environment has yet to finish may be skipped: the one it is held on, one it keeps
-- failing on, or one further on that is known not to apply there. The daemon never runs
-- a batch with a finished outcome, and never overwrites one (RECORD_EXECUTIONS updates a
-- failure only). The unique (batch_id, environment_name) key orders a skip and the
-- daemon's own log write of the same batch: whichever commits first stands, and a skip
-- that comes second is refused, naming the outcome.
CREATE OR REPLACE FUNCTION permsync.skip_batch(env text, batch bigint, reason text)
RETURNS TABLE (environment_name text, batch_id bigint, commit_seq bigint, was text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    seq       bigint;
    only_env  text;
    origin    text;
    behind    boolean;
    passes    boolean;
    before    text;
    message   text;
    done      text;
BEGIN
    PERFORM permsync.require_environment(env);
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'a skip needs a reason: it is recorded with the skip, for whoever looks at % later', env
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT b.commit_seq, b.target_environment, b.origin INTO seq, only_env, origin
      FROM permsync.batches b WHERE b.id = batch;
    IF seq IS NULL THEN
        RAISE EXCEPTION 'no committed batch %', batch
            USING ERRCODE = 'undefined_object', HINT = 'permsync.v_environment_status shows the batch each environment waits on';
    END IF;
    IF only_env <> env THEN
        RAISE EXCEPTION 'batch % is not carried to "%": it was queued for "%" only', batch, env, only_env
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT seq <= e.start_after_seq, e.on_permanent_failure = 'continue' INTO behind, passes
      FROM permsync.environments e WHERE e.name = env;
    IF behind OR origin = 'reconcile' THEN
        RAISE EXCEPTION 'batch % is finished in "%" already: it predates the environment, or is a reconcile', batch, env
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT x.execution_status INTO before
      FROM permsync.execution_log x WHERE x.batch_id = batch AND x.environment_name = env;
    -- Sent there and no outcome yet: it may be running now, and a skip would be logged for
    -- what the target commits a moment later.
    IF before IS NULL AND seq <= (SELECT e.in_flight_through FROM permsync.environments e WHERE e.name = env) THEN
        RAISE EXCEPTION 'batch % may be being applied in "%" now: it was sent there and has no outcome yet', batch, env
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'wait for its outcome (permsync status), then skip it if it failed';
    END IF;
    message := format('skipped by %s: %s', session_user, reason);
    INSERT INTO permsync.execution_log AS x (batch_id, environment_name, commit_seq, execution_status,
                                             started_at, finished_at, duration_ms, result_message)
    VALUES (batch, env, seq, 'skipped', now(), now(), 0, message)
    ON CONFLICT (batch_id, environment_name) DO UPDATE
       SET execution_status = 'skipped', failure_kind = NULL, finished_at = now(),
           result_message = EXCLUDED.result_message || coalesce('; it had failed: ' || x.result_message, '')
     WHERE x.execution_status = 'failed' AND NOT coalesce(x.failure_kind = 'permanent' AND passes, false);
    IF NOT FOUND THEN
        SELECT x.execution_status || coalesce(' (' || x.result_message || ')', '') INTO done
          FROM permsync.execution_log x WHERE x.batch_id = batch AND x.environment_name = env;
        RAISE EXCEPTION 'batch % is finished in "%" already: %', batch, env, done
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'only a batch the environment has yet to finish can be skipped';
    END IF;
    DELETE FROM permsync.retry_queue r WHERE r.batch_id = batch AND r.environment_name = env;
    UPDATE permsync.environments e SET retry_requested = e.retry_requested + 1 WHERE e.name = env;
    PERFORM permsync.record_control('skip', env, batch, reason);
    RETURN QUERY SELECT env, batch, seq, coalesce(before, 'pending');
END
$fn$;

-- ── Privileges ────────────────────────────────────────────────────────────────────────
REVOKE ALL ON FUNCTION permsync.operator_actions_guard(), permsync.record_control(text, text, bigint, text),
                       permsync.notify_control(text, text), permsync.config_guard(),
                       permsync.enable_password_sync(), permsync.disable_password_sync(),
                       permsync.retry_failed(text), permsync.skip_batch(text, bigint, text)
   FROM PUBLIC;
GRANT SELECT ON permsync.v_operator_actions TO permsync_reader;
GRANT SELECT ON permsync.operator_actions TO permsync_operator;
GRANT EXECUTE ON FUNCTION permsync.skip_batch(text, bigint, text) TO permsync_operator;
GRANT EXECUTE ON FUNCTION permsync.enable_password_sync(), permsync.disable_password_sync() TO permsync_admin;
