-- permsync 0009: a password is never stored, even where the masking cannot know how the
-- server read the string. Idempotent: safe to run again.
--
-- mask_string_literals lexes string literals as the session reads them when capture
-- runs. A client string that changes standard_conforming_strings was lexed by the server
-- with the setting it had when the string arrived, and a literal such as 'q\' hunter2 \'z'
-- then ends elsewhere than the mask thinks: part of a password stayed in the text. Such a
-- string (it mentions a password and standard_conforming_strings) is now withheld whole.
-- The daemon logs its batch as not replayable, with the reason; the drift check shows
-- what differs.

DO $do$
BEGIN
    -- The lexer keeps its name with a suffix; mask_string_literals becomes the guard around it.
    IF to_regprocedure('permsync.mask_string_literals_lexed(text, boolean)') IS NULL THEN
        ALTER FUNCTION permsync.mask_string_literals(text, boolean) RENAME TO mask_string_literals_lexed;
    END IF;
END
$do$;

CREATE OR REPLACE FUNCTION permsync.mask_string_literals(sql text, backslash_escapes boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF sql ~* 'standard_conforming_strings' THEN
        -- The daemon's planner knows this text (src/capture/plan.ts, WITHHELD_TEXT).
        RETURN '/* permsync: text withheld: it changes standard_conforming_strings and mentions a password */';
    END IF;
    RETURN permsync.mask_string_literals_lexed(sql, backslash_escapes);
END
$fn$;
REVOKE ALL ON FUNCTION permsync.mask_string_literals(text, boolean) FROM PUBLIC;
