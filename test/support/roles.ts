import type pg from 'pg';

/**
 * The role catalogs of one server, as comparable lines, for the roles in scope (every
 * role permsync may manage: not built-in, not excluded). The source's and a target's
 * are equal when permsync has done its job. The current database's own name is left
 * out of settings and privileges, since each environment carries them to its own.
 */
export async function roleCatalog(client: pg.ClientBase, excluded: string[]): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(
    `WITH scope AS (
       SELECT oid, rolname FROM pg_authid WHERE oid >= 16384 AND NOT rolname = ANY ($1)
     )
     SELECT line FROM (
       SELECT format('role %s super=%s inherit=%s createrole=%s createdb=%s login=%s replication=%s bypassrls=%s connlimit=%s validuntil=%s password=%s comment=%s',
                     a.rolname, a.rolsuper, a.rolinherit, a.rolcreaterole, a.rolcreatedb, a.rolcanlogin, a.rolreplication,
                     a.rolbypassrls, a.rolconnlimit, a.rolvaliduntil, a.rolpassword, shobj_description(a.oid, 'pg_authid')) AS line
         FROM pg_authid a JOIN scope USING (oid)
       UNION ALL
       SELECT format('member %s in %s %s', pg_get_userbyid(m.member), pg_get_userbyid(m.roleid),
                     (to_jsonb(m) - 'oid' - 'roleid' - 'member' - 'grantor')::text)
         FROM pg_auth_members m WHERE m.member IN (SELECT oid FROM scope)
       UNION ALL
       SELECT format('setting %s in %s: %s', pg_get_userbyid(s.setrole),
                     CASE WHEN s.setdatabase = 0 THEN 'all' WHEN d.datname = current_database() THEN 'this' ELSE d.datname END,
                     array_to_string(s.setconfig, ','))
         FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
        WHERE s.setrole IN (SELECT oid FROM scope)
       UNION ALL
       SELECT format('database %s %s%s', CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
                     x.privilege_type, CASE WHEN x.is_grantable THEN '*' ELSE '' END)
         FROM pg_database d CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) x
        WHERE d.datname = current_database() AND x.grantee <> d.datdba
     ) lines ORDER BY line`,
    [excluded],
  );
  return rows.map((r) => r.line);
}
