-- permsync 0016: manual_sync stores what capture would. Idempotent: safe to run again.
--
-- As capture does (0012), every string literal of the SQL an operator queues is masked,
-- whether or not it says "password", and SQL whose literals read differently with and
-- without standard_conforming_strings is refused rather than stored: the operator can
-- write it otherwise, where capture could only withhold it. So is SQL over the 64 kB the
-- daemon reads of one batch.

CREATE OR REPLACE FUNCTION permsync.manual_sync(
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
                                  current_user_is_superuser, search_path, target_environment)
    VALUES ('manual', masked, masked <> sql, session_user,
            coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user), false),
            invoker_search_path, env)
    RETURNING id INTO batch;
    PERFORM permsync.wake('permsync', batch::text);
    RETURN batch;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.manual_sync(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permsync.manual_sync(text, text, text) TO permsync_operator;
