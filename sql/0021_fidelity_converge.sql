-- permsync 0021: what statement replay cannot carry is converged instead. Idempotent:
-- safe to run again.
--
--   * A permission command run by a function, a DO block or dynamic SQL is recorded as
--     such (audit_log.nested), with the statement it ran where PL/pgSQL names it in its
--     error context (audit_log.nested_text: the innermost statement, every literal masked,
--     8 kB at most). The daemon reads the objects it touched from there, and converges
--     them on each target to the source's state (src/apply/converge.ts).
--   * An owner change run that way is recorded when that statement names OWNER, as a
--     client string's is when it does (the word in a DO block's body is masked).
--   * CREATE SCHEMA fires the trigger too, and is recorded when its elements GRANT or
--     REVOKE: the statement cannot be replayed (it creates the schema), and its GRANTs
--     are converged the same way.
--   * Drift's hint line (unreplayable_since_match) also names the converged batches that
--     left some of their commands out.

ALTER TABLE permsync.audit_log ADD COLUMN IF NOT EXISTS nested boolean;
ALTER TABLE permsync.audit_log ADD COLUMN IF NOT EXISTS nested_text text;

-- As in 0012, with CREATE SCHEMA recorded only for its GRANT and REVOKE elements, and the
-- command's nesting and inner statement recorded (see the top of this file).
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
    nested_limit  constant integer := 8192;
    frames        text;
    inner_frames  text;
    inner_text    text;
    inner_owner   boolean;
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
    SELECT b.id, b.not_replayable, b.temp_objects INTO batch, reason, known
      FROM permsync.batches b
     WHERE b.backend_pid = pg_backend_pid() AND b.statement_started_at = statement_timestamp()
       AND b.source_xid = pg_current_xact_id() AND b.origin = 'event_trigger';

    IF batch IS NULL THEN
        query := current_query();
        IF octet_length(query) > text_limit THEN
            -- Every batch of such a string is withheld: how its transactions pair up is moot.
            IF capture_off OR (owner_change AND NOT inner_owner AND query !~* 'owner') THEN
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
            IF owner_change AND NOT inner_owner AND (CASE WHEN reason IS NULL THEN stored ELSE query END) !~* 'owner' THEN
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
        IF owner_change AND reason IS NULL AND NOT inner_owner
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
                                    in_extension, current_user_name, search_path, command_ordinal,
                                    nested, nested_text)
    VALUES (batch, command_tag, cmd.object_type, cmd.object_identity, cmd.schema_name,
            cmd.in_extension, invoker, invoker_search_path, ordinal,
            inner_frames IS NOT NULL, inner_text);
END
$fn$;
REVOKE ALL ON FUNCTION permsync_capture.record_command(text, name, text) FROM PUBLIC;

-- As in 0001, with CREATE SCHEMA (see record_command).
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
        'ALTER PUBLICATION', 'ALTER SUBSCRIPTION', 'DROP OWNED', 'CREATE SCHEMA')
    EXECUTE FUNCTION permsync.capture_permission_command();

-- As in 0004, with the converged batches that left commands out (their result_message
-- says 'not converged: ...'): drift points them out too.
CREATE OR REPLACE FUNCTION permsync.unreplayable_since_match(env text)
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
REVOKE ALL ON FUNCTION permsync.unreplayable_since_match(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permsync.unreplayable_since_match(text) TO permsync_reader, permsync_daemon;
