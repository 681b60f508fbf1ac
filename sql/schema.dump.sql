--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: permsync; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA permsync;


ALTER SCHEMA permsync OWNER TO postgres;

--
-- Name: permsync_capture; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA permsync_capture;


ALTER SCHEMA permsync_capture OWNER TO postgres;

--
-- Name: acl_entries(aclitem[], aclitem[], oid); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.acl_entries(acl aclitem[], default_acl aclitem[], owner oid) RETURNS TABLE(key text, grantee text, privilege text, state text, default_state text, run_as oid)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH held AS (
        SELECT a.grantee, a.privilege_type AS privilege,
               CASE WHEN coalesce(g.rolsuper, true) OR a.grantor = owner THEN 0::oid ELSE a.grantor END AS grantor,
               bool_or(a.is_grantable) AS grantable, bool_or(coalesce(g.rolsuper, true)) AS by_superuser
          FROM unnest(acl) i CROSS JOIN LATERAL aclexplode(ARRAY[i]) a LEFT JOIN pg_roles g ON g.oid = a.grantor
         GROUP BY 1, 2, 3
    ), defaults AS (
        SELECT a.grantee, a.privilege_type AS privilege, 0::oid AS grantor, a.is_grantable AS grantable FROM aclexplode(default_acl) a
    )
    SELECT x.grantee || '/' || x.privilege || '/' || x.grantor,
           CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
           x.privilege, x.state, x.default_state,
           CASE WHEN x.grantor <> 0 THEN x.grantor
                WHEN NOT coalesce(x.by_superuser, false) THEN (SELECT o.oid FROM pg_roles o WHERE o.oid = owner AND NOT o.rolsuper) END
      FROM (SELECT coalesce(h.grantee, d.grantee) AS grantee, coalesce(h.privilege, d.privilege) AS privilege,
                   coalesce(h.grantor, d.grantor) AS grantor,
                   CASE WHEN h.grantee IS NULL THEN 'absent' WHEN h.grantable THEN 'grantable' ELSE 'granted' END AS state,
                   CASE WHEN d.grantee IS NULL THEN 'absent' WHEN d.grantable THEN 'grantable' ELSE 'granted' END AS default_state,
                   h.by_superuser
              FROM held h FULL JOIN defaults d ON d.grantee = h.grantee AND d.privilege = h.privilege AND d.grantor = h.grantor) x
     WHERE x.state <> x.default_state AND x.grantee <> owner
$$;


ALTER FUNCTION permsync.acl_entries(acl aclitem[], default_acl aclitem[], owner oid) OWNER TO postgres;

--
-- Name: assign_commit_seq(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.assign_commit_seq() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    seq bigint;
BEGIN
    PERFORM permsync.take_lock('commit_seq');
    IF NEW.precedes IS NOT NULL THEN
        SELECT b.commit_seq INTO seq FROM permsync.batches b
         WHERE b.id = NEW.precedes AND b.source_xid = pg_current_xact_id() AND b.commit_seq IS NOT NULL;
    END IF;
    IF seq IS NULL THEN
        UPDATE permsync.batches
           SET commit_seq = nextval('permsync.commit_seq'), committed_at = clock_timestamp()
         WHERE id = NEW.id;
    ELSE
        UPDATE permsync.batches
           SET commit_seq = nextval('permsync.commit_seq'), committed_at = clock_timestamp()
         WHERE id = NEW.precedes;
        UPDATE permsync.batches SET commit_seq = seq, committed_at = clock_timestamp() WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;


ALTER FUNCTION permsync.assign_commit_seq() OWNER TO postgres;

--
-- Name: audit_log_guard(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.audit_log_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;


ALTER FUNCTION permsync.audit_log_guard() OWNER TO postgres;

--
-- Name: capture_before_password_switch(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.capture_before_password_switch() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;


ALTER FUNCTION permsync.capture_before_password_switch() OWNER TO postgres;

--
-- Name: capture_owner_changes(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.capture_owner_changes(seen text) RETURNS TABLE(batch bigint, counted text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET jit TO 'off'
    AS $$
DECLARE
    roles    jsonb;
    looked   jsonb;
    noted_objects jsonb;
    here     oid := (SELECT b.oid FROM pg_database b WHERE b.datname = current_database());
    -- The most commands the daemon reads of one batch (MAX_RECORDED_COMMANDS).
    max_rows constant integer := 1000;
BEGIN
    counted := concat_ws('/', pg_stat_get_tuples_inserted('pg_catalog.pg_shdepend'::regclass),
                         pg_stat_get_tuples_updated('pg_catalog.pg_shdepend'::regclass),
                         pg_stat_get_tuples_deleted('pg_catalog.pg_shdepend'::regclass));
    SELECT s.state -> 'roles' INTO roles FROM permsync.role_snapshot s WHERE s.id = 1;
    IF seen IS NOT DISTINCT FROM counted OR roles IS NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;
    -- The leaders of several daemon groups look: one at a time, the others at their next
    -- look (so that no change is noted and written twice).
    PERFORM FROM permsync.locks l WHERE l.name = 'owner_look' FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        counted := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    WITH last AS (
        SELECT DISTINCT ON (o.classid, o.objid) o.classid, o.objid, o.owner_oid, o.identity, o.own
          FROM permsync.object_owners o
         ORDER BY o.classid, o.objid, o.noted DESC),
    -- A subscription's row is the cluster's (dbid 0), as is a database's or a tablespace's.
    owned AS (
        SELECT d.classid, d.objid, d.refobjid
          FROM pg_shdepend d
         WHERE d.dbid IN (0, here)
           AND d.deptype = 'o' AND d.objsubid = 0),
    -- Roles the targets know by these names (a role the watcher has not carried yet, made,
    -- renamed or dropped, waits for its next look), read before any object's facts.
    -- A former owner the source and the watcher have dropped: its objects are noted, not
    -- converged (each target's release of the DROP ROLE gave them away).
    moved AS MATERIALIZED (
        SELECT l.classid, l.objid, l.owner_oid AS former, fr.rolname AS former_name, l.identity AS noted_as,
               l.own AS noted_own, w.refobjid AS owner_now
          FROM last l
          LEFT JOIN pg_roles fr ON fr.oid = l.owner_oid
          LEFT JOIN owned w ON w.classid = l.classid AND w.objid = l.objid
         WHERE CASE WHEN w.refobjid IS NULL THEN l.owner_oid >= 16384 ELSE w.refobjid <> l.owner_oid END
           AND CASE WHEN fr.oid IS NULL THEN l.owner_oid >= 16384 AND NOT roles ? l.owner_oid::text
                    ELSE l.owner_oid < 16384 OR roles -> l.owner_oid::text ->> 'name' = fr.rolname END
           AND (w.refobjid IS NULL
                OR EXISTS (SELECT FROM pg_roles nr WHERE nr.oid = w.refobjid AND roles -> nr.oid::text ->> 'name' = nr.rolname))
         ORDER BY l.classid, l.objid),
    -- REASSIGN OWNED takes everything its role owns in the database and in the cluster (but
    -- default privileges): where the former owner still owns something, another command
    -- gave the object away, one a stale row missed (see object_owners): noted, not converged.
    keeps AS (
        SELECT r.former
          FROM (SELECT DISTINCT m.former FROM moved m WHERE m.former_name IS NOT NULL) r
         WHERE r.former < 16384
            OR EXISTS (SELECT FROM pg_shdepend d
                        WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.former AND d.deptype = 'o'
                          AND d.dbid IN (0, here)
                          AND d.classid <> 'pg_default_acl'::regclass))
    SELECT jsonb_agg(to_jsonb(c) ORDER BY c.classid, c.objid) INTO looked
      FROM (SELECT m.classid, m.objid, i.type, i.identity, f.identity || ' / ' || f.own AS noted, m.former_name AS former,
                   nr.rolname AS owner, f.owner_oid,
                   -- Gone without an event trigger (see cleanup_old_logs): its rows would
                   -- cost every later look a read of its facts.
                   f.versions = 0 AS gone,
                   -- A sequence of a table's column follows the table's owner (ALTER TABLE
                   -- moves it too, and names only the table): noted, but not converged.
                   EXISTS (SELECT FROM pg_depend d
                            WHERE m.classid = 'pg_class'::regclass AND d.classid = 'pg_class'::regclass AND d.objid = m.objid
                              AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')) AS follows,
                   m.former_name IS NOT NULL AND m.former NOT IN (SELECT k.former FROM keeps k) AS whole,
                   -- Its name or kind is not the one noted for the former owner: a name
                   -- another role chose by renaming its schema, say, or a table made a view
                   -- on 15 and earlier (see object_owners). Noted, not converged.
                   f.identity IS DISTINCT FROM m.noted_as OR f.own IS DISTINCT FROM m.noted_own AS renamed
              FROM moved m
             CROSS JOIN LATERAL (SELECT count(*) AS versions,
                                        CASE WHEN count(DISTINCT x.owner_oid) = 1 THEN min(x.owner_oid) END AS owner_oid,
                                        CASE WHEN count(DISTINCT x.identity) = 1 THEN min(x.identity) END AS identity,
                                        CASE WHEN count(DISTINCT x.own) = 1 THEN min(x.own) END AS own
                                   FROM permsync.object_facts(m.classid, m.objid) x) f
              LEFT JOIN pg_roles nr ON nr.oid = f.owner_oid
             CROSS JOIN LATERAL pg_identify_object(m.classid, m.objid, 0) i
             -- The owner its pg_shdepend row names (none: a pinned role), read again.
             WHERE f.versions = 0
                OR (nr.oid IS NOT NULL AND f.identity IS NOT NULL AND f.own IS NOT NULL AND f.owner_oid <> m.former
                    AND CASE WHEN m.owner_now IS NULL THEN f.owner_oid < 16384 ELSE f.owner_oid = m.owner_now END)
             -- In the candidates' order, so that the facts of no more than a batch's worth are read.
             LIMIT max_rows) c;
    IF looked IS NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;
    -- Noting costs about half a millisecond an object: a look takes a batch's worth, and
    -- the next reads again for the rest.
    IF jsonb_array_length(looked) >= max_rows THEN
        counted := NULL;
    END IF;
    -- Rows a login's open transaction holds are left for the next look.
    DELETE FROM permsync.object_owners o
     WHERE o.ctid IN (SELECT x.ctid FROM permsync.object_owners x
                        JOIN jsonb_to_recordset(looked) AS g(classid oid, objid oid, gone boolean)
                          ON g.gone AND x.classid = g.classid AND x.objid = g.objid
                         FOR UPDATE OF x SKIP LOCKED);
    looked := (SELECT jsonb_agg(o ORDER BY i) FROM jsonb_array_elements(looked) WITH ORDINALITY AS t(o, i)
               WHERE NOT (o ->> 'gone')::boolean);
    PERFORM permsync.note_owners_of(looked, false);
    noted_objects := looked;
    looked := (SELECT jsonb_agg(o ORDER BY i) FROM jsonb_array_elements(looked) WITH ORDINALITY AS t(o, i)
               WHERE (o ->> 'whole')::boolean AND NOT (o ->> 'follows')::boolean AND NOT (o ->> 'renamed')::boolean);
    IF looked IS NOT NULL THEN
        INSERT INTO permsync.batches (origin, query_text, not_replayable, current_user_name, current_user_oid,
                                      current_user_is_superuser, search_path)
        SELECT 'owner_watcher',
               string_agg(format('/* %s object(s) of %s now owned by %s */', p.n, quote_ident(p.former), quote_ident(p.owner)),
                          E'\n' ORDER BY p.former, p.owner),
               'the role watcher found these owners changed by a command that fires no event trigger (REASSIGN OWNED)',
               session_user, pg_catalog.to_regrole(pg_catalog.quote_ident(session_user)), false, 'pg_catalog'
          FROM (SELECT o ->> 'former' AS former, o ->> 'owner' AS owner, count(*) AS n
                  FROM jsonb_array_elements(looked) o GROUP BY 1, 2) p
        RETURNING id INTO batch;
        INSERT INTO permsync.audit_log (batch_id, command_tag, object_type, object_identity, current_user_name, current_user_oid,
                                        search_path, command_ordinal, nested, classid, objid, noted_identity, reassigned_from)
        SELECT batch, 'REASSIGN OWNED', o ->> 'type', o ->> 'identity', o ->> 'owner', (o ->> 'owner_oid')::oid,
               'pg_catalog', i, true, (o ->> 'classid')::oid, (o ->> 'objid')::oid, o ->> 'noted', o ->> 'former'
          FROM jsonb_array_elements(looked) WITH ORDINALITY AS t(o, i);
        PERFORM permsync.wake('permsync', batch::text);
        -- The batch's commit-order number now (the lock every captured commit takes), so
        -- that from the prune below to its commit the look waits for nothing: a DBA's owner
        -- change may wait for the rows it prunes, never the other way round.
        SET CONSTRAINTS permsync.zz_assign_commit_seq IMMEDIATE;
    END IF;
    -- No command ends the rows of the owners REASSIGN OWNED took the objects from: keep
    -- each owner's last row under each name (all the release and the next rows weigh), so
    -- that REASSIGN OWNED back and forth adds no row once each owner has one. Rows a
    -- login's open transaction holds are left for the next look.
    DELETE FROM permsync.object_owners o
     WHERE o.ctid IN (SELECT x.ctid FROM permsync.object_owners x
                        JOIN jsonb_to_recordset(noted_objects) AS g(classid oid, objid oid) ON x.classid = g.classid AND x.objid = g.objid
                       WHERE EXISTS (SELECT FROM permsync.object_owners y
                                      WHERE y.classid = x.classid AND y.objid = x.objid AND y.owner_oid = x.owner_oid
                                        AND y.named = x.named AND y.identity = x.identity AND y.noted > x.noted)
                         FOR UPDATE OF x SKIP LOCKED);
    RETURN NEXT;
END
$$;


ALTER FUNCTION permsync.capture_owner_changes(seen text) OWNER TO postgres;

--
-- Name: capture_permission_command(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.capture_permission_command() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER
    AS $$
BEGIN
    PERFORM permsync_capture.record_command(
        tg_tag,
        permsync_capture.session_identity(pg_catalog.current_setting('role'), SESSION_USER),
        pg_catalog.current_setting('search_path'));
END
$$;


ALTER FUNCTION permsync.capture_permission_command() OWNER TO postgres;

--
-- Name: capture_role_changes(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.capture_role_changes() RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT permsync.capture_role_changes(NULL);
$$;


ALTER FUNCTION permsync.capture_role_changes() OWNER TO postgres;

--
-- Name: capture_role_changes(bigint); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.capture_role_changes(before bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    writer       xid8;
    current_fp   text;
    roles_fp     text;
    rows_written text;
    roles_rows   text;
    seen         pg_snapshot;
    old_state    jsonb;
    state        jsonb;
    changes      jsonb;
    batch        bigint;
    -- The most the daemon reads of one generated batch (MAX_GENERATED_BYTES in
    -- src/capture/batch.ts): changes that take more go in several batches, in order.
    max_bytes    constant integer := 1048576;
    sizes        integer[];
    starts       integer[] := '{0}';
    filled       integer := 0;
    created      integer := 0;
    span_from    integer;
    span_to      integer;
    span_bytes   integer;
    -- The names the drops free, and those only a superuser's drop frees.
    drops_freed  jsonb;
    superusers_freed jsonb;
BEGIN
    IF permsync.role_snapshot_matches(false) THEN
        -- Nothing changed since the snapshot, so it holds what this statement sees: the
        -- snapshot's transaction has committed with its rows where it left them (stop
        -- comparing their places), and the horizon moves up to now, past transactions that
        -- were running when it was taken (until it does, the DBA's check takes every role
        -- they wrote for new). Only from a transaction that has written nothing yet (the
        -- watcher's check; never a DBA's, which would then hold the lock to its end, nor
        -- the snapshot's own), under the lock (no capturer is writing a newer snapshot:
        -- each holds it until it commits), checked again there in one statement.
        IF pg_current_xact_id_if_assigned() IS NULL
           AND (SELECT s.written_by IS NOT NULL OR s.horizon IS NULL
                       OR pg_snapshot_xmin(s.horizon) < pg_snapshot_xmin(pg_current_snapshot())
                  FROM permsync.role_snapshot s WHERE s.id = 1) THEN
            PERFORM FROM permsync.locks l WHERE l.name = 'role_snapshot' FOR UPDATE SKIP LOCKED;
            IF FOUND THEN
                UPDATE permsync.role_snapshot s
                   SET written_by = NULL, rows_written = NULL, roles_rows_written = NULL, horizon = pg_current_snapshot()
                 WHERE s.id = 1 AND permsync.role_snapshot_matches(false);
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
           permsync.rows_written_since(writer::xid, false), permsync.rows_written_since(writer::xid, true),
           pg_current_snapshot()
      INTO current_fp, roles_fp, rows_written, roles_rows, seen;
    SELECT s.state INTO old_state FROM permsync.role_snapshot s WHERE s.id = 1;
    state := permsync.role_state();
    IF old_state IS NOT NULL AND NOT coalesce((old_state ->> 'passwords')::boolean, false)
       AND (state ->> 'passwords')::boolean THEN
        -- Capture was turned on since the snapshot: which verifiers changed since then
        -- cannot be told, so every verifier the source holds is carried (roles without one
        -- are left as they are; one over 512 bytes takes the target's away: the empty verifier
        -- stands for one not known), after the rest of the changes: their creations and renames
        -- come first. One set-based query, as for the rest: role_changes appending one
        -- statement per role would copy the growing list each time (a minute at 10,000 roles).
        changes := permsync.role_changes(old_state, state || jsonb_build_object('passwords', false, 'roles',
                       (SELECT coalesce(jsonb_object_agg(r.key, r.value - 'password'), '{}') FROM jsonb_each(state -> 'roles') r)))
                   || (SELECT coalesce(jsonb_agg(s || jsonb_build_object('oids', jsonb_build_object(r.value ->> 'name', r.key::bigint))
                                                 ORDER BY r.key::bigint), '[]')
                         FROM jsonb_each(state -> 'roles') r
                        CROSS JOIN LATERAL permsync.role_attribute_statements(r.value || '{"password": ""}', r.value) s
                        WHERE r.value ->> 'password' IS NOT NULL);
    ELSIF old_state IS NOT NULL THEN
        changes := permsync.role_changes(old_state, state);
    END IF;
    INSERT INTO permsync.role_snapshot (id, fingerprint, roles_fingerprint, written_by, rows_written, roles_rows_written,
                                        horizon, taken_in, state, taken_at)
    VALUES (1, current_fp, roles_fp, writer, rows_written, roles_rows, seen, writer, state, clock_timestamp())
    ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, roles_fingerprint = EXCLUDED.roles_fingerprint,
                                   written_by = EXCLUDED.written_by, rows_written = EXCLUDED.rows_written,
                                   roles_rows_written = EXCLUDED.roles_rows_written, horizon = EXCLUDED.horizon,
                                   taken_in = EXCLUDED.taken_in,
                                   state = EXCLUDED.state, taken_at = EXCLUDED.taken_at;
    IF changes IS NULL OR jsonb_array_length(changes) = 0 THEN
        RETURN NULL;
    END IF;
    -- A dropped role's objects may have gone to a role created in the same moment. On a
    -- target, the DROP ROLE's release hands them over first, and on a server several
    -- environments share it does so in the others' databases in transactions of their own,
    -- before the DROP ROLE's batch: the new owner has to be there, committed, first. So
    -- where the changes drop a role, the creations whose names no drop or rename of theirs
    -- frees go first, in a batch of their own. The rest keep their order: the drops before
    -- the renames, so that a role renamed in the same moment has there the name it has on
    -- the target before the batch.
    IF EXISTS (SELECT FROM jsonb_array_elements(changes) s WHERE s ->> 'kind' = 'DROP ROLE') THEN
        SELECT count(*) FILTER (WHERE x.early), jsonb_agg(x.s ORDER BY NOT x.early, x.o)
          INTO created, changes
          FROM (SELECT t.s, t.o,
                       t.s ->> 'kind' = 'CREATE ROLE'
                       AND NOT EXISTS (SELECT FROM jsonb_array_elements(changes) d
                                        WHERE (d ->> 'kind' = 'DROP ROLE' AND d ->> 'role' = t.s ->> 'role')
                                           OR d ->> 'renamed_from' = t.s ->> 'role') AS early
                  FROM jsonb_array_elements(changes) WITH ORDINALITY AS t(s, o)) x;
    END IF;
    -- Cut where the next statement would take a batch past what the daemon reads (each
    -- statement as stored, which is longer than its text), so that a bulk change (roles
    -- with long comments, every verifier when capture is turned on) is carried rather than
    -- skipped whole. Only a statement over the limit on its own is skipped, alone. Not
    -- between the drops and the creations after them, where they fit in one batch: a target
    -- hands a dropped role's objects over only to a role its batch creates. Where they do
    -- not, the span starts at the first drop only a superuser could have run (a target
    -- holds on one it cannot release, and leaves a login's locked) and, if that is still
    -- too long, ends at the creations under the names the drops free, or at the last under
    -- a name such a drop frees (role_changes puts them first), which no login can lengthen.
    SELECT array_agg(octet_length(s::text) + 2 ORDER BY o),
           coalesce(jsonb_object_agg(s ->> 'role', true) FILTER (WHERE s ->> 'kind' = 'DROP ROLE'), '{}'),
           coalesce(jsonb_object_agg(s ->> 'role', true) FILTER (WHERE s ->> 'kind' = 'DROP ROLE' AND NOT s ? 'by_login'), '{}')
      INTO sizes, drops_freed, superusers_freed
      FROM jsonb_array_elements(changes) WITH ORDINALITY AS t(s, o);
    SELECT ends.span_from, ends.span_to, ends.span_bytes INTO span_from, span_to, span_bytes
      FROM (SELECT min(o) FILTER (WHERE s ->> 'kind' = 'DROP ROLE') AS any_drop,
                   min(o) FILTER (WHERE s ->> 'kind' = 'DROP ROLE' AND NOT s ? 'by_login') AS dba_drop,
                   max(o) FILTER (WHERE s ->> 'kind' = 'CREATE ROLE') AS any_creation,
                   max(o) FILTER (WHERE s ->> 'kind' = 'CREATE ROLE' AND drops_freed ? (s ->> 'role')) AS freed_creation,
                   max(o) FILTER (WHERE s ->> 'kind' = 'CREATE ROLE' AND superusers_freed ? (s ->> 'role')) AS dba_creation
              FROM jsonb_array_elements(changes) WITH ORDINALITY AS t(s, o)) e
     CROSS JOIN LATERAL (VALUES (1, e.any_drop, e.any_creation), (2, e.dba_drop, e.any_creation), (3, e.dba_drop, e.freed_creation),
                                (4, e.dba_drop, e.dba_creation)) c(k, f, t)
     CROSS JOIN LATERAL (SELECT c.f AS span_from, c.t AS span_to, (SELECT sum(sizes[i]) FROM generate_series(c.f, c.t) i) AS span_bytes) ends
     WHERE ends.span_from < ends.span_to AND ends.span_bytes <= max_bytes
     ORDER BY c.k LIMIT 1;
    FOR i IN 1 .. cardinality(sizes) LOOP
        IF filled > 0 AND (i - 1 = created
                           OR CASE WHEN i = span_from THEN filled + span_bytes > max_bytes
                                   WHEN i > span_from AND i <= span_to THEN false
                                   ELSE filled + sizes[i] > max_bytes END) THEN
            starts := starts || (i - 1);
            filled := 0;
        END IF;
        filled := filled + sizes[i];
    END LOOP;
    starts := starts || cardinality(sizes);
    -- In order: commit_seq follows the order of insertion, and each goes before `before`.
    FOR k IN 1 .. cardinality(starts) - 1 LOOP
        INSERT INTO permsync.batches (origin, query_text, statements, current_user_name, current_user_is_superuser,
                                      search_path, precedes)
        SELECT 'role_watcher', string_agg(changes -> i ->> 'display', E';\n' ORDER BY i) || ';', jsonb_agg(changes -> i ORDER BY i),
               session_user, false, 'pg_catalog', before
          FROM generate_series(starts[k], starts[k + 1] - 1) i
        RETURNING id INTO batch;
        INSERT INTO permsync.audit_log (batch_id, command_tag, object_type, object_identity)
        SELECT batch, changes -> i ->> 'kind', 'role', changes -> i ->> 'role'
          FROM generate_series(starts[k], starts[k + 1] - 1) i;
    END LOOP;
    IF before IS NOT NULL
       AND EXISTS (SELECT FROM jsonb_array_elements(changes) s WHERE s ->> 'kind' = 'DROP ROLE' OR s ? 'renamed_from') THEN
        UPDATE permsync.batches b
           SET converge_reason = 'a role was renamed or dropped between its permission commands, and that change reaches the targets before them; the next drift check shows what differs'
         WHERE b.id = before;
    END IF;
    PERFORM permsync.wake('permsync', batch::text);
    RETURN batch;
END
$$;


ALTER FUNCTION permsync.capture_role_changes(before bigint) OWNER TO postgres;

--
-- Name: claim_leadership(integer, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.claim_leadership(lease_ms integer, daemon_group text DEFAULT 'default'::text) RETURNS TABLE(is_leader boolean, pid integer, user_name name, application_name text, client_addr inet, since timestamp with time zone, expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
    INSERT INTO permsync.leader (group_name) VALUES (daemon_group) ON CONFLICT (group_name) DO NOTHING;
    SELECT * INTO held FROM permsync.leader l WHERE l.group_name = daemon_group FOR UPDATE;
    IF held.pid = me.pid AND held.backend_start = me.backend_start THEN
        UPDATE permsync.leader l SET renewed_at = now_at, expires_at = now_at + lease_ms * interval '1 millisecond'
         WHERE l.group_name = daemon_group;
    ELSIF NOT permsync.group_leads(daemon_group) THEN
        UPDATE permsync.leader l
           SET pid = me.pid, backend_start = me.backend_start, user_name = session_user,
               application_name = me.application_name, client_addr = me.client_addr,
               since = now_at, renewed_at = now_at, expires_at = now_at + lease_ms * interval '1 millisecond'
         WHERE l.group_name = daemon_group;
    ELSE
        RETURN QUERY SELECT false, held.pid, held.user_name, held.application_name, held.client_addr,
                            held.since, held.expires_at;
        RETURN;
    END IF;
    RETURN QUERY SELECT true, l.pid, l.user_name, l.application_name, l.client_addr, l.since, l.expires_at
                   FROM permsync.leader l WHERE l.group_name = daemon_group;
END
$$;


ALTER FUNCTION permsync.claim_leadership(lease_ms integer, daemon_group text) OWNER TO postgres;

--
-- Name: cleanup_old_logs(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.cleanup_old_logs() RETURNS TABLE(execution_log_deleted bigint, audit_log_deleted bigint, batches_deleted bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "permsync.retention" TO 'on'
    AS $$
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
    -- Owners noted for objects gone without an event trigger (on 15 and earlier, a function
    -- of a temporary type's, dropped with its session's objects), and those of roles gone
    -- whose DROP ROLE no enabled environment has still to run (see object_owners).
    -- Rows a login's open transaction holds are left for the next time.
    DELETE FROM permsync.object_owners o
     WHERE o.ctid IN (SELECT x.ctid FROM permsync.object_owners x
                       WHERE NOT EXISTS (SELECT FROM permsync.object_facts(x.classid, x.objid))
                         FOR UPDATE SKIP LOCKED);
    WITH pending AS (
        SELECT DISTINCT v.value #>> '{}' AS owner_oid
          FROM permsync.v_batch_outcomes x
          JOIN permsync.environments e ON e.name = x.environment_name AND e.enabled
          JOIN permsync.batches b ON b.id = x.batch_id AND b.origin = 'role_watcher'
         CROSS JOIN LATERAL jsonb_array_elements(b.statements) t(statement)
         CROSS JOIN LATERAL jsonb_each(t.statement -> 'oids') v
         WHERE NOT x.finished AND t.statement ->> 'kind' = 'DROP ROLE')
    DELETE FROM permsync.object_owners o
     WHERE o.ctid IN (SELECT x.ctid FROM permsync.object_owners x
                       WHERE x.owner_oid <> 0 AND NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = x.owner_oid)
                         AND NOT EXISTS (SELECT FROM pending p WHERE p.owner_oid = x.owner_oid::text)
                         FOR UPDATE SKIP LOCKED);
    RETURN NEXT;
END
$$;


ALTER FUNCTION permsync.cleanup_old_logs() OWNER TO postgres;

--
-- Name: config_guard(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.config_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
       AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = pg_catalog.to_regrole(pg_catalog.quote_ident(current_user))) THEN
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
$$;


ALTER FUNCTION permsync.config_guard() OWNER TO postgres;

--
-- Name: disable_dry_run(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.disable_dry_run() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT permsync.set_switch('dry_run', false, 'disable_dry_run') $$;


ALTER FUNCTION permsync.disable_dry_run() OWNER TO postgres;

--
-- Name: disable_password_sync(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.disable_password_sync() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT permsync.set_switch('sync_passwords', false, 'disable_password_sync') $$;


ALTER FUNCTION permsync.disable_password_sync() OWNER TO postgres;

--
-- Name: disable_sync(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.disable_sync() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT permsync.set_switch('sync_enabled', false, 'disable_sync') $$;


ALTER FUNCTION permsync.disable_sync() OWNER TO postgres;

--
-- Name: enable_dry_run(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.enable_dry_run() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT permsync.set_switch('dry_run', true, 'enable_dry_run') $$;


ALTER FUNCTION permsync.enable_dry_run() OWNER TO postgres;

--
-- Name: enable_password_sync(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.enable_password_sync() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT permsync.set_switch('sync_passwords', true, 'enable_password_sync') $$;


ALTER FUNCTION permsync.enable_password_sync() OWNER TO postgres;

--
-- Name: enable_sync(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.enable_sync() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT permsync.set_switch('sync_enabled', true, 'enable_sync') $$;


ALTER FUNCTION permsync.enable_sync() OWNER TO postgres;

--
-- Name: get_sync_status(integer); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.get_sync_status(hours integer DEFAULT 24) RETURNS TABLE(environment text, label text, priority integer, enabled boolean, paused boolean, sync_enabled boolean, dry_run boolean, state text, last_success_at timestamp with time zone, success_count bigint, failed_count bigint, skipped_count bigint, dry_run_count bigint, pending_batches bigint, oldest_pending_batch_id bigint, oldest_pending_age_seconds double precision, blocking_error_code text, blocking_error text, role_conflicts bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;


ALTER FUNCTION permsync.get_sync_status(hours integer) OWNER TO postgres;

--
-- Name: group_leads(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.group_leads(daemon_group text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT EXISTS (SELECT FROM permsync.leader l
                    WHERE l.group_name = daemon_group AND l.expires_at > clock_timestamp()
                      AND EXISTS (SELECT FROM pg_stat_activity a
                                   WHERE a.pid = l.pid AND (a.backend_start IS NULL OR a.backend_start = l.backend_start)))
$$;


ALTER FUNCTION permsync.group_leads(daemon_group text) OWNER TO postgres;

--
-- Name: identifiers(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.identifiers(masked text) RETURNS name[]
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    specials constant text := '"''/*' || chr(10) || chr(13) || '-';
    -- A word: what may start an identifier (not a digit, not $), then identifier characters.
    word     constant text := '[^]' || chr(1) || '-@[' || chr(92) || chr(92) || '^`{-' || chr(127) || ']'
                              || '[^]' || chr(1) || '-#%-/:-@[' || chr(92) || chr(92) || '^`{-' || chr(127) || ']*';
    upper_ascii constant text := 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    -- A character beyond ASCII.
    others   constant text := '[^' || chr(1) || '-' || chr(127) || ']';
    gaps     text[];
    marks    text[];
    tail     text;
    n        integer := 0;
    k        integer := 1;
    state    text := 'code';
    depth    integer := 0;
    quoted   text;
    plain    text := '';
    code     text[] := '{}';
    names    text[] := '{}';
BEGIN
    IF strpos(masked, '"') = 0 AND strpos(masked, '--') = 0 AND strpos(masked, '/*') = 0 THEN
        -- No quoted identifier and no comment: every word is one (a masked literal has none).
        plain := masked;
    ELSE
        SELECT coalesce(array_agg(m[1] ORDER BY o), '{}'), coalesce(array_agg(m[2] ORDER BY o), '{}'),
               substr(masked, coalesce(sum(length(m[1]) + 1), 0)::integer + 1)
          INTO gaps, marks, tail
          FROM regexp_matches(masked, '([^' || specials || ']*)([' || specials || '])', 'g') WITH ORDINALITY AS t(m, o);
        -- The tail is a last piece with no mark after it.
        gaps := gaps || tail;
        marks := marks || ''::text;
        n := cardinality(marks);
    END IF;
    -- The scanner's walk: the code outside comments and quotes is kept, piece by piece
    -- (appending to an array costs the same however long it is), read below as one text
    -- with a space between pieces, so that no two words join.
    WHILE k <= n LOOP
        IF state = 'code' THEN
            code := code || gaps[k];
            IF marks[k] = '"' THEN
                IF right(gaps[k], 2) IN ('u&', 'U&') THEN
                    RETURN NULL;
                END IF;
                state := 'ident';
                quoted := '';
            ELSIF marks[k] = '''' THEN
                state := 'literal';
            ELSIF k < n AND gaps[k + 1] = '' AND marks[k] = '-' AND marks[k + 1] = '-' THEN
                state := 'line';
                k := k + 1;
            ELSIF k < n AND gaps[k + 1] = '' AND marks[k] = '/' AND marks[k + 1] = '*' THEN
                state := 'block';
                depth := 1;
                k := k + 1;
            END IF;
        ELSIF state = 'ident' THEN
            quoted := quoted || gaps[k];
            IF marks[k] <> '"' THEN
                quoted := quoted || marks[k];
            ELSIF k < n AND gaps[k + 1] = '' AND marks[k + 1] = '"' THEN
                quoted := quoted || '"';
                k := k + 1;
            ELSE
                names := names || quoted;
                state := 'code';
            END IF;
        ELSIF state = 'literal' THEN
            IF marks[k] = '''' THEN
                state := 'code';
            END IF;
        ELSIF state = 'line' THEN
            IF marks[k] IN (chr(10), chr(13)) THEN
                state := 'code';
            END IF;
        ELSIF k < n AND gaps[k + 1] = '' AND marks[k] = '/' AND marks[k + 1] = '*' THEN
            depth := depth + 1;
            k := k + 1;
        ELSIF k < n AND gaps[k + 1] = '' AND marks[k] = '*' AND marks[k + 1] = '/' THEN
            depth := depth - 1;
            state := CASE WHEN depth = 0 THEN 'code' ELSE 'block' END;
            k := k + 1;
        END IF;
        k := k + 1;
    END LOOP;
    IF n > 0 THEN
        plain := array_to_string(code, ' ');
    END IF;
    names := names || ARRAY(SELECT w.m[1] FROM regexp_matches(translate(plain, upper_ascii, lower(upper_ascii)), word, 'g') w(m));
    IF plain ~ others THEN
        names := names || ARRAY(SELECT w.m[1] FROM regexp_matches(lower(plain), word, 'g') w(m));
    END IF;
    IF cardinality(names) > 1000 THEN
        names := ARRAY(SELECT DISTINCT v FROM unnest(names) v);
    END IF;
    RETURN CASE WHEN cardinality(names) <= 1000 THEN names::name[] END;
END
$_$;


ALTER FUNCTION permsync.identifiers(masked text) OWNER TO postgres;

--
-- Name: join_server(text, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.join_server(env text, identity text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    was text;
    joined text;
    shared boolean;
BEGIN
    SELECT coalesce(e.server_key, e.name) INTO was FROM permsync.environments e WHERE e.name = env;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT s.server_key INTO joined FROM permsync.environments s
     WHERE s.server_identity = identity AND s.name <> env AND s.server_key IS NOT NULL
     ORDER BY s.name LIMIT 1;
    shared := EXISTS (SELECT FROM permsync.environments o WHERE o.name <> env AND coalesce(o.server_key, o.name) = was);
    joined := coalesce(joined, CASE WHEN shared THEN env || '@' || identity ELSE was END);
    UPDATE permsync.environments e SET server_identity = identity, server_key = joined WHERE e.name = env;
    IF joined <> was THEN
        INSERT INTO permsync.managed_roles (server_key, role_oid, role_name, source_oid, how, recorded_by, recorded_at)
        SELECT joined, o.role_oid, o.role_name, o.source_oid, o.how, o.recorded_by, o.recorded_at
          FROM permsync.managed_roles o WHERE o.server_key = was
        ON CONFLICT (server_key, role_oid) DO NOTHING;
        IF NOT shared THEN
            DELETE FROM permsync.managed_roles o WHERE o.server_key = was;
        END IF;
    END IF;
END
$$;


ALTER FUNCTION permsync.join_server(env text, identity text) OWNER TO postgres;

--
-- Name: manual_sync(text, text, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.manual_sync(sql text, env text DEFAULT NULL::text, invoker_search_path text DEFAULT current_setting('search_path'::text)) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    masked text;
    batch  bigint;
BEGIN
    IF sql IS NULL OR btrim(sql) = '' THEN
        RAISE EXCEPTION 'manual_sync needs the SQL to carry' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(sql) > 65536 THEN
        RAISE EXCEPTION 'manual_sync takes at most 65536 bytes of SQL; this is %', octet_length(sql)
            USING ERRCODE = 'program_limit_exceeded', HINT = 'queue it in smaller parts';
    END IF;
    masked := permsync.masked_text(sql);
    IF masked IS NULL THEN
        RAISE EXCEPTION 'manual_sync cannot store this SQL safely: its string literals read differently with and without standard_conforming_strings'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'write each literal as E''...'' or without backslashes';
    END IF;
    IF env IS NOT NULL THEN
        PERFORM permsync.require_environment(env);
    END IF;
    INSERT INTO permsync.batches (origin, query_text, query_masked, current_user_name,
                                  current_user_is_superuser, current_user_oid, search_path, target_environment)
    -- The login by oid, which its name resolves to now (as capture does), not by a row of
    -- the transaction's snapshot, which may hold a superuser's former name.
    VALUES ('manual', masked, masked <> sql, session_user,
            coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                       WHERE r.oid = pg_catalog.to_regrole(pg_catalog.quote_ident(session_user))), false),
            pg_catalog.to_regrole(pg_catalog.quote_ident(session_user)),
            invoker_search_path, env)
    RETURNING id INTO batch;
    PERFORM permsync.wake('permsync', batch::text);
    RETURN batch;
END
$$;


ALTER FUNCTION permsync.manual_sync(sql text, env text, invoker_search_path text) OWNER TO postgres;

--
-- Name: mask_literals(text, boolean); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.mask_literals(sql text, backslash_escapes boolean) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    -- The special characters, as the body of a bracket expression (backslash doubled).
    specials constant text := '''"$/*' || chr(92) || chr(92) || chr(10) || chr(13) || '-';
    -- A character of an identifier: ASCII letters, digits, _, and every non-ASCII
    -- character (the scanner's bytes 0x80-0xFF). $ is one too, but it is special.
    word     constant text := '[^]' || chr(1) || '-/:-@[' || chr(92) || chr(92) || '^`{-' || chr(127) || ']';
    -- Anything but the spaces that may stand between the parts of a continued string.
    nonspace constant text := '[^ ' || chr(9) || chr(11) || chr(12) || ']';
    newline  constant text[] := ARRAY[chr(10), chr(13)];
    masked   constant text := '********';
    gaps     text[];
    marks    text[];
    tail     text;
    n        integer;
    out      text[] := '{}';
    k        integer := 1;
    j        integer;
    g        text;
    s        text;
    len      integer;
    state    text := 'code';
    -- Whether the character before the current piece belongs to an identifier.
    ident    boolean := false;
    run      text;
    opened   integer;
    keep     boolean;
    newlined boolean;
    depth    integer;
    tag      text;
BEGIN
    SELECT coalesce(array_agg(m[1] ORDER BY o), '{}'), coalesce(array_agg(m[2] ORDER BY o), '{}'),
           substr(sql, coalesce(sum(length(m[1]) + 1), 0)::integer + 1)
      INTO gaps, marks, tail
      FROM regexp_matches(sql, '([^' || specials || ']*)([' || specials || '])', 'g') WITH ORDINALITY AS t(m, o);
    n := cardinality(marks);
    WHILE k <= n LOOP
        g := gaps[k];
        s := marks[k];
        IF state = 'code' THEN
            out := out || g;
            len := length(g);
            IF s = '''' THEN
                -- E, B, X and U& make a string of another kind where they start a token.
                IF len > 0 AND strpos('eEbBxX', right(g, 1)) > 0
                   AND NOT (CASE WHEN len > 1 THEN substr(g, len - 1, 1) ~ word ELSE ident END) THEN
                    state := CASE WHEN strpos('eE', right(g, 1)) > 0 THEN 'xe' ELSE 'xb' END;
                ELSIF len > 1 AND right(g, 2) IN ('U&', 'u&')
                   AND NOT (CASE WHEN len > 2 THEN substr(g, len - 2, 1) ~ word ELSE ident END) THEN
                    state := 'xus';
                ELSE
                    -- Standard strings, N'' ones too, read backslashes as the setting says.
                    state := CASE WHEN backslash_escapes THEN 'xe' ELSE 'xq' END;
                END IF;
                -- UESCAPE takes a one-character literal: it is syntax, not data, and is kept.
                g := rtrim(g, ' ' || chr(9) || chr(11) || chr(12));
                len := length(g);
                keep := lower(right(g, 7)) = 'uescape'
                        AND NOT CASE WHEN len > 7 THEN substr(g, len - 7, 1) ~ word ELSE ident END;
                opened := k;
            ELSIF s = '"' THEN
                out := out || s;
                state := 'ident';
            ELSIF s = '$' THEN
                -- $ continues an identifier; after anything else (a number too) it may
                -- open a dollar quote.
                run := substring(reverse(g) FROM '^' || word || '*');
                -- Digits then letters just before $ (1a$b$): PostgreSQL 14 reads a number, then
                -- an identifier that the $ continues; later versions refuse the text. Which
                -- reading held cannot be told: masking gives up, and the text is withheld.
                IF run ~ '[0-9]$' AND run ~ '[^0-9]' AND NOT (length(run) = len AND ident) THEN
                    RAISE EXCEPTION 'digits then letters before $: the text reads differently across versions';
                END IF;
                IF (CASE WHEN run = '' THEN len = 0 AND ident
                         WHEN length(run) = len AND ident THEN true
                         ELSE right(run, 1) !~ '[0-9]' END) THEN
                    out := out || s;
                    ident := true;
                    k := k + 1;
                    CONTINUE;
                ELSIF k < n AND marks[k + 1] = '$'
                      AND (gaps[k + 1] = '' OR (gaps[k + 1] ~ ('^' || word || '+$') AND left(gaps[k + 1], 1) !~ '[0-9]')) THEN
                    tag := '$' || gaps[k + 1] || '$';
                    out := out || tag;
                    state := 'dollar';
                    k := k + 2;
                    CONTINUE;
                END IF;
                out := out || s;
            ELSIF s = '-' AND k < n AND gaps[k + 1] = '' AND marks[k + 1] = '-' THEN
                out := out || '--'::text;
                state := 'line';
                k := k + 2;
                CONTINUE;
            ELSIF s = '/' AND k < n AND gaps[k + 1] = '' AND marks[k + 1] = '*' THEN
                out := out || '/*'::text;
                state := 'block';
                depth := 0;
                k := k + 2;
                CONTINUE;
            ELSE
                out := out || s;
            END IF;
            ident := false;
            k := k + 1;
        ELSIF state IN ('xq', 'xe', 'xus', 'xb') THEN
            IF s = chr(92) AND state = 'xe' THEN
                -- A backslash takes the next character with it, a quote included.
                k := k + CASE WHEN k < n AND gaps[k + 1] = '' THEN 2 ELSE 1 END;
                CONTINUE;
            ELSIF s <> '''' THEN
                k := k + 1;
                CONTINUE;
            ELSIF state <> 'xb' AND k < n AND gaps[k + 1] = '' AND marks[k + 1] = '''' THEN
                k := k + 2;   -- '' is a quote in the string
                CONTINUE;
            END IF;
            -- A closing quote. Whitespace holding a newline (and -- comments), then a
            -- quote, continue the string in the state it was in.
            j := k + 1;
            newlined := false;
            LOOP
                EXIT WHEN j > n OR gaps[j] ~ nonspace;
                IF marks[j] = ANY (newline) THEN
                    newlined := true;
                    j := j + 1;
                ELSIF marks[j] = '-' AND j < n AND gaps[j + 1] = '' AND marks[j + 1] = '-' THEN
                    j := j + 2;
                    WHILE j <= n AND marks[j] <> ALL (newline) LOOP
                        j := j + 1;
                    END LOOP;
                    EXIT WHEN j > n;
                    newlined := true;
                    j := j + 1;
                ELSE
                    EXIT;
                END IF;
            END LOOP;
            IF newlined AND j <= n AND marks[j] = '''' AND gaps[j] !~ nonspace THEN
                k := j + 1;
                CONTINUE;
            END IF;
            g := CASE WHEN k = opened + 1 THEN g WHEN k = opened + 2 THEN gaps[k - 1] || marks[k - 1] || g END;
            out := out || CASE WHEN keep AND length(g) = 1 THEN '''' || g || '''' ELSE '''' || masked || '''' END;
            state := 'code';
            ident := false;
            k := k + 1;
        ELSIF state = 'dollar' THEN
            -- The body ends at the first $ that starts the opening tag again.
            IF s = '$' AND k < n AND marks[k + 1] = '$' AND '$' || gaps[k + 1] || '$' = tag THEN
                out := out || (masked || tag);
                state := 'code';
                ident := false;
                k := k + 2;
                CONTINUE;
            END IF;
            k := k + 1;
        ELSIF state = 'ident' THEN
            out := out || (g || s);
            IF s = '"' THEN
                IF k < n AND gaps[k + 1] = '' AND marks[k + 1] = '"' THEN
                    out := out || s;
                    k := k + 2;
                    CONTINUE;
                END IF;
                state := 'code';
                ident := false;
            END IF;
            k := k + 1;
        ELSIF state = 'line' THEN
            out := out || (g || s);
            IF s = ANY (newline) THEN
                state := 'code';
                ident := false;
            END IF;
            k := k + 1;
        ELSE
            -- A /* */ comment; they nest.
            out := out || (g || s);
            IF s = '/' AND k < n AND gaps[k + 1] = '' AND marks[k + 1] = '*' THEN
                out := out || '*'::text;
                depth := depth + 1;
                k := k + 2;
                CONTINUE;
            ELSIF s = '*' AND k < n AND gaps[k + 1] = '' AND marks[k + 1] = '/' THEN
                out := out || '/'::text;
                IF depth = 0 THEN
                    state := 'code';
                    ident := false;
                ELSE
                    depth := depth - 1;
                END IF;
                k := k + 2;
                CONTINUE;
            END IF;
            k := k + 1;
        END IF;
    END LOOP;
    -- An unterminated string or dollar quote runs to the end (the server refuses such a text).
    out := out || CASE WHEN state IN ('xq', 'xe', 'xus', 'xb') THEN '''' || masked || ''''
                       WHEN state = 'dollar' THEN masked || tag
                       ELSE tail END;
    RETURN array_to_string(out, '');
END
$_$;


ALTER FUNCTION permsync.mask_literals(sql text, backslash_escapes boolean) OWNER TO postgres;

--
-- Name: mask_string_literals(text, boolean); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.mask_string_literals(sql text, backslash_escapes boolean DEFAULT false) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- The daemon's planner knows this text (src/capture/batch.ts, WITHHELD_TEXT).
    SELECT coalesce(permsync.masked_text(sql),
                    '/* permsync: text withheld: it mentions a password, and its string literals read differently with and without standard_conforming_strings */');
$$;


ALTER FUNCTION permsync.mask_string_literals(sql text, backslash_escapes boolean) OWNER TO postgres;

--
-- Name: masked_text(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.masked_text(sql text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    standard text;
BEGIN
    IF strpos(sql, '''') = 0 AND strpos(sql, '$') = 0 THEN
        RETURN sql;
    END IF;
    BEGIN
        standard := permsync.mask_literals(sql, false);
        IF standard IS DISTINCT FROM permsync.mask_literals(sql, true) THEN
            RETURN NULL;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
    RETURN standard;
END
$_$;


ALTER FUNCTION permsync.masked_text(sql text) OWNER TO postgres;

--
-- Name: note_owners(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.note_owners() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET jit TO 'off'
    AS $$
DECLARE
    touched jsonb;
BEGIN
    IF tg_event = 'sql_drop' THEN
        -- Rows another commit deleted since this transaction's snapshot are gone already
        -- (REPEATABLE READ would fail the DROP); cleanup_old_logs forgets any left.
        BEGIN
            DELETE FROM permsync.object_owners o
             USING pg_event_trigger_dropped_objects() d
             WHERE o.classid = d.classid AND o.objid = d.objid AND d.objsubid = 0;
        EXCEPTION WHEN serialization_failure THEN
            NULL;
        END;
        RETURN;
    END IF;
    WITH commands AS (
        SELECT DISTINCT c.classid, c.objid FROM pg_event_trigger_ddl_commands() c
         WHERE c.objid <> 0 AND c.schema_name IS DISTINCT FROM 'pg_temp')
    SELECT jsonb_agg(DISTINCT jsonb_build_object('classid', t.classid, 'objid', t.objid)) INTO touched
      FROM (SELECT c.classid, c.objid FROM commands c
            UNION
            SELECT 'pg_operator'::regclass, x
              FROM commands c
              JOIN pg_operator p ON c.classid = 'pg_operator'::regclass AND p.oid = c.objid
             CROSS JOIN LATERAL unnest(ARRAY[p.oprcom, p.oprnegate]) x
             WHERE x <> 0) t;
    IF touched IS NOT NULL THEN
        PERFORM permsync.note_owners_of(touched, true);
    END IF;
END
$$;


ALTER FUNCTION permsync.note_owners() OWNER TO postgres;

--
-- Name: note_owners_of(jsonb, boolean, boolean); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.note_owners_of(objects jsonb, moves boolean, owners_only boolean DEFAULT false) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET jit TO 'off'
    SET enable_seqscan TO 'off'
    SET enable_hashjoin TO 'off'
    SET enable_mergejoin TO 'off'
    AS $$
DECLARE
    nobodys jsonb;
BEGIN
    WITH now AS (
        SELECT DISTINCT t.classid, t.objid, f.owner_oid, f.identity, f.own, f.parts, f.names,
               l.owner_oid AS last_owner, l.identity AS last_identity,
               l.identity IS DISTINCT FROM f.identity AS named,
               -- A part that kept its place and oid but not its name (parts line up: the
               -- schema, then each argument type in order).
               (l.parts = f.parts AND l.names = f.names)
               OR NOT EXISTS (SELECT FROM generate_subscripts(f.parts, 1) i
                               WHERE l.parts[i] = f.parts[i] AND l.names[i] <> f.names[i]
                                 AND NOT (i = 1 AND EXISTS (
                                     SELECT FROM (SELECT s.owner_oid, s.identity, s.noted FROM permsync.object_owners s
                                                   WHERE s.classid = 'pg_namespace'::regclass AND s.objid = f.parts[1] AND s.named
                                                   ORDER BY s.noted DESC LIMIT 1) s
                                      WHERE s.noted > l.noted AND s.identity = 'pg_namespace ' || f.names[1]
                                        AND s.owner_oid IN (SELECT r.oid FROM pg_roles r)
                                        AND pg_has_role(s.owner_oid, f.owner_oid, 'USAGE')))) AS owners_name,
               -- The owner this transaction gave it, by its pg_shdepend row, whatever version
               -- of the object's row the snapshot shows (an update of its own can hide there).
               m.owner_oid AS moved_to,
               -- What an old snapshot shows of a row a commit since replaced is not noted.
               NOT EXISTS (SELECT FROM unnest(f.versions) v
                            WHERE v <> '0'::xid
                              AND coalesce(permsync.xact_status(v), 'unknown') NOT IN ('aborted', 'in progress')) AS current
          FROM jsonb_to_recordset(objects) AS t(classid oid, objid oid)
         CROSS JOIN LATERAL permsync.object_facts(t.classid, t.objid) f
          LEFT JOIN LATERAL (SELECT o.owner_oid, o.identity, o.parts, o.names, o.noted FROM permsync.object_owners o
                              WHERE o.classid = t.classid AND o.objid = t.objid
                              ORDER BY o.noted DESC LIMIT 1) l ON true
          -- Lateral lookups by the index, object by object (an EXISTS here was planned as a
          -- hash of every pg_shdepend row of the database, at each command).
          LEFT JOIN LATERAL (SELECT d.refobjid AS owner_oid FROM pg_shdepend d
                              WHERE moves
                                AND d.dbid IN (0, (SELECT b.oid FROM pg_database b WHERE b.datname = current_database()))
                                AND d.classid = t.classid AND d.objid = t.objid AND d.objsubid = 0 AND d.deptype = 'o'
                                AND permsync.xact_status(d.xmin) = 'in progress'
                              LIMIT 1) m ON true),
    -- An owner change ends the former owners' rows, a dropped role's too: a target that
    -- has its DROP ROLE still to run may refuse the change after it.
    ended AS (
        DELETE FROM permsync.object_owners o
         USING now n
         WHERE n.moved_to IS NOT NULL AND o.classid = n.classid AND o.objid = n.objid
           AND o.owner_oid NOT IN (n.moved_to, 0)),
    fresh AS (
        SELECT n.* FROM now n
         WHERE n.current AND NOT (n.last_identity IS NOT DISTINCT FROM n.identity AND n.last_owner IN (n.owner_oid, 0))),
    written AS (
        INSERT INTO permsync.object_owners (classid, objid, owner_oid, identity, own, parts, names, named)
        SELECT n.classid, n.objid, CASE WHEN n.owners_name THEN n.owner_oid ELSE 0 END, n.identity, n.own, n.parts, n.names, n.named
          FROM fresh n
         WHERE n.owners_name OR NOT owners_only)
    SELECT jsonb_agg(DISTINCT jsonb_build_object('classid', n.classid, 'objid', n.objid)) INTO nobodys
      FROM fresh n
     WHERE owners_only AND NOT n.owners_name;
    RETURN nobodys;
EXCEPTION WHEN serialization_failure THEN
    -- Rows another commit's owner change ended since this transaction's snapshot (under
    -- REPEATABLE READ, deleting them again fails the command): note without ending, which
    -- leaves the former owners' other rows (a release of theirs then holds, at worst).
    RETURN permsync.note_owners_of(objects, false, owners_only);
END
$$;


ALTER FUNCTION permsync.note_owners_of(objects jsonb, moves boolean, owners_only boolean) OWNER TO postgres;

--
-- Name: note_released_owners(jsonb); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.note_released_owners(objects jsonb) RETURNS jsonb
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT permsync.note_owners_of(objects, false, true);
$$;


ALTER FUNCTION permsync.note_released_owners(objects jsonb) OWNER TO postgres;

--
-- Name: notify_control(text, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.notify_control(action text, env text) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT permsync.record_control(action, env, NULL, NULL) $$;


ALTER FUNCTION permsync.notify_control(action text, env text) OWNER TO postgres;

--
-- Name: object_facts(oid, oid); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.object_facts(classid oid, objid oid) RETURNS TABLE(owner_oid oid, identity text, own text, parts oid[], names text[], versions xid[])
    LANGUAGE plpgsql STABLE ROWS 1
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET quote_all_identifiers TO 'off'
    AS $_$
BEGIN
    CASE classid
    WHEN 'pg_class'::regclass THEN
        RETURN QUERY
        SELECT c.relowner, 'pg_class ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname),
               quote_ident(c.relname) || ' ' || c.relkind::text, ARRAY[n.oid], ARRAY[quote_ident(n.nspname)],
               ARRAY[c.xmax, n.xmax]
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
         WHERE c.oid = objid AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f');
    WHEN 'pg_proc'::regclass THEN
        RETURN QUERY
        SELECT p.proowner, 'pg_proc ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                           || '(' || oidvectortypes(p.proargtypes) || ')',
               quote_ident(p.proname),
               ARRAY[n.oid] || ARRAY(SELECT a FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(a, i) ORDER BY i),
               ARRAY[quote_ident(n.nspname)]
               || ARRAY(SELECT format_type(a, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(a, i) ORDER BY i),
               ARRAY[p.xmax, n.xmax]
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
         WHERE p.oid = objid;
    WHEN 'pg_type'::regclass THEN
        RETURN QUERY
        SELECT t.typowner, 'pg_type ' || quote_ident(n.nspname) || '.' || quote_ident(t.typname),
               quote_ident(t.typname), ARRAY[n.oid], ARRAY[quote_ident(n.nspname)],
               ARRAY[t.xmax, n.xmax]
          FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
         WHERE t.oid = objid AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
           AND (t.typtype <> 'c' OR EXISTS (SELECT FROM pg_class r WHERE r.oid = t.typrelid AND r.relkind = 'c'))
           AND NOT EXISTS (SELECT FROM pg_type e WHERE e.oid = t.typelem AND e.typarray = t.oid);
    WHEN 'pg_namespace'::regclass THEN
        RETURN QUERY
        SELECT n.nspowner, 'pg_namespace ' || quote_ident(n.nspname), quote_ident(n.nspname), '{}'::oid[], '{}'::text[], ARRAY[n.xmax]
          FROM pg_namespace n WHERE n.oid = objid;
    WHEN 'pg_language'::regclass THEN
        RETURN QUERY
        SELECT l.lanowner, 'pg_language ' || quote_ident(l.lanname), quote_ident(l.lanname), '{}'::oid[], '{}'::text[], ARRAY[l.xmax]
          FROM pg_language l WHERE l.oid = objid;
    WHEN 'pg_foreign_data_wrapper'::regclass THEN
        RETURN QUERY
        SELECT w.fdwowner, 'pg_foreign_data_wrapper ' || quote_ident(w.fdwname), quote_ident(w.fdwname), '{}'::oid[], '{}'::text[], ARRAY[w.xmax]
          FROM pg_foreign_data_wrapper w WHERE w.oid = objid;
    WHEN 'pg_foreign_server'::regclass THEN
        RETURN QUERY
        SELECT v.srvowner, 'pg_foreign_server ' || quote_ident(v.srvname), quote_ident(v.srvname), '{}'::oid[], '{}'::text[], ARRAY[v.xmax]
          FROM pg_foreign_server v WHERE v.oid = objid;
    WHEN 'pg_publication'::regclass THEN
        RETURN QUERY
        SELECT b.pubowner, 'pg_publication ' || quote_ident(b.pubname), quote_ident(b.pubname), '{}'::oid[], '{}'::text[], ARRAY[b.xmax]
          FROM pg_publication b WHERE b.oid = objid;
    WHEN 'pg_subscription'::regclass THEN
        RETURN QUERY
        SELECT u.subowner, 'pg_subscription ' || quote_ident(u.subname), quote_ident(u.subname), '{}'::oid[], '{}'::text[], ARRAY[u.xmax]
          FROM pg_subscription u
         WHERE u.oid = objid AND u.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database());
    WHEN 'pg_collation'::regclass THEN
        RETURN QUERY
        SELECT x.collowner, 'pg_collation ' || quote_ident(n.nspname) || '.' || quote_ident(x.collname),
               quote_ident(x.collname), ARRAY[n.oid], ARRAY[quote_ident(n.nspname)],
               ARRAY[x.xmax, n.xmax]
          FROM pg_collation x JOIN pg_namespace n ON n.oid = x.collnamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
         WHERE x.oid = objid;
    WHEN 'pg_conversion'::regclass THEN
        RETURN QUERY
        SELECT x.conowner, 'pg_conversion ' || quote_ident(n.nspname) || '.' || quote_ident(x.conname),
               quote_ident(x.conname), ARRAY[n.oid], ARRAY[quote_ident(n.nspname)],
               ARRAY[x.xmax, n.xmax]
          FROM pg_conversion x JOIN pg_namespace n ON n.oid = x.connamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
         WHERE x.oid = objid;
    WHEN 'pg_statistic_ext'::regclass THEN
        RETURN QUERY
        SELECT x.stxowner, 'pg_statistic_ext ' || quote_ident(n.nspname) || '.' || quote_ident(x.stxname),
               quote_ident(x.stxname), ARRAY[n.oid], ARRAY[quote_ident(n.nspname)],
               ARRAY[x.xmax, n.xmax]
          FROM pg_statistic_ext x JOIN pg_namespace n ON n.oid = x.stxnamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
         WHERE x.oid = objid;
    WHEN 'pg_ts_config'::regclass THEN
        RETURN QUERY
        SELECT x.cfgowner, 'pg_ts_config ' || quote_ident(n.nspname) || '.' || quote_ident(x.cfgname),
               quote_ident(x.cfgname), ARRAY[n.oid], ARRAY[quote_ident(n.nspname)],
               ARRAY[x.xmax, n.xmax]
          FROM pg_ts_config x JOIN pg_namespace n ON n.oid = x.cfgnamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
         WHERE x.oid = objid;
    WHEN 'pg_ts_dict'::regclass THEN
        RETURN QUERY
        SELECT x.dictowner, 'pg_ts_dict ' || quote_ident(n.nspname) || '.' || quote_ident(x.dictname),
               quote_ident(x.dictname), ARRAY[n.oid], ARRAY[quote_ident(n.nspname)],
               ARRAY[x.xmax, n.xmax]
          FROM pg_ts_dict x JOIN pg_namespace n ON n.oid = x.dictnamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
         WHERE x.oid = objid;
    WHEN 'pg_operator'::regclass THEN
        RETURN QUERY
        SELECT o.oprowner, 'pg_operator ' || quote_ident(n.nspname) || '.' || o.oprname
                           || '(' || format_type(o.oprleft, NULL) || ', ' || format_type(o.oprright, NULL) || ')',
               o.oprname::text, ARRAY[n.oid, o.oprleft, o.oprright],
               ARRAY[quote_ident(n.nspname), format_type(o.oprleft, NULL), format_type(o.oprright, NULL)],
               ARRAY[o.xmax, n.xmax]
          FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
         WHERE o.oid = objid;
    WHEN 'pg_opclass'::regclass THEN
        RETURN QUERY
        SELECT x.opcowner, 'pg_opclass ' || quote_ident(n.nspname) || '.' || quote_ident(x.opcname) || ' ' || a.amname,
               quote_ident(x.opcname), ARRAY[n.oid], ARRAY[quote_ident(n.nspname)], ARRAY[x.xmax, n.xmax]
          FROM pg_opclass x JOIN pg_namespace n ON n.oid = x.opcnamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
          JOIN pg_am a ON a.oid = x.opcmethod
         WHERE x.oid = objid;
    WHEN 'pg_opfamily'::regclass THEN
        RETURN QUERY
        SELECT x.opfowner, 'pg_opfamily ' || quote_ident(n.nspname) || '.' || quote_ident(x.opfname) || ' ' || a.amname,
               quote_ident(x.opfname), ARRAY[n.oid], ARRAY[quote_ident(n.nspname)], ARRAY[x.xmax, n.xmax]
          FROM pg_opfamily x JOIN pg_namespace n ON n.oid = x.opfnamespace AND n.nspname !~ '^pg_temp_[0-9]+$'
          JOIN pg_am a ON a.oid = x.opfmethod
         WHERE x.oid = objid;
    ELSE
        -- Another catalog: nothing drift compares.
    END CASE;
END
$_$;


ALTER FUNCTION permsync.object_facts(classid oid, objid oid) OWNER TO postgres;

--
-- Name: operator_actions_guard(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.operator_actions_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RAISE EXCEPTION 'permsync.operator_actions is append-only: % refused', tg_op
        USING ERRCODE = 'insufficient_privilege';
END
$$;


ALTER FUNCTION permsync.operator_actions_guard() OWNER TO postgres;

--
-- Name: pause_environment(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.pause_environment(env text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM permsync.require_environment(env);
    UPDATE permsync.environments e SET paused = true WHERE e.name = env;
    PERFORM permsync.notify_control('pause', env);
END
$$;


ALTER FUNCTION permsync.pause_environment(env text) OWNER TO postgres;

--
-- Name: record_control(text, text, bigint, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.record_control(action text, env text, batch bigint, reason text) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    INSERT INTO permsync.operator_actions (action, environment_name, batch_id, reason) VALUES (action, env, batch, reason);
    SELECT permsync.wake('permsync_control', '');
$$;


ALTER FUNCTION permsync.record_control(action text, env text, batch bigint, reason text) OWNER TO postgres;

--
-- Name: record_reconcile(text, text, boolean, jsonb, text, timestamp with time zone, timestamp with time zone, numeric, text, text, numeric); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.record_reconcile(env text, plan_text text, plan_masked boolean, statements jsonb, applied_sql text, started_at timestamp with time zone, finished_at timestamp with time zone, duration_ms numeric, result_message text, server_version text, connection_time_ms numeric) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;


ALTER FUNCTION permsync.record_reconcile(env text, plan_text text, plan_masked boolean, statements jsonb, applied_sql text, started_at timestamp with time zone, finished_at timestamp with time zone, duration_ms numeric, result_message text, server_version text, connection_time_ms numeric) OWNER TO postgres;

--
-- Name: release_leadership(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.release_leadership(daemon_group text DEFAULT 'default'::text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    UPDATE permsync.leader l
       SET pid = NULL, backend_start = NULL, user_name = NULL, application_name = NULL, client_addr = NULL,
           since = NULL, renewed_at = NULL, expires_at = NULL
     WHERE l.group_name = daemon_group AND l.pid = pg_backend_pid()
       AND l.backend_start = (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid());
    RETURN FOUND;
END
$$;


ALTER FUNCTION permsync.release_leadership(daemon_group text) OWNER TO postgres;

--
-- Name: rename_statement(text, text, bigint); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.rename_statement(from_name text, to_name text, role_oid bigint) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT permsync.role_statement('ALTER ROLE', to_name, format('ALTER ROLE %I RENAME TO %I', from_name, to_name),
                                   ignore_codes => ARRAY['42704'])
           || jsonb_build_object('renamed_from', from_name, 'oids', jsonb_build_object(from_name, role_oid, to_name, role_oid))
$$;


ALTER FUNCTION permsync.rename_statement(from_name text, to_name text, role_oid bigint) OWNER TO postgres;

--
-- Name: request_bootstrap(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.request_bootstrap(env text) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    INSERT INTO permsync.batches (origin, query_text, target_environment, current_user_name, current_user_is_superuser, search_path)
    SELECT 'bootstrap', format('/* permsync: environment %s added to the configuration: brought to the source''s state */', e.name),
           e.name, session_user, false, 'pg_catalog'
      FROM permsync.environments e WHERE e.name = env
    RETURNING id
$$;


ALTER FUNCTION permsync.request_bootstrap(env text) OWNER TO postgres;

--
-- Name: require_environment(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.require_environment(env text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;


ALTER FUNCTION permsync.require_environment(env text) OWNER TO postgres;

--
-- Name: resume_environment(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.resume_environment(env text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM permsync.require_environment(env);
    UPDATE permsync.environments e SET paused = false WHERE e.name = env;
    PERFORM permsync.notify_control('resume', env);
END
$$;


ALTER FUNCTION permsync.resume_environment(env text) OWNER TO postgres;

--
-- Name: retry_failed(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.retry_failed(env text DEFAULT NULL::text) RETURNS TABLE(environment_name text, batch_id bigint, commit_seq bigint, failure_kind text, error_code text, error_message text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;


ALTER FUNCTION permsync.retry_failed(env text) OWNER TO postgres;

--
-- Name: role_attribute_statements(jsonb, jsonb); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.role_attribute_statements(old jsonb, new jsonb) RETURNS SETOF jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
    -- One over 512 bytes is not carried: the target's goes (NULL), rather than let a password
    -- the source no longer has go on working there.
    IF jsonb_typeof(new -> 'password') = 'object' THEN
        IF jsonb_typeof(old -> 'password') = 'string' THEN
            RETURN NEXT permsync.role_statement('ALTER ROLE', name,
                format('ALTER ROLE %I WITH PASSWORD NULL /* permsync: verifier withheld: %s bytes, over the limit of 512 */',
                       name, new -> 'password' ->> 'withheld'));
        END IF;
    ELSIF new ? 'password' AND ((old IS NULL AND new ->> 'password' IS NOT NULL)
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
$$;


ALTER FUNCTION permsync.role_attribute_statements(old jsonb, new jsonb) OWNER TO postgres;

--
-- Name: role_changes(jsonb, jsonb); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.role_changes(old jsonb, new jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_custom_plan'
    AS $$
DECLARE
    old_roles   jsonb := coalesce(old -> 'roles', '{}');
    new_roles   jsonb := coalesce(new -> 'roles', '{}');
    old_members jsonb := coalesce(old -> 'members', '{}');
    new_members jsonb := coalesce(new -> 'members', '{}');
    pg16        boolean := current_setting('server_version_num')::int >= 160000;
    passwords   boolean := coalesce((old ->> 'passwords')::boolean AND (new ->> 'passwords')::boolean, false);
    out         jsonb[] := '{}';
    -- The oids of the roles dropped, and the role/member pairs the new state has a
    -- membership for (by any grantor), as objects: looked up, not searched.
    gone        jsonb;
    pairs       jsonb;
    r           record;
    grantee     text;
    role        text;
    member      text;
    granted_by  text;
    -- The renames by position (from 1): the names they give up and take, by name, and
    -- whether each is placed in a chain, in order; every role's name, for spare names.
    renames     jsonb;
    held        jsonb;
    wanted      jsonb;
    placed      boolean[];
    chain       integer[] := '{}';
    position    integer;
    names       jsonb;
    spares      text[] := '{}';
    spare_name  text;
    -- How many statements name roles by their old names (up to the drops); each name's
    -- oid in the old and the new state.
    before_renames integer;
    old_names   jsonb;
    new_names   jsonb;
    -- The roles a role without SUPERUSER could have dropped, by oid, and the roles with
    -- CREATEROLE and no SUPERUSER in the old state or the new: see the drops.
    droppable   jsonb := '{}';
    -- The names of the roles dropped, each with whether a role without SUPERUSER could have
    -- dropped it (by_login).
    freed       jsonb;
    creators    text[];
BEGIN
    SELECT coalesce(jsonb_object_agg(o.key, true), '{}') INTO gone
      FROM jsonb_object_keys(old_roles) o(key) WHERE NOT new_roles ? o.key;
    SELECT coalesce(jsonb_object_agg(split_part(k, '/', 1) || '/' || split_part(k, '/', 2), true), '{}') INTO pairs
      FROM jsonb_object_keys(new_members) k;

    -- Database privileges revoked, or their grant option (old names: before renames), each
    -- grantor's apart and as that grantor (the daemon puts dependent grants first).
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(old -> 'dbacl') o LEFT JOIN jsonb_each(new -> 'dbacl') n USING (key)
              WHERE n.value IS NULL OR ((o.value ->> 'grantable')::boolean AND NOT (n.value ->> 'grantable')::boolean)
              ORDER BY key LOOP
        grantee := CASE WHEN split_part(r.key, '/', 1) = '0' THEN 'PUBLIC' ELSE quote_ident(r.o ->> 'grantee') END;
        out := out || (permsync.shared_privilege_statement('REVOKE ON DATABASE', r.o ->> 'as',
                   format('REVOKE %s%s ON DATABASE {"database"} FROM %s',
                          CASE WHEN r.n IS NULL THEN '' ELSE 'GRANT OPTION FOR ' END, r.o ->> 'privilege', grantee),
                   CASE WHEN split_part(r.key, '/', 1) <> '0' THEN r.o ->> 'grantee' END, 'database/' || (r.o ->> 'privilege'),
                   (r.o ->> 'grantable')::boolean,
                   jsonb_build_object('on', 'database', 'privilege', r.o ->> 'privilege', 'option', r.n IS NOT NULL))
               || jsonb_build_object('on_target_database', true));
    END LOOP;

    -- Privileges on other databases, tablespaces and parameters revoked from a role that is
    -- dropped, or granted by one (old names: before renames); the others' come after
    -- creations, since the role a revoke runs as may be new.
    FOR r IN SELECT * FROM permsync.shared_privilege_changes(old, new) c
              WHERE c.wanted = 'absent' AND (gone ? c.grantee OR gone ? c.grantor)
              ORDER BY c.kind, c.key LOOP
        grantee := CASE WHEN r.grantee <> '0' THEN permsync.role_name(new_roles, old_roles, r.grantee) END;
        out := out || permsync.shared_privilege_statement(
                   CASE WHEN r.kind = 'databases' THEN 'REVOKE ON DATABASE' ELSE 'REVOKE' END,
                   permsync.role_name(new_roles, old_roles, r.entry ->> 'by'),
                   format('REVOKE %s ON %s FROM %s', r.entry ->> 'privilege', r.object, coalesce(quote_ident(grantee), 'PUBLIC')),
                   grantee, r.chain, r.current = 'grantable', r.acl || jsonb_build_object('option', false),
                   CASE WHEN r.kind = 'databases' THEN r.entry ->> 'database' END);
    END LOOP;

    -- Memberships that went, per grantor, dependent grants first (the newest, on 16+).
    -- One whose role or member was dropped went with it, unless its grantor was dropped
    -- too: a grantor cannot be dropped while its grants stand.
    FOR r IN SELECT key, o.value AS o
               FROM jsonb_each(old_members) o
              WHERE NOT new_members ? o.key
                AND (gone ? split_part(o.key, '/', 3)
                     OR NOT (gone ? split_part(o.key, '/', 1) OR gone ? split_part(o.key, '/', 2)))
              ORDER BY (o.value ->> 'seq')::bigint DESC NULLS LAST, key LOOP
        granted_by := CASE WHEN r.o ->> 'grantor' IS NULL THEN '' ELSE ' GRANTED BY "' || replace(r.o ->> 'grantor', '"', '""') || '"' END;
        out := out || (permsync.role_statement('REVOKE ROLE', r.o ->> 'member',
                           format('REVOKE %I FROM %I%s', r.o ->> 'role', r.o ->> 'member', granted_by),
                           granted => r.o ->> 'role', ignore_codes => ARRAY['42704'])
                       || jsonb_strip_nulls(jsonb_build_object(
                              'grantor', r.o ->> 'grantor',
                              -- Before 16 a membership has one grantor: it stays while others grant it.
                              'other_grantors', CASE WHEN pg16 AND pairs ? (split_part(r.key, '/', 1) || '/' || split_part(r.key, '/', 2))
                                                     THEN true END)));
    END LOOP;

    -- Drops. IF EXISTS keeps them idempotent; a role that still owns objects or holds
    -- privileges on a target fails there (2BP01): nothing is reassigned behind anyone's back.
    -- One a role without SUPERUSER could have run says so (`by_login`): where a role with
    -- CREATEROLE and no SUPERUSER is (in the old state or the new), it may drop any role but
    -- a superuser before 16; from 16 one it holds ADMIN OPTION on through any chain of
    -- memberships, or that any role without SUPERUSER holds ADMIN OPTION on (which may grant
    -- it to such a role in the moment of the drop, a grant that goes with the role). The
    -- daemon does not hold an environment on such a drop (src/target/target.ts, leaveLocked).
    -- Those go first: the rest, which a target that cannot release them holds on, come
    -- closest to the creations (capture_role_changes keeps them in one batch).
    IF gone <> '{}' THEN
        creators := ARRAY(SELECT x.key FROM jsonb_each(old_roles) x
                           WHERE (x.value ->> 'createrole')::boolean AND NOT (x.value ->> 'superuser')::boolean
                          UNION
                          SELECT x.key FROM jsonb_each(new_roles) x
                           WHERE (x.value ->> 'createrole')::boolean AND NOT (x.value ->> 'superuser')::boolean);
    END IF;
    IF cardinality(creators) > 0 THEN
        IF pg16 THEN
            WITH RECURSIVE m AS (
                     SELECT split_part(e.key, '/', 1) AS granted, split_part(e.key, '/', 2) AS holder, (e.value ->> 'admin')::boolean AS admin
                       FROM jsonb_each(old_members) e
                     UNION
                     SELECT split_part(e.key, '/', 1), split_part(e.key, '/', 2), (e.value ->> 'admin')::boolean
                       FROM jsonb_each(new_members) e),
                 up(holder) AS (
                     SELECT unnest(creators)
                     UNION
                     SELECT m.granted FROM m JOIN up ON m.holder = up.holder)
            SELECT coalesce(jsonb_object_agg(m.granted, true), '{}') INTO droppable
              FROM m
             WHERE m.admin AND gone ? m.granted
               AND (m.holder IN (SELECT up.holder FROM up)
                    OR (m.holder <> '10'
                        AND NOT coalesce((new_roles -> m.holder ->> 'superuser')::boolean, (old_roles -> m.holder ->> 'superuser')::boolean, false)));
        ELSE
            droppable := gone;
        END IF;
    END IF;
    SELECT coalesce(jsonb_object_agg(o.value ->> 'name', droppable ? o.key AND NOT (o.value ->> 'superuser')::boolean), '{}') INTO freed
      FROM jsonb_each(old_roles) o WHERE gone ? o.key;
    out := out || ARRAY(SELECT permsync.role_statement('DROP ROLE', o.value ->> 'name', format('DROP ROLE IF EXISTS %I', o.value ->> 'name'))
                               || CASE WHEN (freed ->> (o.value ->> 'name'))::boolean THEN '{"by_login": true}'::jsonb ELSE '{}' END
                          FROM jsonb_each(old_roles) o WHERE gone ? o.key
                         ORDER BY (freed ->> (o.value ->> 'name'))::boolean DESC, o.key::bigint);

    before_renames := cardinality(out);

    -- Creations under a name a drop frees (DROP ROLE h; CREATE ROLE h, or a new role
    -- renamed onto a dropped one's name), right behind the drops, those under a name only a
    -- superuser's drop frees first: no rename can need the name, which only the new role
    -- has in the end. The rest of the creations follow the renames, and all their
    -- attributes the creations (a role the drops' objects go to on a target is created
    -- close behind them, whatever its comment or settings take).
    out := out || ARRAY(SELECT permsync.role_statement('CREATE ROLE', n.value ->> 'name',
                                   format('CREATE ROLE %I', n.value ->> 'name'), ignore_codes => ARRAY['42710'])
                          FROM jsonb_each(new_roles) n
                         WHERE NOT old_roles ? n.key AND freed ? (n.value ->> 'name')
                         ORDER BY (freed ->> (n.value ->> 'name'))::boolean, n.key::bigint);

    -- Renames: same oid, new name, each once no role holds its new name. First each
    -- rename whose new name no role gives up, then the one that takes the name it gave up,
    -- and so on down the chain (b to c, then a to b). What is left are rings of names
    -- passed round (a to b and b to a): each of those goes through a spare name first, one
    -- no role has had. Each rename is looked at a bounded number of times however a login
    -- names its roles, since this runs on the DBAs' path too.
    SELECT coalesce(jsonb_agg(jsonb_build_object('from', o.value ->> 'name', 'to', n.value ->> 'name', 'oid', key)
                              ORDER BY key::bigint), '[]')
      INTO renames
      FROM jsonb_each(old_roles) o JOIN jsonb_each(new_roles) n USING (key)
     WHERE o.value ->> 'name' <> n.value ->> 'name';
    SELECT coalesce(jsonb_object_agg(x ->> 'from', i), '{}'), coalesce(jsonb_object_agg(x ->> 'to', i), '{}')
      INTO held, wanted
      FROM jsonb_array_elements(renames) WITH ORDINALITY AS e(x, i);
    placed := array_fill(false, ARRAY[jsonb_array_length(renames)]);
    FOR position IN SELECT i FROM jsonb_array_elements(renames) WITH ORDINALITY AS e(x, i)
                     WHERE NOT held ? (x ->> 'to') ORDER BY i LOOP
        WHILE position IS NOT NULL LOOP
            chain := chain || position;
            placed[position] := true;
            position := (wanted ->> (renames -> (position - 1) ->> 'from'))::integer;
        END LOOP;
    END LOOP;
    out := out || ARRAY(SELECT permsync.rename_statement(x ->> 'from', x ->> 'to', (x ->> 'oid')::bigint)
                          FROM unnest(chain) WITH ORDINALITY AS u(position, k)
                         CROSS JOIN LATERAL (SELECT renames -> (u.position - 1) AS x) r
                         ORDER BY k);
    IF cardinality(chain) < jsonb_array_length(renames) THEN
        SELECT coalesce(jsonb_object_agg(e.value ->> 'name', true), '{}') INTO names
          FROM (SELECT value FROM jsonb_each(old_roles) UNION ALL SELECT value FROM jsonb_each(new_roles)) e;
        SELECT coalesce(jsonb_agg(x ORDER BY i), '[]') INTO renames
          FROM jsonb_array_elements(renames) WITH ORDINALITY AS e(x, i)
         WHERE NOT placed[i::integer];
        -- A spare name for each that nobody can foresee, and no role has: a login that made
        -- one the watcher would pick, had it carried, and dropped it again could have a
        -- target keep it (rules that keep DROP ROLE off it) and the rename fail there.
        FOR position IN 0 .. jsonb_array_length(renames) - 1 LOOP
            LOOP
                spare_name := format('permsync_renaming_%s_%s', renames -> position ->> 'oid', substr(md5(gen_random_uuid()::text), 1, 12));
                EXIT WHEN NOT names ? spare_name;
            END LOOP;
            spares := spares || spare_name;
        END LOOP;
        out := out
               || ARRAY(SELECT permsync.rename_statement(x ->> 'from', spare, (x ->> 'oid')::bigint)
                          FROM jsonb_array_elements(renames) WITH ORDINALITY AS e(x, i)
                          JOIN unnest(spares) WITH ORDINALITY AS u(spare, j) ON j = i ORDER BY i)
               || ARRAY(SELECT permsync.rename_statement(spare, x ->> 'to', (x ->> 'oid')::bigint)
                          FROM jsonb_array_elements(renames) WITH ORDINALITY AS e(x, i)
                          JOIN unnest(spares) WITH ORDINALITY AS u(spare, j) ON j = i ORDER BY i);
    END IF;

    -- The other creations, then every new role's attributes.
    out := out || ARRAY(SELECT permsync.role_statement('CREATE ROLE', n.value ->> 'name',
                                   format('CREATE ROLE %I', n.value ->> 'name'), ignore_codes => ARRAY['42710'])
                          FROM jsonb_each(new_roles) n
                         WHERE NOT old_roles ? n.key AND NOT freed ? (n.value ->> 'name') ORDER BY n.key::bigint)
               || ARRAY(SELECT a.statement
                          FROM jsonb_each(new_roles) n
                         CROSS JOIN LATERAL permsync.role_attribute_statements(NULL, n.value) WITH ORDINALITY a(statement, position)
                         WHERE NOT old_roles ? n.key ORDER BY n.key::bigint, a.position);

    -- Attribute, password and comment changes.
    out := out || ARRAY(SELECT a.statement
                          FROM jsonb_each(old_roles) o JOIN jsonb_each(new_roles) n USING (key)
                         CROSS JOIN LATERAL permsync.role_attribute_statements(
                               CASE WHEN passwords THEN o.value ELSE o.value - 'password' END,
                               CASE WHEN passwords THEN n.value ELSE n.value - 'password' END) WITH ORDINALITY a(statement, position)
                         WHERE o.value <> n.value ORDER BY key::bigint, a.position);

    -- Memberships granted or changed, per grantor: the bootstrap superuser's first, then
    -- in the order they were granted (16+), so that a grantor holds its ADMIN option
    -- before it is named. A renamed role or grantor changes nothing here.
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(new_members) n LEFT JOIN jsonb_each(old_members) o USING (key)
              WHERE o.value IS NULL OR (o.value - 'role' - 'member' - 'grantor' - 'seq') <> (n.value - 'role' - 'member' - 'grantor' - 'seq')
              ORDER BY n.value ->> 'grantor' IS NOT NULL, (n.value ->> 'seq')::bigint NULLS LAST, key LOOP
        role := permsync.role_name(old_roles, new_roles, split_part(r.key, '/', 1));
        member := permsync.role_name(old_roles, new_roles, split_part(r.key, '/', 2));
        granted_by := CASE WHEN r.n ->> 'grantor' IS NULL THEN '' ELSE ' GRANTED BY "' || replace(r.n ->> 'grantor', '"', '""') || '"' END;
        IF pg16 AND NOT (coalesce((r.n ->> 'inherit')::boolean, true) AND coalesce((r.n ->> 'set')::boolean, true)) THEN
            -- INHERIT FALSE or SET FALSE: only PostgreSQL 16+ has them, and says so.
            out := out || (permsync.role_statement('GRANT ROLE', member,
                       format('GRANT %I TO %I WITH ADMIN %s, INHERIT %s, SET %s%s', role, member,
                              upper(r.n ->> 'admin'), upper(r.n ->> 'inherit'), upper(r.n ->> 'set'), granted_by), granted => role)
                       || jsonb_strip_nulls(jsonb_build_object('grantor', r.n ->> 'grantor')));
        ELSE
            IF pg16 AND r.o IS NOT NULL AND NOT (coalesce((r.o ->> 'inherit')::boolean, true) AND coalesce((r.o ->> 'set')::boolean, true)) THEN
                out := out || (permsync.role_statement('GRANT ROLE', member,
                           format('GRANT %I TO %I WITH INHERIT TRUE, SET TRUE%s', role, member, granted_by), granted => role)
                           || jsonb_strip_nulls(jsonb_build_object('grantor', r.n ->> 'grantor')));
            END IF;
            IF r.o IS NOT NULL AND (r.o ->> 'admin')::boolean AND NOT (r.n ->> 'admin')::boolean THEN
                out := out || (permsync.role_statement('REVOKE ROLE', member,
                           format('REVOKE ADMIN OPTION FOR %I FROM %I%s', role, member, granted_by), granted => role)
                           || jsonb_strip_nulls(jsonb_build_object('grantor', r.n ->> 'grantor')));
            END IF;
            -- A plain GRANT takes its INHERIT option from the member's INHERIT attribute, which
            -- a NOINHERIT member would give as FALSE: there it is said.
            out := out || (permsync.role_statement('GRANT ROLE', member,
                       format('GRANT %I TO %I%s%s', role, member,
                              CASE WHEN pg16 AND NOT coalesce((new_roles -> split_part(r.key, '/', 2) ->> 'inherit')::boolean, true)
                                   THEN CASE WHEN (r.n ->> 'admin')::boolean THEN ' WITH ADMIN OPTION, INHERIT TRUE' ELSE ' WITH INHERIT TRUE' END
                                   WHEN (r.n ->> 'admin')::boolean THEN ' WITH ADMIN OPTION' ELSE '' END, granted_by), granted => role)
                       || jsonb_strip_nulls(jsonb_build_object('grantor', r.n ->> 'grantor')));
        END IF;
    END LOOP;

    -- A source before 16 keeps no INHERIT option per membership: the member's INHERIT
    -- attribute decides for all of its memberships. A target of 16 or later took each
    -- membership's option from that attribute when it was granted, and keeps it when the
    -- attribute changes: there the member's memberships are told so one by one. (The
    -- daemon takes each as a grant of a membership it has on a target before 16.)
    IF NOT pg16 THEN
        FOR r IN SELECT m.key, m.value AS m, n.value AS n
                   FROM jsonb_each(old_roles) o JOIN jsonb_each(new_roles) n USING (key)
                   JOIN jsonb_each(new_members) m ON split_part(m.key, '/', 2) = n.key
                  WHERE (o.value -> 'inherit') IS DISTINCT FROM (n.value -> 'inherit')
                  ORDER BY m.key LOOP
            role := permsync.role_name(old_roles, new_roles, split_part(r.key, '/', 1));
            granted_by := CASE WHEN r.m ->> 'grantor' IS NULL THEN '' ELSE ' GRANTED BY "' || replace(r.m ->> 'grantor', '"', '""') || '"' END;
            out := out || (permsync.role_statement('GRANT ROLE', r.n ->> 'name',
                       format('GRANT %I TO %I WITH INHERIT %s%s', role, r.n ->> 'name', upper(r.n ->> 'inherit'), granted_by),
                       granted => role)
                       || jsonb_strip_nulls(jsonb_build_object('grantor', r.m ->> 'grantor')));
        END LOOP;
    END IF;

    -- ALTER ROLE ... [IN DATABASE ...] SET / RESET. The source's own database maps to
    -- the target's, another database to the target's of that name or the one the
    -- environment maps it to: the applier puts the name where {"database"} stands.
    -- What a target cannot take is left out there: an unknown parameter (42704), a value
    -- it refuses (22023), one it cannot set (55P02), a database it lacks (3D000). A value
    -- over 8 kB is not carried: role_state keeps only its size.
    FOR r IN SELECT key, coalesce(n.value, o.value) AS s, n.value IS NULL AS reset
               FROM jsonb_each(old -> 'settings') o FULL JOIN jsonb_each(new -> 'settings') n USING (key)
              WHERE (o.value - 'role') IS DISTINCT FROM (n.value - 'role') AND NOT gone ? split_part(key, '/', 1)
              ORDER BY key LOOP
        role := permsync.role_name(old_roles, new_roles, split_part(r.key, '/', 1));
        out := out || (permsync.role_statement('ALTER ROLE SET', role,
                   format('ALTER ROLE %I%s ', role, CASE WHEN r.s ->> 'database' IS NULL THEN '' ELSE ' IN DATABASE {"database"}' END)
                   || CASE WHEN r.reset THEN format('RESET %I', r.s ->> 'key')
                           ELSE format('SET %I TO %s', r.s ->> 'key',
                                       CASE WHEN jsonb_typeof(r.s -> 'value') = 'object'
                                            THEN format('DEFAULT /* permsync: value withheld: %s bytes, over the limit of 8192 */',
                                                        r.s -> 'value' ->> 'withheld')
                                            ELSE permsync.setting_value_sql(r.s ->> 'key', r.s ->> 'value') END) END,
                   ignore_codes => ARRAY['42704', '22023', '55P02', '3D000'],
                   on_target_database => coalesce((r.s ->> 'here')::boolean, false))
                   || CASE WHEN NOT coalesce((r.s ->> 'here')::boolean, true)
                           THEN jsonb_build_object('database', r.s ->> 'database') ELSE '{}' END);
    END LOOP;

    -- Database privileges granted, or given the grant option, each grantor's apart and as
    -- that grantor (the daemon puts grantors first).
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(new -> 'dbacl') n LEFT JOIN jsonb_each(old -> 'dbacl') o USING (key)
              WHERE (o.value - 'grantee' - 'as') IS DISTINCT FROM (n.value - 'grantee' - 'as')
              ORDER BY key LOOP
        CONTINUE WHEN r.o IS NOT NULL AND (r.o ->> 'grantable')::boolean AND NOT (r.n ->> 'grantable')::boolean;
        grantee := CASE WHEN split_part(r.key, '/', 1) = '0' THEN 'PUBLIC'
                        ELSE quote_ident(permsync.role_name(old_roles, new_roles, split_part(r.key, '/', 1))) END;
        out := out || (permsync.shared_privilege_statement('GRANT ON DATABASE', r.n ->> 'as',
                   format('GRANT %s ON DATABASE {"database"} TO %s%s', r.n ->> 'privilege', grantee,
                          CASE WHEN (r.n ->> 'grantable')::boolean THEN ' WITH GRANT OPTION' ELSE '' END),
                   CASE WHEN split_part(r.key, '/', 1) <> '0' THEN r.n ->> 'grantee' END, 'database/' || (r.n ->> 'privilege'),
                   (r.n ->> 'grantable')::boolean,
                   jsonb_build_object('on', 'database', 'privilege', r.n ->> 'privilege', 'option', (r.n ->> 'grantable')::boolean))
               || jsonb_build_object('on_target_database', true));
    END LOOP;

    -- Privileges on other databases, tablespaces and parameters revoked, or their grant
    -- option, then granted, or given the grant option, each grantor's apart and as that
    -- grantor, named as it is after the renames (the daemon puts dependent grants first
    -- among the revokes, grantors first among the grants).
    FOR r IN SELECT * FROM permsync.shared_privilege_changes(old, new) c
              WHERE (c.wanted = 'absent' OR (c.wanted = 'granted' AND c.current = 'grantable'))
                AND NOT (c.wanted = 'absent' AND (gone ? c.grantee OR gone ? c.grantor))
              ORDER BY c.kind, c.key LOOP
        grantee := CASE WHEN r.grantee <> '0' THEN permsync.role_name(old_roles, new_roles, r.grantee) END;
        out := out || permsync.shared_privilege_statement(
                   CASE WHEN r.kind = 'databases' THEN 'REVOKE ON DATABASE' ELSE 'REVOKE' END,
                   permsync.role_name(old_roles, new_roles, r.entry ->> 'by'),
                   format('REVOKE %s%s ON %s FROM %s', CASE WHEN r.wanted = 'absent' THEN '' ELSE 'GRANT OPTION FOR ' END,
                          r.entry ->> 'privilege', r.object, coalesce(quote_ident(grantee), 'PUBLIC')),
                   grantee, r.chain, r.current = 'grantable', r.acl || jsonb_build_object('option', r.wanted <> 'absent'),
                   CASE WHEN r.kind = 'databases' THEN r.entry ->> 'database' END);
    END LOOP;
    FOR r IN SELECT * FROM permsync.shared_privilege_changes(old, new) c
              WHERE c.wanted = 'grantable' OR (c.wanted = 'granted' AND c.current = 'absent')
              ORDER BY c.kind, c.key LOOP
        grantee := CASE WHEN r.grantee <> '0' THEN permsync.role_name(old_roles, new_roles, r.grantee) END;
        out := out || permsync.shared_privilege_statement(
                   CASE WHEN r.kind = 'databases' THEN 'GRANT ON DATABASE' ELSE 'GRANT' END,
                   permsync.role_name(old_roles, new_roles, r.entry ->> 'by'),
                   format('GRANT %s ON %s TO %s%s', r.entry ->> 'privilege', r.object, coalesce(quote_ident(grantee), 'PUBLIC'),
                          CASE WHEN r.wanted = 'grantable' THEN ' WITH GRANT OPTION' ELSE '' END),
                   grantee, r.chain, r.wanted = 'grantable', r.acl || jsonb_build_object('option', r.wanted = 'grantable'),
                   CASE WHEN r.kind = 'databases' THEN r.entry ->> 'database' END);
    END LOOP;

    -- Each statement says which source role each name it holds is (oids: name to oid):
    -- the old names up to the drops, the new ones after (a rename names both itself). A
    -- target's managed role stands for one source role; a statement that gives its name to
    -- another (the source dropped or renamed it, and that was not carried there) must not
    -- reach it.
    SELECT coalesce(jsonb_object_agg(o.value ->> 'name', o.key::bigint), '{}') INTO old_names FROM jsonb_each(old_roles) o;
    SELECT coalesce(jsonb_object_agg(n.value ->> 'name', n.key::bigint), '{}') INTO new_names FROM jsonb_each(new_roles) n;
    out := ARRAY(SELECT CASE WHEN u.s ? 'oids' THEN u.s ELSE u.s || jsonb_build_object('oids', (
                            SELECT coalesce(jsonb_object_agg(x.name, CASE WHEN u.i <= before_renames
                                                                          THEN coalesce(old_names -> x.name, new_names -> x.name)
                                                                          ELSE coalesce(new_names -> x.name, old_names -> x.name) END), '{}')
                              FROM (SELECT DISTINCT name FROM unnest(ARRAY[u.s ->> 'role', u.s ->> 'granted', u.s ->> 'grantor', u.s ->> 'run_as']) a(name)) x
                             WHERE old_names ? x.name OR new_names ? x.name)) END
                   FROM unnest(out) WITH ORDINALITY AS u(s, i) ORDER BY u.i);
    RETURN to_jsonb(out);
END
$$;


ALTER FUNCTION permsync.role_changes(old jsonb, new jsonb) OWNER TO postgres;

--
-- Name: role_fingerprint(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.role_fingerprint() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    now_xid bigint := age('3'::xid)::bigint + 3;
    rest    text;
    params  text := '';
BEGIN
    IF has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        SELECT s.digest || '/' || d.digest || '/' || b.digest || '/' || t.digest INTO rest
          FROM (SELECT count(*) || ':' || coalesce(sum(hashint8(((now_xid - a) % 4294967296 + 4294967296) % 4294967296))
                                                     FILTER (WHERE a <> 2147483647), 0)
                  FROM (SELECT age(xmin) AS a FROM pg_db_role_setting) t) s(digest),
               (SELECT count(*) || ':' || coalesce(sum(hashint8(((now_xid - a) % 4294967296 + 4294967296) % 4294967296))
                                                     FILTER (WHERE a <> 2147483647), 0)
                  FROM (SELECT age(xmin) AS a FROM pg_shdescription) t) d(digest),
               (SELECT count(*) || ':' || coalesce(sum(hashint8(((now_xid - a) % 4294967296 + 4294967296) % 4294967296))
                                                     FILTER (WHERE a <> 2147483647), 0)
                  FROM (SELECT age(xmin) AS a FROM pg_database) t) b(digest),
               (SELECT count(*) || ':' || coalesce(sum(hashint8(((now_xid - a) % 4294967296 + 4294967296) % 4294967296))
                                                     FILTER (WHERE a <> 2147483647), 0)
                  FROM (SELECT age(xmin) AS a FROM pg_tablespace) t) t(digest);
        IF current_setting('server_version_num')::int >= 150000 THEN
            SELECT count(*) || ':' || coalesce(sum(hashint8(((now_xid - a) % 4294967296 + 4294967296) % 4294967296))
                                                 FILTER (WHERE a <> 2147483647), 0)
              INTO params FROM (SELECT age(xmin) AS a FROM pg_parameter_acl) t;
        END IF;
    ELSE
        SELECT md5(concat_ws('/',
                 (SELECT string_agg(s::text, ',' ORDER BY s.setrole, s.setdatabase) FROM pg_db_role_setting s),
                 (SELECT string_agg(d.description, ',' ORDER BY d.objoid) FROM pg_shdescription d
                   WHERE d.classoid = 'pg_authid'::regclass),
                 (SELECT string_agg(d.oid || ' ' || d.datname || ' ' || coalesce(d.datacl::text, ''), ',' ORDER BY d.oid) FROM pg_database d),
                 (SELECT string_agg(t.oid || ' ' || t.spcname || ' ' || coalesce(t.spcacl::text, ''), ',' ORDER BY t.oid) FROM pg_tablespace t)))
          INTO rest;
        IF current_setting('server_version_num')::int >= 150000 THEN
            SELECT md5(coalesce(string_agg(p.parname || ' ' || coalesce(p.paracl::text, ''), ',' ORDER BY p.parname), ''))
              INTO params FROM pg_parameter_acl p;
        END IF;
    END IF;
    RETURN concat_ws('/', (SELECT value FROM permsync.config WHERE key = 'sync_passwords'),
                     permsync.roles_fingerprint(), rest, params);
END
$$;


ALTER FUNCTION permsync.role_fingerprint() OWNER TO postgres;

--
-- Name: role_name(jsonb, jsonb, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.role_name(old_roles jsonb, new_roles jsonb, oid text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT coalesce(new_roles -> oid ->> 'name', old_roles -> oid ->> 'name', pg_get_userbyid(oid::oid))
$$;


ALTER FUNCTION permsync.role_name(old_roles jsonb, new_roles jsonb, oid text) OWNER TO postgres;

--
-- Name: role_snapshot_matches(boolean); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.role_snapshot_matches(roles_only boolean) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;


ALTER FUNCTION permsync.role_snapshot_matches(roles_only boolean) OWNER TO postgres;

--
-- Name: role_state(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.role_state() RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "DateStyle" TO 'ISO, YMD'
    SET "TimeZone" TO 'UTC'
    AS $$
DECLARE
    with_passwords boolean :=
        coalesce((SELECT value FROM permsync.config WHERE key = 'sync_passwords'), 'false') = 'true'
        AND has_table_privilege('pg_catalog.pg_authid', 'SELECT');
    version integer := current_setting('server_version_num')::int;
    roles   jsonb;
    params  jsonb := '{}';
BEGIN
    SELECT coalesce(jsonb_object_agg(r.oid::text, jsonb_build_object(
               'name', r.rolname, 'superuser', r.rolsuper, 'inherit', r.rolinherit,
               'createrole', r.rolcreaterole, 'createdb', r.rolcreatedb, 'login', r.rolcanlogin,
               'replication', r.rolreplication, 'bypassrls', r.rolbypassrls,
               'connlimit', r.rolconnlimit, 'validuntil', r.rolvaliduntil::text,
               -- Any login may store a value of any size for itself, a CREATEROLE user a
               -- comment: one over 8 kB is kept as its size, so that it is neither copied
               -- into the snapshot at every check nor carried (role_changes says why).
               'comment', CASE WHEN octet_length(d.description) > 8192
                               THEN jsonb_build_object('withheld', octet_length(d.description)) ELSE to_jsonb(d.description) END)
               -- So is a verifier over 512 bytes: a login may set its own to any text of a
               -- verifier's shape before 18 (a salt of megabytes), where a real one takes
               -- some 130 bytes and 18 refuses one over 512.
               || CASE WHEN with_passwords
                       THEN jsonb_build_object('password', CASE WHEN octet_length(a.rolpassword) > 512
                                                                THEN jsonb_build_object('withheld', octet_length(a.rolpassword))
                                                                ELSE to_jsonb(a.rolpassword) END)
                       ELSE '{}' END), '{}')
      INTO roles
      FROM pg_roles r
      LEFT JOIN pg_authid a ON with_passwords AND a.oid = r.oid
      LEFT JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
     WHERE r.oid >= 16384;
    IF version >= 150000 THEN
        -- Parameters have no owner: the bootstrap superuser's entry is their default.
        SELECT coalesce(jsonb_object_agg(p.parname || '/' || e.key, jsonb_build_object(
                   'parameter', p.parname, 'grantee', e.grantee, 'privilege', e.privilege,
                   'state', e.state, 'default', e.default_state, 'by', e.run_as)), '{}')
          INTO params
          FROM pg_parameter_acl p CROSS JOIN LATERAL permsync.acl_entries(p.paracl, NULL, 10) e;
    END IF;
    RETURN jsonb_build_object(
        'passwords', with_passwords,
        'roles', roles,
        -- One entry per grantor (before 16, one per membership). The grantor is null for
        -- the bootstrap superuser and for a role that no longer exists (before 16).
        'members', (SELECT coalesce(jsonb_object_agg(m.roleid || '/' || m.member || '/' || m.grantor,
                        jsonb_build_object('role', pg_get_userbyid(m.roleid), 'member', pg_get_userbyid(m.member),
                                           'grantor', CASE WHEN m.grantor <> 10 THEN g.rolname END,
                                           'admin', m.admin_option)
                        || CASE WHEN version >= 160000
                                THEN jsonb_build_object('inherit', (to_jsonb(m) ->> 'inherit_option')::boolean,
                                                        'set', (to_jsonb(m) ->> 'set_option')::boolean,
                                                        'seq', (to_jsonb(m) ->> 'oid')::bigint)
                                ELSE '{}' END), '{}')
                      FROM pg_auth_members m
                      LEFT JOIN pg_roles g ON g.oid = m.grantor
                     WHERE m.member >= 16384 OR m.member = 10),
        'settings', (SELECT coalesce(jsonb_object_agg(s.setrole || '/' || s.setdatabase || '/' || split_part(c, '=', 1),
                        jsonb_build_object('role', pg_get_userbyid(s.setrole),
                                           'database', (SELECT datname FROM pg_database d WHERE d.oid = s.setdatabase),
                                           'here', s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()),
                                           'key', split_part(c, '=', 1),
                                           'value', CASE WHEN octet_length(c) - octet_length(split_part(c, '=', 1)) - 1 > 8192
                                                         THEN jsonb_build_object('withheld', octet_length(c) - octet_length(split_part(c, '=', 1)) - 1)
                                                         ELSE to_jsonb(substr(c, length(split_part(c, '=', 1)) + 2)) END)), '{}')
                       FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) c
                      WHERE s.setrole >= 16384 OR s.setrole = 10),
        -- Per grantor, as acl_entries keys them (grantee/privilege/grantor, 0 for the owner's
        -- or a superuser's), and exploded item by item as there. `as`: the grantor where it
        -- is neither (a target's database has its own owner): a grant-option chain keeps
        -- its grantors.
        'dbacl', (SELECT coalesce(jsonb_object_agg(h.grantee || '/' || h.privilege || '/' || h.grantor,
                        jsonb_strip_nulls(jsonb_build_object(
                            'grantee', CASE h.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(h.grantee) END,
                            'privilege', h.privilege, 'grantable', h.grantable,
                            'as', CASE WHEN h.grantor <> 0 THEN pg_get_userbyid(h.grantor) END))), '{}')
                    FROM (SELECT a.grantee, a.privilege_type AS privilege, bool_or(a.is_grantable) AS grantable,
                                 CASE WHEN coalesce(g.rolsuper, true) OR a.grantor = d.datdba THEN 0::oid ELSE a.grantor END AS grantor
                            FROM pg_database d
                            CROSS JOIN LATERAL unnest(coalesce(d.datacl, acldefault('d', d.datdba))) i
                            CROSS JOIN LATERAL aclexplode(ARRAY[i]) a
                            LEFT JOIN pg_roles g ON g.oid = a.grantor
                           WHERE d.datname = current_database() AND a.grantee <> d.datdba
                           GROUP BY 1, 2, 4) h),
        -- Keyed by oid: a database or tablespace renamed keeps its privileges.
        'databases', (SELECT coalesce(jsonb_object_agg(d.oid || '/' || e.key, jsonb_build_object(
                         'database', d.datname, 'grantee', e.grantee, 'privilege', e.privilege,
                         'state', e.state, 'default', e.default_state, 'by', e.run_as)), '{}')
                        FROM pg_database d
                        CROSS JOIN LATERAL permsync.acl_entries(coalesce(d.datacl, acldefault('d', d.datdba)), acldefault('d', d.datdba), d.datdba) e
                       WHERE d.datname <> current_database()),
        'tablespaces', (SELECT coalesce(jsonb_object_agg(t.oid || '/' || e.key, jsonb_build_object(
                           'tablespace', t.spcname, 'grantee', e.grantee, 'privilege', e.privilege,
                           'state', e.state, 'default', e.default_state, 'by', e.run_as)), '{}')
                          FROM pg_tablespace t
                          CROSS JOIN LATERAL permsync.acl_entries(coalesce(t.spcacl, acldefault('t', t.spcowner)), acldefault('t', t.spcowner), t.spcowner) e),
        'parameters', params);
END
$$;


ALTER FUNCTION permsync.role_state() OWNER TO postgres;

--
-- Name: role_statement(text, text, text, text, text, boolean, text[], boolean); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.role_statement(kind text, role text, sql text, granted text DEFAULT NULL::text, display text DEFAULT NULL::text, privileged boolean DEFAULT false, ignore_codes text[] DEFAULT NULL::text[], on_target_database boolean DEFAULT false) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'kind', kind, 'role', role, 'granted', granted, 'sql', sql, 'display', coalesce(display, sql),
        'privileged', privileged, 'ignore_codes', to_jsonb(ignore_codes), 'on_target_database', on_target_database))
$$;


ALTER FUNCTION permsync.role_statement(kind text, role text, sql text, granted text, display text, privileged boolean, ignore_codes text[], on_target_database boolean) OWNER TO postgres;

--
-- Name: roles_fingerprint(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.roles_fingerprint() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    now_xid bigint := age('3'::xid)::bigint + 3;
    result  text;
BEGIN
    IF has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        SELECT r.digest || '/' || m.digest INTO result
          FROM (SELECT count(*) || ':' || coalesce(sum(hashint8(((now_xid - a) % 4294967296 + 4294967296) % 4294967296))
                                                     FILTER (WHERE a <> 2147483647), 0)
                  FROM (SELECT age(xmin) AS a FROM pg_authid) t) r(digest),
               (SELECT count(*) || ':' || coalesce(sum(hashint8(((now_xid - a) % 4294967296 + 4294967296) % 4294967296))
                                                     FILTER (WHERE a <> 2147483647), 0)
                  FROM (SELECT age(xmin) AS a FROM pg_auth_members) t) m(digest);
    ELSE
        SELECT md5(concat_ws('/',
                 (SELECT string_agg(r::text, ',' ORDER BY r.oid) FROM pg_roles r),
                 (SELECT string_agg(m::text, ',' ORDER BY m.roleid, m.member) FROM pg_auth_members m)))
          INTO result;
    END IF;
    RETURN result;
END
$$;


ALTER FUNCTION permsync.roles_fingerprint() OWNER TO postgres;

--
-- Name: roles_in_snapshot(name[], name); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.roles_in_snapshot(names name[], invoker name) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    snap   record;
    -- The statement's next xid: every row it sees has its 32-bit xmin from some xid below.
    top    bigint;
    member oid;
    closure oid[];
BEGIN
    SELECT s.horizon, s.taken_in, s.written_by INTO snap FROM permsync.role_snapshot s WHERE s.id = 1;
    IF snap.horizon IS NULL OR names IS NULL OR current_setting('transaction_isolation') <> 'read committed'
       OR NOT has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        RETURN false;
    END IF;
    top := pg_snapshot_xmax(pg_current_snapshot())::text::bigint;
    IF EXISTS (SELECT FROM pg_authid a
                WHERE a.rolname = ANY (names || invoker || session_user)
                  AND permsync.written_since(a.xmin, snap.horizon, snap.taken_in, snap.written_by, top)) THEN
        RETURN false;
    END IF;
    SELECT a.oid INTO member FROM pg_authid a WHERE a.rolname = invoker AND NOT a.rolsuper;
    IF member IS NULL THEN
        RETURN true;
    END IF;
    -- Any login with ADMIN on roles may make the invoker a member of many: past a
    -- thousand, the catalogs are compared whole, as they would be anyway.
    closure := ARRAY(WITH RECURSIVE up(oid) AS (
                         SELECT member
                         UNION
                         SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.oid)
                     SELECT up.oid FROM up LIMIT 1001);
    IF cardinality(closure) > 1000 THEN
        RETURN false;
    END IF;
    RETURN NOT EXISTS (
        SELECT FROM pg_authid a
         WHERE a.oid = ANY (closure) AND permsync.written_since(a.xmin, snap.horizon, snap.taken_in, snap.written_by, top)
        UNION ALL
        SELECT FROM pg_auth_members m
         WHERE m.member = ANY (closure) AND permsync.written_since(m.xmin, snap.horizon, snap.taken_in, snap.written_by, top));
END
$$;


ALTER FUNCTION permsync.roles_in_snapshot(names name[], invoker name) OWNER TO postgres;

--
-- Name: rows_written_since(xid, boolean); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.rows_written_since(since xid, roles_only boolean) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    since_age integer := age(since);
    roles     text;
    params    text := '';
BEGIN
    IF NOT has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        RETURN '';
    END IF;
    roles := concat_ws('/',
               (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_authid WHERE age(xmin) <= since_age),
               (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_auth_members WHERE age(xmin) <= since_age));
    IF roles_only THEN
        RETURN roles;
    END IF;
    IF current_setting('server_version_num')::int >= 150000 THEN
        SELECT coalesce(sum(hashtext(ctid::text)), 0) INTO params FROM pg_parameter_acl WHERE age(xmin) <= since_age;
    END IF;
    RETURN concat_ws('/', roles,
             (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_db_role_setting WHERE age(xmin) <= since_age),
             (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_shdescription WHERE age(xmin) <= since_age),
             (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_database WHERE age(xmin) <= since_age),
             (SELECT coalesce(sum(hashtext(ctid::text)), 0) FROM pg_tablespace WHERE age(xmin) <= since_age),
             params);
END
$$;


ALTER FUNCTION permsync.rows_written_since(since xid, roles_only boolean) OWNER TO postgres;

--
-- Name: set_switch(text, boolean, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.set_switch(switch text, turn_on boolean, action text) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    INSERT INTO permsync.config (key, value, updated_at) VALUES (switch, turn_on::text, now())
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
    SELECT permsync.notify_control(action, NULL);
$$;


ALTER FUNCTION permsync.set_switch(switch text, turn_on boolean, action text) OWNER TO postgres;

--
-- Name: setting_value_sql(text, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.setting_value_sql(key text, value text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    value_limit constant integer := 8192;
    -- PostgreSQL's list splitting: whitespace is space, tab, newline, return, form feed.
    space       constant text := '[ ' || chr(9) || chr(10) || chr(13) || chr(12) || ']*';
    bare        constant text := '[^", ' || chr(9) || chr(10) || chr(13) || chr(12) || '][^, ' || chr(9) || chr(10) || chr(13) || chr(12) || ']*';
    identifiers boolean := lower(key) IN ('search_path', 'temp_tablespaces');
    literals    text[];
    consumed    bigint;
    last        text;
BEGIN
    IF octet_length(value) > value_limit THEN
        RETURN format('DEFAULT /* permsync: value withheld: %s bytes, over the limit of %s */', octet_length(value), value_limit);
    END IF;
    IF lower(key) NOT IN ('search_path', 'temp_tablespaces', 'session_preload_libraries',
                          'local_preload_libraries', 'shared_preload_libraries', 'unix_socket_directories') THEN
        RETURN quote_literal(value);
    END IF;
    -- Each element with the separator after it: "quoted" ("" inside is one ") or bare.
    SELECT array_agg(quote_literal(CASE WHEN m[2] IS NOT NULL THEN replace(m[2], '""', '"')
                                        WHEN identifiers THEN translate(m[3], 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                                        ELSE m[3] END) ORDER BY o),
           sum(length(m[1])), (array_agg(m[1] ORDER BY o DESC))[1]
      INTO literals, consumed, last
      FROM regexp_matches(value, '(' || space || '(?:"((?:[^"]|"")*)"|(' || bare || '))' || space || '(?:,|$))', 'g')
           WITH ORDINALITY AS t(m, o);
    -- A well-formed list is those elements end to end, the last without a comma after it.
    -- Anything else becomes one literal: never more than a value.
    IF literals IS NULL OR consumed <> length(value) OR right(last, 1) = ',' THEN
        RETURN quote_literal(value);
    END IF;
    RETURN array_to_string(literals, ', ');
END
$_$;


ALTER FUNCTION permsync.setting_value_sql(key text, value text) OWNER TO postgres;

--
-- Name: shared_privilege_changes(jsonb, jsonb); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.shared_privilege_changes(old jsonb, new jsonb) RETURNS TABLE(kind text, key text, entry jsonb, object text, acl jsonb, chain text, grantee text, grantor text, current text, wanted text)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH kinds (kind) AS (VALUES ('databases'), ('tablespaces'), ('parameters'))
    SELECT x.kind, x.key, x.entry,
           CASE x.kind WHEN 'databases' THEN 'DATABASE {"database"}'
                       WHEN 'tablespaces' THEN format('TABLESPACE %I', x.entry ->> 'tablespace')
                       ELSE format('PARAMETER %I', x.entry ->> 'parameter') END,
           CASE x.kind WHEN 'databases' THEN jsonb_build_object('on', 'database', 'privilege', x.entry ->> 'privilege')
                       WHEN 'tablespaces' THEN jsonb_build_object('on', 'tablespace', 'name', x.entry ->> 'tablespace', 'privilege', x.entry ->> 'privilege')
                       ELSE jsonb_build_object('on', 'parameter', 'name', x.entry ->> 'parameter', 'privilege', x.entry ->> 'privilege') END,
           x.kind || '/' || split_part(x.key, '/', 1) || '/' || (x.entry ->> 'privilege'),
           split_part(x.key, '/', 2), split_part(x.key, '/', 4), x.current, x.wanted
      FROM (SELECT kind, key, coalesce(n.value, o.value) AS entry,
                   coalesce(o.value ->> 'state', n.value ->> 'default') AS current,
                   coalesce(n.value ->> 'state', o.value ->> 'default') AS wanted
              FROM (SELECT k.kind, e.key, e.value FROM kinds k CROSS JOIN LATERAL jsonb_each(coalesce(old -> k.kind, '{}')) e) o
              FULL JOIN (SELECT k.kind, e.key, e.value FROM kinds k CROSS JOIN LATERAL jsonb_each(coalesce(new -> k.kind, '{}')) e) n
                   USING (kind, key)) x
     WHERE x.current <> x.wanted
       AND (x.kind <> 'databases' OR EXISTS (SELECT 1 FROM pg_database d WHERE d.oid = split_part(x.key, '/', 1)::oid))
       AND (x.kind <> 'tablespaces' OR EXISTS (SELECT 1 FROM pg_tablespace t WHERE t.oid = split_part(x.key, '/', 1)::oid))
     ORDER BY x.kind, x.key
$$;


ALTER FUNCTION permsync.shared_privilege_changes(old jsonb, new jsonb) OWNER TO postgres;

--
-- Name: shared_privilege_statement(text, text, text, text, text, boolean, jsonb, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.shared_privilege_statement(kind text, run_as text, sql text, grantee text, chain text, option boolean, acl jsonb, database text DEFAULT NULL::text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT permsync.role_statement(kind, grantee,
               CASE WHEN run_as IS NULL THEN sql
                    ELSE format('SET LOCAL ROLE %I; %s; RESET ROLE', run_as, sql) END,
               ignore_codes => ARRAY['3D000', '42704', '42501'])
           || jsonb_strip_nulls(jsonb_build_object('run_as', run_as, 'chain', chain, 'database', database,
                                                   'option', CASE WHEN option THEN true END, 'acl', acl))
$$;


ALTER FUNCTION permsync.shared_privilege_statement(kind text, run_as text, sql text, grantee text, chain text, option boolean, acl jsonb, database text) OWNER TO postgres;

--
-- Name: skip_batch(text, bigint, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.skip_batch(env text, batch bigint, reason text) RETURNS TABLE(environment_name text, batch_id bigint, commit_seq bigint, was text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;


ALTER FUNCTION permsync.skip_batch(env text, batch bigint, reason text) OWNER TO postgres;

--
-- Name: take_lock(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.take_lock(lock_name text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
        -- The holder: the session that holds the lock on the locked row's xmax. That is
        -- a subtransaction's id where the row was locked under a savepoint, or inside a
        -- PL/pgSQL block with EXCEPTION (this loop's own), which backend_xid never shows:
        -- a session holds the lock on each id it was assigned, its subtransactions' too.
        -- pg_stat_activity is read once per transaction and kept: a holder that connected
        -- since (after the caller's first look, or this loop's) would be in no row.
        PERFORM pg_stat_clear_snapshot();
        SELECT a.pid, a.state, coalesce(r.rolsuper, false) AS superuser INTO holder
          FROM permsync.locks l
          JOIN pg_locks k ON k.locktype = 'transactionid' AND k.transactionid = l.xmax AND k.mode = 'ExclusiveLock' AND k.granted
          JOIN pg_stat_activity a ON a.pid = k.pid
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
$$;


ALTER FUNCTION permsync.take_lock(lock_name text) OWNER TO postgres;

--
-- Name: take_role_baseline(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.take_role_baseline() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT permsync.take_lock('role_snapshot');
    DELETE FROM permsync.role_snapshot;
    SELECT permsync.capture_role_changes();
$$;


ALTER FUNCTION permsync.take_role_baseline() OWNER TO postgres;

--
-- Name: temporary_object_names(); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.temporary_object_names() RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT array_agg(DISTINCT n.name ORDER BY n.name)
      FROM (SELECT c.relname::text AS name
              FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
             WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = pg_my_temp_schema()
               AND d.classid = 'pg_class'::regclass
            UNION ALL
            SELECT t.typname::text
              FROM pg_depend d JOIN pg_type t ON t.oid = d.objid
             WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = pg_my_temp_schema()
               AND d.classid = 'pg_type'::regclass) n;
$$;


ALTER FUNCTION permsync.temporary_object_names() OWNER TO postgres;

--
-- Name: unreplayable_since_match(text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.unreplayable_since_match(env text) RETURNS TABLE(batch_id bigint, commit_seq bigint, finished_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT x.batch_id, x.commit_seq, x.finished_at
      FROM permsync.execution_log x
     WHERE x.environment_name = env
       AND ((x.execution_status = 'skipped' AND x.result_message LIKE 'not replayable:%')
            OR (x.execution_status = 'success' AND x.result_message LIKE '%not converged: %'))
       AND x.finished_at > coalesce((SELECT max(c.checked_at) FROM permsync.drift_checks c
                                      WHERE c.environment = env AND c.differences = 0), '-infinity')
     ORDER BY x.commit_seq
$$;


ALTER FUNCTION permsync.unreplayable_since_match(env text) OWNER TO postgres;

--
-- Name: wake(text, text); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.wake(channel text, payload text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF pg_notification_queue_usage() < 0.5 THEN
        PERFORM pg_notify(channel, payload);
    END IF;
END
$$;


ALTER FUNCTION permsync.wake(channel text, payload text) OWNER TO postgres;

--
-- Name: written_since(xid, pg_snapshot, xid8, xid8, bigint); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.written_since(xmin xid, horizon pg_snapshot, taken_in xid8, written_by xid8, top bigint) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT xmin::text::bigint OPERATOR(pg_catalog.>) 2
           AND CASE WHEN xmin::text::bigint OPERATOR(pg_catalog.=) (taken_in::text::bigint OPERATOR(pg_catalog.%) 4294967296)
                    THEN written_by IS NOT NULL
                    ELSE (top OPERATOR(pg_catalog.-)
                          ((((top OPERATOR(pg_catalog.%) 4294967296) OPERATOR(pg_catalog.-) xmin::text::bigint)
                            OPERATOR(pg_catalog.+) 4294967296) OPERATOR(pg_catalog.%) 4294967296))::text::xid8
                         OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin(horizon) END
$$;


ALTER FUNCTION permsync.written_since(xmin xid, horizon pg_snapshot, taken_in xid8, written_by xid8, top bigint) OWNER TO postgres;

--
-- Name: xact_status(xid); Type: FUNCTION; Schema: permsync; Owner: postgres
--

CREATE FUNCTION permsync.xact_status(x xid) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    mine bigint := pg_current_xact_id()::text::bigint;
    span constant bigint := 4294967296;
BEGIN
    RETURN pg_xact_status((mine + ((x::text::bigint - mine % span + span / 2) % span + span) % span - span / 2)::text::xid8);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;


ALTER FUNCTION permsync.xact_status(x xid) OWNER TO postgres;

--
-- Name: record_command(text, name, text); Type: FUNCTION; Schema: permsync_capture; Owner: postgres
--

CREATE FUNCTION permsync_capture.record_command(command_tag text, invoker name, invoker_search_path text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    text_limit    constant integer := 65536;
    command_limit constant integer := 1000;
    temp_limit    constant integer := 1000;
    capture_off   boolean := coalesce(current_setting('permsync.capture', true) = 'off', false);
    owner_change  boolean := command_tag LIKE 'ALTER %' AND command_tag <> 'ALTER DEFAULT PRIVILEGES';
    cmd           record;
    batch         bigint;
    reason        text;
    known         text[];
    temps         text[];
    query         text;
    stored        text;
    ordinal       integer := 1;
    nested_limit  constant integer := 8192;
    frames        text;
    inner_frames  text;
    inner_text    text;
    inner_owner   boolean;
    last_writes   bigint;
    writes        bigint;
    compared      boolean;
    first_invoker name;
    first_path    text;
    past          text;
    capped        text;
    -- The invoker is the role setting's name as SET ROLE typed it: another session may
    -- have renamed that role since, and given the name to another. Trusted only where the
    -- session may set the role of that name now; else nobody is the author (converged).
    invoker_oid   oid := pg_catalog.to_regrole(pg_catalog.quote_ident(invoker));
    untrusted     text;
    -- What capture read of the string, kept for the transaction's next command while it
    -- has no batch: whether the string may commit several transactions, and whether its
    -- text names OWNER outside string literals. Each of its commands that records nothing
    -- (an ALTER that changes no owner, a command with permsync.capture off) comes back
    -- here, and reading the string costs as much as the string is long: read once per
    -- string and transaction, not at each of a migration's hundreds of ALTER TABLEs. In
    -- a setting local to the transaction (no row, no lock), under the string's key
    -- (statement_timestamp, xid and length): what a session sets there itself misleads only
    -- its own capture, as permsync.capture = off does.
    read_key      text;
    read          text;
    may_commit    boolean;
    names_owner   boolean;
BEGIN
    -- Raises outside an event trigger: nobody can call this to forge a batch.
    SELECT * INTO cmd FROM pg_event_trigger_ddl_commands() LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- A CREATE SCHEMA counts only for the GRANT and REVOKE among its elements.
    IF command_tag = 'CREATE SCHEMA' AND NOT EXISTS (
           SELECT 1 FROM pg_event_trigger_ddl_commands() c WHERE c.command_tag IN ('GRANT', 'REVOKE')) THEN
        RETURN;
    END IF;
    -- A command run by a function, a DO block or dynamic SQL: the frames past the trigger's
    -- own say so, and a PL/pgSQL one names the statement it ran, literals masked.
    GET DIAGNOSTICS frames = PG_CONTEXT;
    inner_frames := substring(frames from 'PL/pgSQL function permsync\.capture_permission_command\(\) line [0-9]+ at PERFORM\n(.*)$');
    IF inner_frames IS NOT NULL THEN
        inner_text := (regexp_match(inner_frames, '^SQL statement "(.*?)"(?:\n[A-Za-z/]+ function |$)'))[1];
        IF octet_length(inner_text) > nested_limit THEN
            inner_text := NULL;
        END IF;
        inner_text := permsync.masked_text(inner_text);
    END IF;
    -- An owner change run that way counts when the statement it ran names OWNER.
    inner_owner := owner_change AND coalesce(inner_text ~* 'owner', false);
    IF invoker IS DISTINCT FROM SESSION_USER
       AND (invoker_oid IS NULL
            OR NOT pg_has_role(SESSION_USER, invoker_oid,
                               CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'SET' ELSE 'MEMBER' END)) THEN
        untrusted := format('its session''s role setting names %I, which the session may not set now (renamed since, or the membership taken back), so who ran its commands cannot be told; the next drift check shows what differs',
                            invoker);
        invoker_oid := NULL;
    END IF;
    SELECT b.id, b.not_replayable, b.temp_objects, b.role_writes, b.roles_compared, b.current_user_name, b.search_path
      INTO batch, reason, known, last_writes, compared, first_invoker, first_path
      FROM permsync.batches b
     WHERE b.backend_pid = pg_backend_pid() AND b.statement_started_at = statement_timestamp()
       AND b.source_xid = pg_current_xact_id() AND b.origin = 'event_trigger';

    IF batch IS NULL THEN
        query := current_query();
        IF capture_off OR owner_change THEN
            read_key := format('%s|%s|%s|', statement_timestamp(), pg_current_xact_id(), octet_length(query));
            read := current_setting('permsync.string_read', true);
            IF starts_with(read, read_key) THEN
                may_commit := substr(read, length(read_key) + 1, 1) = 'c';
                names_owner := substr(read, length(read_key) + 2, 1) = 'o';
                IF (capture_off AND NOT may_commit) OR (owner_change AND NOT inner_owner AND NOT names_owner) THEN
                    RETURN;
                END IF;
            END IF;
        END IF;
        IF octet_length(query) > text_limit THEN
            -- Every batch of such a string is withheld: how its transactions pair up is moot.
            may_commit := false;
            names_owner := query ~* 'owner';
            stored := format('/* permsync: text withheld: the string is %s bytes, over the limit of %s */',
                             octet_length(query), text_limit);
            reason := format('the string is %s bytes, over the limit of %s that capture stores: its text was withheld; the next drift check shows what differs',
                             octet_length(query), text_limit);
        ELSE
            may_commit := query ~* E'\\m(commit|end|rollback|abort)\\M';
            IF capture_off AND NOT may_commit THEN
                -- Not read: the string's next command with capture on reads it.
                names_owner := true;
            ELSE
                stored := permsync.masked_text(query);
                IF stored IS NULL THEN
                    -- The daemon's planner knows this text (src/capture/batch.ts, WITHHELD_TEXT).
                    stored := '/* permsync: text withheld: it mentions a password, and its string literals read differently with and without standard_conforming_strings */';
                    reason := 'its string literals read differently with and without standard_conforming_strings, so they could not be masked with certainty: its text was withheld, so that no password is stored; the next drift check shows what differs';
                END IF;
                -- An ALTER counts only when the text holds the word OWNER outside string literals:
                -- the same text, and so the same answer, the daemon's planner gets.
                names_owner := (CASE WHEN reason IS NULL THEN stored ELSE query END) ~* 'owner';
            END IF;
        END IF;
        IF (capture_off AND NOT may_commit) OR (owner_change AND NOT inner_owner AND NOT names_owner) THEN
            PERFORM set_config('permsync.string_read',
                               read_key || CASE WHEN may_commit THEN 'c' ELSE '-' END || CASE WHEN names_owner THEN 'o' ELSE '-' END,
                               true);
            RETURN;
        END IF;
        writes := permsync_capture.role_catalog_writes();
        IF capture_off THEN
            reason := 'its permission commands ran with permsync.capture off; the batch only keeps the string''s transactions in step';
        ELSE
            -- Role changes made before this string go first (CREATE ROLE, then GRANT). Where
            -- the snapshot already holds every role the text names, as they are now, and the
            -- invoker's memberships, the catalogs are not compared whole. They are where the
            -- text cannot be read or the command was run by a function or DO block (whose
            -- statements name roles the text does not).
            compared := reason IS NOT NULL OR inner_frames IS NOT NULL
                        OR NOT permsync.roles_in_snapshot(permsync.identifiers(stored), invoker);
            IF compared AND NOT permsync.role_snapshot_matches(true) THEN
                PERFORM permsync.capture_role_changes();
            END IF;
        END IF;
        reason := coalesce(reason, untrusted);
        IF reason IS NULL AND pg_my_temp_schema() <> 0 THEN
            known := permsync.temporary_object_names();
            IF cardinality(known) > temp_limit THEN
                reason := format('the session had more than %s temporary objects; which statements name one cannot be told', temp_limit);
                known := NULL;
            END IF;
        END IF;
        INSERT INTO permsync.batches (query_text, query_masked, current_user_name, current_user_is_superuser, current_user_oid,
                                      session_user_is_superuser, search_path, not_replayable, temp_objects, role_writes, roles_compared)
        VALUES (stored, stored <> query, invoker,
                coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = invoker_oid), false), invoker_oid,
                -- By oid, which the name resolves to now: the transaction's snapshot may be
                -- older than a rename of the login to a superuser's former name.
                coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                           WHERE r.oid = pg_catalog.to_regrole(pg_catalog.quote_ident(session_user))), false),
                invoker_search_path, reason, known, writes, coalesce(compared, false))
        RETURNING id INTO batch;
        PERFORM permsync.wake('permsync', batch::text);
    ELSE
        IF owner_change AND reason IS NULL AND NOT inner_owner
           AND (SELECT b.query_text !~* 'owner' FROM permsync.batches b WHERE b.id = batch) THEN
            RETURN;
        END IF;
        IF capture_off AND reason IS NULL THEN
            reason := 'some of its permission commands ran with permsync.capture off';
            UPDATE permsync.batches b SET not_replayable = reason WHERE b.id = batch;
        END IF;
        IF untrusted IS NOT NULL AND reason IS NULL THEN
            reason := untrusted;
            UPDATE permsync.batches b SET not_replayable = reason WHERE b.id = batch;
        END IF;
        -- A command run by a function or DO block, or as another role than the string's
        -- first (SET ROLE between them), in a string whose role check looked only at what
        -- its text names: what it needs may have changed before the string, unseen.
        IF NOT capture_off AND NOT compared
           AND (inner_frames IS NOT NULL
                OR (invoker IS DISTINCT FROM first_invoker AND NOT permsync.roles_in_snapshot('{}', invoker))) THEN
            UPDATE permsync.batches b SET roles_compared = true WHERE b.id = batch;
            IF NOT permsync.role_snapshot_matches(true) THEN
                PERFORM permsync.capture_role_changes(batch);
            END IF;
        END IF;
        -- The transaction changed a role since the string's last role check (CREATE ROLE b
        -- between GRANT ... TO a and GRANT ... TO b): the change goes before the string's batch.
        writes := permsync_capture.role_catalog_writes();
        IF NOT capture_off AND writes IS DISTINCT FROM last_writes THEN
            UPDATE permsync.batches b SET role_writes = writes WHERE b.id = batch;
            IF NOT permsync.role_snapshot_matches(true) THEN
                PERFORM permsync.capture_role_changes(batch);
            END IF;
        END IF;
        -- A temporary object created since the batch was written (by dynamic SQL, say).
        IF reason IS NULL AND pg_my_temp_schema() <> 0 THEN
            temps := permsync.temporary_object_names();
            IF NOT temps <@ coalesce(known, '{}') THEN
                temps := ARRAY(SELECT DISTINCT unnest(temps || known) ORDER BY 1);
                IF cardinality(temps) > temp_limit THEN
                    reason := format('the session had more than %s temporary objects; which statements name one cannot be told', temp_limit);
                    UPDATE permsync.batches b SET not_replayable = reason, temp_objects = NULL WHERE b.id = batch;
                ELSE
                    UPDATE permsync.batches b SET temp_objects = temps WHERE b.id = batch;
                END IF;
            END IF;
        END IF;
        SELECT coalesce(max(a.command_ordinal), 0) + 1 INTO ordinal FROM permsync.audit_log a WHERE a.batch_id = batch;
    END IF;
    IF ordinal > command_limit THEN
        capped := format('the string ran more than %s permission commands in one transaction; capture recorded the first %s',
                         command_limit, command_limit);
        -- The daemon reads the string's statements past the first rows from its text (src/capture/batch.ts,
        -- CAPPED), with the first rows' role, search_path and temporary objects: where a
        -- command past them ran otherwise, or with capture off, the batch says so instead.
        IF reason IS NULL OR reason = capped THEN
            past := CASE
                        WHEN capture_off THEN 'some of its permission commands ran with permsync.capture off'
                        WHEN untrusted IS NOT NULL OR invoker IS DISTINCT FROM first_invoker
                             OR invoker_search_path IS DISTINCT FROM first_path
                             OR (pg_my_temp_schema() <> 0 AND NOT coalesce(permsync.temporary_object_names(), '{}') <@ coalesce(known, '{}'))
                        THEN capped || ', and past them it ran as another role, with another search_path or on a new temporary table; what it ran there cannot be told'
                        ELSE capped END;
            IF past IS DISTINCT FROM reason THEN
                UPDATE permsync.batches b SET not_replayable = past WHERE b.id = batch;
            END IF;
        END IF;
        RETURN;
    END IF;
    -- One audit row per command: the command's first object stands for it. Each row keeps
    -- the identity it ran with, so the daemon can tell when a string changed role or
    -- search_path between its permission commands.
    INSERT INTO permsync.audit_log (batch_id, command_tag, object_type, object_identity, schema_name,
                                    in_extension, current_user_name, current_user_oid, search_path, command_ordinal,
                                    nested, nested_text)
    VALUES (batch, command_tag, cmd.object_type, cmd.object_identity, cmd.schema_name,
            cmd.in_extension, invoker, invoker_oid, invoker_search_path, ordinal,
            inner_frames IS NOT NULL, inner_text);
END
$_$;


ALTER FUNCTION permsync_capture.record_command(command_tag text, invoker name, invoker_search_path text) OWNER TO postgres;

--
-- Name: role_catalog_writes(); Type: FUNCTION; Schema: permsync_capture; Owner: postgres
--

CREATE FUNCTION permsync_capture.role_catalog_writes() RETURNS bigint
    LANGUAGE sql
    AS $$
    SELECT pg_catalog.pg_stat_get_xact_tuples_inserted('pg_catalog.pg_authid'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_updated('pg_catalog.pg_authid'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_deleted('pg_catalog.pg_authid'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_inserted('pg_catalog.pg_auth_members'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_updated('pg_catalog.pg_auth_members'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_deleted('pg_catalog.pg_auth_members'::pg_catalog.regclass)
$$;


ALTER FUNCTION permsync_capture.role_catalog_writes() OWNER TO postgres;

--
-- Name: session_identity(text, name); Type: FUNCTION; Schema: permsync_capture; Owner: postgres
--

CREATE FUNCTION permsync_capture.session_identity(role_setting text, session_name name) RETURNS name
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RETURN CASE role_setting WHEN 'none' THEN session_name ELSE role_setting::name END;
END
$$;


ALTER FUNCTION permsync_capture.session_identity(role_setting text, session_name name) OWNER TO postgres;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: audit_log; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.audit_log (
    id bigint NOT NULL,
    batch_id bigint NOT NULL,
    command_tag text NOT NULL,
    object_type text,
    object_identity text,
    schema_name text,
    in_extension boolean,
    session_user_name name DEFAULT SESSION_USER NOT NULL,
    current_user_name name DEFAULT CURRENT_USER NOT NULL,
    current_user_oid oid,
    search_path text,
    logged_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    command_ordinal integer,
    nested boolean,
    nested_text text,
    classid oid,
    objid oid,
    noted_identity text,
    reassigned_from name
);


ALTER TABLE permsync.audit_log OWNER TO postgres;

--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

ALTER TABLE permsync.audit_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME permsync.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: batches; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.batches (
    id bigint NOT NULL,
    commit_seq bigint,
    origin text DEFAULT 'event_trigger'::text NOT NULL,
    source_xid xid8 DEFAULT pg_current_xact_id() NOT NULL,
    statement_started_at timestamp with time zone DEFAULT statement_timestamp() NOT NULL,
    captured_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    committed_at timestamp with time zone,
    database_name name DEFAULT current_database() NOT NULL,
    session_user_name name DEFAULT SESSION_USER NOT NULL,
    current_user_name name DEFAULT CURRENT_USER NOT NULL,
    current_user_is_superuser boolean DEFAULT false NOT NULL,
    session_user_is_superuser boolean DEFAULT false NOT NULL,
    current_user_oid oid,
    search_path text DEFAULT current_setting('search_path'::text) NOT NULL,
    backend_pid integer DEFAULT pg_backend_pid() NOT NULL,
    client_addr inet DEFAULT inet_client_addr(),
    application_name text DEFAULT current_setting('application_name'::text),
    query_text text NOT NULL,
    query_masked boolean DEFAULT false NOT NULL,
    target_environment text,
    statements jsonb,
    not_replayable text,
    temp_objects text[],
    converge_reason text,
    role_writes bigint,
    roles_compared boolean DEFAULT false NOT NULL,
    precedes bigint,
    CONSTRAINT batches_origin_check CHECK ((origin = ANY (ARRAY['event_trigger'::text, 'role_watcher'::text, 'owner_watcher'::text, 'manual'::text, 'reconcile'::text, 'bootstrap'::text])))
);


ALTER TABLE permsync.batches OWNER TO postgres;

--
-- Name: batches_id_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

ALTER TABLE permsync.batches ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME permsync.batches_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: commit_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

CREATE SEQUENCE permsync.commit_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE permsync.commit_seq OWNER TO postgres;

--
-- Name: config; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.config (
    key text NOT NULL,
    value text NOT NULL,
    description text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE permsync.config OWNER TO postgres;

--
-- Name: drift_checks; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.drift_checks (
    id bigint NOT NULL,
    environment text NOT NULL,
    checked_at timestamp with time zone DEFAULT now() NOT NULL,
    differences integer,
    summary jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT drift_checks_differences_check CHECK ((differences >= 0))
);


ALTER TABLE permsync.drift_checks OWNER TO postgres;

--
-- Name: drift_checks_id_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

ALTER TABLE permsync.drift_checks ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME permsync.drift_checks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: environments; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.environments (
    name text NOT NULL,
    label text,
    group_name text DEFAULT 'default'::text NOT NULL,
    priority integer DEFAULT 100 NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    on_permanent_failure text DEFAULT 'hold'::text NOT NULL,
    start_after_seq bigint DEFAULT 0 NOT NULL,
    in_flight_through bigint DEFAULT 0 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    retry_requested bigint DEFAULT 0 NOT NULL,
    server_identity text,
    server_key text,
    CONSTRAINT environments_on_permanent_failure_check CHECK ((on_permanent_failure = ANY (ARRAY['hold'::text, 'continue'::text])))
);


ALTER TABLE permsync.environments OWNER TO postgres;

--
-- Name: execution_log; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.execution_log (
    id bigint NOT NULL,
    batch_id bigint NOT NULL,
    environment_name text NOT NULL,
    commit_seq bigint NOT NULL,
    applied_sql text,
    execution_status text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone NOT NULL,
    duration_ms numeric(12,3) NOT NULL,
    result_message text,
    error_code text,
    error_detail text,
    error_hint text,
    failure_kind text,
    retry_count integer DEFAULT 0 NOT NULL,
    last_retry_at timestamp with time zone,
    server_version text,
    connection_time_ms numeric(12,3),
    CONSTRAINT execution_log_execution_status_check CHECK ((execution_status = ANY (ARRAY['success'::text, 'failed'::text, 'skipped'::text, 'rollback'::text, 'dry_run'::text]))),
    CONSTRAINT execution_log_failure_kind_check CHECK ((failure_kind = ANY (ARRAY['transient'::text, 'permanent'::text])))
);


ALTER TABLE permsync.execution_log OWNER TO postgres;

--
-- Name: execution_log_id_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

ALTER TABLE permsync.execution_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME permsync.execution_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: leader; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.leader (
    group_name text NOT NULL,
    pid integer,
    backend_start timestamp with time zone,
    user_name name,
    application_name text,
    client_addr inet,
    since timestamp with time zone,
    renewed_at timestamp with time zone,
    expires_at timestamp with time zone,
    CONSTRAINT leader_group_name_check CHECK ((group_name ~ '^[A-Za-z0-9_.-]{1,63}$'::text))
);


ALTER TABLE permsync.leader OWNER TO postgres;

--
-- Name: locks; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.locks (
    name text NOT NULL
);


ALTER TABLE permsync.locks OWNER TO postgres;

--
-- Name: managed_roles; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.managed_roles (
    server_key text NOT NULL,
    role_oid oid NOT NULL,
    role_name name NOT NULL,
    source_oid oid,
    how text NOT NULL,
    recorded_by name DEFAULT SESSION_USER NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT managed_roles_how_check CHECK ((how = ANY (ARRAY['created'::text, 'adopted'::text])))
);


ALTER TABLE permsync.managed_roles OWNER TO postgres;

--
-- Name: object_owners; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.object_owners (
    noted bigint NOT NULL,
    classid oid NOT NULL,
    objid oid NOT NULL,
    owner_oid oid NOT NULL,
    identity text NOT NULL,
    own text NOT NULL,
    parts oid[] NOT NULL,
    names text[] NOT NULL,
    named boolean NOT NULL
);


ALTER TABLE permsync.object_owners OWNER TO postgres;

--
-- Name: object_owners_noted_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

ALTER TABLE permsync.object_owners ALTER COLUMN noted ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME permsync.object_owners_noted_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: operator_actions; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.operator_actions (
    id bigint NOT NULL,
    acted_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    acted_by name DEFAULT SESSION_USER NOT NULL,
    action text NOT NULL,
    environment_name text,
    batch_id bigint,
    reason text
);


ALTER TABLE permsync.operator_actions OWNER TO postgres;

--
-- Name: operator_actions_id_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

ALTER TABLE permsync.operator_actions ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME permsync.operator_actions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: retry_queue; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.retry_queue (
    id bigint NOT NULL,
    batch_id bigint NOT NULL,
    environment_name text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone NOT NULL,
    last_error_code text,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE permsync.retry_queue OWNER TO postgres;

--
-- Name: retry_queue_id_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

ALTER TABLE permsync.retry_queue ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME permsync.retry_queue_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: role_conflicts; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.role_conflicts (
    id bigint NOT NULL,
    environment_name text NOT NULL,
    role_name name NOT NULL,
    target_oid oid NOT NULL,
    batch_id bigint,
    reason text NOT NULL,
    first_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    resolved_at timestamp with time zone,
    resolution text
);


ALTER TABLE permsync.role_conflicts OWNER TO postgres;

--
-- Name: role_conflicts_id_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

ALTER TABLE permsync.role_conflicts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME permsync.role_conflicts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: role_snapshot; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.role_snapshot (
    id integer DEFAULT 1 NOT NULL,
    fingerprint text NOT NULL,
    state jsonb NOT NULL,
    taken_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    roles_fingerprint text,
    written_by xid8,
    rows_written text,
    roles_rows_written text,
    horizon pg_snapshot,
    taken_in xid8,
    CONSTRAINT role_snapshot_id_check CHECK ((id = 1))
);


ALTER TABLE permsync.role_snapshot OWNER TO postgres;

--
-- Name: schema_migrations; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE permsync.schema_migrations OWNER TO postgres;

--
-- Name: sync_rules; Type: TABLE; Schema: permsync; Owner: postgres
--

CREATE TABLE permsync.sync_rules (
    id bigint NOT NULL,
    environment_name text NOT NULL,
    "position" integer NOT NULL,
    rule_type text NOT NULL,
    command_tag text,
    role_pattern text,
    schema_pattern text,
    CONSTRAINT sync_rules_rule_type_check CHECK ((rule_type = ANY (ARRAY['include'::text, 'exclude'::text])))
);


ALTER TABLE permsync.sync_rules OWNER TO postgres;

--
-- Name: sync_rules_id_seq; Type: SEQUENCE; Schema: permsync; Owner: postgres
--

ALTER TABLE permsync.sync_rules ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME permsync.sync_rules_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: v_batch_outcomes; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_batch_outcomes AS
 SELECT b.id AS batch_id,
    b.commit_seq,
    b.committed_at,
    e.name AS environment_name,
    COALESCE(x.execution_status, 'pending'::text) AS status,
    x.failure_kind,
    x.error_code,
    x.result_message,
    x.finished_at,
    ((b.commit_seq <= e.start_after_seq) OR COALESCE(((x.execution_status = ANY (ARRAY['success'::text, 'skipped'::text, 'dry_run'::text])) OR ((x.execution_status = 'failed'::text) AND (x.failure_kind = 'permanent'::text) AND (e.on_permanent_failure = 'continue'::text))), false)) AS finished
   FROM ((permsync.batches b
     JOIN permsync.environments e ON (((b.target_environment IS NULL) OR (b.target_environment = e.name))))
     LEFT JOIN permsync.execution_log x ON (((x.batch_id = b.id) AND (x.environment_name = e.name))))
  WHERE ((b.commit_seq IS NOT NULL) AND ((b.commit_seq > e.start_after_seq) OR (x.id IS NOT NULL)));


ALTER TABLE permsync.v_batch_outcomes OWNER TO postgres;

--
-- Name: v_audit_trail; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_audit_trail AS
 SELECT a.id AS audit_id,
    a.logged_at,
    a.command_tag,
    a.object_type,
    a.object_identity,
    a.schema_name,
    a.in_extension,
    a.session_user_name,
    a.current_user_name,
    a.batch_id,
    b.commit_seq,
    b.origin,
    b.query_text,
    b.query_masked,
    COALESCE(( SELECT jsonb_object_agg(o.environment_name, o.status) AS jsonb_object_agg
           FROM permsync.v_batch_outcomes o
          WHERE (o.batch_id = a.batch_id)), '{}'::jsonb) AS outcomes
   FROM (permsync.audit_log a
     JOIN permsync.batches b ON ((b.id = a.batch_id)))
  ORDER BY a.id DESC;


ALTER TABLE permsync.v_audit_trail OWNER TO postgres;

--
-- Name: v_drift_status; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_drift_status AS
 SELECT e.environment,
        CASE
            WHEN (l.id IS NULL) THEN 'unchecked'::text
            WHEN (l.differences IS NULL) THEN 'error'::text
            WHEN (l.differences > 0) THEN 'drifted'::text
            ELSE 'matches'::text
        END AS state,
    l.checked_at AS last_checked_at,
    l.differences AS last_differences,
    l.summary AS last_summary,
    ( SELECT max(c.checked_at) AS max
           FROM permsync.drift_checks c
          WHERE ((c.environment = e.environment) AND (c.differences = 0))) AS last_matched_at
   FROM (( SELECT environments.name AS environment
           FROM permsync.environments
        UNION
         SELECT DISTINCT drift_checks.environment
           FROM permsync.drift_checks) e
     LEFT JOIN LATERAL ( SELECT c.id,
            c.environment,
            c.checked_at,
            c.differences,
            c.summary
           FROM permsync.drift_checks c
          WHERE (c.environment = e.environment)
          ORDER BY c.checked_at DESC, c.id DESC
         LIMIT 1) l ON (true))
  ORDER BY e.environment;


ALTER TABLE permsync.v_drift_status OWNER TO postgres;

--
-- Name: v_environment_status; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_environment_status AS
 SELECT get_sync_status.environment,
    get_sync_status.label,
    get_sync_status.priority,
    get_sync_status.enabled,
    get_sync_status.paused,
    get_sync_status.sync_enabled,
    get_sync_status.dry_run,
    get_sync_status.state,
    get_sync_status.last_success_at,
    get_sync_status.success_count,
    get_sync_status.failed_count,
    get_sync_status.skipped_count,
    get_sync_status.dry_run_count,
    get_sync_status.pending_batches,
    get_sync_status.oldest_pending_batch_id,
    get_sync_status.oldest_pending_age_seconds,
    get_sync_status.blocking_error_code,
    get_sync_status.blocking_error,
    get_sync_status.role_conflicts
   FROM permsync.get_sync_status(24) get_sync_status(environment, label, priority, enabled, paused, sync_enabled, dry_run, state, last_success_at, success_count, failed_count, skipped_count, dry_run_count, pending_batches, oldest_pending_batch_id, oldest_pending_age_seconds, blocking_error_code, blocking_error, role_conflicts);


ALTER TABLE permsync.v_environment_status OWNER TO postgres;

--
-- Name: v_execution_details; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_execution_details AS
 SELECT x.id AS execution_id,
    x.batch_id,
    x.commit_seq,
    x.environment_name,
    e.label AS environment_label,
    b.origin,
    b.committed_at,
    b.session_user_name,
    b.current_user_name,
    b.target_environment,
    b.query_text,
    b.query_masked,
    x.applied_sql,
    x.execution_status,
    x.failure_kind,
    x.started_at,
    x.finished_at,
    x.duration_ms,
    x.result_message,
    x.error_code,
    x.error_detail,
    x.error_hint,
    x.retry_count,
    x.last_retry_at,
    x.server_version,
    x.connection_time_ms
   FROM ((permsync.execution_log x
     JOIN permsync.batches b ON ((b.id = x.batch_id)))
     LEFT JOIN permsync.environments e ON ((e.name = x.environment_name)));


ALTER TABLE permsync.v_execution_details OWNER TO postgres;

--
-- Name: v_failed_syncs; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_failed_syncs AS
 SELECT x.id AS execution_id,
    x.batch_id,
    x.commit_seq,
    x.environment_name,
    b.query_text,
    x.applied_sql,
    x.error_code,
    x.result_message AS error_message,
    x.error_detail,
    x.error_hint,
    x.failure_kind,
        CASE
            WHEN o.finished THEN 'passed'::text
            WHEN (x.failure_kind = 'permanent'::text) THEN 'held'::text
            ELSE 'retrying'::text
        END AS retry_state,
    x.retry_count,
    x.started_at AS first_attempt_at,
    x.finished_at AS last_attempt_at,
    r.attempts AS queued_attempts,
    r.next_attempt_at
   FROM (((permsync.execution_log x
     JOIN permsync.batches b ON ((b.id = x.batch_id)))
     LEFT JOIN permsync.v_batch_outcomes o ON (((o.batch_id = x.batch_id) AND (o.environment_name = x.environment_name))))
     LEFT JOIN permsync.retry_queue r ON (((r.batch_id = x.batch_id) AND (r.environment_name = x.environment_name))))
  WHERE (x.execution_status = 'failed'::text)
  ORDER BY x.finished_at DESC;


ALTER TABLE permsync.v_failed_syncs OWNER TO postgres;

--
-- Name: v_managed_roles; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_managed_roles AS
 SELECT e.name AS environment_name,
    m.role_oid,
    m.role_name,
    m.source_oid,
    m.how,
    m.recorded_by,
    m.recorded_at
   FROM (permsync.environments e
     JOIN permsync.managed_roles m ON ((m.server_key = COALESCE(e.server_key, e.name))))
UNION ALL
 SELECT m.server_key AS environment_name,
    m.role_oid,
    m.role_name,
    m.source_oid,
    m.how,
    m.recorded_by,
    m.recorded_at
   FROM permsync.managed_roles m
  WHERE (NOT (EXISTS ( SELECT
           FROM permsync.environments e
          WHERE (COALESCE(e.server_key, e.name) = m.server_key))));


ALTER TABLE permsync.v_managed_roles OWNER TO postgres;

--
-- Name: v_operator_actions; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_operator_actions AS
 SELECT a.id,
    a.acted_at,
    a.acted_by,
    a.action,
    a.environment_name,
    a.batch_id,
    b.commit_seq,
    a.reason
   FROM (permsync.operator_actions a
     LEFT JOIN permsync.batches b ON ((b.id = a.batch_id)))
  ORDER BY a.id DESC;


ALTER TABLE permsync.v_operator_actions OWNER TO postgres;

--
-- Name: v_recent_batches; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_recent_batches AS
 SELECT b.id AS batch_id,
    b.commit_seq,
    b.origin,
    b.committed_at,
    b.session_user_name,
    b.current_user_name,
    b.target_environment,
    COALESCE(( SELECT array_agg(a.command_tag ORDER BY a.id) AS array_agg
           FROM permsync.audit_log a
          WHERE (a.batch_id = b.id)), '{}'::text[]) AS command_tags,
    b.query_text,
    b.query_masked,
    COALESCE(o.outcomes, '{}'::jsonb) AS outcomes,
    COALESCE(o.success, (0)::bigint) AS success_count,
    COALESCE(o.failed, (0)::bigint) AS failed_count,
    COALESCE(o.skipped, (0)::bigint) AS skipped_count,
    COALESCE(o.dry_run, (0)::bigint) AS dry_run_count,
    COALESCE(o.unfinished, (0)::bigint) AS unfinished_count
   FROM (permsync.batches b
     LEFT JOIN LATERAL ( SELECT jsonb_object_agg(o_1.environment_name, o_1.status) AS outcomes,
            count(*) FILTER (WHERE (o_1.status = 'success'::text)) AS success,
            count(*) FILTER (WHERE (o_1.status = 'failed'::text)) AS failed,
            count(*) FILTER (WHERE (o_1.status = 'skipped'::text)) AS skipped,
            count(*) FILTER (WHERE (o_1.status = 'dry_run'::text)) AS dry_run,
            count(*) FILTER (WHERE (NOT o_1.finished)) AS unfinished
           FROM permsync.v_batch_outcomes o_1
          WHERE (o_1.batch_id = b.id)) o ON (true))
  WHERE ((b.commit_seq IS NOT NULL) AND (b.committed_at > (now() - '7 days'::interval)))
  ORDER BY b.commit_seq DESC;


ALTER TABLE permsync.v_recent_batches OWNER TO postgres;

--
-- Name: v_role_conflicts; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_role_conflicts AS
 SELECT c.id AS conflict_id,
    c.environment_name,
    c.role_name,
    c.target_oid,
    c.batch_id,
    c.reason,
    c.first_seen_at,
    c.last_seen_at,
    format('permsync adopt --env %s %s'::text, c.environment_name, c.role_name) AS to_hand_over
   FROM permsync.role_conflicts c
  WHERE (c.resolved_at IS NULL)
  ORDER BY c.last_seen_at DESC;


ALTER TABLE permsync.v_role_conflicts OWNER TO postgres;

--
-- Name: v_sync_daily_summary; Type: VIEW; Schema: permsync; Owner: postgres
--

CREATE VIEW permsync.v_sync_daily_summary AS
 SELECT (x.finished_at)::date AS day,
    x.environment_name,
    count(*) AS executions,
    count(*) FILTER (WHERE (x.execution_status = 'success'::text)) AS success_count,
    count(*) FILTER (WHERE (x.execution_status = 'failed'::text)) AS failed_count,
    count(*) FILTER (WHERE (x.execution_status = 'skipped'::text)) AS skipped_count,
    count(*) FILTER (WHERE (x.execution_status = 'dry_run'::text)) AS dry_run_count,
    round(avg(x.duration_ms) FILTER (WHERE (x.execution_status = ANY (ARRAY['success'::text, 'failed'::text]))), 3) AS avg_duration_ms,
    max(x.duration_ms) FILTER (WHERE (x.execution_status = ANY (ARRAY['success'::text, 'failed'::text]))) AS max_duration_ms
   FROM permsync.execution_log x
  GROUP BY ((x.finished_at)::date), x.environment_name
  ORDER BY ((x.finished_at)::date) DESC, x.environment_name;


ALTER TABLE permsync.v_sync_daily_summary OWNER TO postgres;

--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: batches batches_commit_seq_key; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.batches
    ADD CONSTRAINT batches_commit_seq_key UNIQUE (commit_seq);


--
-- Name: batches batches_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.batches
    ADD CONSTRAINT batches_pkey PRIMARY KEY (id);


--
-- Name: config config_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.config
    ADD CONSTRAINT config_pkey PRIMARY KEY (key);


--
-- Name: drift_checks drift_checks_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.drift_checks
    ADD CONSTRAINT drift_checks_pkey PRIMARY KEY (id);


--
-- Name: environments environments_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.environments
    ADD CONSTRAINT environments_pkey PRIMARY KEY (name);


--
-- Name: execution_log execution_log_batch_id_environment_name_key; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.execution_log
    ADD CONSTRAINT execution_log_batch_id_environment_name_key UNIQUE (batch_id, environment_name);


--
-- Name: execution_log execution_log_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.execution_log
    ADD CONSTRAINT execution_log_pkey PRIMARY KEY (id);


--
-- Name: leader leader_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.leader
    ADD CONSTRAINT leader_pkey PRIMARY KEY (group_name);


--
-- Name: locks locks_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.locks
    ADD CONSTRAINT locks_pkey PRIMARY KEY (name);


--
-- Name: managed_roles managed_roles_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.managed_roles
    ADD CONSTRAINT managed_roles_pkey PRIMARY KEY (server_key, role_oid);


--
-- Name: operator_actions operator_actions_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.operator_actions
    ADD CONSTRAINT operator_actions_pkey PRIMARY KEY (id);


--
-- Name: retry_queue retry_queue_batch_id_environment_name_key; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.retry_queue
    ADD CONSTRAINT retry_queue_batch_id_environment_name_key UNIQUE (batch_id, environment_name);


--
-- Name: retry_queue retry_queue_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.retry_queue
    ADD CONSTRAINT retry_queue_pkey PRIMARY KEY (id);


--
-- Name: role_conflicts role_conflicts_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.role_conflicts
    ADD CONSTRAINT role_conflicts_pkey PRIMARY KEY (id);


--
-- Name: role_snapshot role_snapshot_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.role_snapshot
    ADD CONSTRAINT role_snapshot_pkey PRIMARY KEY (id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: sync_rules sync_rules_environment_name_position_key; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.sync_rules
    ADD CONSTRAINT sync_rules_environment_name_position_key UNIQUE (environment_name, "position");


--
-- Name: sync_rules sync_rules_pkey; Type: CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.sync_rules
    ADD CONSTRAINT sync_rules_pkey PRIMARY KEY (id);


--
-- Name: audit_log_batch_ordinal_idx; Type: INDEX; Schema: permsync; Owner: postgres
--

CREATE INDEX audit_log_batch_ordinal_idx ON permsync.audit_log USING btree (batch_id, command_ordinal);


--
-- Name: batches_client_string_idx; Type: INDEX; Schema: permsync; Owner: postgres
--

CREATE INDEX batches_client_string_idx ON permsync.batches USING btree (backend_pid, statement_started_at);


--
-- Name: drift_checks_env_idx; Type: INDEX; Schema: permsync; Owner: postgres
--

CREATE INDEX drift_checks_env_idx ON permsync.drift_checks USING btree (environment, checked_at);


--
-- Name: environments_server_idx; Type: INDEX; Schema: permsync; Owner: postgres
--

CREATE INDEX environments_server_idx ON permsync.environments USING btree (server_identity) WHERE (server_identity IS NOT NULL);


--
-- Name: execution_log_env_seq_idx; Type: INDEX; Schema: permsync; Owner: postgres
--

CREATE INDEX execution_log_env_seq_idx ON permsync.execution_log USING btree (environment_name, commit_seq);


--
-- Name: object_owners_object_idx; Type: INDEX; Schema: permsync; Owner: postgres
--

CREATE INDEX object_owners_object_idx ON permsync.object_owners USING btree (classid, objid, noted);


--
-- Name: object_owners_owner_idx; Type: INDEX; Schema: permsync; Owner: postgres
--

CREATE INDEX object_owners_owner_idx ON permsync.object_owners USING btree (owner_oid);


--
-- Name: role_conflicts_open_idx; Type: INDEX; Schema: permsync; Owner: postgres
--

CREATE UNIQUE INDEX role_conflicts_open_idx ON permsync.role_conflicts USING btree (environment_name, role_name) WHERE (resolved_at IS NULL);


--
-- Name: audit_log audit_log_append_only; Type: TRIGGER; Schema: permsync; Owner: postgres
--

CREATE TRIGGER audit_log_append_only BEFORE DELETE OR UPDATE ON permsync.audit_log FOR EACH ROW EXECUTE FUNCTION permsync.audit_log_guard();


--
-- Name: audit_log audit_log_no_truncate; Type: TRIGGER; Schema: permsync; Owner: postgres
--

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON permsync.audit_log FOR EACH STATEMENT EXECUTE FUNCTION permsync.audit_log_guard();


--
-- Name: config config_switches; Type: TRIGGER; Schema: permsync; Owner: postgres
--

CREATE TRIGGER config_switches BEFORE INSERT OR DELETE OR UPDATE ON permsync.config FOR EACH ROW EXECUTE FUNCTION permsync.config_guard();


--
-- Name: config config_verifier_capture; Type: TRIGGER; Schema: permsync; Owner: postgres
--

CREATE TRIGGER config_verifier_capture BEFORE INSERT OR DELETE OR UPDATE ON permsync.config FOR EACH ROW EXECUTE FUNCTION permsync.capture_before_password_switch();


--
-- Name: operator_actions operator_actions_append_only; Type: TRIGGER; Schema: permsync; Owner: postgres
--

CREATE TRIGGER operator_actions_append_only BEFORE DELETE OR UPDATE ON permsync.operator_actions FOR EACH ROW EXECUTE FUNCTION permsync.operator_actions_guard();


--
-- Name: operator_actions operator_actions_no_truncate; Type: TRIGGER; Schema: permsync; Owner: postgres
--

CREATE TRIGGER operator_actions_no_truncate BEFORE TRUNCATE ON permsync.operator_actions FOR EACH STATEMENT EXECUTE FUNCTION permsync.operator_actions_guard();


--
-- Name: batches zz_assign_commit_seq; Type: TRIGGER; Schema: permsync; Owner: postgres
--

CREATE CONSTRAINT TRIGGER zz_assign_commit_seq AFTER INSERT ON permsync.batches DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION permsync.assign_commit_seq();


--
-- Name: audit_log audit_log_batch_id_fkey; Type: FK CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.audit_log
    ADD CONSTRAINT audit_log_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES permsync.batches(id);


--
-- Name: execution_log execution_log_batch_id_fkey; Type: FK CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.execution_log
    ADD CONSTRAINT execution_log_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES permsync.batches(id);


--
-- Name: retry_queue retry_queue_batch_id_fkey; Type: FK CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.retry_queue
    ADD CONSTRAINT retry_queue_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES permsync.batches(id);


--
-- Name: sync_rules sync_rules_environment_name_fkey; Type: FK CONSTRAINT; Schema: permsync; Owner: postgres
--

ALTER TABLE ONLY permsync.sync_rules
    ADD CONSTRAINT sync_rules_environment_name_fkey FOREIGN KEY (environment_name) REFERENCES permsync.environments(name) ON DELETE CASCADE;


--
-- Name: SCHEMA permsync; Type: ACL; Schema: -; Owner: postgres
--

GRANT USAGE ON SCHEMA permsync TO permsync_reader;
GRANT USAGE ON SCHEMA permsync TO permsync_daemon;


--
-- Name: SCHEMA permsync_capture; Type: ACL; Schema: -; Owner: postgres
--

GRANT USAGE ON SCHEMA permsync_capture TO PUBLIC;


--
-- Name: FUNCTION acl_entries(acl aclitem[], default_acl aclitem[], owner oid); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.acl_entries(acl aclitem[], default_acl aclitem[], owner oid) FROM PUBLIC;


--
-- Name: FUNCTION assign_commit_seq(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.assign_commit_seq() FROM PUBLIC;


--
-- Name: FUNCTION audit_log_guard(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.audit_log_guard() FROM PUBLIC;


--
-- Name: FUNCTION capture_before_password_switch(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.capture_before_password_switch() FROM PUBLIC;


--
-- Name: FUNCTION capture_owner_changes(seen text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.capture_owner_changes(seen text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.capture_owner_changes(seen text) TO permsync_daemon;


--
-- Name: FUNCTION capture_permission_command(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.capture_permission_command() FROM PUBLIC;


--
-- Name: FUNCTION capture_role_changes(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.capture_role_changes() FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.capture_role_changes() TO permsync_daemon;


--
-- Name: FUNCTION capture_role_changes(before bigint); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.capture_role_changes(before bigint) FROM PUBLIC;


--
-- Name: FUNCTION claim_leadership(lease_ms integer, daemon_group text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.claim_leadership(lease_ms integer, daemon_group text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.claim_leadership(lease_ms integer, daemon_group text) TO permsync_daemon;


--
-- Name: FUNCTION cleanup_old_logs(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.cleanup_old_logs() FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.cleanup_old_logs() TO permsync_admin;
GRANT ALL ON FUNCTION permsync.cleanup_old_logs() TO permsync_daemon;


--
-- Name: FUNCTION config_guard(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.config_guard() FROM PUBLIC;


--
-- Name: FUNCTION disable_dry_run(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.disable_dry_run() FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.disable_dry_run() TO permsync_admin;


--
-- Name: FUNCTION disable_password_sync(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.disable_password_sync() FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.disable_password_sync() TO permsync_admin;


--
-- Name: FUNCTION disable_sync(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.disable_sync() FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.disable_sync() TO permsync_admin;


--
-- Name: FUNCTION enable_dry_run(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.enable_dry_run() FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.enable_dry_run() TO permsync_admin;


--
-- Name: FUNCTION enable_password_sync(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.enable_password_sync() FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.enable_password_sync() TO permsync_admin;


--
-- Name: FUNCTION enable_sync(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.enable_sync() FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.enable_sync() TO permsync_admin;


--
-- Name: FUNCTION get_sync_status(hours integer); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.get_sync_status(hours integer) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.get_sync_status(hours integer) TO permsync_reader;


--
-- Name: FUNCTION group_leads(daemon_group text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.group_leads(daemon_group text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.group_leads(daemon_group text) TO permsync_daemon;


--
-- Name: FUNCTION identifiers(masked text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.identifiers(masked text) FROM PUBLIC;


--
-- Name: FUNCTION join_server(env text, identity text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.join_server(env text, identity text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.join_server(env text, identity text) TO permsync_daemon;


--
-- Name: FUNCTION manual_sync(sql text, env text, invoker_search_path text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.manual_sync(sql text, env text, invoker_search_path text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.manual_sync(sql text, env text, invoker_search_path text) TO permsync_operator;


--
-- Name: FUNCTION mask_literals(sql text, backslash_escapes boolean); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.mask_literals(sql text, backslash_escapes boolean) FROM PUBLIC;


--
-- Name: FUNCTION mask_string_literals(sql text, backslash_escapes boolean); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.mask_string_literals(sql text, backslash_escapes boolean) FROM PUBLIC;


--
-- Name: FUNCTION masked_text(sql text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.masked_text(sql text) FROM PUBLIC;


--
-- Name: FUNCTION note_owners(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.note_owners() FROM PUBLIC;


--
-- Name: FUNCTION note_owners_of(objects jsonb, moves boolean, owners_only boolean); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.note_owners_of(objects jsonb, moves boolean, owners_only boolean) FROM PUBLIC;


--
-- Name: FUNCTION note_released_owners(objects jsonb); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.note_released_owners(objects jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.note_released_owners(objects jsonb) TO permsync_daemon;


--
-- Name: FUNCTION notify_control(action text, env text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.notify_control(action text, env text) FROM PUBLIC;


--
-- Name: FUNCTION object_facts(classid oid, objid oid); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.object_facts(classid oid, objid oid) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.object_facts(classid oid, objid oid) TO permsync_daemon;


--
-- Name: FUNCTION operator_actions_guard(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.operator_actions_guard() FROM PUBLIC;


--
-- Name: FUNCTION pause_environment(env text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.pause_environment(env text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.pause_environment(env text) TO permsync_operator;


--
-- Name: FUNCTION record_control(action text, env text, batch bigint, reason text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.record_control(action text, env text, batch bigint, reason text) FROM PUBLIC;


--
-- Name: FUNCTION record_reconcile(env text, plan_text text, plan_masked boolean, statements jsonb, applied_sql text, started_at timestamp with time zone, finished_at timestamp with time zone, duration_ms numeric, result_message text, server_version text, connection_time_ms numeric); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.record_reconcile(env text, plan_text text, plan_masked boolean, statements jsonb, applied_sql text, started_at timestamp with time zone, finished_at timestamp with time zone, duration_ms numeric, result_message text, server_version text, connection_time_ms numeric) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.record_reconcile(env text, plan_text text, plan_masked boolean, statements jsonb, applied_sql text, started_at timestamp with time zone, finished_at timestamp with time zone, duration_ms numeric, result_message text, server_version text, connection_time_ms numeric) TO permsync_daemon;
GRANT ALL ON FUNCTION permsync.record_reconcile(env text, plan_text text, plan_masked boolean, statements jsonb, applied_sql text, started_at timestamp with time zone, finished_at timestamp with time zone, duration_ms numeric, result_message text, server_version text, connection_time_ms numeric) TO permsync_admin;


--
-- Name: FUNCTION release_leadership(daemon_group text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.release_leadership(daemon_group text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.release_leadership(daemon_group text) TO permsync_daemon;


--
-- Name: FUNCTION rename_statement(from_name text, to_name text, role_oid bigint); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.rename_statement(from_name text, to_name text, role_oid bigint) FROM PUBLIC;


--
-- Name: FUNCTION request_bootstrap(env text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.request_bootstrap(env text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.request_bootstrap(env text) TO permsync_daemon;


--
-- Name: FUNCTION require_environment(env text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.require_environment(env text) FROM PUBLIC;


--
-- Name: FUNCTION resume_environment(env text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.resume_environment(env text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.resume_environment(env text) TO permsync_operator;


--
-- Name: FUNCTION retry_failed(env text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.retry_failed(env text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.retry_failed(env text) TO permsync_operator;


--
-- Name: FUNCTION role_attribute_statements(old jsonb, new jsonb); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.role_attribute_statements(old jsonb, new jsonb) FROM PUBLIC;


--
-- Name: FUNCTION role_changes(old jsonb, new jsonb); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.role_changes(old jsonb, new jsonb) FROM PUBLIC;


--
-- Name: FUNCTION role_fingerprint(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.role_fingerprint() FROM PUBLIC;


--
-- Name: FUNCTION role_name(old_roles jsonb, new_roles jsonb, oid text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.role_name(old_roles jsonb, new_roles jsonb, oid text) FROM PUBLIC;


--
-- Name: FUNCTION role_snapshot_matches(roles_only boolean); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.role_snapshot_matches(roles_only boolean) FROM PUBLIC;


--
-- Name: FUNCTION role_state(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.role_state() FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.role_state() TO permsync_daemon;


--
-- Name: FUNCTION role_statement(kind text, role text, sql text, granted text, display text, privileged boolean, ignore_codes text[], on_target_database boolean); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.role_statement(kind text, role text, sql text, granted text, display text, privileged boolean, ignore_codes text[], on_target_database boolean) FROM PUBLIC;


--
-- Name: FUNCTION roles_fingerprint(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.roles_fingerprint() FROM PUBLIC;


--
-- Name: FUNCTION roles_in_snapshot(names name[], invoker name); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.roles_in_snapshot(names name[], invoker name) FROM PUBLIC;


--
-- Name: FUNCTION rows_written_since(since xid, roles_only boolean); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.rows_written_since(since xid, roles_only boolean) FROM PUBLIC;


--
-- Name: FUNCTION set_switch(switch text, turn_on boolean, action text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.set_switch(switch text, turn_on boolean, action text) FROM PUBLIC;


--
-- Name: FUNCTION setting_value_sql(key text, value text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.setting_value_sql(key text, value text) FROM PUBLIC;


--
-- Name: FUNCTION shared_privilege_changes(old jsonb, new jsonb); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.shared_privilege_changes(old jsonb, new jsonb) FROM PUBLIC;


--
-- Name: FUNCTION shared_privilege_statement(kind text, run_as text, sql text, grantee text, chain text, option boolean, acl jsonb, database text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.shared_privilege_statement(kind text, run_as text, sql text, grantee text, chain text, option boolean, acl jsonb, database text) FROM PUBLIC;


--
-- Name: FUNCTION skip_batch(env text, batch bigint, reason text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.skip_batch(env text, batch bigint, reason text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.skip_batch(env text, batch bigint, reason text) TO permsync_operator;


--
-- Name: FUNCTION take_lock(lock_name text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.take_lock(lock_name text) FROM PUBLIC;


--
-- Name: FUNCTION take_role_baseline(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.take_role_baseline() FROM PUBLIC;


--
-- Name: FUNCTION temporary_object_names(); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.temporary_object_names() FROM PUBLIC;


--
-- Name: FUNCTION unreplayable_since_match(env text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.unreplayable_since_match(env text) FROM PUBLIC;
GRANT ALL ON FUNCTION permsync.unreplayable_since_match(env text) TO permsync_reader;
GRANT ALL ON FUNCTION permsync.unreplayable_since_match(env text) TO permsync_daemon;


--
-- Name: FUNCTION wake(channel text, payload text); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.wake(channel text, payload text) FROM PUBLIC;


--
-- Name: FUNCTION written_since(xmin xid, horizon pg_snapshot, taken_in xid8, written_by xid8, top bigint); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.written_since(xmin xid, horizon pg_snapshot, taken_in xid8, written_by xid8, top bigint) FROM PUBLIC;


--
-- Name: FUNCTION xact_status(x xid); Type: ACL; Schema: permsync; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync.xact_status(x xid) FROM PUBLIC;


--
-- Name: FUNCTION record_command(command_tag text, invoker name, invoker_search_path text); Type: ACL; Schema: permsync_capture; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync_capture.record_command(command_tag text, invoker name, invoker_search_path text) FROM PUBLIC;


--
-- Name: FUNCTION role_catalog_writes(); Type: ACL; Schema: permsync_capture; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync_capture.role_catalog_writes() FROM PUBLIC;


--
-- Name: FUNCTION session_identity(role_setting text, session_name name); Type: ACL; Schema: permsync_capture; Owner: postgres
--

REVOKE ALL ON FUNCTION permsync_capture.session_identity(role_setting text, session_name name) FROM PUBLIC;


--
-- Name: TABLE audit_log; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.audit_log TO permsync_operator;
GRANT SELECT ON TABLE permsync.audit_log TO permsync_daemon;


--
-- Name: TABLE batches; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.batches TO permsync_daemon;


--
-- Name: COLUMN batches.id; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(id) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.commit_seq; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(commit_seq) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.origin; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(origin) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.source_xid; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(source_xid) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.statement_started_at; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(statement_started_at) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.captured_at; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(captured_at) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.committed_at; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(committed_at) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.database_name; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(database_name) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.session_user_name; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(session_user_name) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.current_user_name; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(current_user_name) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.current_user_is_superuser; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(current_user_is_superuser) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.search_path; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(search_path) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.backend_pid; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(backend_pid) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.client_addr; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(client_addr) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.application_name; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(application_name) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.query_text; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(query_text) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.query_masked; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(query_masked) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.target_environment; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(target_environment) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.not_replayable; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(not_replayable) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.converge_reason; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(converge_reason) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: COLUMN batches.precedes; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT(precedes) ON TABLE permsync.batches TO permsync_operator;


--
-- Name: TABLE config; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.config TO permsync_operator;
GRANT SELECT,INSERT ON TABLE permsync.config TO permsync_daemon;


--
-- Name: COLUMN config.value; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(value) ON TABLE permsync.config TO permsync_daemon;


--
-- Name: COLUMN config.updated_at; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(updated_at) ON TABLE permsync.config TO permsync_daemon;


--
-- Name: TABLE drift_checks; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.drift_checks TO permsync_operator;
GRANT SELECT,INSERT ON TABLE permsync.drift_checks TO permsync_daemon;


--
-- Name: TABLE environments; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.environments TO permsync_operator;
GRANT SELECT,INSERT ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: COLUMN environments.label; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(label) ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: COLUMN environments.group_name; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(group_name) ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: COLUMN environments.priority; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(priority) ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: COLUMN environments.enabled; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(enabled) ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: COLUMN environments.on_permanent_failure; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(on_permanent_failure) ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: COLUMN environments.in_flight_through; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(in_flight_through) ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: COLUMN environments.updated_at; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(updated_at) ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: COLUMN environments.server_identity; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(server_identity) ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: COLUMN environments.server_key; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(server_key) ON TABLE permsync.environments TO permsync_daemon;


--
-- Name: TABLE execution_log; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.execution_log TO permsync_operator;
GRANT SELECT,INSERT,UPDATE ON TABLE permsync.execution_log TO permsync_daemon;


--
-- Name: TABLE managed_roles; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.managed_roles TO permsync_operator;
GRANT SELECT,INSERT,DELETE ON TABLE permsync.managed_roles TO permsync_daemon;
GRANT SELECT,INSERT,DELETE ON TABLE permsync.managed_roles TO permsync_admin;


--
-- Name: COLUMN managed_roles.role_name; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(role_name) ON TABLE permsync.managed_roles TO permsync_daemon;
GRANT UPDATE(role_name) ON TABLE permsync.managed_roles TO permsync_admin;


--
-- Name: COLUMN managed_roles.source_oid; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(source_oid) ON TABLE permsync.managed_roles TO permsync_daemon;
GRANT UPDATE(source_oid) ON TABLE permsync.managed_roles TO permsync_admin;


--
-- Name: TABLE object_owners; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.object_owners TO permsync_daemon;


--
-- Name: TABLE operator_actions; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.operator_actions TO permsync_operator;


--
-- Name: TABLE retry_queue; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.retry_queue TO permsync_operator;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE permsync.retry_queue TO permsync_daemon;


--
-- Name: TABLE role_conflicts; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.role_conflicts TO permsync_operator;
GRANT SELECT,INSERT ON TABLE permsync.role_conflicts TO permsync_daemon;
GRANT SELECT,INSERT ON TABLE permsync.role_conflicts TO permsync_admin;


--
-- Name: COLUMN role_conflicts.batch_id; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(batch_id) ON TABLE permsync.role_conflicts TO permsync_daemon;
GRANT UPDATE(batch_id) ON TABLE permsync.role_conflicts TO permsync_admin;


--
-- Name: COLUMN role_conflicts.reason; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(reason) ON TABLE permsync.role_conflicts TO permsync_daemon;
GRANT UPDATE(reason) ON TABLE permsync.role_conflicts TO permsync_admin;


--
-- Name: COLUMN role_conflicts.last_seen_at; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(last_seen_at) ON TABLE permsync.role_conflicts TO permsync_daemon;
GRANT UPDATE(last_seen_at) ON TABLE permsync.role_conflicts TO permsync_admin;


--
-- Name: COLUMN role_conflicts.resolved_at; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(resolved_at) ON TABLE permsync.role_conflicts TO permsync_daemon;
GRANT UPDATE(resolved_at) ON TABLE permsync.role_conflicts TO permsync_admin;


--
-- Name: COLUMN role_conflicts.resolution; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT UPDATE(resolution) ON TABLE permsync.role_conflicts TO permsync_daemon;
GRANT UPDATE(resolution) ON TABLE permsync.role_conflicts TO permsync_admin;


--
-- Name: TABLE schema_migrations; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.schema_migrations TO permsync_operator;
GRANT SELECT ON TABLE permsync.schema_migrations TO permsync_daemon;


--
-- Name: TABLE sync_rules; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.sync_rules TO permsync_operator;
GRANT SELECT,INSERT,DELETE ON TABLE permsync.sync_rules TO permsync_daemon;


--
-- Name: TABLE v_batch_outcomes; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_batch_outcomes TO permsync_reader;


--
-- Name: TABLE v_audit_trail; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_audit_trail TO permsync_reader;


--
-- Name: TABLE v_drift_status; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_drift_status TO permsync_reader;


--
-- Name: TABLE v_environment_status; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_environment_status TO permsync_reader;


--
-- Name: TABLE v_execution_details; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_execution_details TO permsync_reader;


--
-- Name: TABLE v_failed_syncs; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_failed_syncs TO permsync_reader;


--
-- Name: TABLE v_managed_roles; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_managed_roles TO permsync_reader;
GRANT SELECT ON TABLE permsync.v_managed_roles TO permsync_daemon;


--
-- Name: TABLE v_operator_actions; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_operator_actions TO permsync_reader;


--
-- Name: TABLE v_recent_batches; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_recent_batches TO permsync_reader;


--
-- Name: TABLE v_role_conflicts; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_role_conflicts TO permsync_reader;


--
-- Name: TABLE v_sync_daily_summary; Type: ACL; Schema: permsync; Owner: postgres
--

GRANT SELECT ON TABLE permsync.v_sync_daily_summary TO permsync_reader;


--
-- Name: permsync_capture; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER permsync_capture ON ddl_command_end
         WHEN TAG IN ('GRANT', 'REVOKE', 'ALTER DEFAULT PRIVILEGES', 'ALTER TABLE', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER SEQUENCE', 'ALTER FOREIGN TABLE', 'ALTER SCHEMA', 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER ROUTINE', 'ALTER AGGREGATE', 'ALTER TYPE', 'ALTER DOMAIN', 'ALTER LANGUAGE', 'ALTER LARGE OBJECT', 'ALTER FOREIGN DATA WRAPPER', 'ALTER SERVER', 'ALTER COLLATION', 'ALTER CONVERSION', 'ALTER OPERATOR', 'ALTER OPERATOR CLASS', 'ALTER OPERATOR FAMILY', 'ALTER STATISTICS', 'ALTER TEXT SEARCH CONFIGURATION', 'ALTER TEXT SEARCH DICTIONARY', 'ALTER PUBLICATION', 'ALTER SUBSCRIPTION', 'DROP OWNED', 'CREATE SCHEMA')
   EXECUTE FUNCTION permsync.capture_permission_command();


ALTER EVENT TRIGGER permsync_capture OWNER TO postgres;

--
-- Name: permsync_owners; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER permsync_owners ON ddl_command_end
         WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'CREATE VIEW', 'CREATE MATERIALIZED VIEW', 'CREATE SEQUENCE', 'CREATE FOREIGN TABLE', 'IMPORT FOREIGN SCHEMA', 'CREATE SCHEMA', 'CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE AGGREGATE', 'CREATE TYPE', 'CREATE DOMAIN', 'CREATE LANGUAGE', 'CREATE FOREIGN DATA WRAPPER', 'CREATE SERVER', 'CREATE COLLATION', 'CREATE CONVERSION', 'CREATE OPERATOR', 'CREATE OPERATOR CLASS', 'CREATE OPERATOR FAMILY', 'CREATE STATISTICS', 'CREATE TEXT SEARCH CONFIGURATION', 'CREATE TEXT SEARCH DICTIONARY', 'CREATE PUBLICATION', 'CREATE SUBSCRIPTION', 'CREATE EXTENSION', 'ALTER EXTENSION', 'ALTER TABLE', 'ALTER INDEX', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER SEQUENCE', 'ALTER FOREIGN TABLE', 'ALTER SCHEMA', 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER ROUTINE', 'ALTER AGGREGATE', 'ALTER TYPE', 'ALTER DOMAIN', 'ALTER LANGUAGE', 'ALTER FOREIGN DATA WRAPPER', 'ALTER SERVER', 'ALTER COLLATION', 'ALTER CONVERSION', 'ALTER OPERATOR', 'ALTER OPERATOR CLASS', 'ALTER OPERATOR FAMILY', 'ALTER STATISTICS', 'ALTER TEXT SEARCH CONFIGURATION', 'ALTER TEXT SEARCH DICTIONARY', 'ALTER PUBLICATION', 'ALTER SUBSCRIPTION')
   EXECUTE FUNCTION permsync.note_owners();


ALTER EVENT TRIGGER permsync_owners OWNER TO postgres;

--
-- Name: permsync_owners_dropped; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER permsync_owners_dropped ON sql_drop
   EXECUTE FUNCTION permsync.note_owners();


ALTER EVENT TRIGGER permsync_owners_dropped OWNER TO postgres;

--
-- Data for Name: config; Type: TABLE DATA; Schema: permsync; Owner: postgres
--

COPY permsync.config (key, value, description, updated_at) FROM stdin;
sync_enabled	true	false stops the daemon applying; capture keeps recording. permsync.enable_sync() / disable_sync()	2000-01-01 00:00:00+00
dry_run	false	true makes the daemon log what it would apply instead of applying it. permsync.enable_dry_run() / disable_dry_run()	2000-01-01 00:00:00+00
sync_passwords	false	true makes the source capture password verifiers for the daemon to carry (settings.sync_passwords). permsync.enable_password_sync() / disable_password_sync()	2000-01-01 00:00:00+00
\.

--
-- Data for Name: leader; Type: TABLE DATA; Schema: permsync; Owner: postgres
--

COPY permsync.leader (group_name, pid, backend_start, user_name, application_name, client_addr, since, renewed_at, expires_at) FROM stdin;
\.

--
-- Data for Name: locks; Type: TABLE DATA; Schema: permsync; Owner: postgres
--

COPY permsync.locks (name) FROM stdin;
install
commit_seq
role_snapshot
owner_look
\.

--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: permsync; Owner: postgres
--

COPY permsync.schema_migrations (version, name, applied_at) FROM stdin;
22	schema	2000-01-01 00:00:00+00
\.

--
-- PostgreSQL database dump complete
--

