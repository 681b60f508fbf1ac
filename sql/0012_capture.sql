-- permsync 0012: capture that is bounded, masks every literal, never fails the DBA over
-- its masking, leaves temporary objects behind, and says when a string cannot be
-- replayed. Idempotent: safe to run again.
--
--   * Every string literal of a captured string is masked, whether or not the string
--     mentions a password: a password can hide in dynamic SQL or an escaped option name.
--     Permission statements carry no literals, so readers and the daemon need nothing
--     the mask takes away. The lexer follows PostgreSQL's scanner (scan.l): tag and
--     identifier characters include every non-ASCII character, -- comments end at \n or
--     \r, /* */ nest, quoted strings continue across a newline in the state they were
--     in. It is masked both with and without standard_conforming_strings; where the two
--     disagree, or masking fails, the text is withheld. Its bodies hold no backslash in
--     a standard literal, so they compile whatever the session's setting.
--   * A string over 64 kB is stored as a note of its size; at most 1,000 permission
--     commands of one batch get audit rows, and a command after the first costs the
--     same whatever the size of the string.
--   * permsync.batches.not_replayable: why capture already knows the batch cannot be
--     replayed. The daemon logs such a batch as skipped with that reason.
--   * A transaction whose permission commands ran with permsync.capture off, in a string
--     that may commit several transactions, leaves a batch saying so: batches and
--     transactions of one string still pair up by position, however capture was turned off.
--   * Temporary objects: their names go with the batch (temp_objects), so that the daemon
--     does not replay a GRANT or REVOKE naming one (an owner change's audit row names its
--     object, schema pg_temp included).
--   * setting_value_sql is linear, and carries no value over 8 kB (see there).

ALTER TABLE permsync.batches ADD COLUMN IF NOT EXISTS not_replayable text;
ALTER TABLE permsync.batches ADD COLUMN IF NOT EXISTS temp_objects text[];
GRANT SELECT (not_replayable) ON permsync.batches TO permsync_operator;

-- Position of the command in its batch: how many a batch has is read from the index.
ALTER TABLE permsync.audit_log ADD COLUMN IF NOT EXISTS command_ordinal integer;
CREATE INDEX IF NOT EXISTS audit_log_batch_ordinal_idx ON permsync.audit_log (batch_id, command_ordinal);

-- A SQL text with the body of every string literal and dollar-quoted string replaced by
-- ********, read as PostgreSQL's scanner reads it with standard_conforming_strings on,
-- or off (backslash_escapes). One regular-expression pass cuts the text before each
-- character that can change the scanner's state (quotes, $, comment marks, backslash,
-- newlines); the walk over those pieces is the scanner's. Linear in the text.
CREATE OR REPLACE FUNCTION permsync.mask_literals(sql text, backslash_escapes boolean)
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
REVOKE ALL ON FUNCTION permsync.mask_literals(text, boolean) FROM PUBLIC;

-- The text with its literals masked, or NULL when the mask cannot be trusted: the server
-- lexed the string with the standard_conforming_strings it had when the string arrived,
-- which the string itself may have changed since (SET, RESET ALL, set_config), so both
-- readings are masked and must agree. An error while masking is the same as disagreeing.
CREATE OR REPLACE FUNCTION permsync.masked_text(sql text)
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
REVOKE ALL ON FUNCTION permsync.masked_text(text) FROM PUBLIC;

-- manual_sync's mask (sql/0003_operator.sql): the text masked, or withheld whole. The
-- second argument is 0001's; both readings are always masked now.
CREATE OR REPLACE FUNCTION permsync.mask_string_literals(sql text, backslash_escapes boolean DEFAULT false)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- The daemon's planner knows this text (src/capture/plan.ts, WITHHELD_TEXT).
    SELECT coalesce(permsync.masked_text(sql),
                    '/* permsync: text withheld: it mentions a password, and its string literals read differently with and without standard_conforming_strings */');
$fn$;
REVOKE ALL ON FUNCTION permsync.mask_string_literals(text, boolean) FROM PUBLIC;
DROP FUNCTION IF EXISTS permsync.mask_string_literals_lexed(text, boolean);

-- As in 0008, in one pass over the value: any login may store a long value for itself
-- (set_config, then SET ... FROM CURRENT), and splitting it element by element, copying
-- the rest each time, holds every role check (and the DBA's capture) for minutes. A
-- value over 8 kB is not carried at all: no setting needs that much, and each check would
-- pay for it. It becomes DEFAULT (the role has no such setting on the target), with the
-- reason in a comment that the execution log shows.
-- src/sql/quote.ts (settingValueSql) writes the same, byte for byte.
CREATE OR REPLACE FUNCTION permsync.setting_value_sql(key text, value text)
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

-- The names of the session's temporary relations and types (found through their
-- dependency on the temporary schema: an index lookup, not a scan of pg_class).
CREATE OR REPLACE FUNCTION permsync.temporary_object_names()
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
REVOKE ALL ON FUNCTION permsync.temporary_object_names() FROM PUBLIC;

-- As in 0006, with these changes (see the top of this file):
--   * the batch of this string and transaction is looked up first: a later command costs
--     an index lookup, whatever the size of the string;
--   * a string over 64 kB is stored as a note of its size, anything else with every
--     literal masked, or withheld when the mask cannot be trusted (masked_text);
--   * with permsync.capture off, nothing is recorded, except in a string that may commit
--     several transactions (it mentions COMMIT, END, ROLLBACK or ABORT): there the
--     transaction gets a batch saying so, so that the daemon pairs batches and
--     transactions by position (a transaction that turns capture off for some of its
--     commands is not replayed either);
--   * the names of the session's temporary objects go with the batch;
--   * at most 1,000 audit rows per batch; past that the batch is not replayable.
-- The literal limits are the daemon's too (src/capture/plan.ts).
CREATE OR REPLACE FUNCTION permsync_capture.record_command(
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
BEGIN
    -- Raises outside an event trigger: nobody can call this to forge a batch.
    SELECT * INTO cmd FROM pg_event_trigger_ddl_commands() LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT b.id, b.not_replayable, b.temp_objects INTO batch, reason, known
      FROM permsync.batches b
     WHERE b.backend_pid = pg_backend_pid() AND b.statement_started_at = statement_timestamp()
       AND b.source_xid = pg_current_xact_id() AND b.origin = 'event_trigger';

    IF batch IS NULL THEN
        query := current_query();
        IF octet_length(query) > text_limit THEN
            -- Every batch of such a string is withheld: how its transactions pair up is moot.
            IF capture_off OR (owner_change AND query !~* 'owner') THEN
                RETURN;
            END IF;
            stored := format('/* permsync: text withheld: the string is %s bytes, over the limit of %s */',
                             octet_length(query), text_limit);
            reason := format('the string is %s bytes, over the limit of %s that capture stores: its text was withheld; the next drift check shows what differs',
                             octet_length(query), text_limit);
        ELSE
            IF capture_off AND query !~* E'\\m(commit|end|rollback|abort)\\M' THEN
                RETURN;
            END IF;
            stored := permsync.masked_text(query);
            IF stored IS NULL THEN
                -- The daemon's planner knows this text (src/capture/plan.ts, WITHHELD_TEXT).
                stored := '/* permsync: text withheld: it mentions a password, and its string literals read differently with and without standard_conforming_strings */';
                reason := 'its string literals read differently with and without standard_conforming_strings, so they could not be masked with certainty: its text was withheld, so that no password is stored; the next drift check shows what differs';
            END IF;
            -- An ALTER counts only when the text holds the word OWNER outside string literals:
            -- the same text, and so the same answer, the daemon's planner gets.
            IF owner_change AND (CASE WHEN reason IS NULL THEN stored ELSE query END) !~* 'owner' THEN
                RETURN;
            END IF;
        END IF;
        IF capture_off THEN
            reason := 'its permission commands ran with permsync.capture off; the batch only keeps the string''s transactions in step';
        ELSIF NOT permsync.role_snapshot_matches(true) THEN
            -- Role changes made before this string go first (CREATE ROLE, then GRANT).
            PERFORM permsync.capture_role_changes();
        END IF;
        IF reason IS NULL AND pg_my_temp_schema() <> 0 THEN
            known := permsync.temporary_object_names();
            IF cardinality(known) > temp_limit THEN
                reason := format('the session had more than %s temporary objects; which statements name one cannot be told', temp_limit);
                known := NULL;
            END IF;
        END IF;
        INSERT INTO permsync.batches (query_text, query_masked, current_user_name, current_user_is_superuser,
                                      search_path, not_replayable, temp_objects)
        VALUES (stored, stored <> query, invoker,
                coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = invoker), false),
                invoker_search_path, reason, known)
        RETURNING id INTO batch;
        PERFORM permsync.wake('permsync', batch::text);
    ELSE
        IF owner_change AND reason IS NULL
           AND (SELECT b.query_text !~* 'owner' FROM permsync.batches b WHERE b.id = batch) THEN
            RETURN;
        END IF;
        IF capture_off AND reason IS NULL THEN
            reason := 'some of its permission commands ran with permsync.capture off';
            UPDATE permsync.batches b SET not_replayable = reason WHERE b.id = batch;
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
        IF reason IS NULL THEN
            UPDATE permsync.batches b
               SET not_replayable = format('the string ran more than %s permission commands in one transaction; capture recorded the first %s',
                                           command_limit, command_limit)
             WHERE b.id = batch;
        END IF;
        RETURN;
    END IF;
    -- One audit row per command: the command's first object stands for it. Each row keeps
    -- the identity it ran with, so the daemon can tell when a string changed role or
    -- search_path between its permission commands.
    INSERT INTO permsync.audit_log (batch_id, command_tag, object_type, object_identity, schema_name,
                                    in_extension, current_user_name, search_path, command_ordinal)
    VALUES (batch, command_tag, cmd.object_type, cmd.object_identity, cmd.schema_name,
            cmd.in_extension, invoker, invoker_search_path, ordinal);
END
$fn$;

-- As in 0007, without the checks it made before calling record_command: capture off
-- and the ALTER filter are record_command's now. The only expression left is the call.
CREATE OR REPLACE FUNCTION permsync.capture_permission_command()
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
