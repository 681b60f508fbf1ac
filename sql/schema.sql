-- permsync's source-side schema, as a fresh install creates it.
--
-- `permsync install` runs sql/bootstrap.sql (schema permsync, the version table
-- permsync.schema_migrations, permsync.locks), then this file in one transaction with
-- permsync.capture off, and records it as the base version. Upgrades from there are the
-- numbered files in sql/migrations/; sql/schema.dump.sql is what they all add up to.
--
-- It runs as a superuser, who owns everything here: the event trigger requires one. The
-- security definer functions therefore pin search_path to pg_catalog and name every
-- permsync object with its schema, so that nothing a caller puts on their search_path can
-- stand in for what a function uses.
--
-- Notifications are wake-ups, never the state: NOTIFY has no ACL, so any login may send on
-- any channel and LISTEN to any. The daemon also reads the tables at start, after a
-- reconnect and at every poll, so a lost or forged wake-up only changes when it looks.
--   permsync          a batch was written; the payload is its id
--   permsync_control  an operator asked for something (stored in the tables); no payload
--   permsync_failure  the daemon's, on failures (settings.notify_on_failure); no payload:
--                     v_failed_syncs says what failed

-- A default privilege may give PUBLIC something on new schemas: nobody but the roles
-- below gets anything here.
REVOKE ALL ON SCHEMA permsync FROM PUBLIC;

-- ── Configuration ─────────────────────────────────────────────────────────────────────
-- Mirrors of the daemon's configuration, refreshed at every start, for operators' joins.
-- paused and retry_requested are operators' (through the control functions below), and
-- start_after_seq, set when an environment is first registered, is then retention's: the
-- daemon's mirror leaves them alone.
CREATE TABLE permsync.environments (
    name        text PRIMARY KEY,
    label       text,
    -- The daemon group that applies to it (the configuration's `group`): each group's daemons
    -- hold a lease of their own, and one group never takes an environment another applies to.
    group_name  text NOT NULL DEFAULT 'default',
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
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Raised by retry_failed() and skip_batch(): the daemon retries an environment whose
    -- counter went up, so a request made while it was down or reconnecting is not lost.
    retry_requested bigint NOT NULL DEFAULT 0,
    -- The server the environment's database is on, as the daemon last saw it (its system
    -- identifier and start time, which a copy of the server does not share): environments
    -- of one server share its roles, and so the roles permsync manages there.
    server_identity text,
    -- Whose roles the environment's are (permsync.managed_roles.server_key), set when the
    -- daemon joins it to its server (permsync.join_server); NULL before: its name.
    server_key  text
);
CREATE INDEX environments_server_idx ON permsync.environments (server_identity) WHERE server_identity IS NOT NULL;

CREATE TABLE permsync.sync_rules (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_name text NOT NULL REFERENCES permsync.environments (name) ON DELETE CASCADE,
    position         integer NOT NULL,
    rule_type        text NOT NULL CHECK (rule_type IN ('include', 'exclude')),
    command_tag      text,
    role_pattern     text,
    schema_pattern   text,
    UNIQUE (environment_name, position)
);

-- The daemon's settings, and three switches only an admin sets (see config_guard).
CREATE TABLE permsync.config (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO permsync.config (key, value, description) VALUES
    ('sync_enabled', 'true', 'false stops the daemon applying; capture keeps recording. permsync.enable_sync() / disable_sync()'),
    ('dry_run', 'false', 'true makes the daemon log what it would apply instead of applying it. permsync.enable_dry_run() / disable_dry_run()'),
    ('sync_passwords', 'false', 'true makes the source capture password verifiers for the daemon to carry (settings.sync_passwords). permsync.enable_password_sync() / disable_password_sync()');

-- ── The queue ─────────────────────────────────────────────────────────────────────────
-- One batch per source transaction and client query string (or per role change the
-- watcher saw, manual sync, reconcile). commit_seq is assigned at commit (see
-- assign_commit_seq) and is the order of application.
CREATE SEQUENCE permsync.commit_seq;
CREATE TABLE permsync.batches (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    commit_seq           bigint UNIQUE,
    origin               text NOT NULL DEFAULT 'event_trigger'
                         CHECK (origin IN ('event_trigger', 'role_watcher', 'owner_watcher', 'manual', 'reconcile', 'bootstrap')),
    source_xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    statement_started_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    captured_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    committed_at         timestamptz,
    database_name        name NOT NULL DEFAULT current_database(),
    session_user_name    name NOT NULL DEFAULT session_user,
    current_user_name    name NOT NULL DEFAULT current_user,
    current_user_is_superuser boolean NOT NULL DEFAULT false,
    -- A captured batch's login is a superuser: a DBA, trusted whatever role it ran as (SET ROLE).
    session_user_is_superuser boolean NOT NULL DEFAULT false,
    -- The author's oid (a captured or manual batch's): a target's role of that name runs
    -- its statements only if it stands for this source role.
    current_user_oid     oid,
    search_path          text NOT NULL DEFAULT current_setting('search_path'),
    backend_pid          integer NOT NULL DEFAULT pg_backend_pid(),
    client_addr          inet DEFAULT inet_client_addr(),
    application_name     text DEFAULT current_setting('application_name'),
    -- Every string literal masked (see masked_text), or a note saying why the text is withheld.
    query_text           text NOT NULL,
    query_masked         boolean NOT NULL DEFAULT false,
    -- Set for manual syncs and reconciles aimed at one environment; NULL means every environment.
    target_environment   text,
    -- Generated batches (role watcher, reconcile) carry structured statements:
    -- [{kind, role, granted?, sql, display, privileged?, ignore_codes?, on_target_database?, ...}].
    -- `sql` may hold a password verifier; `display`, the same statement with it masked,
    -- is all that query_text, logs and the execution log ever see.
    statements           jsonb,
    -- Why capture already knows the batch cannot be replayed: the daemon logs it as
    -- skipped with this reason.
    not_replayable       text,
    -- The session's temporary objects when the string ran: a GRANT or REVOKE naming one
    -- is not replayed.
    temp_objects         text[],
    -- Why the string's statements, though they can be read, would not mean on a target what
    -- they did: the daemon converges what they touched instead (see capture_role_changes).
    converge_reason      text,
    -- A client string's batch: its transaction's writes to the role catalogs at its last
    -- role check (see role_catalog_writes).
    role_writes          bigint,
    -- Whether the string's role check has compared the role catalogs whole, rather than
    -- only the roles its text names (see roles_in_snapshot): until it has, a nested
    -- command or a change of role between its commands makes it do so.
    roles_compared       boolean NOT NULL DEFAULT false,
    -- A role change capture found in the middle of a client string: that string's batch,
    -- which it goes before in commit order (see assign_commit_seq).
    precedes             bigint
);
CREATE INDEX batches_client_string_idx ON permsync.batches (backend_pid, statement_started_at);

-- One row per permission command the event trigger saw (a string may hold several, and
-- a DO block or function may run many). Append-only (see audit_log_guard).
CREATE TABLE permsync.audit_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id         bigint NOT NULL REFERENCES permsync.batches (id),
    command_tag      text NOT NULL,
    object_type      text,
    object_identity  text,
    schema_name      text,
    in_extension     boolean,
    session_user_name name NOT NULL DEFAULT session_user,
    current_user_name name NOT NULL DEFAULT current_user,
    -- The role that ran it, by oid (NULL where capture could not tell: a role renamed
    -- since the session set it): a converged batch weighs what that role may change.
    current_user_oid oid,
    search_path      text,
    logged_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Position of the command in its batch: how many a batch has is read from the index.
    command_ordinal  integer,
    -- Run by a function, a DO block or dynamic SQL: not in the client string, so the
    -- daemon converges what it touched instead of replaying it.
    nested           boolean,
    -- The statement it ran, where PL/pgSQL names it: the innermost, every literal masked,
    -- 8 kB at most.
    nested_text      text,
    -- An owner change the role watcher found (capture_owner_changes) that REASSIGN OWNED
    -- could have made: the object, by its catalog and oid, its identity and own name (with a
    -- relation's kind) then as object_facts gives them (from the catalog's rows in the
    -- look's snapshot, as the daemon reads names: pg_identify_object reads the newest), and
    -- the owner permsync saw before.
    -- current_user_name is then the owner now: who made the change is not known, only that
    -- it had the privileges of both.
    classid          oid,
    objid            oid,
    noted_identity   text,
    reassigned_from  name
);
CREATE INDEX audit_log_batch_ordinal_idx ON permsync.audit_log (batch_id, command_ordinal);

-- One row per batch and environment: the outcome of carrying that batch there.
CREATE TABLE permsync.execution_log (
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
CREATE INDEX execution_log_env_seq_idx ON permsync.execution_log (environment_name, commit_seq);

CREATE TABLE permsync.retry_queue (
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

-- ── Locks and wake-ups ────────────────────────────────────────────────────────────────
-- Capture serialises on rows of permsync.locks (bootstrap.sql creates the table and the
-- install's row), not on advisory locks, whose keys any login may take. Locking a row
-- (SELECT ... FOR UPDATE) needs UPDATE on the table, and nobody but its owner has any
-- privilege on it. No table lock is used: a role with USAGE on the schema can hold ROW
-- EXCLUSIVE on any of its tables (PREPARE of an INSERT takes it without a privilege
-- check), and a row lock waits only for EXCLUSIVE and ACCESS EXCLUSIVE, which only the
-- owner can take.
INSERT INTO permsync.locks (name) VALUES ('commit_seq'), ('role_snapshot'), ('owner_look');

-- A wake-up on `channel`, unless the server's notification queue is half full. Any login
-- may fill that queue (LISTEN in a transaction it leaves open, then notify without end),
-- and once it is full every NOTIFY fails at commit: a captured DBA command would fail with
-- it. A wake-up is only a hint: the daemon also polls the tables.
CREATE FUNCTION permsync.wake(channel text, payload text)
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

-- Takes the row `lock_name` of permsync.locks for the transaction. Only permsync's own
-- functions lock these rows, but they run in other logins' transactions (a captured
-- command's, at its commit): a login that holds one and does not go on (a transaction
-- left open after SET CONSTRAINTS ALL IMMEDIATE, or a slow deferred trigger of its own
-- that runs after capture's) would stall every DBA's commit. So the row is waited for a
-- little at a time, and a holder that is no superuser and sits idle in its transaction,
-- or has kept every other capturer waiting for 5 s, has its session ended: what it
-- captured rolls back with it. A superuser holder is waited for, as for any lock a DBA holds.
CREATE FUNCTION permsync.take_lock(lock_name text)
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
$fn$;

-- Source commit order. Runs at commit (deferred), after the transaction's own work. The
-- lock is held from nextval until the commit is visible, so commit_seq order is exactly
-- commit order and a reader that sees seq N sees every seq below it. FOR UPDATE locks the
-- row without writing a new version of it, so a DBA's REPEATABLE READ or SERIALIZABLE
-- transaction never finds it updated since its snapshot.
-- A role change found in the middle of a client string goes before the string's batch
-- (see record_command), which was written first and so has its number by now (at commit,
-- or earlier after SET CONSTRAINTS ... IMMEDIATE): the role change takes that number and
-- the batch the next one. Only a batch of this transaction is renumbered, and every number
-- from its own on is this transaction's: it has held the lock since drawing it.
CREATE FUNCTION permsync.assign_commit_seq()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

CREATE CONSTRAINT TRIGGER zz_assign_commit_seq
    AFTER INSERT ON permsync.batches
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION permsync.assign_commit_seq();

-- ── Masking ───────────────────────────────────────────────────────────────────────────
-- Every string literal of a captured string is masked, whether or not it mentions a
-- password: a password can hide in dynamic SQL or an escaped option name. Permission
-- statements carry no literals, so readers and the daemon need nothing the mask takes away.

-- A SQL text with the body of every string literal and dollar-quoted string replaced by
-- ********, read as PostgreSQL's scanner (scan.l) reads it with standard_conforming_strings
-- on, or off (backslash_escapes): tag and identifier characters include every non-ASCII
-- character, -- comments end at \n or \r, /* */ nest, quoted strings continue across a
-- newline in the state they were in. One regular-expression pass cuts the text before each
-- character that can change the scanner's state (quotes, $, comment marks, backslash,
-- newlines); the walk over those pieces is the scanner's. Linear in the text. Its body
-- holds no backslash in a standard literal, so it compiles whatever the session's setting.
CREATE FUNCTION permsync.mask_literals(sql text, backslash_escapes boolean)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- The text with its literals masked, or NULL when the mask cannot be trusted: the server
-- lexed the string with the standard_conforming_strings it had when the string arrived,
-- which the string itself may have changed since (SET, RESET ALL, set_config), so both
-- readings are masked and must agree. An error while masking is the same as disagreeing.
CREATE FUNCTION permsync.masked_text(sql text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- The text masked, or withheld whole; the second argument is ignored, since both readings
-- are always masked. No permsync code calls it: capture and manual_sync use masked_text.
CREATE FUNCTION permsync.mask_string_literals(sql text, backslash_escapes boolean DEFAULT false)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- The daemon's planner knows this text (src/capture/batch.ts, WITHHELD_TEXT).
    SELECT coalesce(permsync.masked_text(sql),
                    '/* permsync: text withheld: it mentions a password, and its string literals read differently with and without standard_conforming_strings */');
$fn$;

-- ── The role watcher ──────────────────────────────────────────────────────────────────
-- Roles, memberships, role settings and privileges on shared objects (databases,
-- tablespaces, parameters). PostgreSQL fires no event trigger for these, so permsync
-- compares the role catalogs with the last snapshot it stored and writes the difference
-- as a batch of canonical, idempotent DDL. Two callers: the daemon's role watcher (every
-- few hundred ms) and capture, before it records a permission command, so that a role
-- created just before a GRANT reaches the targets before the GRANT.
CREATE TABLE permsync.role_snapshot (
    id          integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    -- role_fingerprint() when the snapshot was taken.
    fingerprint text NOT NULL,
    state       jsonb NOT NULL,
    taken_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- roles_fingerprint() when the snapshot was taken: what capture compares with.
    roles_fingerprint text,
    -- A transaction that writes a catalog row twice, with a role check between the writes
    -- (CREATE ROLE a; GRANT ... TO a; ALTER ROLE a CREATEDB), leaves the row's xmin and the
    -- count as they were; the rewritten row moves, though. So the snapshot keeps where the
    -- rows stand that its own transaction (written_by) wrote, and each check compares them
    -- until the watcher, after that transaction has committed, finds them unchanged (from
    -- then on any write gives a row a new xmin).
    written_by  xid8,
    rows_written text,
    roles_rows_written text,
    -- A catalog snapshot the state holds everything of (the one the fingerprints were
    -- taken in, or a later one in which they still matched), and the transaction that
    -- took the state: a row written by a transaction that ended before the horizon's xmin,
    -- or by that one once written_by is cleared, is in the state (see written_since).
    horizon     pg_snapshot,
    taken_in    xid8
);

-- Change detection for a catalog: (rows, sum of a hash of each row's xmin). Any committed
-- change writes a row with a new xmin, and a removed row lowers the count; a hash, not the
-- xmin itself, so that no arithmetic of xids cancels out (rows written by N and N+2, both
-- rewritten by N+1). The xmin comes from age(xmin), an integer per row, cheaper than a
-- cast: exact modulo 2^32, since xmin = now - age(xmin) with now = age('3') + 3. Rows of
-- the bootstrap transaction (and pre-9.4 frozen ones) have age 2^31 - 1 at any time; they
-- are only counted. Freezing keeps the raw xmin: VACUUM changes nothing here.
-- Reading xmin needs pg_authid itself; without that right (a managed service's admin), a
-- hash of what can be read, which costs more but sees the same changes (bar passwords).

-- Roles and memberships: what a GRANT, an owner change or a replay as the DBA's role
-- needs on the target first. Capture compares only this, on the DBA's path, and only
-- where roles_in_snapshot cannot vouch for what the string needs: role settings,
-- comments and shared privileges reach the targets through the watcher, and where they
-- fall in the order does not matter.
CREATE FUNCTION permsync.roles_fingerprint()
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- Everything the snapshot keeps: the above, role settings, comments on roles, every
-- database, tablespace and parameter privilege, and whether passwords are carried.
CREATE FUNCTION permsync.role_fingerprint()
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

-- Where the role catalogs' rows written from transaction `since` on stand (their ctids,
-- hashed and summed: no order to sort by): of roles and memberships only, as the roles
-- fingerprint, or of everything the snapshot keeps. Compared only until the watcher has
-- seen them committed and unchanged. Without the right to read pg_authid, nothing: the
-- fingerprints then hash the rows' content, which a second write changes.
CREATE FUNCTION permsync.rows_written_since(since xid, roles_only boolean)
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

-- Whether the role catalogs still match the snapshot: roles and memberships only (what
-- capture needs before a GRANT), or everything it keeps (the watcher). False when there
-- is no snapshot yet. PL/pgSQL, not SQL, for its cached plan: the DBA's path calls it.
CREATE FUNCTION permsync.role_snapshot_matches(roles_only boolean)
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

-- The names a client string's text can give a role: its identifiers as PostgreSQL's
-- scanner reads them, unquoted ones folded to lower case (ASCII; a single-byte encoding
-- may fold more, so a text with other characters is also read through lower()), quoted
-- ones as written, each cut to NAMEDATALEN by the cast, outside comments and literals
-- (the text comes with literals masked, so no quote or comment mark is left in one).
-- NULL where it cannot tell: a Unicode-escaped identifier (U&"..."), or over 1,000
-- distinct words. A word that names no role costs its caller an index probe.
CREATE FUNCTION permsync.identifiers(masked text)
RETURNS name[]
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- Whether a role catalog row written by transaction `xmin` may be missing from the
-- snapshot. Only a transaction that had ended before the oldest one running when the
-- snapshot was taken (below the horizon's xmin) surely had: a snapshot lists top-level
-- transactions only, so an xid past its xmin that it does not list may be a
-- subtransaction of one it does (a role made after SAVEPOINT, or in a PL/pgSQL block with
-- EXCEPTION, uncommitted then). The transaction that took the snapshot wrote what it
-- holds, unless written_by is still set (its later writes keep its xid). `top`, above
-- every xid the statement sees, gives the 32-bit xmin its epoch. 1 and 2 are the
-- bootstrap and frozen xids. One SQL expression, so that the planner inlines it
-- (OPERATOR() binds as any other operator: hence every parenthesis).
CREATE FUNCTION permsync.written_since(xmin xid, horizon pg_snapshot, taken_in xid8, written_by xid8, top bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT xmin::text::bigint OPERATOR(pg_catalog.>) 2
           AND CASE WHEN xmin::text::bigint OPERATOR(pg_catalog.=) (taken_in::text::bigint OPERATOR(pg_catalog.%) 4294967296)
                    THEN written_by IS NOT NULL
                    ELSE (top OPERATOR(pg_catalog.-)
                          ((((top OPERATOR(pg_catalog.%) 4294967296) OPERATOR(pg_catalog.-) xmin::text::bigint)
                            OPERATOR(pg_catalog.+) 4294967296) OPERATOR(pg_catalog.%) 4294967296))::text::xid8
                         OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin(horizon) END
$fn$;

-- Whether the snapshot holds what a permission command needs of the roles: the rows of
-- the roles `names` name, of the invoker and the session user, and, for an invoker that
-- is no superuser, of each role it is a member of (a thousand at most) and of those
-- memberships, none of them written since (written_since). Index probes only: the DBA's
-- path then costs the same with a hundred roles or a hundred thousand. A change it
-- cannot see is a row that is gone: a role dropped (a command naming it fails) or a
-- membership the invoker lost (it needed none). False without the right to read
-- pg_authid (no xmin to read), before any snapshot has its horizon, and outside READ
-- COMMITTED: a transaction snapshot older than the rows the transaction itself writes
-- afterwards gives no xid above them all.
CREATE FUNCTION permsync.roles_in_snapshot(names name[], invoker name)
RETURNS boolean
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- The privileges of a shared object (a database other than the source's own, a tablespace,
-- a parameter) where they differ from what it has by default, keyed grantee/privilege/
-- grantor, as pg_dump shows them: a grantee holds a privilege from each grantor apart. A
-- new database adds no entry, and a privilege revoked from its defaults is one. The
-- grantor is 0 for the owner's grants (a superuser's is recorded as the owner's; one by
-- an oid no role has counts as a superuser's, as before), else the role that granted
-- through its grant option. `run_as`: the oid of the role a statement on it
-- runs as, that grantor, or for the owner's the owner where it is no superuser and no
-- superuser granted it: only a superuser's runs as the sync user. A change of owner,
-- which rewrites the owner's grantors, changes no entry. The owner's own privileges
-- follow from ownership, not carried. An ACL is exploded item by item: aclexplode() of a
-- whole one reads it again for each row, and one granted to 10,000 roles took seconds.
CREATE FUNCTION permsync.acl_entries(acl aclitem[], default_acl aclitem[], owner oid)
RETURNS TABLE (key text, grantee text, privilege text, state text, default_state text, run_as oid)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- The state the snapshot keeps, keyed by oid so that a rename is seen as a rename. Built-in
-- roles (oid below 16384) are never defined by permsync, but can be granted; the bootstrap
-- superuser's (oid 10) memberships and settings are kept, as pg_dumpall prints them (the
-- daemon's excluded_roles leaves them out by default). Memberships are kept per grantor:
-- on PostgreSQL 16 and later the grantor is part of a membership's identity (who may
-- revoke it, what a DROP ROLE of the grantor does). VALID UNTIL is kept as text, the same
-- whatever the calling session's settings. Verifiers are kept only while an admin has
-- sync_passwords on, and the owner may read them.
CREATE FUNCTION permsync.role_state()
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
$fn$;

-- One generated statement. `role` is the role it defines or changes (for a membership,
-- the member); `granted`, the role granted or revoked. Rules and excluded_roles see both.
CREATE FUNCTION permsync.role_statement(
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

-- A role's rename, which the daemon follows (renamed_from); it changes nothing on a
-- target that lacks the role. Both names are the role of oid role_oid (see oids in
-- role_changes).
CREATE FUNCTION permsync.rename_statement(from_name text, to_name text, role_oid bigint)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT permsync.role_statement('ALTER ROLE', to_name, format('ALTER ROLE %I RENAME TO %I', from_name, to_name),
                                   ignore_codes => ARRAY['42704'])
           || jsonb_build_object('renamed_from', from_name, 'oids', jsonb_build_object(from_name, role_oid, to_name, role_oid))
$fn$;

-- The ALTER ROLE, password and comment statements for what differs between two role states
-- (everything that differs from CREATE ROLE's defaults when `old` is NULL). Each of
-- SUPERUSER, REPLICATION and BYPASSRLS comes apart, named in `attribute` ('SUPERUSER' or
-- 'NOSUPERUSER', ...): only a superuser may set them, and the daemon carries one that gives
-- such a power only where settings.carry_role_attributes says so.
CREATE FUNCTION permsync.role_attribute_statements(old jsonb, new jsonb)
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
$fn$;

-- A role setting's value as SQL: always literals, never more than a value. Any login may
-- store any text as its own setting (set_config, then ALTER ROLE me SET ... FROM CURRENT).
-- List settings (search_path and the like) are split as PostgreSQL splits them (commas;
-- double quotes kept apart, "" inside them is one ") into one literal each, as pg_dump
-- writes them; in search_path and temp_tablespaces an unquoted element is an identifier,
-- folded to lower case (ASCII letters) as PostgreSQL folds it. Text that is not a
-- well-formed list becomes one literal. One pass: splitting element by element, copying
-- the rest each time, would hold every role check (and the DBA's capture) for minutes on a
-- long value. A value over 8 kB is not carried at all: it becomes DEFAULT (the role has no
-- such setting on the target), with the reason in a comment the execution log shows.
-- src/sql/quote.ts (settingValueSql) writes the same, byte for byte.
CREATE FUNCTION permsync.setting_value_sql(key text, value text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- The current name of a role by oid, from the roles of two states: the new state's, else
-- the old one's (a role that went away), else the catalog's (built-in roles are not in the
-- snapshot).
CREATE FUNCTION permsync.role_name(old_roles jsonb, new_roles jsonb, oid text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT coalesce(new_roles -> oid ->> 'name', old_roles -> oid ->> 'name', pg_get_userbyid(oid::oid))
$fn$;

-- A statement on a shared object's privileges, as its grantor where that is no superuser
-- (SET LOCAL ROLE, undone after it): the target checks that role's right to it there, so
-- that it reaches no further there than on the source. `grantee` is the role it grants to
-- or revokes from (NULL for PUBLIC), `run_as` the role it runs as: the daemon judges both.
-- `chain` names the object and privilege, `option` says that the statement gives or takes
-- a grant option: the daemon orders the statements of one chain by their grantors
-- (src/capture/grant-order.ts), so that each grantor holds its grant option when it
-- grants, and loses it only after the grants that depend on it. Nothing here follows a
-- chain: any login may grant what it owns to as many roles as it likes, in chains as
-- long as it likes, and this runs in a DBA's capture. `acl` is the ACL entry it changes,
-- as the daemon reads it on a target ({"on", "name"} as shared_privilege_changes gives
-- it, with "privilege", and "option" for WITH GRANT OPTION or GRANT OPTION FOR): where the
-- order leaves revokes in a cycle of grant options, the daemon works out on the target's
-- ACL whether a revoke with CASCADE takes it apart there as on the source (src/plan/cycles.ts).
-- What a target cannot take is left out there: the object (3D000, 42704) or a role
-- (42704) it lacks, a grantor that may not do it there (42501).
CREATE FUNCTION permsync.shared_privilege_statement(
    kind text, run_as text, sql text, grantee text, chain text, option boolean, acl jsonb, database text DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT permsync.role_statement(kind, grantee,
               CASE WHEN run_as IS NULL THEN sql
                    ELSE format('SET LOCAL ROLE %I; %s; RESET ROLE', run_as, sql) END,
               ignore_codes => ARRAY['3D000', '42704', '42501'])
           || jsonb_strip_nulls(jsonb_build_object('run_as', run_as, 'chain', chain, 'database', database,
                                                   'option', CASE WHEN option THEN true END, 'acl', acl))
$fn$;

-- How the privileges on shared objects changed between two states, one row per grantee,
-- privilege and grantor that moved: `current` (the old state's) and `wanted` (the new
-- one's), a side without the entry being at the object's default; `entry`, the newer of
-- the two; `object`, the ON clause ({"database"} for a database, which the daemon maps);
-- `acl`, the object ({"on", "name"}, a database named by the statement's `database`) and
-- privilege, as shared_privilege_statement keeps them;
-- `chain`, the object and privilege (shared_privilege_statement); `grantee` and
-- `grantor`, oids (0: PUBLIC, the owner). A database or tablespace that no longer exists
-- has nothing to change.
CREATE FUNCTION permsync.shared_privilege_changes(old jsonb, new jsonb)
RETURNS TABLE (kind text, key text, entry jsonb, object text, acl jsonb, chain text, grantee text, grantor text, current text, wanted text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- The canonical DDL that takes a target from state `old` to state `new`, in an order that
-- works, each statement with the names that hold at its point and safe to run twice:
--   * privileges on the source's database revoked, and shared privileges revoked from
--     roles that are dropped (a role must lose them before it can be dropped);
--   * memberships that went, per grantor, dependent grants first (a grantor's memberships
--     must go before the grantor can); a revoke of one grantor's membership that others
--     still grant says so (other_grantors), since before 16 a membership has one grantor;
--   * drops (before a rename or creation can reuse the name), the creations under names
--     they free, renames (naming the role they rename, `renamed_from`, so that the daemon
--     checks both names on each target), the other creations, the new roles' attributes,
--     then attribute, password and comment changes;
--   * memberships granted or changed, per grantor, with GRANTED BY (always a quoted
--     identifier, so that the daemon can leave it out where it may not name the grantor);
--   * role settings; a setting a target cannot take (a parameter or value its version does
--     not know, a database it does not have) is left out there with the reason, rather
--     than failing and holding every later change;
--   * privileges on the source's database granted, then those on other databases (named
--     for the daemon to map), tablespaces and parameters revoked and granted.
-- Within each part, privileges granted through a grant option are in no order of their
-- chains: the daemon orders them by grantor (shared_privilege_statement).
-- A database privilege of PUBLIC (grantee 0) names no role, so that a role named "PUBLIC"
-- is neither taken for PUBLIC nor PUBLIC for it. Linear in the size of the states: each
-- part of them is taken out once (an operator on `old -> 'roles'` inside a query would copy
-- it for every row), and statements gather in an array, which PL/pgSQL appends to in
-- place; a jsonb array would be copied at each one (10,000 roles created in one DO block
-- took minutes, and held the next DBA's GRANT as long).
CREATE FUNCTION permsync.role_changes(old jsonb, new jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $fn$
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
$fn$;

-- Compares the role catalogs with the snapshot and, when they differ, writes the
-- difference as a batch (origin role_watcher) and stores the new snapshot, in the
-- caller's transaction: the batch commits with the change that caused it or not at all.
-- Capturers serialise on the row role_snapshot of permsync.locks. The fingerprints are
-- taken in one statement before the state: a role committed in between counts as not yet
-- captured, never as captured while missing from the snapshot. When capture of verifiers
-- was turned on since the snapshot, every verifier the source holds is carried: which
-- changed meanwhile cannot be told. Returns the batch id, or NULL when nothing changed.
-- `before`: the batch of the client string whose command found the change, when the
-- string had written it already (record_command): the change goes before it
-- (assign_commit_seq), and so before the string's earlier commands. Where it renames or
-- drops a role, which those may name, the daemon converges what they touched instead.
CREATE FUNCTION permsync.capture_role_changes(before bigint)
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
$fn$;

-- The role watcher's call, and any other that no client string's batch waits on.
CREATE FUNCTION permsync.capture_role_changes()
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT permsync.capture_role_changes(NULL);
$fn$;

-- The baseline: roles that exist at install are the starting point, not changes
-- (bringing an environment to the source's roles is reconcile's job). The install takes
-- it after its last step, so that permsync's own roles are part of it. The capturers'
-- lock is taken before the snapshot row is deleted, in the order a capturer takes them,
-- so the two cannot deadlock.
CREATE FUNCTION permsync.take_role_baseline()
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT permsync.take_lock('role_snapshot');
    DELETE FROM permsync.role_snapshot;
    SELECT permsync.capture_role_changes();
$fn$;

-- ── Capture ───────────────────────────────────────────────────────────────────────────
-- The event trigger (created last, below) calls capture_permission_command, which runs
-- as its owner: PostgreSQL calls a function returning event_trigger only as an event
-- trigger. It hands the command to permsync_capture.record_command, which nobody else may
-- execute, so nobody can forge a batch. Any error aborts the DBA's statement: a change is
-- captured or it does not happen.
-- PUBLIC may look into the schema, and execute nothing in it.
CREATE SCHEMA permsync_capture;
REVOKE ALL ON SCHEMA permsync_capture FROM PUBLIC;
GRANT USAGE ON SCHEMA permsync_capture TO PUBLIC;

-- Who ran the command, from the session's state: the role set with SET ROLE, else the
-- session user. That is who ran every statement typed in the client string. A command run
-- inside a SECURITY DEFINER function is recorded with the caller's identity; such a
-- command is not in the string, so it is never replayed.
CREATE FUNCTION permsync_capture.session_identity(role_setting text, session_name name)
RETURNS name
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN CASE role_setting WHEN 'none' THEN session_name ELSE role_setting::name END;
END
$fn$;

-- The names of the session's temporary relations and types (found through their
-- dependency on the temporary schema: an index lookup, not a scan of pg_class).
CREATE FUNCTION permsync.temporary_object_names()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- How many rows of pg_authid and pg_auth_members this session has written since it last
-- sent its statistics, which it never does inside a transaction or a client string: a
-- count that moves whenever its transaction creates, alters, renames or drops a role or
-- grants or revokes a membership. Read from the session's own counters, whatever the
-- number of roles. With track_counts off (which also stops autovacuum) it stays 0. No SET
-- clause and no FROM, so that it is inlined into record_command (whose search_path is
-- pinned) rather than planned at every call.
CREATE FUNCTION permsync_capture.role_catalog_writes()
RETURNS bigint
LANGUAGE sql
AS $fn$
    SELECT pg_catalog.pg_stat_get_xact_tuples_inserted('pg_catalog.pg_authid'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_updated('pg_catalog.pg_authid'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_deleted('pg_catalog.pg_authid'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_inserted('pg_catalog.pg_auth_members'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_updated('pg_catalog.pg_auth_members'::pg_catalog.regclass)
           OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_deleted('pg_catalog.pg_auth_members'::pg_catalog.regclass)
$fn$;

-- Records one permission command: the batch of this client string and transaction (found
-- first, so a later command costs an index lookup whatever the size of the string) and an
-- audit row for the command.
--   * An ALTER counts only when it changes an owner: when the text, literals masked, holds
--     the word OWNER (a keyword, which cannot be quoted or escaped), or the statement a
--     function or DO block ran names it. A CREATE SCHEMA counts only for the GRANT and
--     REVOKE among its elements: the statement cannot be replayed (it creates the
--     schema), and its GRANTs are converged.
--   * A string over 64 kB is stored as a note of its size, anything else with every
--     literal masked, or withheld when the mask cannot be trusted (masked_text).
--   * With permsync.capture off nothing is recorded, except in a string that may commit
--     several transactions (it mentions COMMIT, END, ROLLBACK or ABORT): there the
--     transaction gets a batch saying so, so that the daemon pairs batches and
--     transactions by position (a transaction that turns capture off for some of its
--     commands is not replayed either).
--   * Role changes made before the string go first (CREATE ROLE, then GRANT): every one
--     where the string needs one the snapshot lacks (a role its text names, the invoker or
--     its memberships; see roles_in_snapshot), and so do
--     those its transaction makes between two of its permission commands (GRANT ... TO a;
--     CREATE ROLE b; GRANT ... TO b): the string's earlier commands then follow the
--     change, so where it renames or drops a role, what they touched is converged instead.
--   * The names of the session's temporary objects go with the batch.
--   * A command run by a function, a DO block or dynamic SQL is marked nested, with the
--     statement PL/pgSQL names in its error context.
--   * At most 1,000 audit rows per batch; past that the batch is not replayable.
-- The limits are the daemon's too (src/capture/batch.ts).
CREATE FUNCTION permsync_capture.record_command(
    command_tag text, invoker name, invoker_search_path text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- Runs as its owner with the session's search_path (a SET clause would hide it from
-- record_command), so any code it ran through an operator or function found on that path
-- would run as the owner: its only expression is the call, every name qualified.
CREATE FUNCTION permsync.capture_permission_command()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
AS $fn$
BEGIN
    PERFORM permsync_capture.record_command(
        tg_tag,
        permsync_capture.session_identity(pg_catalog.current_setting('role'), SESSION_USER),
        pg_catalog.current_setting('search_path'));
END
$fn$;

-- ── Role scope ────────────────────────────────────────────────────────────────────────
-- The role watcher has no author: it sees that a role changed, not who changed it, and a
-- CREATEROLE user may create, alter and grant roles on the source. A role that exists on
-- a target without permsync having created it there (a prod-only superuser, an auditor)
-- belongs to that target: a look-alike created on the source must not hand it over. So
-- each environment has a set of roles permsync manages, by the role's oid on that target
-- (a role dropped and created again there under the same name is a new role): those it
-- created, and those an operator handed over (`permsync adopt`). A statement that would
-- change, grant, run as or drop any other role is not carried there; the collision is
-- recorded as a conflict. Roles are a server's, not a database's: environments that are
-- databases of one server (environments.server_identity) hold one set, under one key.
CREATE TABLE permsync.managed_roles (
    -- Whose: the environment's name until the daemon has joined it to its server, then
    -- the key every environment of that server has (environments.server_key).
    server_key       text NOT NULL,
    -- The role's oid on the target: its identity there.
    role_oid         oid NOT NULL,
    -- Its name when permsync last changed it, for operators.
    role_name        name NOT NULL,
    -- The source role it stands for, by its oid on the source (NULL: not known, as for a
    -- role an operator's own statement created). A role the source makes later under its
    -- name is another (its own was dropped, the drop not carried here): the target's role
    -- is then the target's own, not the new one's.
    source_oid       oid,
    how              text NOT NULL CHECK (how IN ('created', 'adopted')),
    recorded_by      name NOT NULL DEFAULT session_user,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_key, role_oid)
);

-- Joins environment `env` to the server `identity` names (as the daemon reads it: system
-- identifier and start time). An environment whose server has others already takes their
-- key, and what was recorded for it alone until then goes into their set; the first of a
-- server keeps its own key, so nothing is copied. One whose key others share while their
-- server differs now (its server was restarted, or its URL names a copy) takes a copy
-- under a key of its own: a role created on one of two servers is no role of the other's.
-- It takes no lock: a role a sibling records meanwhile goes under the key it joins, and
-- is its as soon as that commits. (A table lock here waited on any login that can lock
-- permsync's tables, an operator's PREPAREd DELETE say, and stalled the daemon.)
CREATE FUNCTION permsync.join_server(env text, identity text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- A source role whose name a target role permsync does not manage already holds. One
-- open row per environment and name; adopting the role (or its going away) closes it.
CREATE TABLE permsync.role_conflicts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_name text NOT NULL,
    role_name        name NOT NULL,
    target_oid       oid NOT NULL,
    -- The first batch that would have changed it there.
    batch_id         bigint,
    reason           text NOT NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolution       text
);
CREATE UNIQUE INDEX role_conflicts_open_idx
    ON permsync.role_conflicts (environment_name, role_name) WHERE resolved_at IS NULL;

-- Open conflicts, newest first, with what ends each one.
CREATE VIEW permsync.v_role_conflicts AS
SELECT c.id AS conflict_id, c.environment_name, c.role_name, c.target_oid, c.batch_id, c.reason,
       c.first_seen_at, c.last_seen_at,
       format('permsync adopt --env %s %s', c.environment_name, c.role_name) AS to_hand_over
  FROM permsync.role_conflicts c
 WHERE c.resolved_at IS NULL
 ORDER BY c.last_seen_at DESC;

-- What drift needs to tell the target's own roles from permsync's: readers may run drift.
-- One row per environment and role: each environment of a server shows the server's set,
-- and an environment the daemon has not registered yet (adopted at onboarding) its own.
CREATE VIEW permsync.v_managed_roles AS
SELECT e.name AS environment_name, m.role_oid, m.role_name, m.source_oid, m.how, m.recorded_by, m.recorded_at
  FROM permsync.environments e
  JOIN permsync.managed_roles m ON m.server_key = coalesce(e.server_key, e.name)
UNION ALL
SELECT m.server_key, m.role_oid, m.role_name, m.source_oid, m.how, m.recorded_by, m.recorded_at
  FROM permsync.managed_roles m
 WHERE NOT EXISTS (SELECT FROM permsync.environments e WHERE coalesce(e.server_key, e.name) = m.server_key);

-- The owners permsync saw each object of this database have, by the owner's oid, each with
-- the object's identity then (object_facts), in the order noted: every object's owner at
-- install, then at each command that makes an object, can change its owner, or renames it
-- (permsync_owners, created last, below); an object's rows go when it is dropped. Each row
-- says that the object was that role's under that name, both read from one version of the
-- object's catalog row, so that it holds in whatever snapshot it was read. A command that
-- gives an object another owner ends the rows of its former owners; REASSIGN OWNED fires
-- no event trigger, so after one the object keeps the rows of the role it was taken from
-- (and gets one of its new owner when the role watcher finds it: capture_owner_changes,
-- which keeps of each owner only its last row under each name).
-- That is what the release before a DROP ROLE needs (src/catalog/role-holdings.ts): an
-- object the dropped role owns on a target goes to the owner of the source's object of its
-- name only if that name is the last the source's object was noted under as the dropped
-- role's (not one a login made to look like it, nor one it was given after it left the
-- role, nor one a command gave another owner since, which a target may have refused).
-- What an identity prints but the object's owner does not name (its schema's name, its
-- argument types') can change under it: a name whose change since the object's last row
-- came from such a rename is noted as no one's (owner 0, note_owners_of), and no row under
-- it counts, unless only its schema was renamed, by a role that may act as the owner (the
-- schema's own row that gave it that name says whose it was); the release also takes a
-- role's last name for an object whose schema alone was renamed since, where that row is
-- a superuser's. An object whose last row is of a dropped role gets a row of its owner now
-- when a target's release hands it to that owner (note_released_owners), and at the role
-- watcher's next look (capture_owner_changes), so that a release further down a chain of
-- REASSIGN OWNED (a's objects to b, a dropped; later b's to c, b dropped) finds it, and the
-- look sees the next REASSIGN OWNED. Not when the DROP ROLE is captured: that holds the lock
-- every DBA's commit takes, and a login's role may leave thousands of objects. A dropped role's
-- rows go once no enabled environment has its DROP ROLE still to run (cleanup_old_logs).
-- Nothing on a DBA's path waits on another transaction's rows but the object's own, which
-- its command holds a lock on (and those the owner look prunes, until it commits: it waits
-- for nothing meanwhile): there is no unique key, and no row is updated. A temporary
-- object has no row, nor has a large object (drift does not compare them).
CREATE TABLE permsync.object_owners (
    noted     bigint GENERATED ALWAYS AS IDENTITY,
    classid   oid NOT NULL,
    objid     oid NOT NULL,
    owner_oid oid NOT NULL,
    identity  text NOT NULL,
    own       text NOT NULL,
    parts     oid[] NOT NULL,
    names     text[] NOT NULL,
    -- The row's command gave the object this identity (it made or renamed it, or its schema).
    named     boolean NOT NULL
);
CREATE INDEX object_owners_object_idx ON permsync.object_owners (classid, objid, noted);
CREATE INDEX object_owners_owner_idx ON permsync.object_owners (owner_oid);

-- An object's owner and identity (its catalog, schema, name and arguments), each pair from
-- one version of its catalog row in the calling statement's snapshot: none for an object
-- that is not there, temporary, or of a kind drift does not compare (indexes, a table's
-- row type, array types: their owner follows another's). With them, what its identity is
-- made of: `own`, its own name (a relation's with its relkind: on 15 and earlier a rule
-- makes an empty table a view of the same identity); `parts`, the oids of the objects
-- whose names it prints (its schema, its argument types), and `names`, each as printed;
-- and `versions`, the xmax of the catalog rows read (its own and its schema's), which says
-- whether a later commit replaced what an old snapshot shows. The search path and quoting
-- are pinned, so that names print the same whatever the session's; temporary objects (in
-- a schema pg_temp_N) go unseen with their session and are none of the release's. Every
-- version of the row the snapshot shows is returned (one taken before a commit that
-- changed it shows two to the changer). PL/pgSQL, a query per catalog, each planned once
-- per session (as a SQL function, a union of them all was planned at each statement that
-- called it: 22 ms of a DBA's CREATE TABLE among 10,000 tables; bench 13).
CREATE FUNCTION permsync.object_facts(classid oid, objid oid)
RETURNS TABLE (owner_oid oid, identity text, own text, parts oid[], names text[], versions xid[])
LANGUAGE plpgsql STABLE ROWS 1
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off
AS $fn$
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
$fn$;

-- The status of a transaction by its xid (pg_xact_status's: committed, aborted, in
-- progress), its epoch taken from this transaction's own xid, which is within 2^31 of any
-- xid a catalog row still holds (age() would not do: its reference is whatever xid was
-- current at its first call in the transaction, which a session chooses). NULL where it
-- cannot tell.
CREATE FUNCTION permsync.xact_status(x xid)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    mine bigint := pg_current_xact_id()::text::bigint;
    span constant bigint := 4294967296;
BEGIN
    RETURN pg_xact_status((mine + ((x::text::bigint - mine % span + span / 2) % span + span) % span - span / 2)::text::xid8);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$fn$;

-- Notes each object's owner now, under its identity now, where the object's last row is
-- not of that owner (or of no one) under that identity (temporary objects aside), and
-- where no commit since replaced the catalog rows it was read from (an old snapshot's
-- view: it would note a fact of the past as the latest). The name is of no one (0) where,
-- since the last row, one of the objects it prints (a schema, a type) kept its oid but not
-- its name, whatever else changed: but for its schema alone renamed, where the schema's
-- row that gave it its name now came after and is of a role that may act as the owner.
-- With `moves`, an owner given in this transaction (the object's pg_shdepend row naming it
-- written by this transaction: a command's owner change, seen) ends the rows of the
-- object's former owners; one given before, by no command permsync saw (REASSIGN OWNED),
-- does not. With `owners_only`, a name of no one is not noted: the objects it would have
-- been noted for are returned instead (the release's call, note_released_owners).
CREATE FUNCTION permsync.note_owners_of(objects jsonb, moves boolean, owners_only boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $fn$
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
$fn$;

-- The daemon's call when it releases a dropped role's objects on a target, giving each to
-- its owner on the source (src/catalog/role-holdings.ts), where that owner has no row of
-- its own for the object as it is now: the release of that owner's DROP ROLE, further down
-- a chain of REASSIGN OWNED, needs one (see object_owners). What is noted is read from the
-- catalog, as for any command's objects. A name of no one (chosen by another role since the
-- object's last row) is not noted here: a row of no one under its name now would take the
-- object out of this release, and every later one. Returns those objects.
CREATE FUNCTION permsync.note_released_owners(objects jsonb)
RETURNS jsonb
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT permsync.note_owners_of(objects, false, true);
$fn$;

-- The event trigger permsync_owners: the owners of the commands' objects (an operator's
-- commutator and negator too, which CREATE OPERATOR may make as shells), and what a DROP
-- took away. It runs as its owner, so that the DBA's command may write the table, and
-- without JIT (compiling its few-row queries cost a DBA's CREATE TABLE 0.7 s). What a
-- command renames by renaming what it depends on (a schema, a type) is not looked for: its
-- next row, or the release, weighs who may have named it (note_owners_of, object_owners).
CREATE FUNCTION permsync.note_owners()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $fn$
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
$fn$;

-- REASSIGN OWNED fires no event trigger: the owners it changes are found by the role
-- watcher, which calls this at each look. An object whose owner now (by its pg_shdepend
-- row, none for a pinned role such as the bootstrap superuser) is not the one its last row
-- here names was given away by a command permsync did not see. Each such object gets a row
-- of its owner now (its former owner's rows stay: a target that has not taken the change
-- may still release it at that role's DROP ROLE), and, where REASSIGN OWNED could have
-- made the change (the former owner owns nothing else here) under the name noted for the
-- former owner, a row in a batch (origin owner_watcher) that gives it the new owner on each
-- target where the object of that name is the former owner's (audit_log.classid, objid,
-- reassigned_from; plan/converge.ts). A dropped former owner's objects are noted only (see
-- object_owners), at most a batch's worth a look like the rest: their facts cost this
-- look, on no DBA's path. Only where the targets know both roles by the names
-- the source has for them now: a role the watcher has not carried yet (made, renamed,
-- dropped) waits for its next look, and an object whose last row is of no one (0) is not
-- looked at. `seen` is what the pg_shdepend write counters were at the last look: while
-- they stay the same nothing is read (NULL reads anyway; the counters lag and stop with
-- track_counts off). Returns the batch written (NULL when none), and the counters (NULL
-- when more is left to read).
CREATE FUNCTION permsync.capture_owner_changes(seen text)
RETURNS TABLE (batch bigint, counted text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $fn$
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
$fn$;

-- ── Drift and reconcile ───────────────────────────────────────────────────────────────
-- `permsync drift` and the daemon's scheduled check compare each environment with the
-- source, by name, and record the result here; `permsync reconcile --apply` converges an
-- environment and records what it ran as a batch (origin 'reconcile') with its outcome.

-- One row per environment and check. differences is NULL when the check could not run
-- (summary then holds {"error": ...}); otherwise summary counts the differences by
-- category ({"role": 1, "privileges": 3, ...}), with the statements that would converge
-- them ("statements") and how many of them the configuration excludes ("excluded_by_configuration").
CREATE TABLE permsync.drift_checks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment text NOT NULL,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    differences integer CHECK (differences >= 0),
    summary     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX drift_checks_env_idx ON permsync.drift_checks (environment, checked_at);

-- One row per environment (registered or checked): its last check, and when it last
-- matched the source. state: 'unchecked', 'error' (the last check could not run),
-- 'drifted' or 'matches'.
CREATE VIEW permsync.v_drift_status AS
SELECT e.environment,
       CASE WHEN l.id IS NULL THEN 'unchecked'
            WHEN l.differences IS NULL THEN 'error'
            WHEN l.differences > 0 THEN 'drifted'
            ELSE 'matches'
       END AS state,
       l.checked_at AS last_checked_at,
       l.differences AS last_differences,
       l.summary AS last_summary,
       (SELECT max(c.checked_at) FROM permsync.drift_checks c
         WHERE c.environment = e.environment AND c.differences = 0) AS last_matched_at
  FROM (SELECT name AS environment FROM permsync.environments
        UNION
        SELECT DISTINCT environment FROM permsync.drift_checks) e
  LEFT JOIN LATERAL (SELECT c.* FROM permsync.drift_checks c
                      WHERE c.environment = e.environment
                      ORDER BY c.checked_at DESC, c.id DESC LIMIT 1) l ON true
 ORDER BY e.environment;

-- The batches of an environment that replay could not carry whole since it last matched
-- the source: skipped because their statements could not be cut out of the query string
-- (result_message 'not replayable: ...'), or converged with some commands left out
-- ('not converged: ...'). Drift points them out, so that they are never silently dropped.
-- Security definer so that permsync_reader, who reads views only, may run drift.
CREATE FUNCTION permsync.unreplayable_since_match(env text)
RETURNS TABLE (batch_id bigint, commit_seq bigint, finished_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT x.batch_id, x.commit_seq, x.finished_at
      FROM permsync.execution_log x
     WHERE x.environment_name = env
       AND ((x.execution_status = 'skipped' AND x.result_message LIKE 'not replayable:%')
            OR (x.execution_status = 'success' AND x.result_message LIKE '%not converged: %'))
       AND x.finished_at > coalesce((SELECT max(c.checked_at) FROM permsync.drift_checks c
                                      WHERE c.environment = env AND c.differences = 0), '-infinity')
     ORDER BY x.commit_seq
$fn$;

-- Records a reconcile that has already committed on the environment: the batch (origin
-- 'reconcile', for that environment only, the plan masked in query_text, the statements
-- in the shape permsync.role_statement() gives them) and its execution_log row, status
-- success, in one transaction. The daemon must not carry such a batch again: its fetch
-- leaves origin 'reconcile' out (see docs/drift.md). commit_seq is taken now rather than
-- at commit, since the execution_log row needs it: assign_commit_seq's lock is then held
-- from nextval to commit all the same, so commit_seq order is still commit order.
-- Security definer: the daemon's role may not write batches directly.
CREATE FUNCTION permsync.record_reconcile(
    env text, plan_text text, plan_masked boolean, statements jsonb, applied_sql text,
    started_at timestamptz, finished_at timestamptz, duration_ms numeric, result_message text,
    server_version text, connection_time_ms numeric)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- An environment added to a running daemon's configuration is brought to the source's
-- state before it follows the batches: a batch (origin 'bootstrap') aimed at it, which the
-- daemon applies there as `permsync reconcile` would (drift's plan), in commit order.
CREATE FUNCTION permsync.request_bootstrap(env text)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO permsync.batches (origin, query_text, target_environment, current_user_name, current_user_is_superuser, search_path)
    SELECT 'bootstrap', format('/* permsync: environment %s added to the configuration: brought to the source''s state */', e.name),
           e.name, session_user, false, 'pg_catalog'
      FROM permsync.environments e WHERE e.name = env
    RETURNING id
$fn$;

-- ── The operator's surface ────────────────────────────────────────────────────────────
-- Views to watch the pipeline, functions to steer it. What an operator asks for is
-- stored state, written only by these security definer functions (granted to the
-- permsync_* roles): the switches in permsync.config, environments.paused and
-- environments.retry_requested. Each also leaves a row in permsync.operator_actions and
-- wakes the daemon (permsync_control, no payload).

-- One row per committed batch and environment it concerns: the outcome there, and whether
-- the environment is done with it. "finished" is the daemon's own rule (RESUME_POINT in
-- src/source/queries.ts): success, skipped and dry_run are finished; a permanent failure
-- is finished only where on_permanent_failure = 'continue'; a batch at or before
-- start_after_seq is behind the environment. Every lag figure below derives from here.
CREATE VIEW permsync.v_batch_outcomes AS
SELECT b.id AS batch_id,
       b.commit_seq,
       b.committed_at,
       e.name AS environment_name,
       coalesce(x.execution_status, 'pending') AS status,
       x.failure_kind,
       x.error_code,
       x.result_message,
       x.finished_at,
       b.commit_seq <= e.start_after_seq
         OR coalesce(x.execution_status IN ('success', 'skipped', 'dry_run')
                     OR (x.execution_status = 'failed' AND x.failure_kind = 'permanent'
                         AND e.on_permanent_failure = 'continue'), false) AS finished
  FROM permsync.batches b
  JOIN permsync.environments e ON b.target_environment IS NULL OR b.target_environment = e.name
  LEFT JOIN permsync.execution_log x ON x.batch_id = b.id AND x.environment_name = e.name
 WHERE b.commit_seq IS NOT NULL
   AND (b.commit_seq > e.start_after_seq OR x.id IS NOT NULL);

-- One row per operator action. acted_by is the login (session_user), as in the batches.
CREATE TABLE permsync.operator_actions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    acted_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    acted_by         name NOT NULL DEFAULT session_user,
    action           text NOT NULL,
    environment_name text,
    batch_id         bigint,
    reason           text
);

-- Append-only, as audit_log: no UPDATE, DELETE or TRUNCATE, whoever asks (the owner, a
-- superuser, can drop the trigger; nobody else can get past it).
CREATE FUNCTION permsync.operator_actions_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION 'permsync.operator_actions is append-only: % refused', tg_op
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER operator_actions_append_only
    BEFORE UPDATE OR DELETE ON permsync.operator_actions
    FOR EACH ROW EXECUTE FUNCTION permsync.operator_actions_guard();
CREATE TRIGGER operator_actions_no_truncate
    BEFORE TRUNCATE ON permsync.operator_actions
    FOR EACH STATEMENT EXECUTE FUNCTION permsync.operator_actions_guard();

CREATE VIEW permsync.v_operator_actions AS
SELECT a.id, a.acted_at, a.acted_by, a.action, a.environment_name, a.batch_id, b.commit_seq, a.reason
  FROM permsync.operator_actions a
  LEFT JOIN permsync.batches b ON b.id = a.batch_id
 ORDER BY a.id DESC;

-- Helpers of the control functions, granted to nobody: they run as the owner, from the
-- functions that call them. record_control records an action and wakes the daemon
-- (notify_control, for an action on no batch); set_switch writes a switch.
CREATE FUNCTION permsync.record_control(action text, env text, batch bigint, reason text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO permsync.operator_actions (action, environment_name, batch_id, reason) VALUES (action, env, batch, reason);
    SELECT permsync.wake('permsync_control', '');
$fn$;

CREATE FUNCTION permsync.notify_control(action text, env text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.record_control(action, env, NULL, NULL) $fn$;

CREATE FUNCTION permsync.set_switch(switch text, turn_on boolean, action text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO permsync.config (key, value, updated_at) VALUES (switch, turn_on::text, now())
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
    SELECT permsync.notify_control(action, NULL);
$fn$;

-- Raises undefined_object, naming the environment and the known ones, unless it exists.
CREATE FUNCTION permsync.require_environment(env text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- The global switches. permsync.config rows sync_enabled and dry_run are read by the
-- daemon at start and at each poll.
CREATE FUNCTION permsync.enable_sync() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('sync_enabled', true, 'enable_sync') $fn$;

CREATE FUNCTION permsync.disable_sync() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('sync_enabled', false, 'disable_sync') $fn$;

CREATE FUNCTION permsync.enable_dry_run() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('dry_run', true, 'enable_dry_run') $fn$;

CREATE FUNCTION permsync.disable_dry_run() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('dry_run', false, 'disable_dry_run') $fn$;

-- Capturing password verifiers (sync_passwords) is an admin's switch too: the daemon's
-- role may write permsync.config (it mirrors its settings there) but not this key, or it
-- could turn capture on and read every verifier, superusers' included.
CREATE FUNCTION permsync.enable_password_sync() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('sync_passwords', true, 'enable_password_sync') $fn$;

CREATE FUNCTION permsync.disable_password_sync() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT permsync.set_switch('sync_passwords', false, 'disable_password_sync') $fn$;

-- sync_enabled, dry_run and sync_passwords are written only by the owner, which is who the
-- security definer control functions run as, and superusers (the DBAs, whom no trigger
-- binds anyway). Anyone else (the daemon's role, which may write the rest of the table) is
-- refused, naming the function to use.
CREATE FUNCTION permsync.config_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

CREATE TRIGGER config_switches
    BEFORE INSERT OR UPDATE OR DELETE ON permsync.config
    FOR EACH ROW EXECUTE FUNCTION permsync.config_guard();

-- Before sync_passwords changes (enable_password_sync(), disable_password_sync(), or a
-- superuser's own write), the role changes made so far are captured under the setting
-- they were made under: a password given just before capture is turned off still
-- travels. Fires after config_switches (triggers fire by name), so a refused write
-- captures nothing. The capture holds the snapshot's lock until the admin commits.
CREATE FUNCTION permsync.capture_before_password_switch()
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

CREATE TRIGGER config_verifier_capture
    BEFORE INSERT OR UPDATE OR DELETE ON permsync.config
    FOR EACH ROW EXECUTE FUNCTION permsync.capture_before_password_switch();

-- paused survives daemon restarts: the daemon's mirror of its configuration never writes it.
CREATE FUNCTION permsync.pause_environment(env text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM permsync.require_environment(env);
    UPDATE permsync.environments e SET paused = true WHERE e.name = env;
    PERFORM permsync.notify_control('pause', env);
END
$fn$;

CREATE FUNCTION permsync.resume_environment(env text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM permsync.require_environment(env);
    UPDATE permsync.environments e SET paused = false WHERE e.name = env;
    PERFORM permsync.notify_control('resume', env);
END
$fn$;

-- Queues SQL for every environment, or only env, as a batch like the captured ones: it is
-- ordered at commit and carried by the same pipeline. On each target it runs as the
-- caller's login (session_user), as a captured statement runs as its author: an operator
-- cannot get there what it may not do itself. invoker_search_path says how to read
-- unqualified names; its default is the caller's. As capture does, it stores every string
-- literal masked; SQL whose literals read differently with and without
-- standard_conforming_strings is refused rather than stored (the operator can write it
-- otherwise, where capture could only withhold it), and so is SQL over the 64 kB the
-- daemon reads of one batch.
CREATE FUNCTION permsync.manual_sync(
    sql text,
    env text DEFAULT NULL,
    invoker_search_path text DEFAULT pg_catalog.current_setting('search_path'))
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- The failed executions a retry re-attempts: the one each environment (or env) waits on.
-- The request is stored (retry_requested): a daemon that is down or reconnecting carries
-- it out when it next reads the source.
CREATE FUNCTION permsync.retry_failed(env text DEFAULT NULL)
RETURNS TABLE (environment_name text, batch_id bigint, commit_seq bigint, failure_kind text,
               error_code text, error_message text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- Gives up on one batch in one environment: its outcome there becomes 'skipped', with who
-- skipped it and why, and the environment goes on with the batches after it. Any batch
-- the environment has yet to finish may be skipped: the one it is held on, one it keeps
-- failing on, or one further on that is known not to apply there. The daemon never runs
-- a batch with a finished outcome, and never overwrites one (RECORD_EXECUTIONS updates a
-- failure only). The unique (batch_id, environment_name) key orders a skip and the
-- daemon's own log write of the same batch: whichever commits first stands, and a skip
-- that comes second is refused, naming the outcome.
CREATE FUNCTION permsync.skip_batch(env text, batch bigint, reason text)
RETURNS TABLE (environment_name text, batch_id bigint, commit_seq bigint, was text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

-- One row per environment. state, most urgent first:
--   disabled       enabled = false in the daemon's configuration: nothing is carried there
--   held           the oldest unfinished batch failed permanently: it waits for a person
--   failing        the oldest unfinished batch failed transiently: the daemon retries it
--   paused         pause_environment(): nothing is carried until resume_environment()
--   sync_disabled  disable_sync(): nothing is carried anywhere until enable_sync()
--   pending        batches wait and nothing failed: being carried, or no daemon runs
--   ok             nothing waits
-- Counts cover executions that finished in the last `hours` hours; role_conflicts counts
-- the open ones. Security definer so that permsync_reader, who reads views only, can read
-- v_environment_status built on it.
CREATE FUNCTION permsync.get_sync_status(hours integer DEFAULT 24)
RETURNS TABLE (environment text, label text, priority integer, enabled boolean, paused boolean,
               sync_enabled boolean, dry_run boolean, state text, last_success_at timestamptz,
               success_count bigint, failed_count bigint, skipped_count bigint, dry_run_count bigint,
               pending_batches bigint, oldest_pending_batch_id bigint, oldest_pending_age_seconds double precision,
               blocking_error_code text, blocking_error text, role_conflicts bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

CREATE VIEW permsync.v_environment_status AS
SELECT * FROM permsync.get_sync_status(24);

-- Batches committed in the last 7 days, newest first, with their outcome in each
-- environment they concern ('pending' where nothing is recorded yet).
CREATE VIEW permsync.v_recent_batches AS
SELECT b.id AS batch_id, b.commit_seq, b.origin, b.committed_at, b.session_user_name, b.current_user_name,
       b.target_environment,
       coalesce((SELECT array_agg(a.command_tag ORDER BY a.id) FROM permsync.audit_log a WHERE a.batch_id = b.id),
                '{}') AS command_tags,
       b.query_text, b.query_masked,
       coalesce(o.outcomes, '{}') AS outcomes,
       coalesce(o.success, 0) AS success_count,
       coalesce(o.failed, 0) AS failed_count,
       coalesce(o.skipped, 0) AS skipped_count,
       coalesce(o.dry_run, 0) AS dry_run_count,
       coalesce(o.unfinished, 0) AS unfinished_count
  FROM permsync.batches b
  LEFT JOIN LATERAL (
        SELECT jsonb_object_agg(o.environment_name, o.status) AS outcomes,
               count(*) FILTER (WHERE o.status = 'success') AS success,
               count(*) FILTER (WHERE o.status = 'failed') AS failed,
               count(*) FILTER (WHERE o.status = 'skipped') AS skipped,
               count(*) FILTER (WHERE o.status = 'dry_run') AS dry_run,
               count(*) FILTER (WHERE NOT o.finished) AS unfinished
          FROM permsync.v_batch_outcomes o WHERE o.batch_id = b.id) o ON true
 WHERE b.commit_seq IS NOT NULL AND b.committed_at > now() - interval '7 days'
 ORDER BY b.commit_seq DESC;

CREATE VIEW permsync.v_execution_details AS
SELECT x.id AS execution_id, x.batch_id, x.commit_seq, x.environment_name, e.label AS environment_label,
       b.origin, b.committed_at, b.session_user_name, b.current_user_name, b.target_environment,
       b.query_text, b.query_masked, x.applied_sql, x.execution_status, x.failure_kind,
       x.started_at, x.finished_at, x.duration_ms, x.result_message, x.error_code, x.error_detail, x.error_hint,
       x.retry_count, x.last_retry_at, x.server_version, x.connection_time_ms
  FROM permsync.execution_log x
  JOIN permsync.batches b ON b.id = x.batch_id
  LEFT JOIN permsync.environments e ON e.name = x.environment_name;

-- retry_state: 'retrying' (transient: the daemon tries again at next_attempt_at),
-- 'held' (permanent: the environment waits until permsync.retry_failed() or a restart),
-- 'passed' (permanent, and the environment continues past failures: never re-attempted;
-- drift shows what is missing there).
CREATE VIEW permsync.v_failed_syncs AS
SELECT x.id AS execution_id, x.batch_id, x.commit_seq, x.environment_name, b.query_text, x.applied_sql,
       x.error_code, x.result_message AS error_message, x.error_detail, x.error_hint, x.failure_kind,
       CASE WHEN o.finished THEN 'passed'
            WHEN x.failure_kind = 'permanent' THEN 'held'
            ELSE 'retrying'
       END AS retry_state,
       x.retry_count, x.started_at AS first_attempt_at, x.finished_at AS last_attempt_at,
       r.attempts AS queued_attempts, r.next_attempt_at
  FROM permsync.execution_log x
  JOIN permsync.batches b ON b.id = x.batch_id
  LEFT JOIN permsync.v_batch_outcomes o ON o.batch_id = x.batch_id AND o.environment_name = x.environment_name
  LEFT JOIN permsync.retry_queue r ON r.batch_id = x.batch_id AND r.environment_name = x.environment_name
 WHERE x.execution_status = 'failed'
 ORDER BY x.finished_at DESC;

-- Each permission command the capture saw, with its batch's outcome per environment.
CREATE VIEW permsync.v_audit_trail AS
SELECT a.id AS audit_id, a.logged_at, a.command_tag, a.object_type, a.object_identity, a.schema_name,
       a.in_extension, a.session_user_name, a.current_user_name, a.batch_id, b.commit_seq, b.origin,
       b.query_text, b.query_masked,
       coalesce((SELECT jsonb_object_agg(o.environment_name, o.status)
                   FROM permsync.v_batch_outcomes o WHERE o.batch_id = a.batch_id), '{}') AS outcomes
  FROM permsync.audit_log a
  JOIN permsync.batches b ON b.id = a.batch_id
 ORDER BY a.id DESC;

-- Durations cover executions that ran statements (success, failed); skipped and dry runs
-- take no time on the target and would only dilute the average. Days are in the session's
-- time zone.
CREATE VIEW permsync.v_sync_daily_summary AS
SELECT x.finished_at::date AS day, x.environment_name,
       count(*) AS executions,
       count(*) FILTER (WHERE x.execution_status = 'success') AS success_count,
       count(*) FILTER (WHERE x.execution_status = 'failed') AS failed_count,
       count(*) FILTER (WHERE x.execution_status = 'skipped') AS skipped_count,
       count(*) FILTER (WHERE x.execution_status = 'dry_run') AS dry_run_count,
       round(avg(x.duration_ms) FILTER (WHERE x.execution_status IN ('success', 'failed')), 3) AS avg_duration_ms,
       max(x.duration_ms) FILTER (WHERE x.execution_status IN ('success', 'failed')) AS max_duration_ms
  FROM permsync.execution_log x
 GROUP BY 1, 2
 ORDER BY 1 DESC, 2;

-- ── Retention ─────────────────────────────────────────────────────────────────────────
-- Deletes what the retention settings (config log_retention_days, audit_retention_days;
-- 90 and 365 when absent) let go:
-- * each environment's start_after_seq first moves up to where the daemon would resume
--   there (RESUME_POINT): the batches before it are finished in order, so they no longer
--   need their execution_log rows to count as finished. Without this, deleting an old
--   success row would make the daemon replay that batch at its next start.
-- * execution_log rows older than log_retention_days, at or before that point (or of an
--   environment no longer registered). A failure the environment still waits on stays.
-- * batches older than audit_retention_days that no enabled environment has left to
--   finish, with their audit_log, execution_log and retry_queue rows. A disabled
--   environment does not keep history alive: re-enabled, it is brought up to date by
--   reconcile.
-- permsync.retention = 'on' for the duration of the call is what the audit_log guard
-- lets through (see audit_log_guard).
CREATE FUNCTION permsync.cleanup_old_logs()
RETURNS TABLE (execution_log_deleted bigint, audit_log_deleted bigint, batches_deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET permsync.retention = 'on'
AS $fn$
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
$fn$;

-- UPDATE and TRUNCATE are refused always, DELETE unless it comes from cleanup_old_logs.
-- The GUC alone would prove nothing: any session can SET a custom parameter. What a
-- caller cannot fake is current_user: inside the security definer cleanup_old_logs it
-- is the function's owner, and the GUC is set only for the duration of that call (the
-- function's SET clause). So a DELETE passes only with both, and a role that merely
-- holds DELETE on the table, or sets the GUC, is refused. The owner, the installing
-- superuser, could set the GUC by hand and delete, and could disable the trigger
-- anyway: no trigger binds a superuser. This guards against everyone else, and against
-- accidents.
CREATE FUNCTION permsync.audit_log_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON permsync.audit_log
    FOR EACH ROW EXECUTE FUNCTION permsync.audit_log_guard();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON permsync.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION permsync.audit_log_guard();

-- ── Leadership ────────────────────────────────────────────────────────────────────────
-- The lease of the daemon that applies, one per daemon group (daemons configured with the
-- same `group` stand by for each other; each group applies to environments of its own):
-- its session (pid and backend_start tell it from a later session given the same pid), who
-- it is, since when it leads and until when the lease runs. Nobody is granted anything on
-- the table: daemons claim, renew and release through the functions below.
CREATE TABLE permsync.leader (
    group_name       text PRIMARY KEY CHECK (group_name ~ '^[A-Za-z0-9_.-]{1,63}$'),
    pid              integer,
    backend_start    timestamptz,
    user_name        name,
    application_name text,
    client_addr      inet,
    since            timestamptz,
    renewed_at       timestamptz,
    expires_at       timestamptz
);
REVOKE ALL ON permsync.leader FROM PUBLIC;

-- Claims the lease for the calling session, or renews it when that session holds it,
-- for lease_ms from now by the source's clock. It is free when nobody holds it, when
-- it has expired, or when its holder's session has ended (a daemon killed, its session
-- terminated: taken over at once, not at expiry). Returns whether the caller now leads, and the
-- holder (the caller, or the daemon standing in its way).
-- The holder's session counts as ended only if pg_stat_activity shows no session with
-- its pid, or one that started at another time: where the owner may not see other
-- users' backend_start (not a superuser, no pg_read_all_stats), it shows NULL, and the
-- lease is taken over only once it expires.
CREATE FUNCTION permsync.claim_leadership(lease_ms integer, daemon_group text DEFAULT 'default')
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
$fn$;

-- Gives the group's lease up, if the calling session holds it; returns whether it did.
CREATE FUNCTION permsync.release_leadership(daemon_group text DEFAULT 'default')
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    UPDATE permsync.leader l
       SET pid = NULL, backend_start = NULL, user_name = NULL, application_name = NULL, client_addr = NULL,
           since = NULL, renewed_at = NULL, expires_at = NULL
     WHERE l.group_name = daemon_group AND l.pid = pg_backend_pid()
       AND l.backend_start = (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid());
    RETURN FOUND;
END
$fn$;

-- Whether a daemon of the group leads now: its lease is held, unexpired, by a session that
-- is still there. Otherwise claim_leadership gives the lease to the caller, and an
-- environment of the group may be taken by another group's daemon.
CREATE FUNCTION permsync.group_leads(daemon_group text)
RETURNS boolean
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT EXISTS (SELECT FROM permsync.leader l
                    WHERE l.group_name = daemon_group AND l.expires_at > clock_timestamp()
                      AND EXISTS (SELECT FROM pg_stat_activity a
                                   WHERE a.pid = l.pid AND (a.backend_start IS NULL OR a.backend_start = l.backend_start)))
$fn$;

-- ── Roles and privileges ──────────────────────────────────────────────────────────────
-- Cluster-wide, so created only when missing (two databases of one cluster may both run
-- permsync), NOLOGIN: a DBA grants them to login roles, e.g.
--   GRANT permsync_daemon TO permsync_svc;   -- the login the daemon connects as
--   GRANT permsync_operator TO dba_team;
-- permsync_reader < permsync_operator < permsync_admin: each holds the one before it.
-- Uninstall leaves them in place (they may be granted to people, or used in another
-- database); see sql/uninstall.sql.
DO $do$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['permsync_admin', 'permsync_operator', 'permsync_reader', 'permsync_daemon'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object THEN
                NULL; -- created meanwhile by an install in another database
            END;
        END IF;
    END LOOP;
END
$do$;
GRANT permsync_reader TO permsync_operator;
GRANT permsync_operator TO permsync_admin;

-- Functions are executable by PUBLIC unless revoked, schema or not: revoke every one,
-- then grant each to the roles that need it. A migration that adds a function must do
-- the same (test/operator.test.ts checks that PUBLIC can execute none).
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA permsync, permsync_capture FROM PUBLIC;

-- permsync_reader: the views, nothing else (get_sync_status is what v_environment_status
-- reads, unreplayable_since_match what drift reads).
GRANT USAGE ON SCHEMA permsync TO permsync_reader;
GRANT SELECT ON permsync.v_environment_status, permsync.v_recent_batches, permsync.v_execution_details,
                permsync.v_failed_syncs, permsync.v_audit_trail, permsync.v_sync_daily_summary,
                permsync.v_batch_outcomes, permsync.v_drift_status, permsync.v_operator_actions,
                permsync.v_role_conflicts, permsync.v_managed_roles
   TO permsync_reader;
GRANT EXECUTE ON FUNCTION permsync.get_sync_status(integer), permsync.unreplayable_since_match(text) TO permsync_reader;

-- permsync_operator: also the tables, read-only, and the day-to-day controls. Not what
-- may hold password verifiers: batches.statements and role_snapshot (so SELECT * on
-- batches is refused; the views show everything else).
GRANT SELECT ON permsync.environments, permsync.sync_rules, permsync.config, permsync.audit_log,
                permsync.execution_log, permsync.retry_queue, permsync.schema_migrations,
                permsync.drift_checks, permsync.operator_actions, permsync.managed_roles, permsync.role_conflicts
   TO permsync_operator;
GRANT SELECT (id, commit_seq, origin, source_xid, statement_started_at, captured_at, committed_at, database_name,
              session_user_name, current_user_name, current_user_is_superuser, search_path, backend_pid,
              client_addr, application_name, query_text, query_masked, target_environment, not_replayable,
              converge_reason, precedes)
   ON permsync.batches TO permsync_operator;
GRANT EXECUTE ON FUNCTION permsync.manual_sync(text, text, text), permsync.retry_failed(text),
                          permsync.skip_batch(text, bigint, text),
                          permsync.pause_environment(text), permsync.resume_environment(text)
   TO permsync_operator;

-- permsync_admin: also the global switches and retention. No direct writes: the tables
-- are either logs, written only by capture and the daemon, or mirrors of the daemon's
-- configuration file, rewritten at each start; what an admin may change goes through a
-- function, which also tells the daemon. Recording a reconcile and handing a role over
-- (`permsync adopt`) are the daemon's login's or an admin's, from the CLI.
GRANT EXECUTE ON FUNCTION permsync.enable_sync(), permsync.disable_sync(), permsync.enable_dry_run(),
                          permsync.disable_dry_run(), permsync.enable_password_sync(),
                          permsync.disable_password_sync(), permsync.cleanup_old_logs()
   TO permsync_admin;

-- permsync_daemon: exactly what src/source/queries.ts and drift read, write and call. It
-- writes batches only through capture_role_changes and record_reconcile, and may not
-- touch paused, start_after_seq or retry_requested (operators' and retention's), the
-- switches (see config_guard), nor the audit log. Its UPDATE grants name columns: an
-- UPDATE on a whole table would let it LOCK that table in any mode (permsync.config,
-- which every role check on a DBA's path reads, say), and stall them all.
GRANT USAGE ON SCHEMA permsync TO permsync_daemon;
GRANT SELECT ON permsync.environments, permsync.sync_rules, permsync.config, permsync.batches,
                permsync.audit_log, permsync.execution_log, permsync.retry_queue, permsync.schema_migrations
   TO permsync_daemon;
GRANT EXECUTE ON FUNCTION permsync.capture_role_changes(), permsync.capture_owner_changes(text), permsync.role_state() TO permsync_daemon;
-- Retention runs on the daemon's schedule (settings.cleanup_cron).
GRANT EXECUTE ON FUNCTION permsync.cleanup_old_logs() TO permsync_daemon;
GRANT INSERT, UPDATE (label, priority, enabled, on_permanent_failure, group_name, in_flight_through, updated_at, server_identity, server_key)
    ON permsync.environments TO permsync_daemon;
GRANT INSERT, DELETE ON permsync.sync_rules TO permsync_daemon;
GRANT INSERT, UPDATE (value, updated_at) ON permsync.config TO permsync_daemon;
GRANT INSERT, UPDATE ON permsync.execution_log TO permsync_daemon;
GRANT INSERT, UPDATE, DELETE ON permsync.retry_queue TO permsync_daemon;
GRANT SELECT, INSERT ON permsync.drift_checks TO permsync_daemon;
GRANT EXECUTE ON FUNCTION permsync.unreplayable_since_match(text) TO permsync_daemon;
GRANT EXECUTE ON FUNCTION permsync.record_reconcile(text, text, boolean, jsonb, text, timestamptz, timestamptz,
                                                    numeric, text, text, numeric)
   TO permsync_daemon, permsync_admin;
GRANT EXECUTE ON FUNCTION permsync.claim_leadership(integer, text), permsync.release_leadership(text),
                          permsync.group_leads(text), permsync.request_bootstrap(text) TO permsync_daemon;
-- The daemon records the roles it creates, drops, renames, and the conflicts it meets.
GRANT SELECT, INSERT, DELETE, UPDATE (role_name, source_oid) ON permsync.managed_roles TO permsync_daemon, permsync_admin;
GRANT SELECT, INSERT, UPDATE (batch_id, reason, last_seen_at, resolved_at, resolution) ON permsync.role_conflicts
   TO permsync_daemon, permsync_admin;
GRANT SELECT ON permsync.v_managed_roles TO permsync_daemon;
-- The release before a DROP ROLE reads whose the source's objects were, and notes whose they are.
GRANT SELECT ON permsync.object_owners TO permsync_daemon;
GRANT EXECUTE ON FUNCTION permsync.note_released_owners(jsonb) TO permsync_daemon;
GRANT EXECUTE ON FUNCTION permsync.object_facts(oid, oid) TO permsync_daemon;
GRANT EXECUTE ON FUNCTION permsync.join_server(text, text) TO permsync_daemon;

-- ── Capture starts ────────────────────────────────────────────────────────────────────
-- Last, so that nothing of the install itself is captured. The tags are the permission
-- commands, every ALTER that can change an owner (record_command keeps only those that
-- do), DROP OWNED, and CREATE SCHEMA for the GRANTs among its elements.
CREATE EVENT TRIGGER permsync_capture ON ddl_command_end
    WHEN TAG IN (
        'GRANT', 'REVOKE', 'ALTER DEFAULT PRIVILEGES',
        'ALTER TABLE', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER SEQUENCE', 'ALTER FOREIGN TABLE',
        'ALTER SCHEMA', 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER ROUTINE', 'ALTER AGGREGATE',
        'ALTER TYPE', 'ALTER DOMAIN', 'ALTER LANGUAGE', 'ALTER LARGE OBJECT',
        'ALTER FOREIGN DATA WRAPPER', 'ALTER SERVER', 'ALTER COLLATION', 'ALTER CONVERSION',
        'ALTER OPERATOR', 'ALTER OPERATOR CLASS', 'ALTER OPERATOR FAMILY', 'ALTER STATISTICS',
        'ALTER TEXT SEARCH CONFIGURATION', 'ALTER TEXT SEARCH DICTIONARY',
        'ALTER PUBLICATION', 'ALTER SUBSCRIPTION', 'DROP OWNED', 'CREATE SCHEMA')
    EXECUTE FUNCTION permsync.capture_permission_command();

-- What permsync_owners starts from: every object's owner now.
INSERT INTO permsync.object_owners (classid, objid, owner_oid, identity, own, parts, names, named)
SELECT DISTINCT d.classid, d.objid, f.owner_oid, f.identity, f.own, f.parts, f.names, true
  FROM pg_shdepend d
 CROSS JOIN LATERAL permsync.object_facts(d.classid, d.objid) f
 WHERE d.deptype = 'o' AND d.objsubid = 0
   AND d.dbid IN (0, (SELECT b.oid FROM pg_database b WHERE b.datname = current_database()));
CREATE EVENT TRIGGER permsync_owners ON ddl_command_end
    WHEN TAG IN (
        'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'CREATE VIEW', 'CREATE MATERIALIZED VIEW',
        'CREATE SEQUENCE', 'CREATE FOREIGN TABLE', 'IMPORT FOREIGN SCHEMA', 'CREATE SCHEMA',
        'CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE AGGREGATE', 'CREATE TYPE', 'CREATE DOMAIN',
        'CREATE LANGUAGE', 'CREATE FOREIGN DATA WRAPPER', 'CREATE SERVER', 'CREATE COLLATION',
        'CREATE CONVERSION', 'CREATE OPERATOR', 'CREATE OPERATOR CLASS', 'CREATE OPERATOR FAMILY',
        'CREATE STATISTICS', 'CREATE TEXT SEARCH CONFIGURATION', 'CREATE TEXT SEARCH DICTIONARY',
        'CREATE PUBLICATION', 'CREATE SUBSCRIPTION', 'CREATE EXTENSION', 'ALTER EXTENSION',
        'ALTER TABLE', 'ALTER INDEX', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER SEQUENCE',
        'ALTER FOREIGN TABLE', 'ALTER SCHEMA', 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER ROUTINE',
        'ALTER AGGREGATE', 'ALTER TYPE', 'ALTER DOMAIN', 'ALTER LANGUAGE',
        'ALTER FOREIGN DATA WRAPPER', 'ALTER SERVER', 'ALTER COLLATION', 'ALTER CONVERSION',
        'ALTER OPERATOR', 'ALTER OPERATOR CLASS', 'ALTER OPERATOR FAMILY', 'ALTER STATISTICS',
        'ALTER TEXT SEARCH CONFIGURATION', 'ALTER TEXT SEARCH DICTIONARY',
        'ALTER PUBLICATION', 'ALTER SUBSCRIPTION')
    EXECUTE FUNCTION permsync.note_owners();
CREATE EVENT TRIGGER permsync_owners_dropped ON sql_drop EXECUTE FUNCTION permsync.note_owners();
