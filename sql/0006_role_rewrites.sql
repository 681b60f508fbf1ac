-- permsync 0006: role changes that (rows, xmin sum) cannot see. Idempotent: safe to run again.
--
--   * A transaction that writes a catalog row twice (ALTER ROLE a CREATEDB after CREATE
--     ROLE a, with a GRANT between them that took the snapshot) leaves the row's xmin and
--     the count as they were: the second change was never captured. A rewritten row moves,
--     though, so the fingerprints now also list where the rows stand that the snapshot's
--     own transaction, or a later one, wrote (role_snapshot.written_from).
--   * capture_role_changes stored a roles fingerprint taken after role_state(): a role
--     committed in between was counted as captured while missing from the snapshot, and a
--     GRANT to it could reach the targets before it. Both fingerprints are now taken in one
--     statement (one snapshot) before the state.

ALTER TABLE permsync.role_snapshot ADD COLUMN IF NOT EXISTS written_from xid;

-- Roles and memberships, as in 0005, and the places of the rows written from transaction
-- `since` on. Few rows qualify; the frozen and bootstrap rows (age 2^31 - 1) never do.
CREATE OR REPLACE FUNCTION permsync.roles_fingerprint(since xid)
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    now_xid   bigint := age('3'::xid)::bigint + 3;
    since_age integer := age(since);
    result    text;
BEGIN
    IF has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        SELECT r.digest || '/' || m.digest INTO result
          FROM (SELECT count(*) || ':' || (count(nullif(a, 2147483647)) * now_xid - coalesce(sum(nullif(a, 2147483647)), 0)) % 4294967296
                       || ':' || coalesce(string_agg(ctid::text, ',' ORDER BY ctid) FILTER (WHERE a <= since_age), '')
                  FROM (SELECT age(xmin) AS a, ctid FROM pg_authid) t) r(digest),
               (SELECT count(*) || ':' || (count(nullif(a, 2147483647)) * now_xid - coalesce(sum(nullif(a, 2147483647)), 0)) % 4294967296
                       || ':' || coalesce(string_agg(ctid::text, ',' ORDER BY ctid) FILTER (WHERE a <= since_age), '')
                  FROM (SELECT age(xmin) AS a, ctid FROM pg_auth_members) t) m(digest);
    ELSE
        -- A hash of the rows' content: a row written twice shows its last content.
        SELECT md5(concat_ws('/',
                 (SELECT string_agg(r::text, ',' ORDER BY r.oid) FROM pg_roles r),
                 (SELECT string_agg(m::text, ',' ORDER BY m.roleid, m.member) FROM pg_auth_members m)))
          INTO result;
    END IF;
    RETURN result;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.roles_fingerprint(xid) FROM PUBLIC;

-- Everything the snapshot keeps, as in 0005, with the same places of recent rows.
CREATE OR REPLACE FUNCTION permsync.role_fingerprint(since xid)
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    now_xid   bigint := age('3'::xid)::bigint + 3;
    since_age integer := age(since);
    rest      text;
BEGIN
    IF has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        SELECT s.digest || '/' || d.digest || '/' || b.place INTO rest
          FROM (SELECT count(*) || ':' || (count(nullif(a, 2147483647)) * now_xid - coalesce(sum(nullif(a, 2147483647)), 0)) % 4294967296
                       || ':' || coalesce(string_agg(ctid::text, ',' ORDER BY ctid) FILTER (WHERE a <= since_age), '')
                  FROM (SELECT age(xmin) AS a, ctid FROM pg_db_role_setting) t) s(digest),
               (SELECT count(*) || ':' || (count(nullif(a, 2147483647)) * now_xid - coalesce(sum(nullif(a, 2147483647)), 0)) % 4294967296
                       || ':' || coalesce(string_agg(ctid::text, ',' ORDER BY ctid) FILTER (WHERE a <= since_age), '')
                  FROM (SELECT age(xmin) AS a, ctid FROM pg_shdescription) t) d(digest),
               (SELECT xmin::text || ctid::text FROM pg_database WHERE datname = current_database()) b(place);
    ELSE
        SELECT md5(concat_ws('/',
                 (SELECT string_agg(s::text, ',' ORDER BY s.setrole, s.setdatabase) FROM pg_db_role_setting s),
                 (SELECT string_agg(d.description, ',' ORDER BY d.objoid) FROM pg_shdescription d
                   WHERE d.classoid = 'pg_authid'::regclass),
                 (SELECT datacl::text FROM pg_database WHERE datname = current_database())))
          INTO rest;
    END IF;
    RETURN concat_ws('/', (SELECT value FROM permsync.config WHERE key = 'sync_passwords'),
                     permsync.roles_fingerprint(since), rest);
END
$fn$;
REVOKE ALL ON FUNCTION permsync.role_fingerprint(xid) FROM PUBLIC;

-- The fingerprints to compare with the snapshot's: taken from the rows its transaction wrote.
CREATE OR REPLACE FUNCTION permsync.roles_fingerprint()
RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT permsync.roles_fingerprint((SELECT s.written_from FROM permsync.role_snapshot s WHERE s.id = 1))
$fn$;
REVOKE ALL ON FUNCTION permsync.roles_fingerprint() FROM PUBLIC;

CREATE OR REPLACE FUNCTION permsync.role_fingerprint()
RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT permsync.role_fingerprint((SELECT s.written_from FROM permsync.role_snapshot s WHERE s.id = 1))
$fn$;
REVOKE ALL ON FUNCTION permsync.role_fingerprint() FROM PUBLIC;

-- As in 0005, with both fingerprints taken at once, before the state, and counted from
-- this transaction's rows on: what commits after them is a difference next time.
CREATE OR REPLACE FUNCTION permsync.capture_role_changes()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    written_from xid;
    current_fp   text;
    roles_fp     text;
    old_state    jsonb;
    state        jsonb;
    changes      jsonb;
    batch        bigint;
BEGIN
    IF (SELECT fingerprint = permsync.role_fingerprint() AND roles_fingerprint IS NOT NULL FROM permsync.role_snapshot WHERE id = 1) THEN
        RETURN NULL;
    END IF;
    -- Serialise capturers so two sessions do not both write the same change.
    PERFORM pg_advisory_xact_lock(hashtext('permsync.role_snapshot'));
    IF (SELECT fingerprint = permsync.role_fingerprint() AND roles_fingerprint IS NOT NULL FROM permsync.role_snapshot WHERE id = 1) THEN
        RETURN NULL;
    END IF;
    written_from := pg_current_xact_id()::xid;
    SELECT permsync.role_fingerprint(written_from), permsync.roles_fingerprint(written_from)
      INTO current_fp, roles_fp;
    SELECT s.state INTO old_state FROM permsync.role_snapshot s WHERE s.id = 1;
    state := permsync.role_state();
    IF old_state IS NOT NULL THEN
        changes := permsync.role_changes(old_state, state);
    END IF;
    INSERT INTO permsync.role_snapshot (id, fingerprint, roles_fingerprint, written_from, state, taken_at)
    VALUES (1, current_fp, roles_fp, written_from, state, clock_timestamp())
    ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, roles_fingerprint = EXCLUDED.roles_fingerprint,
                                   written_from = EXCLUDED.written_from, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at;
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
