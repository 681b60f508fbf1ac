/**
 * The catalog reads behind drift: one database's roles and permission state, each kind in
 * one query so that a cluster with 10,000 roles and 100,000 grants is read in seconds.
 * They run in one read-only repeatable-read transaction (CATALOG_SESSION), so the kinds
 * agree with one another, with search_path = pg_catalog so that every type name PostgreSQL
 * renders (function signatures) is schema-qualified the same way on both sides.
 *
 * Names come back raw; TypeScript quotes them (src/sql/quote.ts). PUBLIC is ''.
 * Built-in roles (oid below 16384) are not read as roles, but can be grantees and owners.
 */

import { quoteLiteral } from '../sql/quote.js';

export const CATALOG_SESSION = [
  'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
  'SET LOCAL search_path = pg_catalog',
  // VALID UNTIL is compared as text: the same instant must print the same on both sides.
  "SET LOCAL TimeZone = 'UTC'",
  "SET LOCAL DateStyle = 'ISO, YMD'",
];

export const SESSION_FACTS = `
  SELECT current_setting('server_version_num')::int AS server_version_num,
         current_database() AS database,
         current_user AS user_name,
         (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
         has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS can_read_verifiers,
         CASE WHEN to_regprocedure('permsync.role_state()') IS NULL THEN false
              ELSE has_function_privilege('permsync.role_state()', 'EXECUTE') END AS has_role_state,
         CASE WHEN to_regclass('permsync.config') IS NULL THEN false
              ELSE has_table_privilege('permsync.config', 'SELECT') END AS can_read_switch`;

export const ROLES = `
  SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolinherit AS inherit, r.rolcreaterole AS createrole,
         r.rolcreatedb AS createdb, r.rolcanlogin AS login, r.rolreplication AS replication,
         r.rolbypassrls AS bypassrls, r.rolconnlimit AS connlimit, r.rolvaliduntil::text AS valid_until,
         shobj_description(r.oid, 'pg_authid') AS comment
    FROM pg_roles r
   WHERE r.oid >= 16384`;

/**
 * Every role's oid but the predefined ones': the roles the ROLES query reads, and the
 * bootstrap superuser, whose name initdb chose (it is no role of the source's to carry).
 */
export const ROLE_OIDS = `SELECT rolname AS name, oid::int8::float8 AS oid FROM pg_roles WHERE rolname !~ '^pg_'`;

/** Password verifiers, for a session that may read pg_authid. */
export const VERIFIERS = `SELECT rolname AS name, rolpassword AS password FROM pg_authid WHERE oid >= 16384`;

/**
 * The source's verifiers as the source captures them, whoever reads: role_state() runs as
 * the installing superuser and holds them only while an admin has verifier capture on
 * (and that superuser may read pg_authid). `captured` says whether it does; `verifiers`
 * are [name, verifier, size] triples, empty when it does not: the size of a verifier over
 * the 512 bytes it captures, in place of the verifier.
 */
export const CAPTURED_VERIFIERS = `
  SELECT (s.state ->> 'passwords')::boolean AS captured,
         (SELECT coalesce(json_agg(json_build_array(
                   r.value ->> 'name',
                   CASE WHEN jsonb_typeof(r.value -> 'password') <> 'object' THEN r.value ->> 'password' END,
                   (r.value -> 'password' ->> 'withheld')::int)), '[]')
            FROM jsonb_each(s.state -> 'roles') r
           WHERE (s.state ->> 'passwords')::boolean) AS verifiers
    FROM (SELECT permsync.role_state() AS state) s`;

/** Whether an admin has verifier capture on (permsync.enable_password_sync()), for a session that may read permsync.config. */
export const CAPTURE_SWITCH = `
  SELECT coalesce((SELECT value FROM permsync.config WHERE key = 'sync_passwords'), 'false') = 'true' AS on`;

/**
 * One row per membership and grantor (before 16, one per membership), as pg_dumpall shows
 * them: every membership but those among built-in roles (oid below 16384), the bootstrap
 * superuser's (oid 10) included. The grantor is null for the bootstrap superuser, whatever
 * initdb named it (a superuser's grant on 16+ is recorded as its), and for a role that no
 * longer exists.
 */
export const MEMBERSHIPS = `
  SELECT pg_get_userbyid(m.roleid) AS role, pg_get_userbyid(m.member) AS member,
         CASE WHEN m.grantor <> 10 THEN g.rolname END AS grantor,
         m.admin_option AS admin,
         (to_jsonb(m) ->> 'inherit_option')::boolean AS inherit,
         (to_jsonb(m) ->> 'set_option')::boolean AS set
    FROM pg_auth_members m
    LEFT JOIN pg_roles g ON g.oid = m.grantor
   WHERE m.member >= 16384 OR m.roleid >= 16384 OR m.member = 10`;

/**
 * ALTER ROLE [IN DATABASE] SET, the bootstrap superuser's (oid 10) included; \`here\` marks
 * the current database, which maps to the other side's.
 */
export const ROLE_SETTINGS = `
  SELECT pg_get_userbyid(s.setrole) AS role,
         d.datname AS database,
         d.datname IS NOT DISTINCT FROM current_database() AS here,
         split_part(c, '=', 1) AS key,
         substr(c, length(split_part(c, '=', 1)) + 2) AS value
    FROM pg_db_role_setting s
    LEFT JOIN pg_database d ON d.oid = s.setdatabase
   CROSS JOIN LATERAL unnest(s.setconfig) c
   WHERE s.setrole >= 16384 OR s.setrole = 10`;

/**
 * Each privilege of an ACL as a [grantee, privilege, grantable, grantor] tuple ('' is
 * PUBLIC). The grantor is null for the owner's grant (a superuser's is recorded as the
 * owner's), else the role that granted it through its grant option, as pg_dump shows it
 * with SET SESSION AUTHORIZATION.
 */
const GRANT_TUPLE = (owner: string) => `
  json_build_array(CASE x.grantee WHEN 0 THEN '' ELSE pg_get_userbyid(x.grantee) END, x.privilege_type, x.is_grantable,
                   CASE WHEN x.grantor = ${owner} THEN NULL ELSE pg_get_userbyid(x.grantor) END)`;

/**
 * The items of an ACL, exploded one by one: aclexplode() of a whole ACL reads it again for
 * each row it returns, and one granted to 10,000 roles took seconds (as in role_state()).
 */
const EXPLODED = (acl: string) => `unnest(${acl}) i CROSS JOIN LATERAL aclexplode(ARRAY[i]) x`;

/** The current database's owner and effective privileges (the defaults when datacl is NULL). */
export const DATABASE = `
  SELECT pg_get_userbyid(d.datdba) AS owner,
         (SELECT coalesce(json_agg(${GRANT_TUPLE('d.datdba')}), '[]')
            FROM ${EXPLODED("coalesce(d.datacl, acldefault('d', d.datdba))")}) AS grants
    FROM pg_database d
   WHERE d.datname = current_database()`;

/** Effective privileges of an ACL as GRANT_TUPLE tuples, but the owner's. */
const GRANTS_BUT_OWNER = (acl: string, owner: string) => `
  (SELECT coalesce(json_agg(${GRANT_TUPLE(owner)}), '[]')
     FROM ${EXPLODED(acl)} WHERE x.grantee <> ${owner})`;

/** The other databases of the cluster, with their privileges but their owners' (which follow from ownership). */
export const OTHER_DATABASES = `
  SELECT d.datname AS name, pg_get_userbyid(d.datdba) AS owner, ${GRANTS_BUT_OWNER("coalesce(d.datacl, acldefault('d', d.datdba))", 'd.datdba')} AS grants
    FROM pg_database d
   WHERE d.datname <> current_database()`;

/** Tablespaces, with their privileges but their owners'. */
export const TABLESPACES = `
  SELECT t.spcname AS name, pg_get_userbyid(t.spcowner) AS owner, ${GRANTS_BUT_OWNER("coalesce(t.spcacl, acldefault('t', t.spcowner))", 't.spcowner')} AS grants
    FROM pg_tablespace t`;

/** Privileges on parameters (PostgreSQL 15 and later), but the bootstrap superuser's, which every parameter has. */
export const PARAMETERS = `
  SELECT p.parname AS name, pg_get_userbyid(10) AS owner, ${GRANTS_BUT_OWNER('p.paracl', '10')} AS grants
    FROM pg_parameter_acl p`;

/**
 * Whose privileges each of the roles $1 has besides its own (has_privs_of_role: through
 * its memberships that inherit, in turn), as aclmask counts them; NULL for a superuser's,
 * which are every role's.
 */
export const PRIVILEGES_OF = `
  SELECT r.rolname AS name,
         CASE WHEN NOT r.rolsuper
              THEN ARRAY(SELECT o.rolname::text FROM pg_roles o WHERE o.oid <> r.oid AND pg_has_role(r.oid, o.oid, 'USAGE'))
         END AS privileges_of
    FROM pg_roles r
   WHERE r.rolname = ANY ($1::text[])`;

/**
 * One object's owner and privileges but the owner's, as above: a database ($1; the current
 * one where NULL), a tablespace, a parameter (15+: none where it has no row).
 */
export const SHARED_ACL = {
  database: `
    SELECT pg_get_userbyid(d.datdba) AS owner, ${GRANTS_BUT_OWNER("coalesce(d.datacl, acldefault('d', d.datdba))", 'd.datdba')} AS grants
      FROM pg_database d
     WHERE d.datname = coalesce($1, current_database())`,
  tablespace: `
    SELECT pg_get_userbyid(t.spcowner) AS owner, ${GRANTS_BUT_OWNER("coalesce(t.spcacl, acldefault('t', t.spcowner))", 't.spcowner')} AS grants
      FROM pg_tablespace t
     WHERE t.spcname = $1`,
  parameter: `
    SELECT pg_get_userbyid(10) AS owner,
           coalesce((SELECT ${GRANTS_BUT_OWNER('p.paracl', '10')} FROM pg_parameter_acl p WHERE p.parname = $1), '[]') AS grants`,
};

/** Objects in a schema that hold no privileges: kind, catalog, and its name, namespace and owner columns. */
const OWNED_ONLY = [
  ['collation', 'pg_collation', 'collname', 'collnamespace', 'collowner'],
  ['conversion', 'pg_conversion', 'conname', 'connamespace', 'conowner'],
  ['statistics object', 'pg_statistic_ext', 'stxname', 'stxnamespace', 'stxowner'],
  ['text search configuration', 'pg_ts_config', 'cfgname', 'cfgnamespace', 'cfgowner'],
  ['text search dictionary', 'pg_ts_dict', 'dictname', 'dictnamespace', 'dictowner'],
] as const;

/**
 * The schemas of PostgreSQL's own objects: of these, drift compares the privileges of
 * relations and routines that differ from what they were made with (OBJECTS).
 */
export const SYSTEM_SCHEMAS: ReadonlySet<string> = new Set(['pg_catalog', 'information_schema']);
const SYSTEM_SCHEMA_LIST = [...SYSTEM_SCHEMAS].map(quoteLiteral).join(', ');
/** The relations (pg_class c) and routines (pg_proc p) of those schemas (pg_namespace n). */
const IS_SYSTEM_RELATION = `n.nspname IN (${SYSTEM_SCHEMA_LIST}) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')`;
const IS_SYSTEM_ROUTINE = `n.nspname IN (${SYSTEM_SCHEMA_LIST})`;
/** A relation's kind (pg_class c), and a routine's (pg_proc p), as CatalogObject names them. */
const RELATION_KIND = `CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                          WHEN 'f' THEN 'foreign table' ELSE 'table' END`;
const ROUTINE_KIND = `CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END`;

/**
 * Every relation and routine of PostgreSQL's own schemas, without privileges: between
 * servers of different majors, a system object only one side has changed is compared
 * where the other has it too.
 */
export const SYSTEM_OBJECTS = `
  SELECT ${RELATION_KIND} AS kind, n.nspname AS schema, c.relname AS name, NULL::text AS args
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${IS_SYSTEM_RELATION}
  UNION ALL
  SELECT ${ROUTINE_KIND}, n.nspname, p.proname, oidvectortypes(p.proargtypes)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${IS_SYSTEM_ROUTINE}`;

/**
 * Every object permsync compares, with its owner and effective privileges (the defaults
 * when the ACL is NULL, so that NULL and an explicit ACL equal to it compare equal).
 * owner is NULL where ownership is not the object's own: columns, and sequences owned by
 * a table column (serial, identity), whose owner follows the table's; acl_owner is whose
 * grants count as the owner's (for those, the table's). Relations that
 * can hold column privileges list their columns, so that a column missing on one side is
 * seen as such rather than granted on. Schemas pg_* (pg_catalog, pg_toast*, temporary
 * ones), information_schema and permsync's own are out of scope; languages, foreign-data
 * wrappers and foreign servers, in no schema, are in, and so are the owners of objects
 * that hold no privileges (an empty ACL). classid and objid name the object in this
 * server's catalogs, where it has an owner of its own (the release before a DROP ROLE
 * looks it up in permsync.object_owners).
 */
export const OBJECTS = `
  WITH ns AS (
    SELECT oid, nspname, nspowner, nspacl FROM pg_namespace
     WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'permsync', 'permsync_capture')
  ),
  objects AS (
    SELECT 'schema' AS kind, n.nspname AS schema, NULL::name AS name, NULL::text AS args, n.nspowner AS owner,
           coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl, NULL::name[] AS columns, n.nspowner AS acl_owner,
           'pg_namespace'::regclass::oid AS classid, n.oid AS objid
      FROM ns n
    UNION ALL
    SELECT ${RELATION_KIND},
           n.nspname, c.relname, NULL,
           CASE WHEN c.relkind = 'S' AND EXISTS (
                       SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
                THEN NULL ELSE c.relowner END,
           coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner)),
           CASE WHEN c.relkind <> 'S' THEN
             (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
               WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) END,
           c.relowner, 'pg_class'::regclass, c.oid
      FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    UNION ALL
    SELECT ${ROUTINE_KIND}, n.nspname, p.proname, oidvectortypes(p.proargtypes), p.proowner,
           coalesce(p.proacl, acldefault('f', p.proowner)), NULL, p.proowner, 'pg_proc'::regclass, p.oid
      FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
    UNION ALL
    -- Types that are objects of their own: not array types, not the row types of tables,
    -- not multiranges (their privileges and owner follow their range type).
    SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, n.nspname, t.typname, NULL, t.typowner,
           coalesce(t.typacl, acldefault('T', t.typowner)), NULL, t.typowner, 'pg_type'::regclass, t.oid
      FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
     WHERE t.typtype IN ('b', 'c', 'd', 'e', 'r')
       AND (t.typtype <> 'c' OR EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c'))
       AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
    UNION ALL
    SELECT 'column', n.nspname, c.relname, a.attname, NULL, a.attacl, NULL, c.relowner, NULL, NULL
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN ns n ON n.oid = c.relnamespace
     WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    UNION ALL
    -- Objects in no schema whose privileges and owner pg_dump prints. A language's default
    -- ACL gives PUBLIC USAGE even where it is untrusted (no one but a superuser may use it).
    SELECT 'language', NULL, l.lanname, NULL, l.lanowner, coalesce(l.lanacl, acldefault('l', l.lanowner)), NULL, l.lanowner, 'pg_language'::regclass, l.oid
      FROM pg_language l
    UNION ALL
    SELECT 'foreign-data wrapper', NULL, w.fdwname, NULL, w.fdwowner, coalesce(w.fdwacl, acldefault('F', w.fdwowner)), NULL, w.fdwowner,
           'pg_foreign_data_wrapper'::regclass, w.oid
      FROM pg_foreign_data_wrapper w
    UNION ALL
    SELECT 'foreign server', NULL, s.srvname, NULL, s.srvowner, coalesce(s.srvacl, acldefault('S', s.srvowner)), NULL, s.srvowner,
           'pg_foreign_server'::regclass, s.oid
      FROM pg_foreign_server s
    UNION ALL
    -- Objects that hold no privileges: their owner alone, which pg_dump prints too.
    ${OWNED_ONLY.map(
      ([kind, table, name, namespace, owner]) =>
        `SELECT '${kind}', n.nspname, x.${name}, NULL, x.${owner}, '{}', NULL, x.${owner}, '${table}'::regclass, x.oid FROM ${table} x JOIN ns n ON n.oid = x.${namespace}`,
    ).join('\n    UNION ALL\n    ')}
    UNION ALL
    SELECT 'operator', n.nspname, o.oprname,
           CASE o.oprleft WHEN 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END || ', ' || format_type(o.oprright, NULL),
           o.oprowner, '{}', NULL, o.oprowner, 'pg_operator'::regclass, o.oid
      FROM pg_operator o JOIN ns n ON n.oid = o.oprnamespace
    UNION ALL
    SELECT 'operator class', n.nspname, c.opcname, a.amname, c.opcowner, '{}', NULL, c.opcowner, 'pg_opclass'::regclass, c.oid
      FROM pg_opclass c JOIN ns n ON n.oid = c.opcnamespace JOIN pg_am a ON a.oid = c.opcmethod
    UNION ALL
    SELECT 'operator family', n.nspname, f.opfname, a.amname, f.opfowner, '{}', NULL, f.opfowner, 'pg_opfamily'::regclass, f.oid
      FROM pg_opfamily f JOIN ns n ON n.oid = f.opfnamespace JOIN pg_am a ON a.oid = f.opfmethod
    UNION ALL
    SELECT 'publication', NULL, p.pubname, NULL, p.pubowner, '{}', NULL, p.pubowner, 'pg_publication'::regclass, p.oid
      FROM pg_publication p
    UNION ALL
    -- The columns every login may read (not subconninfo), of this database's subscriptions.
    SELECT 'subscription', NULL, s.subname, NULL, s.subowner, '{}', NULL, s.subowner, 'pg_subscription'::regclass, s.oid
      FROM pg_subscription s WHERE s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
    UNION ALL
    -- Event triggers, whose owner is a superuser; permsync's capture on the source is its own.
    SELECT 'event trigger', NULL, e.evtname, NULL, e.evtowner, '{}', NULL, e.evtowner, 'pg_event_trigger'::regclass, e.oid
      FROM pg_event_trigger e
     WHERE NOT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace fn ON fn.oid = p.pronamespace
                        WHERE p.oid = e.evtfoid AND fn.nspname IN ('permsync', 'permsync_capture'))
  ),
  -- Relations and routines of pg_catalog and information_schema whose privileges differ
  -- from those initdb or the extension that made them gave (pg_init_privs), as pg_dump
  -- prints them: monitoring tools' setups grant some. Their owner, the bootstrap
  -- superuser, is neither compared nor counted as a grantee (it is named apart on each
  -- server); a side that does not list one has the initial privileges.
  system AS (
    SELECT ${RELATION_KIND} AS kind, n.nspname AS schema, c.relname AS name, NULL::text AS args,
           coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl,
           coalesce(i.initprivs, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS initial_acl,
           c.relowner AS acl_owner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_init_privs i ON i.objoid = c.oid AND i.classoid = 'pg_class'::regclass AND i.objsubid = 0
     WHERE ${IS_SYSTEM_RELATION} AND c.relacl IS DISTINCT FROM i.initprivs
    UNION ALL
    SELECT ${ROUTINE_KIND}, n.nspname, p.proname, oidvectortypes(p.proargtypes),
           coalesce(p.proacl, acldefault('f', p.proowner)), coalesce(i.initprivs, acldefault('f', p.proowner)), p.proowner
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      LEFT JOIN pg_init_privs i ON i.objoid = p.oid AND i.classoid = 'pg_proc'::regclass AND i.objsubid = 0
     WHERE ${IS_SYSTEM_ROUTINE} AND p.proacl IS DISTINCT FROM i.initprivs
  )
  SELECT o.kind, o.schema, o.name, o.args, pg_get_userbyid(o.owner) AS owner, o.columns,
         (SELECT json_agg(${GRANT_TUPLE('o.acl_owner')}) FROM ${EXPLODED('o.acl')}) AS grants, NULL AS initial,
         o.classid, o.objid
    FROM objects o
  UNION ALL
  SELECT s.kind, s.schema, s.name, s.args, NULL, NULL,
         ${GRANTS_BUT_OWNER('s.acl', 's.acl_owner')}, ${GRANTS_BUT_OWNER('s.initial_acl', 's.acl_owner')}, NULL, NULL
    FROM system s`;

/**
 * Default privileges as differences from what PostgreSQL would do without them. A global
 * entry (no schema) replaces the built-in defaults (owner has everything, PUBLIC may
 * execute functions and use types), so it is compared with them: a privilege the entry
 * takes away is 'absent' where the built-in default is 'granted'. A per-schema entry only
 * adds. Rows equal to the built-in default are left out: a side without the row has it.
 */
export const DEFAULT_PRIVILEGES = `
  SELECT pg_get_userbyid(d.defaclrole) AS role, n.nspname AS schema, d.defaclobjtype::text AS object_type,
         CASE x.grantee WHEN 0 THEN '' ELSE pg_get_userbyid(x.grantee) END AS grantee,
         x.privilege, x.state, x.default_state
    FROM pg_default_acl d
    LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
   CROSS JOIN LATERAL (
         SELECT coalesce(a.grantee, z.grantee) AS grantee, coalesce(a.privilege_type, z.privilege_type) AS privilege,
                CASE WHEN a.grantee IS NULL THEN 'absent' WHEN a.is_grantable THEN 'grantable' ELSE 'granted' END AS state,
                CASE WHEN z.grantee IS NULL THEN 'absent' WHEN z.is_grantable THEN 'grantable' ELSE 'granted' END AS default_state
           FROM (SELECT x.* FROM ${EXPLODED('d.defaclacl')}) a
           FULL JOIN (SELECT * FROM aclexplode(acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END::"char",
                                                          d.defaclrole))
                       WHERE d.defaclnamespace = 0) z
             ON z.grantee = a.grantee AND z.privilege_type = a.privilege_type) x
   WHERE x.state <> x.default_state`;

/**
 * The server's system identifier and postmaster start time (readServerIdentity), as columns
 * joined by the caller: no function or operator here resolves through the session's
 * search_path, where a login of the target may have put a look-alike.
 */
export const SERVER_IDENTITY = `SELECT (SELECT s.system_identifier FROM pg_catalog.pg_control_system() s) AS id,
  EXTRACT(epoch FROM pg_catalog.pg_postmaster_start_time()) AS started`;

/** Its start time and port, where the system identifier may not be read. */
export const SERVER_START = `SELECT 'start' AS id, EXTRACT(epoch FROM pg_catalog.pg_postmaster_start_time()) AS started,
  pg_catalog.current_setting('port') AS port`;

/**
 * The identity each object in $1 (its "classid/objid") has, with its own name (a
 * relation's with its kind), as permsync.object_facts gives them
 * (permsync.capture_owner_changes recorded them so): from the catalog's rows in this
 * snapshot, as the objects' names and kinds are read (pg_identify_object reads the newest).
 * None for one that is gone, or that shows two.
 */
export const IDENTITIES = `
  SELECT w.address, pg_catalog.min(f.identity || ' / ' || f.own) AS identity
    FROM (SELECT a AS address, pg_catalog.split_part(a, '/', 1)::oid AS classid, pg_catalog.split_part(a, '/', 2)::oid AS objid
            FROM pg_catalog.unnest($1::text[]) a) w
   CROSS JOIN LATERAL permsync.object_facts(w.classid, w.objid) f
   GROUP BY w.address
  HAVING pg_catalog.count(DISTINCT f.identity || ' / ' || f.own) = 1`;
