-- permsync 0001: the source-side core. Idempotent: safe to run again.
-- Applied by `permsync install` inside one transaction, recorded in permsync.schema_migrations.

CREATE SCHEMA IF NOT EXISTS permsync;
REVOKE ALL ON SCHEMA permsync FROM PUBLIC;

-- Mirrors of the daemon's configuration, refreshed at every start, for operators' joins.
CREATE TABLE IF NOT EXISTS permsync.environments (
    name        text PRIMARY KEY,
    label       text,
    priority    integer NOT NULL DEFAULT 100,
    enabled     boolean NOT NULL DEFAULT true,
    paused      boolean NOT NULL DEFAULT false,
    on_permanent_failure text NOT NULL DEFAULT 'hold'
                CHECK (on_permanent_failure IN ('hold', 'continue')),
    -- Batches up to this commit_seq predate the environment: it is brought up to date
    -- by reconcile, not by replaying history.
    start_after_seq bigint NOT NULL DEFAULT 0,
    -- The daemon writes here how far it is about to apply before it starts a run of
    -- batches; after a crash, batches up to it may have applied without their outcome
    -- being logged, and are logged as re-applied when they are run again.
    in_flight_through bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS permsync.sync_rules (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_name text NOT NULL REFERENCES permsync.environments (name) ON DELETE CASCADE,
    position         integer NOT NULL,
    rule_type        text NOT NULL CHECK (rule_type IN ('include', 'exclude')),
    command_tag      text,
    role_pattern     text,
    schema_pattern   text,
    UNIQUE (environment_name, position)
);

CREATE TABLE IF NOT EXISTS permsync.config (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The durable queue. One row per source transaction and client query string.
-- commit_seq is assigned at commit (see assign_commit_seq) and is the order of application.
CREATE SEQUENCE IF NOT EXISTS permsync.commit_seq;
CREATE TABLE IF NOT EXISTS permsync.batches (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    commit_seq           bigint UNIQUE,
    origin               text NOT NULL DEFAULT 'event_trigger'
                         CHECK (origin IN ('event_trigger', 'role_watcher', 'manual', 'reconcile')),
    source_xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    statement_started_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    captured_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    committed_at         timestamptz,
    database_name        name NOT NULL DEFAULT current_database(),
    session_user_name    name NOT NULL DEFAULT session_user,
    current_user_name    name NOT NULL DEFAULT current_user,
    current_user_is_superuser boolean NOT NULL DEFAULT false,
    search_path          text NOT NULL DEFAULT current_setting('search_path'),
    backend_pid          integer NOT NULL DEFAULT pg_backend_pid(),
    client_addr          inet DEFAULT inet_client_addr(),
    application_name     text DEFAULT current_setting('application_name'),
    -- String literals are masked when the text mentions a password (see mask_string_literals).
    query_text           text NOT NULL,
    query_masked         boolean NOT NULL DEFAULT false,
    -- Set for manual syncs aimed at one environment; NULL means every environment.
    target_environment   text,
    -- Generated batches (role watcher) carry structured statements:
    -- [{kind, role, granted?, sql, display, privileged?, ignore_codes?, on_target_database?}].
    -- `sql` may hold a password verifier; `display`, the same statement with it masked,
    -- is all that query_text, logs and the execution log ever see.
    statements           jsonb
);
CREATE INDEX IF NOT EXISTS batches_client_string_idx ON permsync.batches (backend_pid, statement_started_at);

-- One row per permission command the event trigger saw (a string may hold several,
-- and a DO block or function may run many). Append-only trail.
CREATE TABLE IF NOT EXISTS permsync.audit_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id         bigint NOT NULL REFERENCES permsync.batches (id),
    command_tag      text NOT NULL,
    object_type      text,
    object_identity  text,
    schema_name      text,
    in_extension     boolean,
    session_user_name name NOT NULL DEFAULT session_user,
    current_user_name name NOT NULL DEFAULT current_user,
    search_path      text,
    logged_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS audit_log_batch_idx ON permsync.audit_log (batch_id);

-- One row per batch and environment: the outcome of carrying that batch there.
CREATE TABLE IF NOT EXISTS permsync.execution_log (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id           bigint NOT NULL REFERENCES permsync.batches (id),
    environment_name   text NOT NULL,
    commit_seq         bigint NOT NULL,
    applied_sql        text,
    execution_status   text NOT NULL CHECK (execution_status IN ('success', 'failed', 'skipped', 'rollback', 'dry_run')),
    started_at         timestamptz NOT NULL,
    finished_at        timestamptz NOT NULL,
    duration_ms        numeric(12, 3) NOT NULL,
    result_message     text,
    error_code         text,
    error_detail       text,
    error_hint         text,
    -- For failures: 'transient' (retried) or 'permanent' (needs a person).
    failure_kind       text CHECK (failure_kind IN ('transient', 'permanent')),
    retry_count        integer NOT NULL DEFAULT 0,
    last_retry_at      timestamptz,
    server_version     text,
    connection_time_ms numeric(12, 3),
    UNIQUE (batch_id, environment_name)
);
CREATE INDEX IF NOT EXISTS execution_log_env_seq_idx ON permsync.execution_log (environment_name, commit_seq);

CREATE TABLE IF NOT EXISTS permsync.retry_queue (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id         bigint NOT NULL REFERENCES permsync.batches (id),
    environment_name text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_error_code  text,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (batch_id, environment_name)
);

-- Masks every string literal in a SQL text. Used when the text mentions a password,
-- so that no password reaches the batch table. A small lexer, not a regex, because
-- quotes inside comments, doubled quotes, E'' escapes and dollar quotes must all be
-- recognised for the mask to be complete. Permission statements carry no literals,
-- so a masked text still replays them.
CREATE OR REPLACE FUNCTION permsync.mask_string_literals(sql text, backslash_escapes boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    out   text := '';
    n     integer := length(sql);
    i     integer := 1;
    c     text;
    depth integer;
    tag   text;
    j     integer;
    esc   boolean;
BEGIN
    WHILE i <= n LOOP
        c := substr(sql, i, 1);
        IF c = '-' AND substr(sql, i, 2) = '--' THEN
            j := strpos(substr(sql, i), E'\n');
            IF j = 0 THEN j := n - i + 2; END IF;
            out := out || substr(sql, i, j - 1);
            i := i + j - 1;
        ELSIF c = '/' AND substr(sql, i, 2) = '/*' THEN
            depth := 1; out := out || '/*'; i := i + 2;
            WHILE i <= n AND depth > 0 LOOP
                IF substr(sql, i, 2) = '/*' THEN depth := depth + 1; out := out || '/*'; i := i + 2;
                ELSIF substr(sql, i, 2) = '*/' THEN depth := depth - 1; out := out || '*/'; i := i + 2;
                ELSE out := out || substr(sql, i, 1); i := i + 1;
                END IF;
            END LOOP;
        ELSIF c = '"' THEN
            j := i + 1;
            LOOP
                EXIT WHEN j > n;
                IF substr(sql, j, 1) = '"' THEN
                    IF substr(sql, j + 1, 1) = '"' THEN j := j + 2; ELSE EXIT; END IF;
                ELSE j := j + 1;
                END IF;
            END LOOP;
            out := out || substr(sql, i, j - i + 1);
            i := j + 1;
        ELSIF c = '''' THEN
            -- Backslash escapes: an E'' string, or any string where standard_conforming_strings is off.
            esc := backslash_escapes OR (i > 1 AND upper(substr(sql, i - 1, 1)) = 'E'
                   AND (i = 2 OR substr(sql, i - 2, 1) !~ '[[:alnum:]_$]'));
            j := i + 1;
            LOOP
                EXIT WHEN j > n;
                IF esc AND substr(sql, j, 1) = '\' THEN j := j + 2;
                ELSIF substr(sql, j, 1) = '''' THEN
                    IF substr(sql, j + 1, 1) = '''' THEN j := j + 2; ELSE EXIT; END IF;
                ELSE j := j + 1;
                END IF;
            END LOOP;
            out := out || '''********''';
            i := j + 1;
        ELSIF c = '$' AND (i = 1 OR substr(sql, i - 1, 1) !~ '[[:alnum:]_$]')
              AND substr(sql, i) ~ '^\$([[:alpha:]_][[:alnum:]_]*)?\$' THEN
            tag := substring(substr(sql, i) FROM '^(\$(?:[[:alpha:]_][[:alnum:]_]*)?\$)');
            j := strpos(substr(sql, i + length(tag)), tag);
            out := out || tag || '********' || tag;
            IF j = 0 THEN i := n + 1; ELSE i := i + length(tag) + j - 1 + length(tag); END IF;
        ELSE
            out := out || c;
            i := i + 1;
        END IF;
    END LOOP;
    RETURN out;
END
$fn$;

-- Roles, memberships, role settings and database privileges. PostgreSQL fires no
-- event trigger for these shared objects, so permsync compares the role catalogs with
-- the last snapshot it stored and writes the difference as a batch of canonical,
-- idempotent DDL. Two callers: the daemon's role watcher (every few hundred ms) and
-- the capture path, before it records a permission command, so that a role created
-- just before a GRANT reaches the targets before the GRANT.
CREATE TABLE IF NOT EXISTS permsync.role_snapshot (
    id          integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    fingerprint text NOT NULL,
    state       jsonb NOT NULL,
    taken_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Cheap change detection. Any committed change to a catalog row gives it a new xmin, and
-- a removed row lowers the count, so (count, sum of xmin) differs after any change.
-- Reading xmin needs pg_authid itself (superuser); without it, fall back to hashing the
-- readable catalogs, which costs more but sees the same changes (bar passwords).
CREATE OR REPLACE FUNCTION permsync.role_fingerprint()
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    result text;
BEGIN
    IF has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        SELECT concat_ws('/',
                 (SELECT value FROM permsync.config WHERE key = 'sync_passwords'),
                 (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_authid),
                 (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_auth_members),
                 (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_db_role_setting),
                 (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_shdescription),
                 (SELECT xmin::text FROM pg_database WHERE datname = current_database()))
          INTO result;
    ELSE
        SELECT md5(concat_ws('/',
                 (SELECT value FROM permsync.config WHERE key = 'sync_passwords'),
                 (SELECT string_agg(r::text, ',' ORDER BY r.oid) FROM pg_roles r),
                 (SELECT string_agg(m::text, ',' ORDER BY m.roleid, m.member) FROM pg_auth_members m),
                 (SELECT string_agg(s::text, ',' ORDER BY s.setrole, s.setdatabase) FROM pg_db_role_setting s),
                 (SELECT string_agg(d.description, ',' ORDER BY d.objoid) FROM pg_shdescription d
                   WHERE d.classoid = 'pg_authid'::regclass),
                 (SELECT datacl::text FROM pg_database WHERE datname = current_database())))
          INTO result;
    END IF;
    RETURN result;
END
$fn$;

-- The state the snapshot keeps, keyed by oid so that a rename is seen as a rename.
-- Built-in roles (oid below 16384) are never defined by permsync, but can be granted.
CREATE OR REPLACE FUNCTION permsync.role_state()
RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- VALID UNTIL is written as text: the same text whatever the calling session's settings.
SET datestyle = 'ISO, YMD'
SET timezone = 'UTC'
AS $fn$
DECLARE
    with_passwords boolean :=
        coalesce((SELECT value FROM permsync.config WHERE key = 'sync_passwords'), 'false') = 'true'
        AND has_table_privilege('pg_catalog.pg_authid', 'SELECT');
    roles jsonb;
BEGIN
    -- One set-based query with joins, no per-role function call: with 10,000 roles a
    -- function call each (shobj_description, say) costs half a second.
    SELECT coalesce(jsonb_object_agg(r.oid::text, jsonb_build_object(
               'name', r.rolname, 'superuser', r.rolsuper, 'inherit', r.rolinherit,
               'createrole', r.rolcreaterole, 'createdb', r.rolcreatedb, 'login', r.rolcanlogin,
               'replication', r.rolreplication, 'bypassrls', r.rolbypassrls,
               'connlimit', r.rolconnlimit, 'validuntil', r.rolvaliduntil::text, 'comment', d.description)
               || CASE WHEN with_passwords THEN jsonb_build_object('password', a.rolpassword) ELSE '{}' END), '{}')
      INTO roles
      FROM pg_roles r
      -- pg_authid only where it may be read (the join is never executed otherwise).
      LEFT JOIN pg_authid a ON with_passwords AND a.oid = r.oid
      LEFT JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
     WHERE r.oid >= 16384;
    RETURN jsonb_build_object(
        'passwords', with_passwords,
        'roles', roles,
        'members', (SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM (
                    SELECT m.roleid || '/' || m.member AS k,
                           jsonb_build_object('role', pg_get_userbyid(m.roleid), 'member', pg_get_userbyid(m.member),
                                              'admin', bool_or(m.admin_option))
                           || CASE WHEN current_setting('server_version_num')::int >= 160000
                                   THEN (SELECT jsonb_build_object('inherit', bool_or((to_jsonb(x) ->> 'inherit_option')::boolean),
                                                                   'set', bool_or((to_jsonb(x) ->> 'set_option')::boolean))
                                           FROM pg_auth_members x WHERE x.roleid = m.roleid AND x.member = m.member)
                                   ELSE '{}' END AS v
                      FROM pg_auth_members m
                     WHERE m.member >= 16384
                     GROUP BY m.roleid, m.member) memberships),
        'settings', (SELECT coalesce(jsonb_object_agg(s.setrole || '/' || s.setdatabase || '/' || split_part(c, '=', 1),
                        jsonb_build_object('role', pg_get_userbyid(s.setrole),
                                           'database', (SELECT datname FROM pg_database d WHERE d.oid = s.setdatabase),
                                           'here', s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()),
                                           'key', split_part(c, '=', 1),
                                           'value', substr(c, length(split_part(c, '=', 1)) + 2))), '{}')
                       FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) c
                      WHERE s.setrole >= 16384),
        'dbacl', (SELECT coalesce(jsonb_object_agg(a.grantee || '/' || a.privilege_type,
                        jsonb_build_object('grantee', CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                                           'privilege', a.privilege_type, 'grantable', a.is_grantable)), '{}')
                    FROM pg_database d
                    CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                   WHERE d.datname = current_database() AND a.grantee <> d.datdba));
END
$fn$;

-- One generated statement. `role` is the role it defines or changes (for a membership,
-- the member); `granted`, the role granted or revoked. Rules and excluded_roles see both.
CREATE OR REPLACE FUNCTION permsync.role_statement(
    kind text, role text, sql text, granted text DEFAULT NULL, display text DEFAULT NULL,
    privileged boolean DEFAULT false, ignore_codes text[] DEFAULT NULL, on_target_database boolean DEFAULT false)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'kind', kind, 'role', role, 'granted', granted, 'sql', sql, 'display', coalesce(display, sql),
        'privileged', privileged, 'ignore_codes', to_jsonb(ignore_codes), 'on_target_database', on_target_database))
$fn$;

-- The attribute clauses of ALTER ROLE for what differs between two role states (all of
-- them when `old` is NULL). SUPERUSER, REPLICATION and BYPASSRLS come back apart, since
-- only a superuser may set them and a non-superuser sync user must skip them alone.
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
                format('ALTER ROLE %I WITH %s', name, flag), privileged => true);
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
    IF (old IS NULL AND new ->> 'comment' IS NOT NULL)
       OR (old IS NOT NULL AND (old -> 'comment') IS DISTINCT FROM (new -> 'comment')) THEN
        RETURN NEXT permsync.role_statement('COMMENT ON ROLE', name,
            format('COMMENT ON ROLE %I IS %s', name, coalesce(quote_literal(new ->> 'comment'), 'NULL')));
    END IF;
END
$fn$;

-- GUCs whose stored value is already a list in SQL syntax: written back as is (as pg_dump does).
CREATE OR REPLACE FUNCTION permsync.setting_value_sql(key text, value text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN lower(key) IN ('search_path', 'temp_tablespaces', 'session_preload_libraries',
                                    'local_preload_libraries', 'shared_preload_libraries', 'unix_socket_directories')
                -- An empty list is stored as "", which SET does not take back: '' it is.
                THEN CASE WHEN value = '""' THEN '''''' ELSE value END
                ELSE quote_literal(value) END
$fn$;

-- The current name of a role by oid: the new state's, else the old one's (a role that
-- went away), else the catalog's (built-in roles are not in the snapshot).
CREATE OR REPLACE FUNCTION permsync.role_name(old jsonb, new jsonb, oid text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT coalesce(new -> 'roles' -> oid ->> 'name', old -> 'roles' -> oid ->> 'name', pg_get_userbyid(oid::oid))
$fn$;

-- The canonical DDL that takes a target from state `old` to state `new`, in an order
-- that works: database privileges that went away (a role must lose them before it can be
-- dropped), drops (before a rename or creation can reuse the name), renames, creations,
-- attributes, memberships, settings, and new database privileges. Statements carry the
-- names that hold at their point in that order, and each is safe to run twice.
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
        grantee := CASE WHEN r.o ->> 'grantee' = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(r.o ->> 'grantee') END;
        -- Revoking from a role that no longer exists is already so (42704).
        out := out || permsync.role_statement('REVOKE ON DATABASE', r.o ->> 'grantee',
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
        out := out || permsync.role_statement('ALTER ROLE', r.new_name,
                   format('ALTER ROLE %I RENAME TO %I', r.old_name, r.new_name), ignore_codes => ARRAY['42704']);
    END LOOP;

    -- Creations. CREATE ROLE may meet a role that already exists on a target: the error is
    -- tolerated and the attributes that differ from the defaults are set; anything else
    -- about a pre-existing role is for drift and reconcile to see.
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

    -- ALTER ROLE ... [IN DATABASE ...] SET / RESET. The source's own database maps to
    -- the target's: the applier puts the target's database name where {"database"} stands.
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
                       on_target_database => coalesce((s ->> 'here')::boolean, false));
        END;
    END LOOP;

    -- Database privileges granted, or given the grant option.
    FOR r IN SELECT key, o.value AS o, n.value AS n
               FROM jsonb_each(new -> 'dbacl') n LEFT JOIN jsonb_each(old -> 'dbacl') o USING (key)
              WHERE (o.value - 'grantee') IS DISTINCT FROM (n.value - 'grantee') ORDER BY key LOOP
        CONTINUE WHEN r.o IS NOT NULL AND (r.o ->> 'grantable')::boolean AND NOT (r.n ->> 'grantable')::boolean;
        grantee := CASE WHEN r.n ->> 'grantee' = 'PUBLIC' THEN 'PUBLIC'
                        ELSE quote_ident(permsync.role_name(old, new, split_part(r.key, '/', 1))) END;
        out := out || permsync.role_statement('GRANT ON DATABASE', r.n ->> 'grantee',
                   format('GRANT %s ON DATABASE {"database"} TO %s%s', r.n ->> 'privilege', grantee,
                          CASE WHEN (r.n ->> 'grantable')::boolean THEN ' WITH GRANT OPTION' ELSE '' END),
                   on_target_database => true);
    END LOOP;
    RETURN out;
END
$fn$;

-- Compares the role catalogs with the snapshot and, when they differ, writes the
-- difference as a batch (origin role_watcher) and stores the new snapshot, in the
-- caller's transaction: the batch commits with the change that caused it or not at all.
-- Returns the batch id, or NULL when nothing changed.
CREATE OR REPLACE FUNCTION permsync.capture_role_changes()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    current_fp text := permsync.role_fingerprint();
    snap       permsync.role_snapshot;
    state      jsonb;
    changes    jsonb;
    batch      bigint;
BEGIN
    SELECT * INTO snap FROM permsync.role_snapshot WHERE id = 1;
    IF snap.fingerprint = current_fp THEN
        RETURN NULL;
    END IF;
    -- Serialise capturers so two sessions do not both write the same change.
    PERFORM pg_advisory_xact_lock(hashtext('permsync.role_snapshot'));
    SELECT * INTO snap FROM permsync.role_snapshot WHERE id = 1;
    current_fp := permsync.role_fingerprint();
    IF snap.fingerprint = current_fp THEN
        RETURN NULL;
    END IF;
    state := permsync.role_state();
    IF snap.state IS NOT NULL THEN
        changes := permsync.role_changes(snap.state, state);
    END IF;
    INSERT INTO permsync.role_snapshot (id, fingerprint, state, taken_at)
    VALUES (1, current_fp, state, clock_timestamp())
    ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at;
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



-- Capture, in two parts. The event trigger function runs as the DBA, so it sees
-- the DBA's current user and search_path, which replay needs. It hands them to
-- permsync_capture.record_command, which runs as the owner so that the DBA needs no
-- privilege on schema permsync. record_command refuses to run outside an event
-- trigger (pg_event_trigger_ddl_commands() raises there), so it cannot forge batches.
-- Any error aborts the DBA's statement: a change is captured or it does not happen.
CREATE SCHEMA IF NOT EXISTS permsync_capture;
REVOKE ALL ON SCHEMA permsync_capture FROM PUBLIC;
GRANT USAGE ON SCHEMA permsync_capture TO PUBLIC;

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
    first  boolean := true;
BEGIN
    IF query ~* 'password' THEN
        query := permsync.mask_string_literals(query, current_setting('standard_conforming_strings') = 'off');
        masked := true;
    END IF;
    -- An ALTER counts only when the text holds the word OWNER outside string literals:
    -- the same text, and so the same answer, the daemon's planner gets.
    IF command_tag LIKE 'ALTER %' AND command_tag <> 'ALTER DEFAULT PRIVILEGES' AND query !~* 'owner' THEN
        RETURN;
    END IF;
    -- statement_timestamp() is fixed for one client message, so (xid, backend, timestamp)
    -- tells this string's later commands from a new string in the same transaction. The
    -- batch is looked up in the table, which a savepoint rolls back with the row and which
    -- no session can write to but this function.
    SELECT b.id INTO batch
      FROM permsync.batches b
     WHERE b.backend_pid = pg_backend_pid() AND b.statement_started_at = statement_timestamp()
       AND b.source_xid = pg_current_xact_id() AND b.origin = 'event_trigger';

    FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        IF batch IS NULL THEN
            -- Role changes made earlier in this transaction go first (CREATE ROLE, then GRANT).
            PERFORM permsync.capture_role_changes();
            INSERT INTO permsync.batches (query_text, query_masked, current_user_name,
                                          current_user_is_superuser, search_path)
            VALUES (query, masked, invoker,
                    coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = invoker), false),
                    invoker_search_path)
            RETURNING id INTO batch;
            PERFORM pg_notify('permsync', batch::text);
        END IF;
        -- One audit row per command: the command's first object stands for it. Each row
        -- keeps the identity it ran with, so the daemon can tell when a string changed
        -- role or search_path between its permission commands.
        IF first THEN
            INSERT INTO permsync.audit_log (batch_id, command_tag, object_type, object_identity,
                                            schema_name, in_extension, current_user_name, search_path)
            VALUES (batch, command_tag, cmd.object_type, cmd.object_identity, cmd.schema_name,
                    cmd.in_extension, invoker, invoker_search_path);
            first := false;
        END IF;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION permsync_capture.record_command(text, name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permsync_capture.record_command(text, name, text) TO PUBLIC;

CREATE OR REPLACE FUNCTION permsync.capture_permission_command()
RETURNS event_trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF pg_catalog.current_setting('permsync.capture', true) = 'off' THEN
        RETURN;
    END IF;
    -- ALTER ... is captured only when it changes an owner. OWNER is a keyword and
    -- cannot be quoted or escaped, so a string without the word holds no owner change
    -- (record_command looks again, outside string literals).
    IF tg_tag OPERATOR(pg_catalog.~~) 'ALTER %' AND tg_tag OPERATOR(pg_catalog.<>) 'ALTER DEFAULT PRIVILEGES'
       AND pg_catalog.current_query() OPERATOR(pg_catalog.!~*) 'owner' THEN
        RETURN;
    END IF;
    PERFORM permsync_capture.record_command(tg_tag, current_user,
                                            pg_catalog.current_setting('search_path'));
END
$fn$;

-- Source commit order. Runs at commit (deferred), after the transaction's own work;
-- the advisory lock is held from nextval until the commit is visible, so commit_seq
-- order is exactly commit order and a reader that sees seq N sees every seq below it.
CREATE OR REPLACE FUNCTION permsync.assign_commit_seq()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('permsync.commit_seq'));
    UPDATE permsync.batches
       SET commit_seq = nextval('permsync.commit_seq'), committed_at = clock_timestamp()
     WHERE id = NEW.id;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS zz_assign_commit_seq ON permsync.batches;
CREATE CONSTRAINT TRIGGER zz_assign_commit_seq
    AFTER INSERT ON permsync.batches
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION permsync.assign_commit_seq();

-- The baseline: roles that exist at install are the starting point, not changes
-- (bringing an environment to the source's roles is reconcile's job). A fresh install
-- takes it after its last migration, so that permsync's own roles are part of it.
CREATE OR REPLACE FUNCTION permsync.take_role_baseline()
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    DELETE FROM permsync.role_snapshot;
    SELECT permsync.capture_role_changes();
$fn$;
REVOKE ALL ON FUNCTION permsync.take_role_baseline() FROM PUBLIC;

DROP EVENT TRIGGER IF EXISTS permsync_capture;
CREATE EVENT TRIGGER permsync_capture ON ddl_command_end
    WHEN TAG IN (
        'GRANT', 'REVOKE', 'ALTER DEFAULT PRIVILEGES',
        'ALTER TABLE', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER SEQUENCE', 'ALTER FOREIGN TABLE',
        'ALTER SCHEMA', 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER ROUTINE', 'ALTER AGGREGATE',
        'ALTER TYPE', 'ALTER DOMAIN', 'ALTER LANGUAGE', 'ALTER LARGE OBJECT',
        'ALTER FOREIGN DATA WRAPPER', 'ALTER SERVER', 'ALTER COLLATION', 'ALTER CONVERSION',
        'ALTER OPERATOR', 'ALTER OPERATOR CLASS', 'ALTER OPERATOR FAMILY', 'ALTER STATISTICS',
        'ALTER TEXT SEARCH CONFIGURATION', 'ALTER TEXT SEARCH DICTIONARY',
        'ALTER PUBLICATION', 'ALTER SUBSCRIPTION', 'DROP OWNED')
    EXECUTE FUNCTION permsync.capture_permission_command();
