-- permsync 0011: locks no other login can take. Idempotent: safe to run again.
--
-- Capture and leadership serialised on advisory locks, whose keys any login may take
-- (pg_advisory_lock is open to PUBLIC): a login holding hashtext('permsync.commit_seq')
-- made every captured GRANT wait at COMMIT, one holding 'permsync.daemon' kept every
-- daemon standing by. Now:
--   * capture takes row locks on permsync.locks (bootstrap.sql creates it, since the
--     install locks a row of it too). Locking a row (SELECT ... FOR UPDATE) needs UPDATE
--     on the table, and nobody but its owner has any privilege on it. A role with USAGE
--     on the schema can hold ROW EXCLUSIVE on any of its tables (PREPARE of an INSERT
--     takes it without a privilege check), so no table lock is used: a row lock waits
--     only for EXCLUSIVE and ACCESS EXCLUSIVE, which only the owner can take.
--   * the daemons elect a leader with a lease, permsync.leader, claimed and renewed only
--     through claim_leadership(), which permsync_daemon may execute.

INSERT INTO permsync.locks (name) VALUES ('commit_seq'), ('role_snapshot') ON CONFLICT (name) DO NOTHING;

-- A wake-up on `channel`, unless the server's notification queue is half full. Any login
-- may fill that queue (LISTEN in a transaction it leaves open, then notify without end),
-- and once it is full every NOTIFY fails at commit: a captured DBA command would fail with
-- it. A wake-up is only a hint: the daemon also polls the tables.
CREATE OR REPLACE FUNCTION permsync.wake(channel text, payload text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF pg_notification_queue_usage() < 0.5 THEN
        PERFORM pg_notify(channel, payload);
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.wake(text, text) FROM PUBLIC;

-- Takes the row `lock_name` of permsync.locks for the transaction. Only permsync's own
-- functions lock these rows, but they run in other logins' transactions (a captured
-- command's, at its commit): a login that holds one and does not go on (a transaction
-- left open after SET CONSTRAINTS ALL IMMEDIATE, or a slow deferred trigger of its own
-- that runs after capture's) would stall every DBA's commit. So the row is waited for a
-- little at a time, and a holder that is no superuser and sits idle in its transaction,
-- or has kept every other capturer waiting for 5 s, has its session ended: what it
-- captured rolls back with it. A superuser holder is waited for, as for any lock a DBA holds.
CREATE OR REPLACE FUNCTION permsync.take_lock(lock_name text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    started timestamptz;
    holder  record;
    timeout text;
BEGIN
    PERFORM FROM permsync.locks l WHERE l.name = lock_name FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM permsync.locks l WHERE l.name = lock_name) THEN
        RAISE EXCEPTION 'permsync.locks has no row %: permsync cannot serialise its work', lock_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('INSERT INTO permsync.locks (name) VALUES (%L)', lock_name);
    END IF;
    started := clock_timestamp();
    timeout := current_setting('lock_timeout');
    LOOP
        -- The holder: the transaction whose id is the locked row's xmax.
        SELECT a.pid, a.state, coalesce(r.rolsuper, false) AS superuser INTO holder
          FROM permsync.locks l
          JOIN pg_stat_activity a ON a.backend_xid = l.xmax
          LEFT JOIN pg_roles r ON r.oid = a.usesysid
         WHERE l.name = lock_name;
        IF holder.pid IS NOT NULL AND NOT holder.superuser
           AND (holder.state LIKE 'idle in transaction%' OR clock_timestamp() - started > interval '5 seconds') THEN
            BEGIN
                PERFORM pg_terminate_backend(holder.pid);
            EXCEPTION WHEN insufficient_privilege THEN
                NULL; -- an installer without pg_signal_backend can only wait
            END;
        END IF;
        BEGIN
            PERFORM set_config('lock_timeout', '200ms', true);
            PERFORM FROM permsync.locks l WHERE l.name = lock_name FOR UPDATE;
            PERFORM set_config('lock_timeout', timeout, true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            NULL; -- the setting went back with the block; look at the holder again
        END;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.take_lock(text) FROM PUBLIC;

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
    PERFORM permsync.take_lock('commit_seq');
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
    PERFORM permsync.wake('permsync', batch::text);
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
    SELECT permsync.take_lock('role_snapshot');
    DELETE FROM permsync.role_snapshot;
    SELECT permsync.capture_role_changes();
$fn$;
REVOKE ALL ON FUNCTION permsync.take_role_baseline() FROM PUBLIC;

-- ── Leadership ────────────────────────────────────────────────────────────────────────
-- The lease of the daemon that applies: its session (pid and backend_start tell it from
-- a later session given the same pid), who it is, since when it leads and until when the
-- lease runs. Nobody is granted anything on the table: daemons claim, renew and release
-- through the functions below.
CREATE TABLE IF NOT EXISTS permsync.leader (
    id               integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    pid              integer,
    backend_start    timestamptz,
    user_name        name,
    application_name text,
    client_addr      inet,
    since            timestamptz,
    renewed_at       timestamptz,
    expires_at       timestamptz
);
INSERT INTO permsync.leader (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

-- Claims the lease for the calling session, or renews it when that session holds it,
-- for lease_ms from now by the source's clock. It is free when nobody holds it, when
-- it has expired, or when its holder's session has ended (a daemon killed, its session
-- terminated: taken over at once, not at expiry). Returns whether the caller now leads, and the
-- holder (the caller, or the daemon standing in its way).
-- The holder's session counts as ended only if pg_stat_activity shows no session with
-- its pid, or one that started at another time: where the owner may not see other
-- users' backend_start (not a superuser, no pg_read_all_stats), it shows NULL, and the
-- lease is taken over only once it expires.
CREATE OR REPLACE FUNCTION permsync.claim_leadership(lease_ms integer)
RETURNS TABLE (is_leader boolean, pid integer, user_name name, application_name text, client_addr inet,
               since timestamptz, expires_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    me      record;
    held    permsync.leader;
    now_at  timestamptz := clock_timestamp();
BEGIN
    IF lease_ms IS NULL OR lease_ms NOT BETWEEN 1000 AND 600000 THEN
        RAISE EXCEPTION 'a leader lease of % ms: it must be 1000 to 600000 ms', coalesce(lease_ms::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.pid, a.backend_start, a.application_name, a.client_addr INTO me
      FROM pg_stat_activity a WHERE a.pid = pg_backend_pid();
    INSERT INTO permsync.leader (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
    SELECT * INTO held FROM permsync.leader l WHERE l.id = 1 FOR UPDATE;
    IF held.pid = me.pid AND held.backend_start = me.backend_start THEN
        UPDATE permsync.leader l SET renewed_at = now_at, expires_at = now_at + lease_ms * interval '1 millisecond'
         WHERE l.id = 1;
    ELSIF held.pid IS NULL OR held.expires_at <= now_at
          OR NOT EXISTS (SELECT FROM pg_stat_activity a
                          WHERE a.pid = held.pid AND (a.backend_start IS NULL OR a.backend_start = held.backend_start)) THEN
        UPDATE permsync.leader l
           SET pid = me.pid, backend_start = me.backend_start, user_name = session_user,
               application_name = me.application_name, client_addr = me.client_addr,
               since = now_at, renewed_at = now_at, expires_at = now_at + lease_ms * interval '1 millisecond'
         WHERE l.id = 1;
    ELSE
        RETURN QUERY SELECT false, held.pid, held.user_name, held.application_name, held.client_addr,
                            held.since, held.expires_at;
        RETURN;
    END IF;
    RETURN QUERY SELECT true, l.pid, l.user_name, l.application_name, l.client_addr, l.since, l.expires_at
                   FROM permsync.leader l WHERE l.id = 1;
END
$fn$;

-- Gives the lease up, if the calling session holds it; returns whether it did.
CREATE OR REPLACE FUNCTION permsync.release_leadership()
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    UPDATE permsync.leader l
       SET pid = NULL, backend_start = NULL, user_name = NULL, application_name = NULL, client_addr = NULL,
           since = NULL, renewed_at = NULL, expires_at = NULL
     WHERE l.id = 1 AND l.pid = pg_backend_pid()
       AND l.backend_start = (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid());
    RETURN FOUND;
END
$fn$;

REVOKE ALL ON permsync.leader FROM PUBLIC;
REVOKE ALL ON FUNCTION permsync.claim_leadership(integer), permsync.release_leadership() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permsync.claim_leadership(integer), permsync.release_leadership() TO permsync_daemon;
