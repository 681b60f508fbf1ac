-- permsync 0009: a password is never stored, even where the masking cannot know how the
-- server read the string. Idempotent: safe to run again.
--
-- mask_string_literals lexes string literals as the session reads them when capture
-- runs. The server lexed the client string with the standard_conforming_strings it had
-- when the string arrived, which the string itself may have changed since (SET, RESET ALL,
-- set_config): a literal such as 'q\' hunter2 \'z' then ends elsewhere than the mask
-- thinks, and part of a password stayed in the text. Now the text is masked both ways; if
-- the two disagree, no mask can be trusted and the text is withheld whole. The daemon
-- logs its batch as not replayable, with the reason; the drift check shows what differs.

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
DECLARE
    masked text := permsync.mask_string_literals_lexed(sql, backslash_escapes);
BEGIN
    IF masked <> permsync.mask_string_literals_lexed(sql, NOT backslash_escapes) THEN
        -- The daemon's planner knows this text (src/capture/plan.ts, WITHHELD_TEXT).
        RETURN '/* permsync: text withheld: it mentions a password, and its string literals read differently with and without standard_conforming_strings */';
    END IF;
    RETURN masked;
END
$fn$;
REVOKE ALL ON FUNCTION permsync.mask_string_literals(text, boolean) FROM PUBLIC;
