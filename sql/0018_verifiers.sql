-- permsync 0018: password verifiers are carried whenever capture is on. Idempotent: safe to run again.
--
-- The role snapshot holds verifiers only while capture is on (sync_passwords in
-- permsync.config), and role_changes compares them only when the stored snapshot and the
-- new state both hold them. So the first role check after an admin turned capture on (the
-- watcher's, every 500 ms, or a DBA's before a GRANT) set every verifier aside: a password
-- given between the switch and that check never travelled, nor one given in a DBA
-- transaction whose role check ran before the switch committed and that committed after
-- it. Those roles stayed on every target without their verifier until their password
-- changed again. At the other end, a password given just before capture was turned off
-- was compared with a state that no longer held it, and never travelled either. Now:
--   * a role check from a snapshot without verifiers to a state with them carries every
--     verifier the source holds: turning capture on brings them all over (a role without
--     a password keeps what it has on a target), whenever the check comes;
--   * a change of the switch first captures the role changes made under the old setting,
--     in the same transaction.

-- As in 0011, with every verifier brought over when the snapshot held none and the state does.
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
    PERFORM permsync.take_lock('role_snapshot');
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
    IF old_state IS NOT NULL AND NOT coalesce((old_state ->> 'passwords')::boolean, false)
       AND (state ->> 'passwords')::boolean THEN
        -- Capture was turned on since the snapshot: which verifiers changed since then
        -- cannot be told, so every verifier the source holds is carried (roles without one
        -- are left as they are), after the rest of the changes: their creations and renames
        -- come first. One set-based query, as for the rest: role_changes appending one
        -- statement per role would copy the growing list each time (a minute at 10,000 roles).
        changes := permsync.role_changes(old_state, state || jsonb_build_object('passwords', false, 'roles',
                       (SELECT coalesce(jsonb_object_agg(r.key, r.value - 'password'), '{}') FROM jsonb_each(state -> 'roles') r)))
                   || (SELECT coalesce(jsonb_agg(s ORDER BY r.key::bigint), '[]')
                         FROM jsonb_each(state -> 'roles') r
                        CROSS JOIN LATERAL permsync.role_attribute_statements(r.value || '{"password": null}', r.value) s
                        WHERE r.value ->> 'password' IS NOT NULL);
    ELSIF old_state IS NOT NULL THEN
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
    PERFORM permsync.wake('permsync', batch::text);
    RETURN batch;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.capture_role_changes() FROM PUBLIC;

-- Before sync_passwords changes (enable_password_sync(), disable_password_sync(), or a
-- superuser's own write), the role changes made so far are captured under the setting
-- they were made under: a password given just before capture is turned off still
-- travels. Fires after config_switches (triggers fire by name), so a refused write
-- captures nothing. The capture holds the snapshot's lock until the admin commits.
CREATE OR REPLACE FUNCTION permsync.capture_before_password_switch()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- The table as it is before this row changes (an upsert fires BEFORE INSERT first).
    now_on   boolean := coalesce((SELECT c.value FROM permsync.config c WHERE c.key = 'sync_passwords'), 'false') = 'true';
    after_on boolean := now_on;
BEGIN
    IF tg_op <> 'INSERT' AND OLD.key = 'sync_passwords' THEN
        after_on := false;
    END IF;
    IF tg_op <> 'DELETE' AND NEW.key = 'sync_passwords' THEN
        after_on := NEW.value = 'true';
    END IF;
    IF after_on <> now_on THEN
        PERFORM permsync.capture_role_changes();
    END IF;
    RETURN CASE WHEN tg_op = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.capture_before_password_switch() FROM PUBLIC;

DROP TRIGGER IF EXISTS config_verifier_capture ON permsync.config;
CREATE TRIGGER config_verifier_capture
    BEFORE INSERT OR UPDATE OR DELETE ON permsync.config
    FOR EACH ROW EXECUTE FUNCTION permsync.capture_before_password_switch();
