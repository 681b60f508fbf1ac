-- Removes every object permsync installed on the source, the event triggers first so
-- that nothing is captured half-way through.
DROP EVENT TRIGGER IF EXISTS permsync_capture;
DROP EVENT TRIGGER IF EXISTS permsync_owners;
DROP EVENT TRIGGER IF EXISTS permsync_owners_dropped;
DROP SCHEMA IF EXISTS permsync_capture CASCADE;
DROP SCHEMA IF EXISTS permsync CASCADE;

-- The permsync_* roles stay: roles are cluster-wide, so another database of this cluster
-- may still run permsync, and a DBA may have granted them to people. Their privileges
-- here went with the schema. Say how to drop them, with the memberships that would go too.
DO $do$
DECLARE
    roles text;
    members text;
BEGIN
    SELECT string_agg(quote_ident(r.rolname), ', ' ORDER BY r.rolname) INTO roles
      FROM pg_catalog.pg_roles r
     WHERE r.rolname IN ('permsync_admin', 'permsync_operator', 'permsync_reader', 'permsync_daemon');
    IF roles IS NULL THEN
        RETURN;
    END IF;
    SELECT string_agg(format('%I in %I', m.rolname, r.rolname), ', ' ORDER BY r.rolname, m.rolname) INTO members
      FROM pg_catalog.pg_auth_members a
      JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
      JOIN pg_catalog.pg_roles m ON m.oid = a.member
     WHERE r.rolname IN ('permsync_admin', 'permsync_operator', 'permsync_reader', 'permsync_daemon')
       AND m.rolname NOT IN ('permsync_admin', 'permsync_operator', 'permsync_reader', 'permsync_daemon');
    RAISE NOTICE 'permsync roles kept (cluster-wide): %', roles
        USING HINT = 'when no database of this cluster runs permsync any more: DROP ROLE ' || roles || ';'
                     || coalesce(' (this also ends the memberships ' || members || ')', '');
END
$do$;
