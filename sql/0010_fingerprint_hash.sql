-- permsync 0010: role fingerprints a transaction cannot cancel out. Idempotent: safe to run again.
--
-- A catalog's fingerprint was (rows, sum of xmin mod 2^32). A transaction whose xid lies
-- between the xmins of the rows it rewrites can leave the sum as it was: rows written by
-- N and N+2, both rewritten by N+1, remove N + (N+2) and add 2(N+1). The change was
-- never captured, not even by the watcher (found by review, reproduced). Now the sum is
-- of a hash of each xmin (still found from age(xmin), see 0005): no arithmetic of xids
-- cancels out. The first check after this migration sees every fingerprint differ,
-- compares the role state itself, and finds nothing to carry.

CREATE OR REPLACE FUNCTION permsync.roles_fingerprint()
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
REVOKE ALL ON FUNCTION permsync.roles_fingerprint() FROM PUBLIC;

CREATE OR REPLACE FUNCTION permsync.role_fingerprint()
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    now_xid bigint := age('3'::xid)::bigint + 3;
    rest    text;
BEGIN
    IF has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        SELECT s.digest || '/' || d.digest || '/' || b.xmin INTO rest
          FROM (SELECT count(*) || ':' || coalesce(sum(hashint8(((now_xid - a) % 4294967296 + 4294967296) % 4294967296))
                                                     FILTER (WHERE a <> 2147483647), 0)
                  FROM (SELECT age(xmin) AS a FROM pg_db_role_setting) t) s(digest),
               (SELECT count(*) || ':' || coalesce(sum(hashint8(((now_xid - a) % 4294967296 + 4294967296) % 4294967296))
                                                     FILTER (WHERE a <> 2147483647), 0)
                  FROM (SELECT age(xmin) AS a FROM pg_shdescription) t) d(digest),
               (SELECT xmin::text FROM pg_database WHERE datname = current_database()) b(xmin);
    ELSE
        SELECT md5(concat_ws('/',
                 (SELECT string_agg(s::text, ',' ORDER BY s.setrole, s.setdatabase) FROM pg_db_role_setting s),
                 (SELECT string_agg(d.description, ',' ORDER BY d.objoid) FROM pg_shdescription d
                   WHERE d.classoid = 'pg_authid'::regclass),
                 (SELECT datacl::text FROM pg_database WHERE datname = current_database())))
          INTO rest;
    END IF;
    RETURN concat_ws('/', (SELECT value FROM permsync.config WHERE key = 'sync_passwords'),
                     permsync.roles_fingerprint(), rest);
END
$fn$;
