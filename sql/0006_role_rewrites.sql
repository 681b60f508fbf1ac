-- permsync 0006: role changes the fingerprints could not see. Idempotent: safe to run again.
--
--   * A transaction that writes a catalog row twice, with a GRANT between the writes that
--     took the snapshot (CREATE ROLE a; GRANT ... TO a; ALTER ROLE a CREATEDB), leaves the
--     row's xmin and the count as they were: the second write was never captured, not even
--     by the watcher after COMMIT. A rewritten row moves, though: the snapshot now keeps
--     where the rows stand that its own transaction wrote, and each check compares them
--     until the watcher, after that transaction has committed, finds them unchanged (from
--     then on any write gives a row a new xmin).
--   * capture_role_changes stored a roles fingerprint taken after role_state(): a role
--     committed in between counted as captured while missing from the snapshot, and a
--     GRANT to it could reach the targets first. The fingerprints are now taken in one
--     statement (one snapshot) before the state.

ALTER TABLE permsync.role_snapshot ADD COLUMN IF NOT EXISTS written_by xid8;
ALTER TABLE permsync.role_snapshot ADD COLUMN IF NOT EXISTS rows_written text;
ALTER TABLE permsync.role_snapshot ADD COLUMN IF NOT EXISTS roles_rows_written text;

-- Where the role catalogs' rows written from transaction `since` on stand (their ctids,
-- hashed and summed: no order to sort by): of roles and memberships only, as the roles
-- fingerprint, or of everything the snapshot keeps. Compared only until the watcher has
-- seen them committed and unchanged. Without the right to read pg_authid, nothing: the
-- fingerprints then hash the rows' content, which a second write changes.
CREATE OR REPLACE FUNCTION permsync.rows_written_since(since xid, roles_only boolean)
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    since_age integer := age(since);
    roles     text;
BEGIN
    -- PL/pgSQL for its cached plans: every string of the snapshot's transaction compares these.
    IF NOT has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        RETURN '';
    END IF;
    roles := concat_ws('/',
               (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_authid WHERE age(xmin) <= since_age),
               (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_auth_members WHERE age(xmin) <= since_age));
    IF roles_only THEN
        RETURN roles;
    END IF;
    RETURN concat_ws('/', roles,
             (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_db_role_setting WHERE age(xmin) <= since_age),
             (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_shdescription WHERE age(xmin) <= since_age),
             (SELECT ctid::text FROM pg_database WHERE datname = current_database()));
END
$fn$;
REVOKE ALL ON FUNCTION permsync.rows_written_since(xid, boolean) FROM PUBLIC;

-- Whether the role catalogs still match the snapshot: roles and memberships only (what
-- capture needs before a GRANT), or everything it keeps (the watcher). False when there
-- is no snapshot yet. PL/pgSQL, not SQL, for its cached plan: the DBA's path calls it.
CREATE OR REPLACE FUNCTION permsync.role_snapshot_matches(roles_only boolean)
RETURNS boolean
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN coalesce((
        SELECT CASE WHEN roles_only
                    THEN s.roles_fingerprint = permsync.roles_fingerprint()
                         AND (s.written_by IS NULL OR s.roles_rows_written = permsync.rows_written_since(s.written_by::xid, true))
                    ELSE s.fingerprint = permsync.role_fingerprint() AND s.roles_fingerprint IS NOT NULL
                         AND (s.written_by IS NULL OR s.rows_written = permsync.rows_written_since(s.written_by::xid, false))
               END
          FROM permsync.role_snapshot s WHERE s.id = 1), false);
END
$fn$;
REVOKE ALL ON FUNCTION permsync.role_snapshot_matches(boolean) FROM PUBLIC;

-- As in 0005, with the check above, and the fingerprints taken at once, before the state.
CREATE OR REPLACE FUNCTION permsync.capture_role_changes()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    writer       xid8;
    current_fp   text;
    roles_fp     text;
    rows_written text;
    roles_rows   text;
    old_state    jsonb;
    state        jsonb;
    changes      jsonb;
    batch        bigint;
BEGIN
    IF permsync.role_snapshot_matches(false) THEN
        -- The snapshot's transaction has committed with its rows where it left them: stop
        -- comparing their places. Only from a transaction that has written nothing yet
        -- (the watcher's check; never a DBA's, which would then hold the lock to its end,
        -- nor the snapshot's own), under the lock (no capturer is writing a newer snapshot:
        -- each holds it until it commits), checked again there in one statement.
        IF pg_current_xact_id_if_assigned() IS NULL
           AND (SELECT s.written_by IS NOT NULL FROM permsync.role_snapshot s WHERE s.id = 1)
           AND pg_try_advisory_xact_lock(hashtext('permsync.role_snapshot')) THEN
            UPDATE permsync.role_snapshot s SET written_by = NULL, rows_written = NULL, roles_rows_written = NULL
             WHERE s.id = 1 AND s.written_by IS NOT NULL AND permsync.role_snapshot_matches(false);
        END IF;
        RETURN NULL;
    END IF;
    -- Serialise capturers so two sessions do not both write the same change.
    PERFORM pg_advisory_xact_lock(hashtext('permsync.role_snapshot'));
    IF permsync.role_snapshot_matches(false) THEN
        RETURN NULL;
    END IF;
    writer := pg_current_xact_id();
    -- One statement, one catalog snapshot, taken before role_state(): what commits in
    -- between is in the state but not in the fingerprints, and is compared again next time.
    SELECT permsync.role_fingerprint(), permsync.roles_fingerprint(),
           permsync.rows_written_since(writer::xid, false), permsync.rows_written_since(writer::xid, true)
      INTO current_fp, roles_fp, rows_written, roles_rows;
    SELECT s.state INTO old_state FROM permsync.role_snapshot s WHERE s.id = 1;
    state := permsync.role_state();
    IF old_state IS NOT NULL THEN
        changes := permsync.role_changes(old_state, state);
    END IF;
    INSERT INTO permsync.role_snapshot (id, fingerprint, roles_fingerprint, written_by, rows_written, roles_rows_written,
                                        state, taken_at)
    VALUES (1, current_fp, roles_fp, writer, rows_written, roles_rows, state, clock_timestamp())
    ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, roles_fingerprint = EXCLUDED.roles_fingerprint,
                                   written_by = EXCLUDED.written_by, rows_written = EXCLUDED.rows_written,
                                   roles_rows_written = EXCLUDED.roles_rows_written,
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

-- As in 0005, with the check above.
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
        IF NOT permsync.role_snapshot_matches(true) THEN
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
