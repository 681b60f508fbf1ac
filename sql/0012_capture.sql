-- permsync 0012: capture that stays bounded. Idempotent: safe to run again.
--
--   * setting_value_sql is linear, and carries no value over 8 kB (see there).

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
