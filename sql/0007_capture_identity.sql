-- permsync 0007: nobody can forge a batch. Idempotent: safe to run again.
--
-- record_command was executable by PUBLIC, taking the identity and search_path to replay
-- with as arguments. Its guard, pg_event_trigger_ddl_commands(), answers during any DDL
-- command once event triggers exist, not only inside one: a function called from a
-- column DEFAULT during a rewriting ALTER TABLE could write a batch claiming to be a
-- superuser's GRANT, which the daemon replayed as the sync user.
--
-- Now only the event trigger can reach record_command: the trigger function runs as its
-- owner (PostgreSQL calls a function returning event_trigger only as an event trigger),
-- and PUBLIC may no longer execute record_command. As the owner, the trigger function
-- cannot ask current_user who ran the command; it takes the session's identity: the role
-- set with SET ROLE, else the session user. That is who ran every statement typed in the
-- client string. A command run inside a SECURITY DEFINER function is recorded with the
-- caller's identity; such a command is not in the string, so it is never replayed.
-- Without a SET clause, current_setting('search_path') is still the session's.

-- Who ran the command, from the session's state: pinned search_path, unlike the trigger.
CREATE OR REPLACE FUNCTION permsync_capture.session_identity(role_setting text, session_name name)
RETURNS name
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN CASE role_setting WHEN 'none' THEN session_name ELSE role_setting::name END;
END
$fn$;
REVOKE ALL ON FUNCTION permsync_capture.session_identity(text, name) FROM PUBLIC;

-- Runs as its owner with the session's search_path (a SET clause would hide it), so any
-- code it ran through an operator or function found on that path would run as the owner:
-- every function and operator is qualified, and the deciding is left to functions with a
-- pinned search_path. Its only expressions: the capture switch, the ALTER filter, and
-- the call.
CREATE OR REPLACE FUNCTION permsync.capture_permission_command()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
AS $fn$
BEGIN
    IF pg_catalog.current_setting('permsync.capture', true) OPERATOR(pg_catalog.=) 'off' THEN
        RETURN;
    END IF;
    -- ALTER ... is captured only when it changes an owner. OWNER is a keyword and
    -- cannot be quoted or escaped, so a string without the word holds no owner change
    -- (record_command looks again, outside string literals).
    IF tg_tag OPERATOR(pg_catalog.~~) 'ALTER %' AND tg_tag OPERATOR(pg_catalog.<>) 'ALTER DEFAULT PRIVILEGES'
       AND pg_catalog.current_query() OPERATOR(pg_catalog.!~*) 'owner' THEN
        RETURN;
    END IF;
    PERFORM permsync_capture.record_command(
        tg_tag,
        permsync_capture.session_identity(pg_catalog.current_setting('role'), SESSION_USER),
        pg_catalog.current_setting('search_path'));
END
$fn$;
REVOKE ALL ON FUNCTION permsync.capture_permission_command() FROM PUBLIC;

REVOKE ALL ON FUNCTION permsync_capture.record_command(text, name, text) FROM PUBLIC;
