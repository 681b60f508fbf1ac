-- permsync 0011: locks no other login can take. Idempotent: safe to run again.
--
-- Capture serialised on advisory locks, whose keys any login may take (pg_advisory_lock
-- is open to PUBLIC): a login holding hashtext('permsync.commit_seq') made every
-- captured GRANT wait at COMMIT. Now capture takes row locks on permsync.locks
-- (bootstrap.sql creates it, since the install locks a row of it too). Locking a row
-- (SELECT ... FOR UPDATE) needs UPDATE on the table, and nobody but its owner has any
-- privilege on it. A role with USAGE on the schema can hold ROW EXCLUSIVE on any of its
-- tables (PREPARE of an INSERT takes it without a privilege check), so no table lock is
-- used: a row lock waits only for EXCLUSIVE and ACCESS EXCLUSIVE, which only the owner
-- can take.

INSERT INTO permsync.locks (name) VALUES ('commit_seq'), ('role_snapshot') ON CONFLICT (name) DO NOTHING;

-- As in 0001: the lock is held from nextval until the commit is visible, so commit_seq
-- order is exactly commit order and a reader that sees seq N sees every seq below it.
-- FOR UPDATE locks the row without writing a new version of it, so a DBA's REPEATABLE
-- READ or SERIALIZABLE transaction never finds it updated since its snapshot.
CREATE OR REPLACE FUNCTION permsync.assign_commit_seq()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM FROM permsync.locks l WHERE l.name = 'commit_seq' FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'permsync.locks has no row commit_seq: the commit order cannot be kept'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'INSERT INTO permsync.locks (name) VALUES (''commit_seq'')';
    END IF;
    UPDATE permsync.batches
       SET commit_seq = nextval('permsync.commit_seq'), committed_at = clock_timestamp()
     WHERE id = NEW.id;
    RETURN NULL;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.assign_commit_seq() FROM PUBLIC;

-- As in 0006, serialised on the row role_snapshot of permsync.locks. The try-lock that
-- lets the watcher forget the places is FOR UPDATE SKIP LOCKED: no row when a capturer
-- holds it.
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
           AND (SELECT s.written_by IS NOT NULL FROM permsync.role_snapshot s WHERE s.id = 1) THEN
            PERFORM FROM permsync.locks l WHERE l.name = 'role_snapshot' FOR UPDATE SKIP LOCKED;
            IF FOUND THEN
                UPDATE permsync.role_snapshot s SET written_by = NULL, rows_written = NULL, roles_rows_written = NULL
                 WHERE s.id = 1 AND s.written_by IS NOT NULL AND permsync.role_snapshot_matches(false);
            END IF;
        END IF;
        RETURN NULL;
    END IF;
    -- Serialise capturers so two sessions do not both write the same change.
    PERFORM FROM permsync.locks l WHERE l.name = 'role_snapshot' FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'permsync.locks has no row role_snapshot: role changes cannot be captured one at a time'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'INSERT INTO permsync.locks (name) VALUES (''role_snapshot'')';
    END IF;
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

-- As in 0001, with the capturers' lock taken before the snapshot row is deleted: a
-- capturer takes the lock, then writes that row, so the same order here cannot deadlock
-- with it.
CREATE OR REPLACE FUNCTION permsync.take_role_baseline()
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT FROM permsync.locks l WHERE l.name = 'role_snapshot' FOR UPDATE;
    DELETE FROM permsync.role_snapshot;
    SELECT permsync.capture_role_changes();
$fn$;
REVOKE ALL ON FUNCTION permsync.take_role_baseline() FROM PUBLIC;
