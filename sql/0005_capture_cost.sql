-- permsync 0005: a cheaper capture path for the DBA. Idempotent: safe to run again.
--
-- Every captured string paid for comparing all role catalogs with the snapshot, and with
-- 10,000 roles that took milliseconds (an xid-to-text cast per row). Now:
--   * the fingerprints sum xmin through age(), an integer per row (a third of the cost);
--   * capture compares only what a permission statement can depend on, roles and
--     memberships. Role settings, comments and database privileges reach the targets
--     through the role watcher, and where they fall in the order does not matter;
--   * the snapshot's state (jsonb, large with many roles) is read only when it changed.

ALTER TABLE permsync.role_snapshot ADD COLUMN IF NOT EXISTS roles_fingerprint text;

-- Change detection for one catalog: (rows, sum of xmin mod 2^32). Any committed change
-- writes a row with a new xmin, and a removed row lowers the count. The sum comes from
-- age(xmin), exact modulo 2^32 since xmin = now - age(xmin) with now = age('3') + 3.
-- Rows of the bootstrap transaction (and pre-9.4 frozen ones) have age 2^31 - 1 at any
-- time; they are only counted. Freezing keeps the raw xmin: VACUUM changes nothing here.

-- Roles and memberships: what a GRANT, an owner change or a replay as the DBA's role
-- needs on the target first. Without the right to read pg_authid (a managed service's
-- admin), a hash of what can be read, which costs more but sees the same changes.
CREATE OR REPLACE FUNCTION permsync.roles_fingerprint()
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    now_xid bigint := age('3'::xid)::bigint + 3;
    result  text;
BEGIN
    IF has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        SELECT r.digest || '/' || m.digest INTO result
          FROM (SELECT count(*) || ':' || (count(nullif(a, 2147483647)) * now_xid - coalesce(sum(nullif(a, 2147483647)), 0)) % 4294967296
                  FROM (SELECT age(xmin) AS a FROM pg_authid) t) r(digest),
               (SELECT count(*) || ':' || (count(nullif(a, 2147483647)) * now_xid - coalesce(sum(nullif(a, 2147483647)), 0)) % 4294967296
                  FROM (SELECT age(xmin) AS a FROM pg_auth_members) t) m(digest);
    ELSE
        SELECT md5(concat_ws('/',
                 (SELECT string_agg(r::text, ',' ORDER BY r.oid) FROM pg_roles r),
                 (SELECT string_agg(m::text, ',' ORDER BY m.roleid, m.member) FROM pg_auth_members m)))
          INTO result;
    END IF;
    RETURN result;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.roles_fingerprint() FROM PUBLIC;

-- Everything the snapshot keeps: the above, role settings, comments on roles, the
-- database's ACL, and whether passwords are carried.
CREATE OR REPLACE FUNCTION permsync.role_fingerprint()
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    now_xid bigint := age('3'::xid)::bigint + 3;
    rest    text;
BEGIN
    IF has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        SELECT s.digest || '/' || d.digest || '/' || b.xmin INTO rest
          FROM (SELECT count(*) || ':' || (count(nullif(a, 2147483647)) * now_xid - coalesce(sum(nullif(a, 2147483647)), 0)) % 4294967296
                  FROM (SELECT age(xmin) AS a FROM pg_db_role_setting) t) s(digest),
               (SELECT count(*) || ':' || (count(nullif(a, 2147483647)) * now_xid - coalesce(sum(nullif(a, 2147483647)), 0)) % 4294967296
                  FROM (SELECT age(xmin) AS a FROM pg_shdescription) t) d(digest),
               (SELECT xmin::text FROM pg_database WHERE datname = current_database()) b(xmin);
    ELSE
        SELECT md5(concat_ws('/',
                 (SELECT string_agg(s::text, ',' ORDER BY s.setrole, s.setdatabase) FROM pg_db_role_setting s),
                 (SELECT string_agg(d.description, ',' ORDER BY d.objoid) FROM pg_shdescription d
                   WHERE d.classoid = 'pg_authid'::regclass),
                 (SELECT datacl::text FROM pg_database WHERE datname = current_database())))
          INTO rest;
    END IF;
    RETURN concat_ws('/', (SELECT value FROM permsync.config WHERE key = 'sync_passwords'),
                     permsync.roles_fingerprint(), rest);
END
$fn$;

-- As in 0001, but the snapshot's state is read only when the fingerprint differs, and
-- the roles fingerprint that capture compares with is stored beside the full one.
CREATE OR REPLACE FUNCTION permsync.capture_role_changes()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    current_fp text := permsync.role_fingerprint();
    old_state  jsonb;
    state      jsonb;
    changes    jsonb;
    batch      bigint;
BEGIN
    IF (SELECT fingerprint = current_fp AND roles_fingerprint IS NOT NULL FROM permsync.role_snapshot WHERE id = 1) THEN
        RETURN NULL;
    END IF;
    -- Serialise capturers so two sessions do not both write the same change.
    PERFORM pg_advisory_xact_lock(hashtext('permsync.role_snapshot'));
    current_fp := permsync.role_fingerprint();
    IF (SELECT fingerprint = current_fp AND roles_fingerprint IS NOT NULL FROM permsync.role_snapshot WHERE id = 1) THEN
        RETURN NULL;
    END IF;
    SELECT s.state INTO old_state FROM permsync.role_snapshot s WHERE s.id = 1;
    state := permsync.role_state();
    IF old_state IS NOT NULL THEN
        changes := permsync.role_changes(old_state, state);
    END IF;
    INSERT INTO permsync.role_snapshot (id, fingerprint, roles_fingerprint, state, taken_at)
    VALUES (1, current_fp, permsync.roles_fingerprint(), state, clock_timestamp())
    ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, roles_fingerprint = EXCLUDED.roles_fingerprint,
                                   state = EXCLUDED.state, taken_at = EXCLUDED.taken_at;
    IF changes IS NULL OR jsonb_array_length(changes) = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO permsync.batches (origin, query_text, statements, current_user_name, current_user_is_superuser, search_path)
    VALUES ('role_watcher',
            (SELECT string_agg(s ->> 'display', E';\n') || ';' FROM jsonb_array_elements(changes) s),
            changes, session_user, false, 'pg_catalog')
    RETURNING id INTO batch;
    INSERT INTO permsync.audit_log (batch_id, command_tag, object_type, object_identity)
    SELECT batch, s ->> 'kind', 'role', s ->> 'role' FROM jsonb_array_elements(changes) s;
    PERFORM pg_notify('permsync', batch::text);
    RETURN batch;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.capture_role_changes() FROM PUBLIC;

-- As in 0001 (see there for why it is built this way), with the cheaper role check, done
-- once per client string rather than before each command's batch lookup.
CREATE OR REPLACE FUNCTION permsync_capture.record_command(
    command_tag text, invoker name, invoker_search_path text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    query  text := current_query();
    batch  bigint;
    cmd    record;
    masked boolean := false;
BEGIN
    -- Raises outside an event trigger: nobody can call this to forge a batch.
    SELECT * INTO cmd FROM pg_event_trigger_ddl_commands() LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF query ~* 'password' THEN
        query := permsync.mask_string_literals(query, current_setting('standard_conforming_strings') = 'off');
        masked := true;
    END IF;
    -- An ALTER counts only when the text holds the word OWNER outside string literals:
    -- the same text, and so the same answer, the daemon's planner gets.
    IF command_tag LIKE 'ALTER %' AND command_tag <> 'ALTER DEFAULT PRIVILEGES' AND query !~* 'owner' THEN
        RETURN;
    END IF;
    SELECT b.id INTO batch
      FROM permsync.batches b
     WHERE b.backend_pid = pg_backend_pid() AND b.statement_started_at = statement_timestamp()
       AND b.source_xid = pg_current_xact_id() AND b.origin = 'event_trigger';
    IF batch IS NULL THEN
        -- Role changes made before this string go first (CREATE ROLE, then GRANT).
        IF permsync.roles_fingerprint() IS DISTINCT FROM (SELECT s.roles_fingerprint FROM permsync.role_snapshot s WHERE s.id = 1) THEN
            PERFORM permsync.capture_role_changes();
        END IF;
        INSERT INTO permsync.batches (query_text, query_masked, current_user_name,
                                      current_user_is_superuser, search_path)
        VALUES (query, masked, invoker,
                coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = invoker), false),
                invoker_search_path)
        RETURNING id INTO batch;
        PERFORM pg_notify('permsync', batch::text);
    END IF;
    -- One audit row per command: the command's first object stands for it. Each row keeps
    -- the identity it ran with, so the daemon can tell when a string changed role or
    -- search_path between its permission commands.
    INSERT INTO permsync.audit_log (batch_id, command_tag, object_type, object_identity,
                                    schema_name, in_extension, current_user_name, search_path)
    VALUES (batch, command_tag, cmd.object_type, cmd.object_identity, cmd.schema_name,
            cmd.in_extension, invoker, invoker_search_path);
END
$fn$;
REVOKE ALL ON FUNCTION permsync_capture.record_command(text, name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permsync_capture.record_command(text, name, text) TO PUBLIC;
