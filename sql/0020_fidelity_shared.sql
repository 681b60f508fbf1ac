-- permsync 0020: memberships keep their grantor; privileges on other databases, tablespaces
-- and parameters travel. Idempotent: safe to run again.
--
--   * A membership's grantor is part of what pg_dumpall shows, and on PostgreSQL 16 and
--     later part of the membership's identity (one row per grantor; who may revoke it;
--     what a DROP ROLE of the grantor does). The snapshot keeps one entry per
--     (role, member, grantor), and the watcher writes GRANTED BY. The bootstrap superuser
--     is no name: a superuser's grant on 16+ is recorded as its, on any server.
--   * GRANT ... ON DATABASE (other than the source's own), ON TABLESPACE and ON PARAMETER
--     (15+) fire no event trigger: the watcher now compares them too. The role check of a
--     DBA's path (roles_fingerprint) reads nothing more.
--   * The role watcher has no author, but an ACL entry names its grantor: a privilege a
--     role that is not a superuser granted on a shared object is granted (or revoked)
--     on a target as that role, so that it reaches no further there than on the source.

-- Role changes made before this migration are captured by the functions they were made
-- under; the snapshot then takes the new form (below, once they are replaced).
SELECT permsync.capture_role_changes();

-- As in 0010, with every database's row (not only the current one's), tablespaces and
-- parameter privileges counted.
CREATE OR REPLACE FUNCTION permsync.role_fingerprint()
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- As in 0006, with the rows of every database, tablespace and parameter privilege.
CREATE OR REPLACE FUNCTION permsync.rows_written_since(since xid, roles_only boolean)
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;
REVOKE ALL ON FUNCTION permsync.rows_written_since(xid, boolean) FROM PUBLIC;

-- The privileges of a shared object (a database other than the source's own, a tablespace,
-- a parameter) where they differ from what it has by default, keyed grantee/privilege:
-- a new database adds no entry, and a privilege revoked from its defaults is one. `run_as`:
-- a grantor of the privilege (for one revoked, the owner) that is no superuser, where no
-- superuser granted it (a superuser's grant is recorded as the owner's): only a
-- superuser's runs as the sync user. A change of owner, which rewrites every grantor,
-- changes no entry. The owner's own privileges follow from ownership, not carried.
CREATE OR REPLACE FUNCTION permsync.acl_entries(acl aclitem[], default_acl aclitem[], owner oid)
RETURNS TABLE (key text, grantee text, privilege text, state text, default_state text, run_as text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH held AS (
        SELECT a.grantee, a.privilege_type AS privilege, bool_or(a.is_grantable) AS grantable,
               bool_or(coalesce(g.rolsuper, true)) AS by_superuser, min(g.rolname) AS grantor
          FROM aclexplode(acl) a LEFT JOIN pg_roles g ON g.oid = a.grantor
         GROUP BY a.grantee, a.privilege_type
    ), defaults AS (
        SELECT a.grantee, a.privilege_type AS privilege, a.is_grantable AS grantable FROM aclexplode(default_acl) a
    )
    SELECT x.grantee || '/' || x.privilege,
           CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
           x.privilege, x.state, x.default_state,
           CASE WHEN x.state = 'absent' THEN (SELECT o.rolname FROM pg_roles o WHERE o.oid = owner AND NOT o.rolsuper)
                WHEN NOT x.by_superuser THEN x.grantor END
      FROM (SELECT coalesce(h.grantee, d.grantee) AS grantee, coalesce(h.privilege, d.privilege) AS privilege,
                   CASE WHEN h.grantee IS NULL THEN 'absent' WHEN h.grantable THEN 'grantable' ELSE 'granted' END AS state,
                   CASE WHEN d.grantee IS NULL THEN 'absent' WHEN d.grantable THEN 'grantable' ELSE 'granted' END AS default_state,
                   h.by_superuser, h.grantor
              FROM held h FULL JOIN defaults d ON d.grantee = h.grantee AND d.privilege = h.privilege) x
     WHERE x.state <> x.default_state AND x.grantee <> owner
$fn$;
REVOKE ALL ON FUNCTION permsync.acl_entries(aclitem[], aclitem[], oid) FROM PUBLIC;

-- As in 0001, with memberships per grantor, and the privileges on other databases,
-- tablespaces and parameters.
CREATE OR REPLACE FUNCTION permsync.role_state()
RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO, YMD'
SET timezone = 'UTC'
AS $fn$
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
               || CASE WHEN with_passwords THEN jsonb_build_object('password', a.rolpassword) ELSE '{}' END), '{}')
      INTO roles
      FROM pg_roles r
      LEFT JOIN pg_authid a ON with_passwords AND a.oid = r.oid
      LEFT JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
     WHERE r.oid >= 16384;
    IF version >= 150000 THEN
        -- Parameters have no owner: the bootstrap superuser's entry is their default.
        SELECT coalesce(jsonb_object_agg(p.parname || '/' || e.key, jsonb_build_object(
                   'parameter', p.parname, 'grantee', e.grantee, 'privilege', e.privilege,
                   'state', e.state, 'default', e.default_state, 'as', e.run_as)), '{}')
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
                     WHERE m.member >= 16384),
        'settings', (SELECT coalesce(jsonb_object_agg(s.setrole || '/' || s.setdatabase || '/' || split_part(c, '=', 1),
                        jsonb_build_object('role', pg_get_userbyid(s.setrole),
                                           'database', (SELECT datname FROM pg_database d WHERE d.oid = s.setdatabase),
                                           'here', s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()),
                                           'key', split_part(c, '=', 1),
                                           'value', CASE WHEN octet_length(c) - octet_length(split_part(c, '=', 1)) - 1 > 8192
                                                         THEN jsonb_build_object('withheld', octet_length(c) - octet_length(split_part(c, '=', 1)) - 1)
                                                         ELSE to_jsonb(substr(c, length(split_part(c, '=', 1)) + 2)) END)), '{}')
                       FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) c
                      WHERE s.setrole >= 16384),
        'dbacl', (SELECT coalesce(jsonb_object_agg(a.grantee || '/' || a.privilege_type,
                        jsonb_build_object('grantee', CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                                           'privilege', a.privilege_type, 'grantable', a.is_grantable)), '{}')
                    FROM pg_database d
                    CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                   WHERE d.datname = current_database() AND a.grantee <> d.datdba),
        -- Keyed by oid: a database or tablespace renamed keeps its privileges.
        'databases', (SELECT coalesce(jsonb_object_agg(d.oid || '/' || e.key, jsonb_build_object(
                         'database', d.datname, 'grantee', e.grantee, 'privilege', e.privilege,
                         'state', e.state, 'default', e.default_state, 'as', e.run_as)), '{}')
                        FROM pg_database d
                        CROSS JOIN LATERAL permsync.acl_entries(coalesce(d.datacl, acldefault('d', d.datdba)), acldefault('d', d.datdba), d.datdba) e
                       WHERE d.datname <> current_database()),
        'tablespaces', (SELECT coalesce(jsonb_object_agg(t.oid || '/' || e.key, jsonb_build_object(
                           'tablespace', t.spcname, 'grantee', e.grantee, 'privilege', e.privilege,
                           'state', e.state, 'default', e.default_state, 'as', e.run_as)), '{}')
                          FROM pg_tablespace t
                          CROSS JOIN LATERAL permsync.acl_entries(coalesce(t.spcacl, acldefault('t', t.spcowner)), acldefault('t', t.spcowner), t.spcowner) e),
        'parameters', params);
END
$fn$;
REVOKE ALL ON FUNCTION permsync.role_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permsync.role_state() TO permsync_daemon;

-- A statement on a shared object's privileges, as its grantor where that is no superuser
-- (SET LOCAL ROLE, undone after it): the target checks that role's right to it there.
-- `grantee` is the role it grants to or revokes from (NULL for PUBLIC), `run_as` the role
-- it runs as: the daemon judges both. What a target
-- cannot take is left out there: the object (3D000, 42704) or a role (42704) it lacks, a
-- grantor that may not do it there (42501).
CREATE OR REPLACE FUNCTION permsync.shared_privilege_statement(
    kind text, entry jsonb, sql text, grantee text, database text DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT permsync.role_statement(kind, grantee,
               CASE WHEN entry ->> 'as' IS NULL THEN sql
                    ELSE format('SET LOCAL ROLE %I; %s; RESET ROLE', entry ->> 'as', sql) END,
               ignore_codes => ARRAY['3D000', '42704', '42501'])
           || jsonb_strip_nulls(jsonb_build_object('run_as', entry ->> 'as', 'database', database))
$fn$;
REVOKE ALL ON FUNCTION permsync.shared_privilege_statement(text, jsonb, text, text, text) FROM PUBLIC;

-- How the privileges on shared objects changed between two states, one row per grantee
-- and privilege that moved: `current` (the old state's) and `wanted` (the new one's), a
-- side without the entry being at the object's default; `entry`, the newer of the two;
-- `object`, the ON clause ({"database"} for a database, which the daemon maps). A
-- database or tablespace that no longer exists has nothing to change.
CREATE OR REPLACE FUNCTION permsync.shared_privilege_changes(old jsonb, new jsonb)
RETURNS TABLE (kind text, key text, entry jsonb, object text, current text, wanted text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT x.kind, x.key, x.entry,
           CASE x.kind WHEN 'databases' THEN 'DATABASE {"database"}'
                       WHEN 'tablespaces' THEN format('TABLESPACE %I', x.entry ->> 'tablespace')
                       ELSE format('PARAMETER %I', x.entry ->> 'parameter') END,
           x.current, x.wanted
      FROM (SELECT c.kind, k.key, coalesce(new -> c.kind -> k.key, old -> c.kind -> k.key) AS entry,
                   coalesce(old -> c.kind -> k.key ->> 'state', new -> c.kind -> k.key ->> 'default') AS current,
                   coalesce(new -> c.kind -> k.key ->> 'state', old -> c.kind -> k.key ->> 'default') AS wanted
              FROM unnest(ARRAY['databases', 'tablespaces', 'parameters']) c(kind)
             CROSS JOIN LATERAL (SELECT jsonb_object_keys(coalesce(old -> c.kind, '{}')) AS key
                                 UNION SELECT jsonb_object_keys(coalesce(new -> c.kind, '{}'))) k) x
     WHERE x.current <> x.wanted
       AND (x.kind <> 'databases' OR EXISTS (SELECT 1 FROM pg_database d WHERE d.oid = split_part(x.key, '/', 1)::oid))
       AND (x.kind <> 'tablespaces' OR EXISTS (SELECT 1 FROM pg_tablespace t WHERE t.oid = split_part(x.key, '/', 1)::oid))
     ORDER BY x.kind, x.key
$fn$;
REVOKE ALL ON FUNCTION permsync.shared_privilege_changes(jsonb, jsonb) FROM PUBLIC;

-- As in 0015, and:
--   * memberships per grantor, with GRANTED BY (always a quoted identifier, so that the
--     daemon can leave it out where it may not name the grantor); every revoke before
--     drops and renames (a grantor's memberships must go before the grantor can), with
--     the names they had; a revoke of one grantor's membership that others still grant
--     says so (other_grantors), since before 16 a membership has one grantor;
--   * privileges on other databases (the statement names its database for the daemon to
--     map to the target's), on tablespaces and on parameters, revoked before drops and
--     granted last, as the current database's.
CREATE OR REPLACE FUNCTION permsync.role_changes(old jsonb, new jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $fn$
DECLARE
    out     jsonb := '[]';
    r       record;
    pg16    boolean := current_setting('server_version_num')::int >= 160000;
    dropped text[];
    grantee text;
    role    text;
    member  text;
    granted_by text;
    opt     text;
BEGIN
    SELECT coalesce(array_agg(o.key), '{}') INTO dropped
      FROM jsonb_each(old -> 'roles') o WHERE NOT (new -> 'roles') ? o.key;

    -- Database privileges revoked, or their grant option (old names: before renames).
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(old -> 'dbacl') o LEFT JOIN jsonb_each(new -> 'dbacl') n USING (key)
              WHERE n.value IS NULL OR ((o.value ->> 'grantable')::boolean AND NOT (n.value ->> 'grantable')::boolean)
              ORDER BY key LOOP
        grantee := CASE WHEN split_part(r.key, '/', 1) = '0' THEN 'PUBLIC' ELSE quote_ident(r.o ->> 'grantee') END;
        out := out || permsync.role_statement('REVOKE ON DATABASE',
                   CASE WHEN split_part(r.key, '/', 1) <> '0' THEN r.o ->> 'grantee' END,
                   format('REVOKE %s%s ON DATABASE {"database"} FROM %s',
                          CASE WHEN r.n IS NULL THEN '' ELSE 'GRANT OPTION FOR ' END, r.o ->> 'privilege', grantee),
                   ignore_codes => ARRAY['42704'], on_target_database => true);
    END LOOP;

    -- Privileges on other databases, tablespaces and parameters revoked from a role that is
    -- dropped (old names: before renames); the others' come after creations, since the
    -- role a revoke runs as may be new.
    FOR r IN SELECT * FROM permsync.shared_privilege_changes(old, new) c
              WHERE c.wanted = 'absent' AND split_part(c.key, '/', 2) = ANY (dropped) LOOP
        grantee := permsync.role_name(new, old, split_part(r.key, '/', 2));
        out := out || permsync.shared_privilege_statement(
                   CASE WHEN r.kind = 'databases' THEN 'REVOKE ON DATABASE' ELSE 'REVOKE' END, r.entry,
                   format('REVOKE %s ON %s FROM %I', r.entry ->> 'privilege', r.object, grantee),
                   grantee, CASE WHEN r.kind = 'databases' THEN r.entry ->> 'database' END);
    END LOOP;

    -- Memberships that went, per grantor, dependent grants first (the newest, on 16+).
    -- One whose role or member was dropped went with it, unless its grantor was dropped
    -- too: a grantor cannot be dropped while its grants stand.
    FOR r IN SELECT key, o.value AS o
               FROM jsonb_each(old -> 'members') o
              WHERE NOT (new -> 'members') ? o.key
              ORDER BY (o.value ->> 'seq')::bigint DESC NULLS LAST, key LOOP
        CONTINUE WHEN (split_part(r.key, '/', 1) = ANY (dropped) OR split_part(r.key, '/', 2) = ANY (dropped))
                      AND NOT split_part(r.key, '/', 3) = ANY (dropped);
        granted_by := CASE WHEN r.o ->> 'grantor' IS NULL THEN '' ELSE ' GRANTED BY "' || replace(r.o ->> 'grantor', '"', '""') || '"' END;
        out := out || (permsync.role_statement('REVOKE ROLE', r.o ->> 'member',
                           format('REVOKE %I FROM %I%s', r.o ->> 'role', r.o ->> 'member', granted_by),
                           granted => r.o ->> 'role', ignore_codes => ARRAY['42704'])
                       || jsonb_strip_nulls(jsonb_build_object(
                              'grantor', r.o ->> 'grantor',
                              -- Before 16 a membership has one grantor: it stays while others grant it.
                              'other_grantors', CASE WHEN pg16 AND EXISTS (
                                  SELECT 1 FROM jsonb_object_keys(new -> 'members') k
                                   WHERE k LIKE split_part(r.key, '/', 1) || '/' || split_part(r.key, '/', 2) || '/%') THEN true END)));
    END LOOP;

    -- Drops. IF EXISTS keeps them idempotent; a role that still owns objects or holds
    -- privileges on a target fails there (2BP01): nothing is reassigned behind anyone's back.
    FOR r IN SELECT old -> 'roles' -> d ->> 'name' AS name FROM unnest(dropped) d ORDER BY d::bigint LOOP
        out := out || permsync.role_statement('DROP ROLE', r.name, format('DROP ROLE IF EXISTS %I', r.name));
    END LOOP;

    -- Renames: same oid, new name.
    FOR r IN SELECT o.value ->> 'name' AS old_name, n.value ->> 'name' AS new_name
               FROM jsonb_each(old -> 'roles') o JOIN jsonb_each(new -> 'roles') n USING (key)
              WHERE o.value ->> 'name' <> n.value ->> 'name' ORDER BY key::bigint LOOP
        out := out || (permsync.role_statement('ALTER ROLE', r.new_name,
                   format('ALTER ROLE %I RENAME TO %I', r.old_name, r.new_name), ignore_codes => ARRAY['42704'])
                   || jsonb_build_object('renamed_from', r.old_name));
    END LOOP;

    -- Creations.
    FOR r IN SELECT n.value FROM jsonb_each(new -> 'roles') n
              WHERE NOT (old -> 'roles') ? n.key ORDER BY n.key::bigint LOOP
        out := out || permsync.role_statement('CREATE ROLE', r.value ->> 'name',
                   format('CREATE ROLE %I', r.value ->> 'name'), ignore_codes => ARRAY['42710']);
        out := out || coalesce((SELECT jsonb_agg(s) FROM permsync.role_attribute_statements(NULL, r.value) s), '[]');
    END LOOP;

    -- Attribute, password and comment changes.
    FOR r IN SELECT o.value AS o, n.value AS n FROM jsonb_each(old -> 'roles') o
               JOIN jsonb_each(new -> 'roles') n USING (key)
              WHERE o.value <> n.value
              ORDER BY key::bigint LOOP
        IF (old ->> 'passwords')::boolean AND (new ->> 'passwords')::boolean THEN
            out := out || coalesce((SELECT jsonb_agg(s) FROM permsync.role_attribute_statements(r.o, r.n) s), '[]');
        ELSE
            out := out || coalesce((SELECT jsonb_agg(s) FROM permsync.role_attribute_statements(
                       r.o - 'password', r.n - 'password') s), '[]');
        END IF;
    END LOOP;

    -- Memberships granted or changed, per grantor: the bootstrap superuser's first, then
    -- in the order they were granted (16+), so that a grantor holds its ADMIN option
    -- before it is named. A renamed role or grantor changes nothing here.
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(new -> 'members') n LEFT JOIN jsonb_each(old -> 'members') o USING (key)
              WHERE o.value IS NULL OR (o.value - 'role' - 'member' - 'grantor' - 'seq') <> (n.value - 'role' - 'member' - 'grantor' - 'seq')
              ORDER BY n.value ->> 'grantor' IS NOT NULL, (n.value ->> 'seq')::bigint NULLS LAST, key LOOP
        role := permsync.role_name(old, new, split_part(r.key, '/', 1));
        member := permsync.role_name(old, new, split_part(r.key, '/', 2));
        granted_by := CASE WHEN r.n ->> 'grantor' IS NULL THEN '' ELSE ' GRANTED BY "' || replace(r.n ->> 'grantor', '"', '""') || '"' END;
        opt := NULL;
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
            out := out || (permsync.role_statement('GRANT ROLE', member,
                       format('GRANT %I TO %I%s%s', role, member,
                              CASE WHEN (r.n ->> 'admin')::boolean THEN ' WITH ADMIN OPTION' ELSE '' END, granted_by), granted => role)
                       || jsonb_strip_nulls(jsonb_build_object('grantor', r.n ->> 'grantor')));
        END IF;
    END LOOP;

    -- Before 16 a member's INHERIT attribute decides for all its memberships (see 0015).
    IF NOT pg16 THEN
        FOR r IN SELECT m.key, m.value AS m, n.value AS n
                   FROM jsonb_each(old -> 'roles') o JOIN jsonb_each(new -> 'roles') n USING (key)
                   JOIN jsonb_each(new -> 'members') m ON split_part(m.key, '/', 2) = n.key
                  WHERE (o.value -> 'inherit') IS DISTINCT FROM (n.value -> 'inherit')
                  ORDER BY m.key LOOP
            role := permsync.role_name(old, new, split_part(r.key, '/', 1));
            granted_by := CASE WHEN r.m ->> 'grantor' IS NULL THEN '' ELSE ' GRANTED BY "' || replace(r.m ->> 'grantor', '"', '""') || '"' END;
            out := out || (permsync.role_statement('GRANT ROLE', r.n ->> 'name',
                       format('GRANT %I TO %I WITH INHERIT %s%s', role, r.n ->> 'name', upper(r.n ->> 'inherit'), granted_by),
                       granted => role)
                       || jsonb_strip_nulls(jsonb_build_object('grantor', r.m ->> 'grantor')));
        END LOOP;
    END IF;

    -- ALTER ROLE ... [IN DATABASE ...] SET / RESET (see 0015).
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(old -> 'settings') o FULL JOIN jsonb_each(new -> 'settings') n USING (key)
              WHERE (o.value - 'role') IS DISTINCT FROM (n.value - 'role') ORDER BY key LOOP
        CONTINUE WHEN split_part(r.key, '/', 1) = ANY (dropped);
        role := permsync.role_name(old, new, split_part(r.key, '/', 1));
        DECLARE
            s jsonb := coalesce(r.n, r.o);
            scope text := CASE WHEN s ->> 'database' IS NULL THEN ''
                               WHEN (s ->> 'here')::boolean THEN ' IN DATABASE {"database"}'
                               ELSE format(' IN DATABASE %I', s ->> 'database') END;
        BEGIN
            out := out || permsync.role_statement('ALTER ROLE SET', role,
                       CASE WHEN r.n IS NULL THEN format('ALTER ROLE %I%s RESET %I', role, scope, s ->> 'key')
                            ELSE format('ALTER ROLE %I%s SET %I TO %s', role, scope, s ->> 'key',
                                        CASE WHEN jsonb_typeof(s -> 'value') = 'object'
                                             THEN format('DEFAULT /* permsync: value withheld: %s bytes, over the limit of 8192 */',
                                                         s -> 'value' ->> 'withheld')
                                             ELSE permsync.setting_value_sql(s ->> 'key', s ->> 'value') END) END,
                       ignore_codes => ARRAY['42704', '22023', '55P02', '3D000'],
                       on_target_database => coalesce((s ->> 'here')::boolean, false));
        END;
    END LOOP;

    -- Database privileges granted, or given the grant option.
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(new -> 'dbacl') n LEFT JOIN jsonb_each(old -> 'dbacl') o USING (key)
              WHERE (o.value - 'grantee') IS DISTINCT FROM (n.value - 'grantee') ORDER BY key LOOP
        CONTINUE WHEN r.o IS NOT NULL AND (r.o ->> 'grantable')::boolean AND NOT (r.n ->> 'grantable')::boolean;
        grantee := CASE WHEN split_part(r.key, '/', 1) = '0' THEN 'PUBLIC'
                        ELSE quote_ident(permsync.role_name(old, new, split_part(r.key, '/', 1))) END;
        out := out || permsync.role_statement('GRANT ON DATABASE',
                   CASE WHEN split_part(r.key, '/', 1) <> '0' THEN r.n ->> 'grantee' END,
                   format('GRANT %s ON DATABASE {"database"} TO %s%s', r.n ->> 'privilege', grantee,
                          CASE WHEN (r.n ->> 'grantable')::boolean THEN ' WITH GRANT OPTION' ELSE '' END),
                   on_target_database => true);
    END LOOP;

    -- Privileges on other databases, tablespaces and parameters revoked, or their grant
    -- option, then granted, or given the grant option.
    FOR r IN SELECT * FROM permsync.shared_privilege_changes(old, new) c
              WHERE (c.wanted = 'absent' OR (c.wanted = 'granted' AND c.current = 'grantable'))
                AND NOT split_part(c.key, '/', 2) = ANY (dropped) LOOP
        grantee := CASE WHEN split_part(r.key, '/', 2) <> '0' THEN permsync.role_name(old, new, split_part(r.key, '/', 2)) END;
        out := out || permsync.shared_privilege_statement(
                   CASE WHEN r.kind = 'databases' THEN 'REVOKE ON DATABASE' ELSE 'REVOKE' END, r.entry,
                   format('REVOKE %s%s ON %s FROM %s', CASE WHEN r.wanted = 'absent' THEN '' ELSE 'GRANT OPTION FOR ' END,
                          r.entry ->> 'privilege', r.object, coalesce(quote_ident(grantee), 'PUBLIC')),
                   grantee, CASE WHEN r.kind = 'databases' THEN r.entry ->> 'database' END);
    END LOOP;
    FOR r IN SELECT * FROM permsync.shared_privilege_changes(old, new) c
              WHERE c.wanted = 'grantable' OR (c.wanted = 'granted' AND c.current = 'absent') LOOP
        grantee := CASE WHEN split_part(r.key, '/', 2) <> '0' THEN permsync.role_name(old, new, split_part(r.key, '/', 2)) END;
        out := out || permsync.shared_privilege_statement(
                   CASE WHEN r.kind = 'databases' THEN 'GRANT ON DATABASE' ELSE 'GRANT' END, r.entry,
                   format('GRANT %s ON %s TO %s%s', r.entry ->> 'privilege', r.object, coalesce(quote_ident(grantee), 'PUBLIC'),
                          CASE WHEN r.wanted = 'grantable' THEN ' WITH GRANT OPTION' ELSE '' END),
                   grantee, CASE WHEN r.kind = 'databases' THEN r.entry ->> 'database' END);
    END LOOP;
    RETURN out;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.role_changes(jsonb, jsonb) FROM PUBLIC;

-- The snapshot in the form above: what it held was captured first, so nothing is lost.
UPDATE permsync.role_snapshot SET state = permsync.role_state(), fingerprint = permsync.role_fingerprint() WHERE id = 1;
