-- permsync 0014: which roles on a target are permsync's to change. Idempotent: safe to run again.
--
-- The role watcher has no author: it sees that a role changed, not who changed it, and
-- a CREATEROLE user may create, alter and grant roles on the source. A role that exists
-- on a target without permsync having created it there (a prod-only superuser, an
-- auditor) belongs to that target: a look-alike created on the source must not hand
-- it over. So each environment has a set of roles permsync manages, by the role's oid
-- on that target (a role dropped and created again there under the same name is a new
-- role): those it created, and those an operator handed over (`permsync adopt`). A
-- statement that would change, grant, run as or drop any other role is not carried
-- there; the collision is recorded as a conflict.

CREATE TABLE IF NOT EXISTS permsync.managed_roles (
    environment_name text NOT NULL,
    -- The role's oid on the target: its identity there.
    role_oid         oid NOT NULL,
    -- Its name when permsync last changed it, for operators.
    role_name        name NOT NULL,
    how              text NOT NULL CHECK (how IN ('created', 'adopted')),
    recorded_by      name NOT NULL DEFAULT session_user,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_name, role_oid)
);

-- A source role whose name a target role permsync does not manage already holds. One
-- open row per environment and name; adopting the role (or its going away) closes it.
CREATE TABLE IF NOT EXISTS permsync.role_conflicts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_name text NOT NULL,
    role_name        name NOT NULL,
    target_oid       oid NOT NULL,
    -- The first batch that would have changed it there.
    batch_id         bigint,
    reason           text NOT NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolution       text
);
CREATE UNIQUE INDEX IF NOT EXISTS role_conflicts_open_idx
    ON permsync.role_conflicts (environment_name, role_name) WHERE resolved_at IS NULL;

-- Open conflicts, newest first, with what ends each one.
CREATE OR REPLACE VIEW permsync.v_role_conflicts AS
SELECT c.id AS conflict_id, c.environment_name, c.role_name, c.target_oid, c.batch_id, c.reason,
       c.first_seen_at, c.last_seen_at,
       format('permsync adopt --env %s %s', c.environment_name, c.role_name) AS to_hand_over
  FROM permsync.role_conflicts c
 WHERE c.resolved_at IS NULL
 ORDER BY c.last_seen_at DESC;

-- Attribute clauses, as in 0001, with each of SUPERUSER, REPLICATION and BYPASSRLS
-- named in `attribute` ('SUPERUSER' or 'NOSUPERUSER', ...): the daemon carries one that
-- gives such a power only where settings.carry_role_attributes says so. A comment over
-- 8 kB is not carried.
CREATE OR REPLACE FUNCTION permsync.role_attribute_statements(old jsonb, new jsonb)
RETURNS SETOF jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    name    text := new ->> 'name';
    clauses text[] := '{}';
    attr    text;
    flag    text;
BEGIN
    FOREACH attr IN ARRAY ARRAY['superuser', 'replication', 'bypassrls'] LOOP
        -- A new role lacks them unless told otherwise: only say what differs from that.
        IF (old IS NULL AND (new ->> attr)::boolean) OR (old IS NOT NULL AND (old -> attr) IS DISTINCT FROM (new -> attr)) THEN
            flag := CASE WHEN (new ->> attr)::boolean THEN '' ELSE 'NO' END || upper(attr);
            RETURN NEXT permsync.role_statement('ALTER ROLE', name,
                format('ALTER ROLE %I WITH %s', name, flag), privileged => true)
                || jsonb_build_object('attribute', flag);
        END IF;
    END LOOP;
    -- For a new role, only what differs from CREATE ROLE's defaults: on managed servers
    -- even NOCREATEDB needs the CREATEDB attribute, so unneeded clauses can fail.
    FOREACH attr IN ARRAY ARRAY['login', 'inherit', 'createrole', 'createdb'] LOOP
        IF (old IS NULL AND (new ->> attr)::boolean <> (attr = 'inherit'))
           OR (old IS NOT NULL AND (old -> attr) IS DISTINCT FROM (new -> attr)) THEN
            clauses := clauses || (CASE WHEN (new ->> attr)::boolean THEN '' ELSE 'NO' END || upper(attr));
        END IF;
    END LOOP;
    IF (old IS NULL AND (new ->> 'connlimit')::int <> -1)
       OR (old IS NOT NULL AND (old -> 'connlimit') IS DISTINCT FROM (new -> 'connlimit')) THEN
        clauses := clauses || ('CONNECTION LIMIT ' || (new ->> 'connlimit'));
    END IF;
    -- No expiry is NULL only on a role that never had one: there is nothing to say then.
    IF new ->> 'validuntil' IS NOT NULL AND (old IS NULL OR (old -> 'validuntil') IS DISTINCT FROM (new -> 'validuntil')) THEN
        clauses := clauses || ('VALID UNTIL ' || quote_literal(new ->> 'validuntil'));
    END IF;
    IF cardinality(clauses) > 0 THEN
        RETURN NEXT permsync.role_statement('ALTER ROLE', name,
            format('ALTER ROLE %I WITH %s', name, array_to_string(clauses, ' ')));
    END IF;
    -- Passwords travel as the verifier stored on the source (never the plaintext), and
    -- only when the snapshot holds them (settings.sync_passwords and the right to read them).
    IF new ? 'password' AND ((old IS NULL AND new ->> 'password' IS NOT NULL)
                             OR (old IS NOT NULL AND (old -> 'password') IS DISTINCT FROM (new -> 'password'))) THEN
        RETURN NEXT permsync.role_statement('ALTER ROLE', name,
            format('ALTER ROLE %I WITH PASSWORD %s', name, coalesce(quote_literal(new ->> 'password'), 'NULL')),
            display => format('ALTER ROLE %I WITH PASSWORD %s', name,
                              CASE WHEN new ->> 'password' IS NULL THEN 'NULL' ELSE '''********''' END));
    END IF;
    -- A comment is any text a CREATEROLE user likes: one over 8 kB is not carried (drift
    -- shows it), so that it cannot swell the batch that carries others' role changes.
    IF ((old IS NULL AND new ->> 'comment' IS NOT NULL)
        OR (old IS NOT NULL AND (old -> 'comment') IS DISTINCT FROM (new -> 'comment')))
       AND jsonb_typeof(new -> 'comment') IS DISTINCT FROM 'object' THEN
        RETURN NEXT permsync.role_statement('COMMENT ON ROLE', name,
            format('COMMENT ON ROLE %I IS %s', name, coalesce(quote_literal(new ->> 'comment'), 'NULL')));
    END IF;
END
$fn$;

-- Status, as in 0003, with each environment's open role conflicts counted.
DROP VIEW IF EXISTS permsync.v_environment_status;
DROP FUNCTION IF EXISTS permsync.get_sync_status(integer);
CREATE FUNCTION permsync.get_sync_status(hours integer DEFAULT 24)
RETURNS TABLE (environment text, label text, priority integer, enabled boolean, paused boolean,
               sync_enabled boolean, dry_run boolean, state text, last_success_at timestamptz,
               success_count bigint, failed_count bigint, skipped_count bigint, dry_run_count bigint,
               pending_batches bigint, oldest_pending_batch_id bigint, oldest_pending_age_seconds double precision,
               blocking_error_code text, blocking_error text, role_conflicts bigint)
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
           CASE WHEN head.status = 'failed' THEN head.result_message END,
           (SELECT count(*) FROM permsync.role_conflicts c WHERE c.environment_name = e.name AND c.resolved_at IS NULL)
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
CREATE VIEW permsync.v_environment_status AS
SELECT * FROM permsync.get_sync_status(24);

-- ── Privileges ────────────────────────────────────────────────────────────────────────
REVOKE ALL ON FUNCTION permsync.get_sync_status(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permsync.get_sync_status(integer) TO permsync_reader;
GRANT SELECT ON permsync.v_environment_status, permsync.v_role_conflicts TO permsync_reader;
GRANT SELECT ON permsync.managed_roles, permsync.role_conflicts TO permsync_operator;
-- The daemon records the roles it creates, drops, renames, and the conflicts it meets;
-- adopting (handing a role over) is the daemon's login's or an admin's, from the CLI.
GRANT SELECT, INSERT, DELETE, UPDATE (role_name) ON permsync.managed_roles TO permsync_daemon, permsync_admin;
GRANT SELECT, INSERT, UPDATE (batch_id, reason, last_seen_at, resolved_at, resolution) ON permsync.role_conflicts
   TO permsync_daemon, permsync_admin;

-- What drift needs to tell the target's own roles from permsync's: readers may run drift.
CREATE OR REPLACE VIEW permsync.v_managed_roles AS
SELECT m.environment_name, m.role_oid, m.role_name, m.how, m.recorded_by, m.recorded_at
  FROM permsync.managed_roles m;
GRANT SELECT ON permsync.v_managed_roles TO permsync_reader, permsync_daemon;
