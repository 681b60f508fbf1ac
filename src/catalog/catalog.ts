import type pg from 'pg';
import * as catalogSql from './catalog-queries.js';
import type { PrivilegesOf } from './grant-chains.js';
import { PARAMETER_PRIVILEGES_SINCE } from '../pg-versions.js';
import { classifyError, SQLSTATE } from '../errors.js';

/** PUBLIC, as a grantee name: no role can be named with the empty string. */
export const PUBLIC = '';

/** The first oid of a role a user created; below it, PostgreSQL's own roles and the bootstrap superuser. */
export const FIRST_USER_OID = 16384;

export interface RoleState {
  name: string;
  superuser: boolean;
  inherit: boolean;
  createrole: boolean;
  createdb: boolean;
  login: boolean;
  replication: boolean;
  bypassrls: boolean;
  connlimit: number;
  validUntil: string | null;
  comment: string | null;
  /** The verifier (null: no password); undefined when it could not be read, or is withheld. */
  password?: string | null;
  /** The size of the source's verifier where it is over the 512 bytes the source captures (then not carried). */
  passwordWithheld?: number;
}

export interface Membership {
  role: string;
  member: string;
  /** Who granted it (one row each on 16+); null: the bootstrap superuser, or a role gone (before 16). */
  grantor: string | null;
  admin: boolean;
  /** PostgreSQL 16 and later. */
  inherit: boolean | null;
  set: boolean | null;
}

export interface RoleSetting {
  role: string;
  /** null: every database. */
  database: string | null;
  /** The setting is for the current database (which maps to the other side's). */
  here: boolean;
  key: string;
  value: string;
}

export interface Grant {
  grantee: string;
  privilege: string;
  grantable: boolean;
  /** null for the owner's grant (a superuser's is recorded as the owner's), else the role that granted it through its grant option. */
  grantor: string | null;
}

export type ObjectKind =
  | 'schema'
  | 'table'
  | 'view'
  | 'materialized view'
  | 'sequence'
  | 'foreign table'
  | 'function'
  | 'procedure'
  | 'aggregate'
  | 'type'
  | 'domain'
  | 'column'
  | 'language'
  | 'foreign-data wrapper'
  | 'foreign server'
  // Objects that hold no privileges, only an owner.
  | 'collation'
  | 'conversion'
  | 'operator'
  | 'operator class'
  | 'operator family'
  | 'statistics object'
  | 'text search configuration'
  | 'text search dictionary'
  | 'publication'
  | 'subscription'
  | 'event trigger';

export interface CatalogObject {
  kind: ObjectKind;
  /** null for an object in no schema (a language, a foreign server, a publication, ...). */
  schema: string | null;
  /** The relation's name for a column; null for a schema. */
  name: string | null;
  /**
   * Argument types of a routine or an operator (NONE for a prefix operator's left); the
   * column's name for a column; the access method of an operator class or family.
   */
  args: string | null;
  /** null where ownership is not the object's own (columns, sequences owned by a column). */
  owner: string | null;
  /** Columns of a relation that can hold column privileges. */
  columns: string[] | null;
  /** Effective privileges: the defaults when the ACL is NULL. */
  grants: Grant[];
  /** `classid/objid` on its server, where the object is one of its own (not a column, not a system object). */
  address?: string;
  /**
   * An object of pg_catalog or information_schema, listed where its privileges differ from
   * those it was made with: these (a side that does not list it has them).
   */
  initial?: Grant[];
}

export type GrantState = 'absent' | 'granted' | 'grantable';

/** A database other than the current one, a tablespace or a parameter: shared by the cluster. */
export type SharedKind = 'database' | 'tablespace' | 'parameter';

interface SharedObject {
  name: string;
  /** A parameter's is the bootstrap superuser. */
  owner: string;
  /** Effective privileges, but the owner's. */
  grants: Grant[];
}

export interface DefaultPrivilege {
  role: string;
  /** null: the global entry (every schema). */
  schema: string | null;
  /** pg_default_acl.defaclobjtype: r, S, f, T or n. */
  objectType: string;
  grantee: string;
  privilege: string;
  state: GrantState;
  /** What holds without the entry. */
  defaultState: GrantState;
}

/** One database's permission state, by name. */
export interface Catalog {
  serverVersionNum: number;
  database: string;
  user: string;
  superuser: boolean;
  /** Whether roles carry their password verifiers. */
  verifiersRead: boolean;
  /** Why they were asked for and not read, as a clause ("capture is off ..."); null otherwise. */
  verifiersUnread: string | null;
  roles: Map<string, RoleState>;
  /** Each role's oid: its identity on this server (managed roles are known by it). */
  roleOids: Map<string, number>;
  memberships: Membership[];
  settings: RoleSetting[];
  databaseOwner: string;
  databaseGrants: Grant[];
  /** The cluster's other databases (not the current one), its tablespaces, and the parameters that have privileges (15+). */
  shared: Record<SharedKind, SharedObject[]>;
  /** The identity of each object ReadOptions.identities named, as permsync.object_facts gives it (none: gone). */
  identities?: Map<string, string | null>;
  objects: CatalogObject[];
  /**
   * Every relation and routine of PostgreSQL's own schemas, listed or not in objects:
   * between majors, what one side changed is compared where the other has it.
   */
  systemObjects?: SystemObject[];
  defaultPrivileges: DefaultPrivilege[];
}

/** A relation or routine of pg_catalog or information_schema, by its kind, schema, name and argument types. */
type SystemObject = Pick<CatalogObject, 'kind' | 'schema' | 'name' | 'args'>;

/** What of a catalog is the server's rather than the database's: its roles, memberships, role settings and verifiers. */
export type ServerCatalog = Pick<Catalog, 'verifiersRead' | 'verifiersUnread' | 'roles' | 'roleOids' | 'memberships' | 'settings'>;

export interface ReadOptions {
  /** Read password verifiers, where this session may. */
  verifiers: boolean;
  /** The server's part, read already through another database of the same server by the same user: not read again. */
  server?: ServerCatalog;
  /**
   * The source: its verifiers are read as it captures them (permsync.role_state()), so
   * none while capture is off, even for a session that could read pg_authid: they would
   * not travel, and reconcile would carry what an admin has not let the source capture.
   */
  source?: boolean;
  /** Objects (as "classid/objid") whose identity to read in the same snapshot (Catalog.identities). */
  identities?: string[];
}

interface SessionRow {
  server_version_num: number;
  database: string;
  user_name: string;
  superuser: boolean;
  can_read_verifiers: boolean;
  has_role_state: boolean;
  can_read_switch: boolean;
}

interface RoleRow {
  name: string;
  superuser: boolean;
  inherit: boolean;
  createrole: boolean;
  createdb: boolean;
  login: boolean;
  replication: boolean;
  bypassrls: boolean;
  connlimit: number;
  valid_until: string | null;
  comment: string | null;
}

type GrantTuple = [string, string, boolean, string | null];

/** An object's `classid/objid` on its server (CatalogObject.address; permsync.object_owners' key). */
export function objectAddress(classid: number | string, objid: number | string): string {
  return `${classid}/${objid}`;
}

/** A CatalogObject as the catalog query returns it: grants as tuples, NULL for none. */
type ObjectRow = Omit<CatalogObject, 'grants' | 'initial' | 'address'> & {
  grants: GrantTuple[] | null;
  initial: GrantTuple[] | null;
  /** oid columns, which pg reads as numbers. */
  classid: number | null;
  objid: number | null;
};

export interface DefaultPrivilegeRow {
  role: string;
  schema: string | null;
  object_type: string;
  grantee: string;
  privilege: string;
  state: GrantState;
  default_state: GrantState;
}

export function toDefaultPrivilege(d: DefaultPrivilegeRow): DefaultPrivilege {
  return {
    role: d.role,
    schema: d.schema,
    objectType: d.object_type,
    grantee: d.grantee,
    privilege: d.privilege,
    state: d.state,
    defaultState: d.default_state,
  };
}

/**
 * Runs catalog queries in one read-only snapshot, with search_path pg_catalog: every name
 * they print (argument types of routines, say) comes out schema-qualified, as the same
 * query prints it on any other server.
 */
export async function inCatalogSnapshot<T>(client: pg.ClientBase, read: () => Promise<T>): Promise<T> {
  for (const sql of catalogSql.CATALOG_SESSION) await client.query(sql);
  try {
    return await read();
  } finally {
    // Only a broken connection fails to roll back, and its owner discards it.
    await client.query('ROLLBACK').catch(() => {});
  }
}

/**
 * Which server the session's database is on: its system identifier and the time its
 * postmaster started, which a copy of it (a restored base backup) does not share. Where the
 * user may not read the system identifier (a managed service), the start time and port
 * stand for it. Outside a transaction: the first query may fail.
 */
export async function readServerIdentity(client: pg.ClientBase): Promise<string> {
  const read = async (sql: string) => {
    const row = (await client.query<{ id: string; started: string; port?: string }>(sql)).rows[0];
    if (!row) throw new Error('the server did not say which it is');
    return [row.id, row.started, ...(row.port === undefined ? [] : [row.port])].join('/');
  };
  try {
    return await read(catalogSql.SERVER_IDENTITY);
  } catch (error) {
    if (classifyError(error).code !== SQLSTATE.insufficientPrivilege) throw error;
    return read(catalogSql.SERVER_START);
  }
}

/** Reads one database's permission state in one read-only snapshot. */
export function readCatalog(client: pg.ClientBase, options: ReadOptions): Promise<Catalog> {
  return inCatalogSnapshot(client, async () => {
    const session = (await client.query<SessionRow>(catalogSql.SESSION_FACTS)).rows[0];
    if (!session) throw new Error('the database did not describe its session');
    const server = options.server ? ofThisDatabase(options.server, session.database) : await readServerCatalog(client, session, options);
    const database = (await client.query<{ owner: string; grants: GrantTuple[] }>(catalogSql.DATABASE)).rows[0];
    if (!database) throw new Error('the current database is not in pg_database');
    const sharedObjects = async (sql: string) =>
      (await client.query<{ name: string; owner: string; grants: GrantTuple[] }>(sql)).rows.map((o) => ({
        name: o.name,
        owner: o.owner,
        grants: o.grants.map(toGrant),
      }));
    const shared: Record<SharedKind, SharedObject[]> = {
      database: await sharedObjects(catalogSql.OTHER_DATABASES),
      tablespace: await sharedObjects(catalogSql.TABLESPACES),
      parameter: session.server_version_num >= PARAMETER_PRIVILEGES_SINCE ? await sharedObjects(catalogSql.PARAMETERS) : [],
    };
    const objects = (await client.query<ObjectRow>(catalogSql.OBJECTS)).rows.map((o): CatalogObject => ({
      kind: o.kind,
      schema: o.schema,
      name: o.name,
      args: o.args,
      owner: o.owner,
      columns: o.columns,
      grants: (o.grants ?? []).map(toGrant),
      ...(o.initial !== null && { initial: o.initial.map(toGrant) }),
      ...(o.classid !== null && o.objid !== null && { address: objectAddress(o.classid, o.objid) }),
    }));
    const systemObjects = (await client.query<SystemObject>(catalogSql.SYSTEM_OBJECTS)).rows;
    const defaultPrivileges = (await client.query<DefaultPrivilegeRow>(catalogSql.DEFAULT_PRIVILEGES)).rows.map(toDefaultPrivilege);
    return {
      serverVersionNum: session.server_version_num,
      database: session.database,
      user: session.user_name,
      superuser: session.superuser,
      ...server,
      databaseOwner: database.owner,
      databaseGrants: database.grants.map(toGrant),
      shared,
      objects,
      systemObjects,
      defaultPrivileges,
      ...(options.identities?.length && {
        identities: new Map(
          (await client.query<{ address: string; identity: string | null }>(catalogSql.IDENTITIES, [options.identities])).rows.map((r) => [
            r.address,
            r.identity,
          ]),
        ),
      }),
    };
  });
}

/** A database (null: the session's own), a tablespace or a parameter, by its name on the server read. */
export interface AclObject {
  on: SharedKind;
  name: string | null;
}

/**
 * An object's owner and its privileges but the owner's own (grantor null: the owner's
 * grant), with whose privileges each of those roles has, as the server read them.
 */
export interface ObjectAcl {
  owner: string;
  grants: Grant[];
  privilegesOf: PrivilegesOf;
}

/**
 * The ACLs of these objects, in one read-only snapshot, in their order: undefined for one
 * the server lacks (a parameter before PostgreSQL 15).
 */
export function readAcls(client: pg.ClientBase, objects: AclObject[]): Promise<(ObjectAcl | undefined)[]> {
  return inCatalogSnapshot(client, async () => {
    const session = (await client.query<SessionRow>(catalogSql.SESSION_FACTS)).rows[0];
    const read: ({ owner: string; grants: Grant[] } | undefined)[] = [];
    for (const { on, name } of objects) {
      if (on === 'parameter' && (session?.server_version_num ?? 0) < PARAMETER_PRIVILEGES_SINCE) {
        read.push(undefined);
        continue;
      }
      const row = (await client.query<{ owner: string; grants: GrantTuple[] }>(catalogSql.SHARED_ACL[on], [name])).rows[0];
      read.push(row && { owner: row.owner, grants: row.grants.map(toGrant) });
    }
    const names = new Set(read.flatMap((acl) => (acl ? [acl.owner, ...acl.grants.flatMap((g) => [g.grantee, g.grantor ?? acl.owner])] : [])));
    const rows = (await client.query<{ name: string; privileges_of: string[] | null }>(catalogSql.PRIVILEGES_OF, [[...names]])).rows;
    const of = new Map(rows.map((r) => [r.name, r.privileges_of === null ? ('every' as const) : new Set(r.privileges_of)]));
    const privilegesOf: PrivilegesOf = (role) => of.get(role) ?? new Set();
    return read.map((acl) => acl && { ...acl, privilegesOf });
  });
}

/** The server's part of a catalog (ServerCatalog), read through this session. */
async function readServerCatalog(client: pg.ClientBase, session: SessionRow, options: ReadOptions): Promise<ServerCatalog> {
  const roles = new Map<string, RoleState>();
  const roleOids = new Map((await client.query<{ name: string; oid: number }>(catalogSql.ROLE_OIDS)).rows.map((r) => [r.name, r.oid]));
  for (const r of (await client.query<RoleRow>(catalogSql.ROLES)).rows) {
    roles.set(r.name, {
      name: r.name,
      superuser: r.superuser,
      inherit: r.inherit,
      createrole: r.createrole,
      createdb: r.createdb,
      login: r.login,
      replication: r.replication,
      bypassrls: r.bypassrls,
      connlimit: r.connlimit,
      validUntil: r.valid_until,
      comment: r.comment,
    });
  }
  const verifiers = !options.verifiers
    ? { read: false, unread: null }
    : options.source
      ? await readCapturedVerifiers(client, session, roles)
      : await readVerifiers(client, session, roles);
  return {
    verifiersRead: verifiers.read,
    verifiersUnread: verifiers.unread,
    roles,
    roleOids,
    memberships: (await client.query<Membership>(catalogSql.MEMBERSHIPS)).rows,
    settings: (await client.query<RoleSetting>(catalogSql.ROLE_SETTINGS)).rows,
  };
}

/** The server's part read through another of its databases, as seen from `database`: its role settings there are `here`. */
function ofThisDatabase(server: ServerCatalog, database: string): ServerCatalog {
  return { ...server, settings: server.settings.map((s) => ({ ...s, here: s.database === database })) };
}

interface VerifierRead {
  read: boolean;
  unread: string | null;
}

/** A target's verifiers, from pg_authid. */
async function readVerifiers(client: pg.ClientBase, session: SessionRow, roles: Map<string, RoleState>): Promise<VerifierRead> {
  if (!session.can_read_verifiers) return { read: false, unread: `"${session.user_name}" may not read pg_authid (only a superuser may)` };
  const { rows } = await client.query<{ name: string; password: string | null }>(catalogSql.VERIFIERS);
  for (const row of rows) {
    const role = roles.get(row.name);
    if (role) role.password = row.password;
  }
  return { read: true, unread: null };
}

/** The source's verifiers, as it captures them (see ReadOptions.source). */
async function readCapturedVerifiers(client: pg.ClientBase, session: SessionRow, roles: Map<string, RoleState>): Promise<VerifierRead> {
  if (!session.has_role_state) {
    return {
      read: false,
      unread: `"${session.user_name}" may not call permsync.role_state(), through which drift reads them (permsync_daemon may, and a superuser)`,
    };
  }
  const { rows } = await client.query<{ captured: boolean; verifiers: [string, string | null, number | null][] }>(catalogSql.CAPTURED_VERIFIERS);
  const row = rows[0];
  if (row?.captured) {
    for (const [name, password, withheld] of row.verifiers) {
      const role = roles.get(name);
      if (role && withheld !== null) role.passwordWithheld = withheld;
      else if (role) role.password = password;
    }
    return { read: true, unread: null };
  }
  if (!session.can_read_switch) {
    return { read: false, unread: 'they are not captured (capture is off, or the role that installed permsync may not read pg_authid)' };
  }
  const on = (await client.query<{ on: boolean }>(catalogSql.CAPTURE_SWITCH)).rows[0]?.on === true;
  return {
    read: false,
    unread: on
      ? 'none are captured: the role that installed permsync may not read pg_authid'
      : 'capture is off (an admin turns it on with SELECT permsync.enable_password_sync())',
  };
}

function toGrant([grantee, privilege, grantable, grantor]: GrantTuple): Grant {
  return { grantee, privilege, grantable, grantor };
}
