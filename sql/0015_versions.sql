-- permsync 0015: source and targets of different PostgreSQL majors. Idempotent: safe to run again.
--
-- During an upgrade the source and a target often run different majors. What the role
-- watcher writes on a newer source (membership options, 16) reaches an older target in
-- a form it takes, or is left out there with a note (apply/server-version.ts). This
-- migration covers the other direction: on a source before 16 a member's INHERIT
-- attribute decides whether each of its memberships is inherited, while a target of 16
-- or later keeps that per membership, set when it was granted.

-- The canonical DDL that takes a target from state `old` to state `new`, as in 0001, but:
--   * a rename names the role it renames (`renamed_from`), so that the daemon checks both
--     names on each target (role scope, 0014);
--   * a role setting a target cannot take (a parameter or value its version does not know,
--     a database it does not have: any login may store such settings for itself) is left
--     out there with the reason, rather than failing and holding every later change;
--   * a database privilege of PUBLIC (grantee 0) names no role, so that a role named
--     "PUBLIC" is neither taken for PUBLIC nor PUBLIC for it;
--   * on a source before 16 a member's INHERIT change is also written for each membership
--     it holds.
CREATE OR REPLACE FUNCTION permsync.role_changes(old jsonb, new jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- A generic plan for these jsonb loops, cached after a few calls, takes seconds at 10,000 roles.
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
BEGIN
    SELECT coalesce(array_agg(o.key), '{}') INTO dropped
      FROM jsonb_each(old -> 'roles') o WHERE NOT (new -> 'roles') ? o.key;

    -- Database privileges revoked, or their grant option (old names: before renames).
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(old -> 'dbacl') o LEFT JOIN jsonb_each(new -> 'dbacl') n USING (key)
              WHERE n.value IS NULL OR ((o.value ->> 'grantable')::boolean AND NOT (n.value ->> 'grantable')::boolean)
              ORDER BY key LOOP
        -- PUBLIC is grantee 0, whatever a role may be named ("PUBLIC" is a valid role name).
        grantee := CASE WHEN split_part(r.key, '/', 1) = '0' THEN 'PUBLIC' ELSE quote_ident(r.o ->> 'grantee') END;
        -- Revoking from a role that no longer exists is already so (42704).
        out := out || permsync.role_statement('REVOKE ON DATABASE',
                   CASE WHEN split_part(r.key, '/', 1) <> '0' THEN r.o ->> 'grantee' END,
                   format('REVOKE %s%s ON DATABASE {"database"} FROM %s',
                          CASE WHEN r.n IS NULL THEN '' ELSE 'GRANT OPTION FOR ' END, r.o ->> 'privilege', grantee),
                   ignore_codes => ARRAY['42704'], on_target_database => true);
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
        -- 42704: the old name is gone already (this batch ran before an interrupted log write).
        out := out || (permsync.role_statement('ALTER ROLE', r.new_name,
                   format('ALTER ROLE %I RENAME TO %I', r.old_name, r.new_name), ignore_codes => ARRAY['42704'])
                   || jsonb_build_object('renamed_from', r.old_name));
    END LOOP;

    -- Creations. 42710: the role exists there already, which the daemon tells apart: one
    -- it manages (this batch ran before) takes the attributes; any other is a conflict.
    FOR r IN SELECT n.value FROM jsonb_each(new -> 'roles') n
              WHERE NOT (old -> 'roles') ? n.key ORDER BY n.key::bigint LOOP
        out := out || permsync.role_statement('CREATE ROLE', r.value ->> 'name',
                   format('CREATE ROLE %I', r.value ->> 'name'), ignore_codes => ARRAY['42710']);
        out := out || coalesce((SELECT jsonb_agg(s) FROM permsync.role_attribute_statements(NULL, r.value) s), '[]');
    END LOOP;

    -- Attribute, password and comment changes. Passwords are compared only when both
    -- states hold them: turning sync_passwords on starts tracking from then, as install
    -- does for roles; bringing existing roles' verifiers over is reconcile's job.
    FOR r IN SELECT o.value AS o, n.value AS n FROM jsonb_each(old -> 'roles') o
               JOIN jsonb_each(new -> 'roles') n USING (key)
              -- Only roles that changed: with thousands of roles, one call each would take seconds.
              WHERE o.value <> n.value
              ORDER BY key::bigint LOOP
        IF (old ->> 'passwords')::boolean AND (new ->> 'passwords')::boolean THEN
            out := out || coalesce((SELECT jsonb_agg(s) FROM permsync.role_attribute_statements(r.o, r.n) s), '[]');
        ELSE
            out := out || coalesce((SELECT jsonb_agg(s) FROM permsync.role_attribute_statements(
                       r.o - 'password', r.n - 'password') s), '[]');
        END IF;
    END LOOP;

    -- Memberships: revoke what went (a dropped role took its own along), grant what came.
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(old -> 'members') o FULL JOIN jsonb_each(new -> 'members') n USING (key)
              WHERE o.value IS NULL OR n.value IS NULL OR (o.value - 'role' - 'member') <> (n.value - 'role' - 'member')
              ORDER BY key LOOP
        CONTINUE WHEN split_part(r.key, '/', 1) = ANY (dropped) OR split_part(r.key, '/', 2) = ANY (dropped);
        role := permsync.role_name(old, new, split_part(r.key, '/', 1));
        member := permsync.role_name(old, new, split_part(r.key, '/', 2));
        IF r.n IS NULL THEN
            out := out || permsync.role_statement('REVOKE ROLE', member, format('REVOKE %I FROM %I', role, member),
                       granted => role, ignore_codes => ARRAY['42704']);
        ELSIF pg16 AND NOT (coalesce((r.n ->> 'inherit')::boolean, true) AND coalesce((r.n ->> 'set')::boolean, true)) THEN
            -- INHERIT FALSE or SET FALSE: only PostgreSQL 16+ has them, and says so.
            out := out || permsync.role_statement('GRANT ROLE', member,
                       format('GRANT %I TO %I WITH ADMIN %s, INHERIT %s, SET %s', role, member,
                              upper(r.n ->> 'admin'), upper(r.n ->> 'inherit'), upper(r.n ->> 'set')), granted => role);
        ELSE
            -- The syntax every supported version takes (INHERIT and SET are then their defaults).
            IF pg16 AND r.o IS NOT NULL AND NOT (coalesce((r.o ->> 'inherit')::boolean, true) AND coalesce((r.o ->> 'set')::boolean, true)) THEN
                out := out || permsync.role_statement('GRANT ROLE', member,
                           format('GRANT %I TO %I WITH INHERIT TRUE, SET TRUE', role, member), granted => role);
            END IF;
            IF r.o IS NOT NULL AND (r.o ->> 'admin')::boolean AND NOT (r.n ->> 'admin')::boolean THEN
                out := out || permsync.role_statement('REVOKE ROLE', member,
                           format('REVOKE ADMIN OPTION FOR %I FROM %I', role, member), granted => role);
            END IF;
            out := out || permsync.role_statement('GRANT ROLE', member,
                       format('GRANT %I TO %I%s', role, member,
                              CASE WHEN (r.n ->> 'admin')::boolean THEN ' WITH ADMIN OPTION' ELSE '' END), granted => role);
        END IF;
    END LOOP;

    -- A source before 16 keeps no INHERIT option per membership: the member's INHERIT
    -- attribute decides for all of its memberships. A target of 16 or later took each
    -- membership's option from that attribute when it was granted, and keeps it when the
    -- attribute changes: there the member's memberships are told so one by one. (A target
    -- before 16 takes each as a grant of a membership it has: apply/server-version.ts.)
    IF NOT pg16 THEN
        FOR r IN SELECT m.key, n.value AS n
                   FROM jsonb_each(old -> 'roles') o JOIN jsonb_each(new -> 'roles') n USING (key)
                   JOIN jsonb_each(new -> 'members') m ON split_part(m.key, '/', 2) = n.key
                  WHERE (o.value -> 'inherit') IS DISTINCT FROM (n.value -> 'inherit')
                  ORDER BY m.key LOOP
            role := permsync.role_name(old, new, split_part(r.key, '/', 1));
            out := out || permsync.role_statement('GRANT ROLE', r.n ->> 'name',
                       format('GRANT %I TO %I WITH INHERIT %s', role, r.n ->> 'name', upper(r.n ->> 'inherit')),
                       granted => role);
        END LOOP;
    END IF;

    -- ALTER ROLE ... [IN DATABASE ...] SET / RESET. The source's own database maps to
    -- the target's: the applier puts the target's database name where {"database"} stands.
    -- What a target cannot take is left out there: an unknown parameter (42704), a value
    -- it refuses (22023), one it cannot set (55P02), a database it lacks (3D000).
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
                                        permsync.setting_value_sql(s ->> 'key', s ->> 'value')) END,
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
    RETURN out;
END
$fn$;

REVOKE ALL ON FUNCTION permsync.role_changes(jsonb, jsonb) FROM PUBLIC;
