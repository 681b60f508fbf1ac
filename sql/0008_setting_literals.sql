-- permsync 0008: a role setting's value is always a literal. Idempotent: safe to run again.
--
-- List settings (search_path and the like) were written back as stored, taken for SQL
-- list syntax. But a stored value need not be: `SELECT set_config('search_path', 'x;GRANT
-- ...', false); ALTER ROLE me SET search_path FROM CURRENT` stores any text, and any login
-- may do that for itself. The role watcher then generated `ALTER ROLE me SET search_path
-- TO x;GRANT ...`, which the daemon ran on every target as the sync user.
--
-- Now each element of the list is a string literal, as pg_dump writes them: split as
-- PostgreSQL splits a list setting (commas; double quotes kept apart, "" inside them is
-- one "). A value PostgreSQL wrote itself comes back the same. In search_path and
-- temp_tablespaces an unquoted element is an identifier, which PostgreSQL folds to lower
-- case (ASCII letters) when it reads it: so does this, for a raw value (set_config). Text
-- that is not a well-formed list becomes one literal: never more than a value.

CREATE OR REPLACE FUNCTION permsync.setting_value_sql(key text, value text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    identifiers boolean := lower(key) IN ('search_path', 'temp_tablespaces');
    literals    text[] := '{}';
    rest        text := value;
    quoted      text[];
    bare        text;
BEGIN
    IF lower(key) NOT IN ('search_path', 'temp_tablespaces', 'session_preload_libraries',
                          'local_preload_libraries', 'shared_preload_libraries', 'unix_socket_directories') THEN
        RETURN quote_literal(value);
    END IF;
    LOOP
        rest := ltrim(rest, E' \t\n\r\f');
        quoted := regexp_match(rest, '^"((?:[^"]|"")*)"');
        IF quoted IS NOT NULL THEN
            literals := literals || quote_literal(replace(quoted[1], '""', '"'));
            rest := substr(rest, length(quoted[1]) + 3);
        ELSE
            -- PostgreSQL's list splitting: whitespace is space, tab, newline, return, form feed.
            bare := substring(rest FROM '^[^", \t\n\r\f][^, \t\n\r\f]*');
            IF bare IS NULL THEN
                RETURN quote_literal(value);
            END IF;
            literals := literals || quote_literal(CASE WHEN identifiers THEN translate(bare, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') ELSE bare END);
            rest := substr(rest, length(bare) + 1);
        END IF;
        rest := ltrim(rest, E' \t\n\r\f');
        IF rest = '' THEN
            RETURN array_to_string(literals, ', ');
        ELSIF left(rest, 1) <> ',' THEN
            RETURN quote_literal(value);
        END IF;
        rest := substr(rest, 2);
    END LOOP;
END
$fn$;
