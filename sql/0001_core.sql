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
    target_environment   text
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
CREATE OR REPLACE FUNCTION permsync.mask_string_literals(sql text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog
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
            esc := i > 1 AND upper(substr(sql, i - 1, 1)) = 'E'
                   AND (i = 2 OR substr(sql, i - 2, 1) !~ '[[:alnum:]_$]');
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
SET search_path = pg_catalog
AS $fn$
DECLARE
    query  text := current_query();
    key    text;
    memo   text;
    batch  bigint;
    cmd    record;
    masked boolean := false;
    first  boolean := true;
BEGIN
    -- statement_timestamp() is fixed for one client message, so (xid, timestamp)
    -- tells this string's later commands from a new string in the same transaction.
    -- The memo is transaction-local and rolled back with a savepoint, like the row.
    key := pg_current_xact_id()::text || '/' || statement_timestamp()::text;
    memo := current_setting('permsync.current_batch', true);
    IF memo IS NOT NULL AND split_part(memo, '=', 1) = key THEN
        batch := split_part(memo, '=', 2)::bigint;
    END IF;

    FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        IF batch IS NULL THEN
            IF query ~* 'password' THEN
                query := permsync.mask_string_literals(query);
                masked := true;
            END IF;
            INSERT INTO permsync.batches (query_text, query_masked, current_user_name,
                                          current_user_is_superuser, search_path)
            VALUES (query, masked, invoker,
                    coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = invoker), false),
                    invoker_search_path)
            RETURNING id INTO batch;
            PERFORM set_config('permsync.current_batch', key || '=' || batch, true);
            PERFORM pg_notify('permsync', batch::text);
        END IF;
        -- One audit row per command: the command's first object stands for it.
        IF first THEN
            INSERT INTO permsync.audit_log (batch_id, command_tag, object_type, object_identity,
                                            schema_name, in_extension, current_user_name)
            VALUES (batch, command_tag, cmd.object_type, cmd.object_identity, cmd.schema_name,
                    cmd.in_extension, invoker);
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
    -- cannot be quoted or escaped, so a string without the word holds no owner change.
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
SET search_path = pg_catalog
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
