import type pg from 'pg';

/** Whether two ACLs hold different privileges, whatever the order of their items. */
const changedSinceMade = (acl: string, initial: string) => `
  EXISTS ((SELECT * FROM aclexplode(${acl}) EXCEPT SELECT * FROM aclexplode(${initial}))
          UNION ALL (SELECT * FROM aclexplode(${initial}) EXCEPT SELECT * FROM aclexplode(${acl})))`;

/**
 * Every privilege, owner and default privilege on the user objects of a database, its
 * languages, foreign-data wrappers and servers, the owners of its objects that hold no
 * privileges, and the privileges of system relations and routines changed since they were
 * made, as sorted lines: two databases hold the same permissions when their
 * snapshots are equal. An ACL equal to its object's default prints as none, as in pg_dump.
 */
const SNAPSHOT = `
WITH user_ns AS (
  SELECT oid, nspname, nspowner, nspacl FROM pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'permsync', 'permsync_capture')
     AND nspname NOT LIKE 'pg\\_%'
),
acl AS (
  SELECT 'schema ' || quote_ident(n.nspname) AS object, n.nspowner AS owner, n.nspacl AS acl FROM user_ns n
  UNION ALL
  SELECT c.relkind::text || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relowner, c.relacl
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', 'm', 'S', 'f', 'p')
  UNION ALL
  SELECT 'column ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(a.attname), NULL, a.attacl
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN user_ns n ON n.oid = c.relnamespace
   WHERE a.attacl IS NOT NULL AND a.attnum > 0
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure::text, p.proowner, p.proacl
    FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
  UNION ALL
  SELECT 'type ' || t.oid::regtype::text, t.typowner, t.typacl
    FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace WHERE t.typtype IN ('d', 'e')
  UNION ALL
  SELECT 'language ' || quote_ident(l.lanname), l.lanowner, l.lanacl FROM pg_language l
  UNION ALL
  SELECT 'foreign-data wrapper ' || quote_ident(w.fdwname), w.fdwowner, w.fdwacl FROM pg_foreign_data_wrapper w
  UNION ALL
  SELECT 'server ' || quote_ident(s.srvname), s.srvowner, s.srvacl FROM pg_foreign_server s
  UNION ALL
  SELECT 'collation ' || quote_ident(n.nspname) || '.' || quote_ident(c.collname), c.collowner, NULL
    FROM pg_collation c JOIN user_ns n ON n.oid = c.collnamespace
  UNION ALL
  SELECT 'conversion ' || quote_ident(n.nspname) || '.' || quote_ident(c.conname), c.conowner, NULL
    FROM pg_conversion c JOIN user_ns n ON n.oid = c.connamespace
  UNION ALL
  SELECT 'operator ' || o.oid::regoperator::text, o.oprowner, NULL
    FROM pg_operator o JOIN user_ns n ON n.oid = o.oprnamespace
  UNION ALL
  SELECT 'operator class ' || quote_ident(n.nspname) || '.' || quote_ident(c.opcname) || ' using ' || c.opcmethod::text, c.opcowner, NULL
    FROM pg_opclass c JOIN user_ns n ON n.oid = c.opcnamespace
  UNION ALL
  SELECT 'operator family ' || quote_ident(n.nspname) || '.' || quote_ident(f.opfname) || ' using ' || f.opfmethod::text, f.opfowner, NULL
    FROM pg_opfamily f JOIN user_ns n ON n.oid = f.opfnamespace
  UNION ALL
  SELECT 'statistics ' || quote_ident(n.nspname) || '.' || quote_ident(s.stxname), s.stxowner, NULL
    FROM pg_statistic_ext s JOIN user_ns n ON n.oid = s.stxnamespace
  UNION ALL
  SELECT 'text search configuration ' || c.oid::regconfig::text, c.cfgowner, NULL FROM pg_ts_config c JOIN user_ns n ON n.oid = c.cfgnamespace
  UNION ALL
  SELECT 'text search dictionary ' || d.oid::regdictionary::text, d.dictowner, NULL FROM pg_ts_dict d JOIN user_ns n ON n.oid = d.dictnamespace
  UNION ALL
  SELECT 'publication ' || quote_ident(p.pubname), p.pubowner, NULL FROM pg_publication p
  UNION ALL
  SELECT 'subscription ' || quote_ident(s.subname), s.subowner, NULL
    FROM pg_subscription s WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  UNION ALL
  -- Relations and routines of pg_catalog and information_schema whose privileges differ
  -- from those they were made with (pg_init_privs), as pg_dump prints them.
  SELECT c.relkind::text || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname), NULL, c.relacl
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_init_privs i ON i.objoid = c.oid AND i.classoid = 'pg_class'::regclass AND i.objsubid = 0
   WHERE n.nspname IN ('pg_catalog', 'information_schema') AND c.relacl IS DISTINCT FROM i.initprivs
     AND ${changedSinceMade("coalesce(c.relacl, acldefault('r', c.relowner))", "coalesce(i.initprivs, acldefault('r', c.relowner))")}
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure::text, NULL, p.proacl
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    LEFT JOIN pg_init_privs i ON i.objoid = p.oid AND i.classoid = 'pg_proc'::regclass AND i.objsubid = 0
   WHERE n.nspname IN ('pg_catalog', 'information_schema') AND p.proacl IS DISTINCT FROM i.initprivs
     AND ${changedSinceMade("coalesce(p.proacl, acldefault('f', p.proowner))", "coalesce(i.initprivs, acldefault('f', p.proowner))")}
  UNION ALL
  SELECT 'default ' || pg_get_userbyid(d.defaclrole) || ' in ' || coalesce(d.defaclnamespace::regnamespace::text, '*')
         || ' on ' || d.defaclobjtype::text, NULL, d.defaclacl
    FROM pg_default_acl d
)
-- The kind of default ACL each owned object has (acldefault): one equal to it is no grant,
-- as pg_dump prints none for it.
, defaults AS (
  SELECT acl.*, CASE WHEN owner IS NULL THEN NULL
                     WHEN object LIKE 'schema %' THEN 'n' WHEN object LIKE 'S %' THEN 's' WHEN object ~ '^[rvmfp] ' THEN 'r'
                     WHEN object LIKE 'function %' THEN 'f' WHEN object LIKE 'type %' THEN 'T'
                     WHEN object LIKE 'language %' THEN 'l' WHEN object LIKE 'foreign-data wrapper %' THEN 'F'
                     WHEN object LIKE 'server %' THEN 'S' END::"char" AS kind
    FROM acl
)
SELECT line FROM (
  SELECT object || ' owner ' || pg_get_userbyid(owner) AS line FROM acl WHERE owner IS NOT NULL
  UNION ALL
  SELECT object || ' ' || CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END
         || ' ' || x.privilege_type || CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
         || ' by ' || pg_get_userbyid(x.grantor)
    FROM defaults acl CROSS JOIN LATERAL aclexplode(acl.acl) x
   WHERE acl.kind IS NULL OR ${changedSinceMade('acl.acl', 'acldefault(acl.kind, acl.owner)')}
) lines ORDER BY line`;

export async function permissionSnapshot(client: pg.ClientBase | pg.Pool): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(SNAPSHOT);
  return rows.map((r) => r.line);
}

/** Privileges on one relation as `grantee privilege by grantor` lines. */
export async function relationPrivileges(client: pg.ClientBase | pg.Pool, relation: string): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(
    `SELECT CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END || ' ' || x.privilege_type
            || CASE WHEN x.is_grantable THEN '*' ELSE '' END || ' by ' || pg_get_userbyid(x.grantor) AS line
       FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) x
      WHERE c.oid = $1::regclass ORDER BY 1`,
    [relation],
  );
  return rows.map((r) => r.line);
}

/**
 * Every grant to or by the roles named `<prefix>_...` on a database (the current one shown
 * as {own}), a tablespace and, from PostgreSQL 15, the parameter work_mem, with its grantor,
 * as sorted lines.
 */
export async function sharedGrants(
  client: pg.ClientBase,
  prefix: string,
  objects: { database: string; tablespace: string; major: number },
): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(
    `SELECT o.what || ': ' || pg_get_userbyid(a.grantor) || ' granted ' || a.privilege_type || ' to '
            || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
            || CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END AS line
       FROM (SELECT 'database ' || CASE WHEN datname = current_database() THEN '{own}' ELSE datname END, datacl
               FROM pg_database WHERE datname IN (current_database(), $2)
             UNION ALL SELECT 'tablespace ' || spcname, spcacl FROM pg_tablespace WHERE spcname = $3
             ${objects.major >= 15 ? "UNION ALL SELECT 'parameter ' || parname, paracl FROM pg_parameter_acl WHERE parname = 'work_mem'" : ''}) o(what, acl)
      CROSS JOIN LATERAL aclexplode(o.acl) a
      WHERE starts_with(pg_get_userbyid(a.grantee), $1 || '_') OR starts_with(pg_get_userbyid(a.grantor), $1 || '_')
      ORDER BY 1`,
    [prefix, objects.database, objects.tablespace],
  );
  return rows.map((r) => r.line);
}
