import { settleRevokes, type AclGrant, type ChainStep, type PrivilegesOf } from './grant-chains.js';
import {
  FIRST_USER_OID,
  type Catalog,
  type CatalogObject,
  type DefaultPrivilege,
  type Grant,
  type GrantState,
  type Membership,
  type ObjectKind,
  type RoleSetting,
  type RoleState,
  type SharedKind,
} from './catalog.js';

/** An object by name: a column is its relation's schema and name, and the column's name in args. */
export interface ObjectRef {
  kind: ObjectKind;
  /** null for an object in no schema (a language, a foreign server, ...). */
  schema: string | null;
  name: string | null;
  args: string | null;
}

/** What privileges are on: the current database, an object (or column), a default privilege entry, or a shared object. */
export type PrivilegeTarget =
  | { on: 'database' }
  /** Another database of the cluster (by the target's name for it), a tablespace or a parameter. */
  | { on: 'shared'; kind: SharedKind; name: string }
  | { on: 'object'; object: ObjectRef }
  | { on: 'default'; role: string; schema: string | null; objectType: string };

interface PrivilegeChange {
  privilege: string;
  /** The target's state. */
  from: GrantState;
  /** The source's state: what the target must come to. */
  to: GrantState;
  /**
   * Made after the grants: a grant option taken from a grantee that keeps the privilege's
   * option on the source (through another grantor) or grants through it there, or from
   * one whose grantees' options are taken so; a column's grant that such a revoke on its
   * relation would take back.
   */
  late?: true;
  /**
   * A revoke PostgreSQL would refuse where the plan makes the others (2BP01: an option
   * left in a cycle, a column's option its grantee granted through): made after every
   * other statement on the object, at `order` among such, with CASCADE where `cascade`.
   */
  last?: { order: number; cascade: boolean };
  /** A revoke that one with CASCADE before it has made already: no statement. */
  taken?: true;
}

/** Statements on one object that run together or not at all: revokes with CASCADE and the grants they take, made again. */
interface Chain {
  /** The object's key. */
  group: string;
  /** How many statements the chain's changes plan, all told. */
  statements: number;
}

/** A grantor's place in a grant-option chain, on each side (see Change). */
interface ChainDepth {
  source: number;
  target: number;
}

/**
 * One difference between the source and a target, by name. `from` is the target's state,
 * `to` the source's; changes that cannot be made (objects, which permsync never creates)
 * are reported as such.
 */
export type Change =
  | { type: 'role missing'; role: RoleState }
  | { type: 'role attributes'; from: RoleState; to: RoleState }
  /** A role on the target only; `managed`: permsync created it there (or was handed it). */
  | { type: 'role extra'; name: string; managed: boolean }
  /** A role of the target's own (permsync does not manage it) that has a source role's name. */
  | { type: 'role collision'; name: string }
  | { type: 'membership'; role: string; member: string; grantor: string | null; from: Membership | null; to: Membership | null }
  | { type: 'setting'; role: string; database: string | null; here: boolean; key: string; from: string | null; to: string | null }
  | { type: 'owner'; object: ObjectRef; from: string; to: string }
  | PrivilegesChange
  | { type: 'object missing'; object: ObjectRef }
  /** A database of the source's cluster, or a tablespace, that the target's lacks: its privileges cannot be held there. */
  | { type: 'shared object missing'; kind: SharedKind; name: string }
  | { type: 'object extra'; object: ObjectRef };

export interface CompareOptions {
  /**
   * Compare the facts of roles permsync manages that exist on the target only (their
   * privileges and default privileges), so that they can be revoked before the roles are
   * dropped. Otherwise such a role is one difference, and everything about it is left alone.
   */
  includeExtraRoles: boolean;
  /**
   * The target's roles permsync does not manage there, by name: the target's own. Each is
   * one difference (extra, or a collision with a source role's name), and everything
   * about it (memberships, settings, privileges) is left alone.
   */
  foreign: ReadonlySet<string>;
  /** The environment's names for the source's other databases, where they differ (environments[].databases). */
  databases?: Readonly<Record<string, string>>;
  /**
   * The target's memberships and INHERIT attributes are as they are where its privileges
   * change (a converged batch changes none), not as the plan leaves them (made first).
   */
  rolesAsTheyAre?: boolean;
}

/**
 * `grantor`: null for the owner's grants, else the role whose grants through its grant
 * option these are; `depth`, how many such grants stand at most between the grantor and
 * the owner on the source (grants go in that order) and on the target (revokes go in the
 * reverse). `chain`: its revokes made last (PrivilegeChange.last) go with the other
 * statements of the object's chain, and with `regrants`, the grants of the source that
 * revokes with CASCADE take, made again after them (on the chain's first change).
 */
export interface PrivilegesChange {
  type: 'privileges';
  target: PrivilegeTarget;
  grantee: string;
  grantor: string | null;
  depth: ChainDepth;
  changes: PrivilegeChange[];
  chain?: Chain;
  regrants?: PrivilegesChange[];
}

/** The differences that take `target` to `source`, in a stable order. Pure. */
export function compare(source: Catalog, target: Catalog, options: CompareOptions): Change[] {
  const extra = new Set([...target.roles.keys()].filter((name) => !source.roles.has(name)));
  const leftAlone = (role: string) => options.foreign.has(role) || (extra.has(role) && !options.includeExtraRoles);
  const aboutExtra = (...roles: string[]) => roles.some(leftAlone);
  const keepGrantee = (grantee: string) => !leftAlone(grantee);
  const memberships = compareMemberships(source.memberships, target.memberships).filter(
    (c) => !aboutExtra(c.role, c.member, ...(c.grantor === null ? [] : [c.grantor])),
  );
  const privilegesOf = targetPrivileges(target, options.rolesAsTheyAre ? undefined : { source, memberships, foreign: options.foreign });
  return [
    ...compareRoles(source, target, extra, options.foreign),
    ...memberships,
    ...compareSettings(source, target, options.databases ?? {}).filter((c) => !aboutExtra(c.role)),
    ...compareDatabase(source, target, keepGrantee, privilegesOf),
    ...compareShared(source, target, options.databases ?? {}, keepGrantee, privilegesOf),
    ...compareObjects(source.objects, target.objects, keepGrantee, privilegesOf, systemObjectsOnBoth(source, target)),
    ...compareDefaultPrivileges(source.defaultPrivileges, target.defaultPrivileges).filter(
      (c) => c.target.on !== 'default' || !aboutExtra(c.target.role, c.grantee),
    ),
  ];
}

function compareRoles(source: Catalog, target: Catalog, extra: Set<string>, foreign: ReadonlySet<string>): Change[] {
  // Verifiers are compared only when both sides could read them.
  const withPasswords = source.verifiersRead && target.verifiersRead;
  const out: Change[] = [];
  for (const name of sorted(source.roles.keys())) {
    const to = source.roles.get(name) as RoleState;
    const from = target.roles.get(name);
    if (foreign.has(name)) out.push({ type: 'role collision', name });
    else if (!from) out.push({ type: 'role missing', role: to });
    else if (!sameAttributes(from, to, withPasswords)) out.push({ type: 'role attributes', from, to });
  }
  for (const name of sorted(extra)) out.push({ type: 'role extra', name, managed: !foreign.has(name) });
  return out;
}

/** The attributes compared for a role; a role without VALID UNTIL never expires, as 'infinity'. */
function sameAttributes(a: RoleState, b: RoleState, withPasswords: boolean): boolean {
  const expiry = (r: RoleState) => r.validUntil ?? 'infinity';
  return (
    a.superuser === b.superuser &&
    a.inherit === b.inherit &&
    a.createrole === b.createrole &&
    a.createdb === b.createdb &&
    a.login === b.login &&
    a.replication === b.replication &&
    a.bypassrls === b.bypassrls &&
    a.connlimit === b.connlimit &&
    expiry(a) === expiry(b) &&
    a.comment === b.comment &&
    (!withPasswords || (a.password === b.password && a.passwordWithheld === b.passwordWithheld))
  );
}

/** Per grantor: on 16+ a membership granted by two roles is two, and pg_dumpall shows both. */
function compareMemberships(source: Membership[], target: Membership[]): Extract<Change, { type: 'membership' }>[] {
  const key = (m: Membership) => `${m.role}\0${m.member}\0${m.grantor ?? ''}`;
  const out: Extract<Change, { type: 'membership' }>[] = [];
  const theirs = new Map(target.map((m) => [key(m), m]));
  const ours = new Map(source.map((m) => [key(m), m]));
  for (const k of sorted(new Set([...ours.keys(), ...theirs.keys()]))) {
    const to = ours.get(k) ?? null;
    const from = theirs.get(k) ?? null;
    const member = (to ?? from) as Membership;
    if (to && from && sameMembership(from, to)) continue;
    out.push({ type: 'membership', role: member.role, member: member.member, grantor: member.grantor, from, to });
  }
  return out;
}

/**
 * Whose privileges each of the target's roles has (has_privs_of_role) where its privileges
 * change: through each membership that inherits (its INHERIT option; before 16, its
 * member's attribute), and in turn. The database's owner is a member of pg_database_owner
 * there, which pg_auth_members does not hold (roles_is_member_of): from 16 whatever its
 * INHERIT, before 16 by it; it has the privileges of what that role owns (schema public
 * from 15). With `plan`, after the plan's membership changes and the INHERIT attributes
 * it gives the source's roles (but the target's own), which it makes first; the database's
 * owner is the target's, which a plan does not carry. A superuser, the bootstrap one
 * included, has every role's: its SUPERUSER is the target's, which a plan carries only
 * where configured.
 */
export function targetPrivileges(
  target: Catalog,
  plan?: { source: Catalog; memberships: Extract<Change, { type: 'membership' }>[]; foreign: ReadonlySet<string> },
): PrivilegesOf {
  const key = (m: { role: string; member: string; grantor: string | null }) => `${m.role}\0${m.member}\0${m.grantor ?? ''}`;
  const memberships = new Map(target.memberships.map((m) => [key(m), m]));
  for (const c of plan?.memberships ?? []) {
    if (c.to) memberships.set(key(c), c.to);
    else memberships.delete(key(c));
  }
  const planned = (role: string) => (plan && !plan.foreign.has(role) ? plan.source.roles.get(role) : undefined);
  const inherits = (role: string) => (planned(role) ?? target.roles.get(role))?.inherit ?? true;
  const inheritsFrom = new Map<string, string[]>();
  const databaseOwner = { role: 'pg_database_owner', member: target.databaseOwner, inherit: target.serverVersionNum >= 160_000 ? true : null };
  for (const m of [...memberships.values(), databaseOwner]) {
    if (!(m.inherit ?? inherits(m.member))) continue;
    const roles = inheritsFrom.get(m.member);
    if (roles) roles.push(m.role);
    else inheritsFrom.set(m.member, [m.role]);
  }
  const superusers = new Set([
    ...[...target.roles.values()].filter((r) => r.superuser).map((r) => r.name),
    ...[...target.roleOids].filter(([, oid]) => oid < FIRST_USER_OID).map(([name]) => name),
  ]);
  const known = new Map<string, ReadonlySet<string>>();
  return (role) => {
    if (superusers.has(role)) return 'every';
    const seen = known.get(role);
    if (seen) return seen;
    const found = new Set<string>();
    const queue = [...(inheritsFrom.get(role) ?? [])];
    for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
      if (next === role || found.has(next)) continue;
      found.add(next);
      queue.push(...(inheritsFrom.get(next) ?? []));
    }
    known.set(role, found);
    return found;
  };
}

/** INHERIT and SET options are compared where both servers have them (PostgreSQL 16 and later). */
function sameMembership(a: Membership, b: Membership): boolean {
  const both = (x: boolean | null, y: boolean | null) => x === null || y === null || x === y;
  return a.admin === b.admin && both(a.inherit, b.inherit) && both(a.set, b.set);
}

/**
 * The current database is the same on both sides whatever its name; another of the
 * source's databases is the target's of the name environments[].databases gives it, or
 * of its own name, which is left out where it is the target's own database's (as the
 * applier does). A setting in a database only the target has is the environment's own
 * (another environment's, where several are databases of one server), as the database is.
 */
function compareSettings(source: Catalog, target: Catalog, databases: Readonly<Record<string, string>>): Extract<Change, { type: 'setting' }>[] {
  const key = (s: RoleSetting) => `${s.role}\0${s.here ? '.' : s.database === null ? '*' : `db:${s.database}`}\0${s.key}`;
  const onTarget = (name: string) => {
    const mapped = databases[name] ?? name;
    return databases[name] === undefined && mapped === target.database ? undefined : mapped;
  };
  const sourceDatabases = new Set(source.shared.database.flatMap((d) => onTarget(d.name) ?? []));
  const mapped = source.settings.flatMap((s): RoleSetting[] => {
    if (s.here || s.database === null) return [s];
    const name = onTarget(s.database);
    if (name === undefined) return [];
    sourceDatabases.add(name);
    return [{ ...s, database: name }];
  });
  const theirs = new Map(target.settings.filter((s) => s.here || s.database === null || sourceDatabases.has(s.database)).map((s) => [key(s), s]));
  const ours = new Map(mapped.map((s) => [key(s), s]));
  const out: Extract<Change, { type: 'setting' }>[] = [];
  for (const k of sorted(new Set([...ours.keys(), ...theirs.keys()]))) {
    const to = ours.get(k);
    const from = theirs.get(k);
    if (to && from && to.value === from.value) continue;
    const s = (to ?? from) as RoleSetting;
    out.push({
      type: 'setting',
      role: s.role,
      database: s.here ? null : s.database,
      here: s.here,
      key: s.key,
      from: from?.value ?? null,
      to: to?.value ?? null,
    });
  }
  return out;
}

/**
 * Privileges on the current database. Its owner is not compared (each environment's
 * database is its own), nor the privileges of either side's owner, which follow from it.
 * Its revokes are settled as an object's are (settleChain), with the target's owner.
 */
function compareDatabase(source: Catalog, target: Catalog, keepGrantee: (grantee: string) => boolean, privilegesOf: PrivilegesOf): Change[] {
  const owners = new Set([source.databaseOwner, target.databaseOwner]);
  const keep = (grants: Grant[]) => grants.filter((g) => !owners.has(g.grantee));
  const on: PrivilegeTarget = { on: 'database' };
  const changes = comparePrivileges(on, keep(source.databaseGrants), keep(target.databaseGrants)).filter(
    (c) => keepGrantee(c.grantee) && (c.grantor === null || keepGrantee(c.grantor)),
  );
  const theirs = target.databaseGrants.filter((g) => g.grantee !== target.databaseOwner);
  const ours = keep(source.databaseGrants).filter((g) => keptGrant(g, keepGrantee));
  return settleShared({ key: 'database', on, owner: target.databaseOwner, theirs, ours }, changes, keepGrantee, privilegesOf);
}

/**
 * Privileges on the source's other databases (by the name each has on the target), its
 * tablespaces and its parameters. A database the environment's own has the name of is
 * compared only where environments[].databases maps it (as the applier carries it); a
 * database or tablespace only the target has is the environment's own. The owner's
 * privileges are not read (they follow from ownership), and whoever owns it never loses
 * its options: its revokes are settled as an object's are (settleChain).
 */
function compareShared(
  source: Catalog,
  target: Catalog,
  databases: Readonly<Record<string, string>>,
  keepGrantee: (grantee: string) => boolean,
  privilegesOf: PrivilegesOf,
): Change[] {
  const out: Change[] = [];
  const keep = (grants: Grant[]) => grants.filter((g) => keptGrant(g, keepGrantee));
  for (const kind of ['database', 'tablespace', 'parameter'] as const) {
    const theirs = new Map(target.shared[kind].map((o) => [o.name, o]));
    const ours = new Map(
      source.shared[kind].flatMap((o) => {
        if (kind !== 'database') return [[o.name, o] as const];
        const name = databases[o.name] ?? o.name;
        return databases[o.name] === undefined && name === target.database ? [] : [[name, o] as const];
      }),
    );
    const names = kind === 'parameter' ? new Set([...ours.keys(), ...theirs.keys()]) : new Set(ours.keys());
    for (const name of sorted(names)) {
      const from = theirs.get(name);
      if (!from && kind !== 'parameter') {
        out.push({ type: 'shared object missing', kind, name });
        continue;
      }
      const on: PrivilegeTarget = { on: 'shared', kind, name };
      const ourGrants = keep(ours.get(name)?.grants ?? []);
      const changes = comparePrivileges(on, ourGrants, keep(from?.grants ?? []));
      const owner = from?.owner ?? UNREAD_OWNER;
      const object = { key: `shared\0${kind}\0${name}`, on, owner, theirs: from?.grants ?? [], ours: ourGrants };
      out.push(...settleShared(object, changes, keepGrantee, privilegesOf));
    }
  }
  return out;
}

/** The owner of a parameter the target holds no privileges on: no role's name (none holds a NUL), so never a grantee. */
const UNREAD_OWNER = '\0owner';

/**
 * One object's changes, with the revokes PostgreSQL would refuse settled (settleChain):
 * `theirs`, every grant of the target's but the owner's (those of its own roles too, which
 * a cascade may not take), `ours`, the source's that are compared.
 */
function settleShared(
  object: { key: string; on: PrivilegeTarget; owner: string; theirs: Grant[]; ours: Grant[] },
  changes: PrivilegesChange[],
  keepGrantee: (grantee: string) => boolean,
  privilegesOf: PrivilegesOf,
): Change[] {
  const out: Change[] = [...changes];
  const chain: ChainObject = {
    key: object.key,
    on: object.on,
    owner: object.owner,
    relation: false,
    owned: (grants) => grants,
    target: new Map([['', object.theirs]]),
    source: new Map([['', object.ours]]),
    changes: changes.map((_, at) => ({ acl: '', at })),
  };
  settleChain(chain, out, (g) => keptGrant(g, keepGrantee), privilegesOf);
  return out;
}

/** An object's key by name, for maps (null name or args as empty). */
export function objectKey(o: ObjectRef): string {
  return `${o.kind}\0${o.schema}\0${o.name ?? ''}\0${o.args ?? ''}`;
}

/** The schemas a statement on the object names: a rule's schema_pattern is matched against them. */
export function schemasOf(o: ObjectRef): string[] {
  return o.schema === null ? [] : [o.schema];
}

function refOf(o: CatalogObject): ObjectRef {
  return { kind: o.kind, schema: o.schema, name: o.name, args: o.args };
}

function major(catalog: Catalog): number {
  return Math.floor(catalog.serverVersionNum / 10_000);
}

/**
 * Whether both sides have a system object (by key): on one major, each has every one;
 * across majors, where each side's list says so (not read: only those both changed).
 */
function systemObjectsOnBoth(source: Catalog, target: Catalog): (key: string, listed: { source: boolean; target: boolean }) => boolean {
  if (major(source) === major(target)) return () => true;
  const keys = (side: Catalog) => new Set((side.systemObjects ?? []).map(objectKey));
  const [onSource, onTarget] = [keys(source), keys(target)];
  return (key, listed) => (listed.source || onSource.has(key)) && (listed.target || onTarget.has(key));
}

function compareObjects(
  source: CatalogObject[],
  target: CatalogObject[],
  keepGrantee: (grantee: string) => boolean,
  privilegesOf: PrivilegesOf,
  onBoth: ReturnType<typeof systemObjectsOnBoth>,
): Change[] {
  const ours = new Map(source.map((o) => [objectKey(o), o]));
  const theirs = new Map(target.map((o) => [objectKey(o), o]));
  const keys = sorted(new Set([...ours.keys(), ...theirs.keys()]));
  const out: Change[] = [];
  // Revoking a privilege (or its grant option) on a table revokes it on every column too,
  // from the same grantee and grantor: remembered, so that the columns are compared with
  // what they will hold after the revoke.
  const revokedOnRelation = new Map<string, { optionOnly: boolean; late: boolean }>();
  const grantKey = (schema: string | null, name: string | null, grantee: string, grantor: string | null, privilege: string) =>
    `${schema}\0${name ?? ''}\0${grantee}\0${grantor ?? ''}\0${privilege}`;
  /** Each object on both sides, by key, as its revokes are settled (settleChains): a relation with its columns. */
  const chains = new Map<string, ChainObject>();
  // A system object one side does not list has the privileges it was made with there,
  // where it has it (across majors it may not).
  const initially = (o: CatalogObject | undefined) => (o?.initial === undefined ? undefined : { ...o, grants: o.initial });
  for (const k of keys.filter((key) => !key.startsWith('column\0'))) {
    const system = (ours.get(k) ?? theirs.get(k))?.initial !== undefined;
    if (system && !onBoth(k, { source: ours.has(k), target: theirs.has(k) })) continue;
    const to = ours.get(k) ?? initially(theirs.get(k));
    const from = theirs.get(k) ?? initially(ours.get(k));
    const ref = refOf((to ?? from) as CatalogObject);
    if (!from) {
      out.push({ type: 'object missing', object: ref });
      continue;
    }
    if (!to) {
      out.push({ type: 'object extra', object: ref });
      continue;
    }
    let theirGrants = from.grants;
    let owned = (grants: Grant[]) => grants;
    // An object is never given to a role of the target's own.
    if (to.owner !== null && from.owner !== null && to.owner !== from.owner && keepGrantee(to.owner)) {
      out.push({ type: 'owner', object: ref, from: from.owner, to: to.owner });
      // A new owner takes over the old owner's privileges (as PostgreSQL's aclnewowner
      // does, on the columns too): compare what the target will hold after the change, not before it.
      const [before, after] = [from.owner, to.owner];
      owned = (grants) => transferOwnership(grants, before, after);
      theirGrants = owned(from.grants);
    }
    const keep = (grants: Grant[]) => grants.filter((g) => keptGrant(g, keepGrantee));
    const chain: ChainObject = {
      key: k,
      on: { on: 'object', object: ref },
      owner: to.owner ?? from.owner ?? '',
      relation: to.columns !== null,
      owned,
      target: new Map([['', theirGrants]]),
      source: new Map([['', keep(to.grants)]]),
      changes: [],
    };
    chains.set(k, chain);
    for (const change of comparePrivileges({ on: 'object', object: ref }, keep(to.grants), keep(theirGrants))) {
      chain.changes.push({ acl: '', at: out.length });
      out.push(change);
      for (const c of change.changes) {
        if (c.to === 'absent' || (c.from === 'grantable' && c.to === 'granted')) {
          revokedOnRelation.set(grantKey(ref.schema, ref.name, change.grantee, change.grantor, c.privilege), {
            optionOnly: c.to === 'granted',
            late: c.late === true,
          });
        }
      }
    }
  }
  const relations = (objects: CatalogObject[]) => new Map(objects.filter((o) => o.columns !== null).map((o) => [`${o.schema}\0${o.name}`, o]));
  const ourRelations = relations(source);
  const theirRelations = relations(target);
  for (const k of keys.filter((key) => key.startsWith('column\0'))) {
    // A column is listed where it holds privileges; one not listed on a side holds none there.
    const to = ours.get(k);
    const from = theirs.get(k);
    const ref = refOf((to ?? from) as CatalogObject);
    const relation = `${ref.schema}\0${ref.name}`;
    const ourRelation = ourRelations.get(relation);
    const theirRelation = theirRelations.get(relation);
    if (!ourRelation || !theirRelation) continue; // the relation itself is reported missing or extra
    if (!theirRelation.columns?.includes(ref.args as string)) {
      out.push({ type: 'object missing', object: ref });
    } else if (!ourRelation.columns?.includes(ref.args as string)) {
      out.push({ type: 'object extra', object: ref });
    } else {
      const revoked = (grantee: string, grantor: string | null, privilege: string) =>
        revokedOnRelation.get(grantKey(ref.schema, ref.name, grantee, grantor, privilege));
      const theirGrants = (from?.grants ?? []).flatMap((g) => {
        const on = revoked(g.grantee, g.grantor, g.privilege);
        if (!keptGrant(g, keepGrantee) || (on && !on.optionOnly)) return [];
        return on ? [{ ...g, grantable: false }] : [g];
      });
      const ourGrants = (to?.grants ?? []).filter((g) => keptGrant(g, keepGrantee));
      const chain = chains.get(objectKey(theirRelation)) as ChainObject;
      chain.target.set(ref.args as string, chain.owned(from?.grants ?? []));
      chain.source.set(ref.args as string, ourGrants);
      for (const change of comparePrivileges({ on: 'object', object: ref }, ourGrants, theirGrants)) {
        // A grant that the relation's revoke would take back goes after it.
        const after = (c: PrivilegeChange) => c.to !== 'absent' && revoked(change.grantee, change.grantor, c.privilege)?.late === true;
        chain.changes.push({ acl: ref.args as string, at: out.length });
        out.push({ ...change, changes: change.changes.map((c) => (after(c) ? { ...c, late: true as const } : c)) });
      }
    }
  }
  for (const chain of chains.values()) settleChain(chain, out, (g) => keptGrant(g, keepGrantee), privilegesOf);
  return out;
}

/** An object as its revokes are settled: its ACLs by name ('' its own, else a column's), on each side. */
interface ChainObject {
  key: string;
  /** The object: an object (a relation, for its columns), the current database, or a shared object. */
  on: PrivilegeTarget;
  /** Its owner once the plan's owner change (if any) is made. */
  owner: string;
  relation: boolean;
  /** A target's grants as they stand after that owner change. */
  owned: (grants: Grant[]) => Grant[];
  target: Map<string, Grant[]>;
  /** The source's grants that are compared. */
  source: Map<string, Grant[]>;
  /** Its privilege changes: where each is in the comparison's output, and on which ACL. */
  changes: { acl: string; at: number }[];
}

/**
 * Settles the revokes on one object that PostgreSQL would refuse in the plan's order
 * (grant-chains.ts, settleRevokes), marking them in `out`: the plan's phases (revokes,
 * grants, late revokes, late grants), ranks (grants by the source's depth, revokes by the
 * target's, reversed) and order of changes are its own (plan/changes.ts).
 */
function settleChain(chain: ChainObject, out: Change[], compared: (g: Grant) => boolean, privilegesOf: PrivilegesOf): void {
  const steps: ChainStep<{ at: number; privilege: string }>[] = [];
  for (const { acl, at } of chain.changes) {
    const change = out[at] as PrivilegesChange;
    for (const late of [false, true]) {
      const kinds = [
        ['REVOKE', false, (c: PrivilegeChange) => c.to === 'absent' && c.from !== 'absent'],
        ['REVOKE', true, (c: PrivilegeChange) => c.from === 'grantable' && c.to === 'granted'],
        ['GRANT', false, (c: PrivilegeChange) => c.from === 'absent' && c.to === 'granted'],
        ['GRANT', true, (c: PrivilegeChange) => c.from !== 'grantable' && c.to === 'grantable'],
      ] as const;
      for (const [verb, option, test] of kinds) {
        const items = change.changes
          .filter((c) => (c.late === true) === late && test(c))
          .map((c) => ({ privilege: c.privilege, ref: { at, privilege: c.privilege } }));
        if (items.length === 0) continue;
        const phase = verb === 'REVOKE' ? (late ? 2 : 0) : late ? 3 : 1;
        const rank = verb === 'GRANT' ? change.depth.source : -change.depth.target;
        steps.push({ acl, verb, option, grantee: change.grantee, grantor: change.grantor, items, phase, rank });
      }
    }
  }
  const settled = settleRevokes(chain.owner, privilegesOf, chain.target, chain.source, steps, { relation: chain.relation, compared });
  if (!settled) return;
  const marks = new Map<string, Partial<PrivilegeChange>>();
  const mark = (ref: { at: number; privilege: string }) => `${ref.at}\0${ref.privilege}`;
  settled.last.forEach(({ ref, cascade }, order) => marks.set(mark(ref), { last: { order, cascade } }));
  for (const ref of settled.taken) marks.set(mark(ref), { taken: true });
  const tableDepth = grantDepths(chain.source.get('') ?? []);
  const regrants = settled.regrants.map(({ acl, grant, from }): PrivilegesChange => {
    // A column's grant may rest on its grantor's option on the table: both count.
    const depth = acl === '' ? tableDepth : grantDepths([...(chain.source.get('') ?? []), ...(chain.source.get(acl) ?? [])]);
    const on: PrivilegeTarget =
      acl === '' || chain.on.on !== 'object' ? chain.on : { on: 'object', object: { ...chain.on.object, kind: 'column', args: acl } };
    return {
      type: 'privileges',
      target: on,
      grantee: grant.grantee,
      grantor: grant.grantor,
      depth: { source: depth(grant.grantor, grant.privilege) * 2 + (acl === '' ? 0 : 1), target: 0 },
      changes: [{ privilege: grant.privilege, from, to: grant.grantable ? 'grantable' : 'granted' }],
    };
  });
  const statements = settled.last.length + regrants.length;
  let carrier = true;
  for (const { at } of chain.changes) {
    const change = out[at] as PrivilegesChange;
    const changes = change.changes.map((c) => ({ ...c, ...marks.get(mark({ at, privilege: c.privilege })) }));
    if (!changes.some((c) => c.last !== undefined || c.taken)) continue;
    out[at] = { ...change, changes, chain: { group: chain.key, statements }, ...(carrier && { regrants }) };
    carrier = false;
  }
}

/** A grant neither to nor by a role left alone: a grant by one is that role's to keep or take back. */
function keptGrant(g: Grant, keepRole: (role: string) => boolean): boolean {
  return keepRole(g.grantee) && (g.grantor === null || keepRole(g.grantor));
}

function transferOwnership(grants: Grant[], from: string, to: string): Grant[] {
  const merged = new Map<string, Grant>();
  for (const g of grants) {
    const grantee = g.grantee === from ? to : g.grantee;
    // The new owner's grants through its grant option become the owner's.
    const grantor = g.grantor === to ? null : g.grantor;
    const k = `${grantee}\0${grantor ?? ''}\0${g.privilege}`;
    const seen = merged.get(k);
    merged.set(k, { grantee, privilege: g.privilege, grantable: g.grantable || (seen?.grantable ?? false), grantor });
  }
  return [...merged.values()];
}

function stateOf(grant: Grant | undefined): GrantState {
  return !grant ? 'absent' : grant.grantable ? 'grantable' : 'granted';
}

/** Per grantee and grantor, the privileges whose state differs. */
function comparePrivileges(target: PrivilegeTarget, source: Grant[], current: Grant[]): Extract<Change, { type: 'privileges' }>[] {
  const byGrant = (grants: Grant[]) => {
    const out = new Map<string, Map<string, Grant>>();
    for (const g of grants) {
      const k = `${g.grantee}\0${g.grantor ?? ''}`;
      out.set(k, (out.get(k) ?? new Map<string, Grant>()).set(g.privilege, g));
    }
    return out;
  };
  const ours = byGrant(source);
  const theirs = byGrant(current);
  const sourceDepth = grantDepths(source);
  const targetDepth = grantDepths(current);
  const late = lateRevokes(source, current);
  const out: Extract<Change, { type: 'privileges' }>[] = [];
  for (const k of sorted(new Set([...ours.keys(), ...theirs.keys()]))) {
    const to = ours.get(k) ?? new Map<string, Grant>();
    const from = theirs.get(k) ?? new Map<string, Grant>();
    const { grantee, grantor } = ([...to.values()][0] ?? [...from.values()][0]) as Grant;
    const changes = sorted(new Set([...to.keys(), ...from.keys()]))
      .map((privilege): PrivilegeChange => {
        const change = { privilege, from: stateOf(from.get(privilege)), to: stateOf(to.get(privilege)) };
        const optionTaken = change.from === 'grantable' && change.to !== 'grantable';
        return optionTaken && late(grantee, privilege) ? { ...change, late: true } : change;
      })
      .filter((c) => c.from !== c.to);
    if (changes.length === 0) continue;
    const deepest = (depth: ReturnType<typeof grantDepths>) => Math.max(0, ...changes.map((c) => depth(grantor, c.privilege)));
    out.push({ type: 'privileges', target, grantee, grantor, depth: { source: deepest(sourceDepth), target: deepest(targetDepth) }, changes });
  }
  return out;
}

/**
 * For a grant by `grantor` of `privilege`, how many grantors stand at most in its chain,
 * from `grantor` up to the owner's grant: the grantor, the grantor of its grant option (the
 * deepest, where it holds the option from several), and so on. A role's grants come after
 * those that give it the option. Linear in `grants` over all the calls, and without
 * recursion: any login may build chains as long as it likes on what it owns, and this runs
 * in the daemon (a new environment's plan, a converged batch) as well as in drift. A circle
 * of grant options (which PostgreSQL allows) is cut where the walk meets itself.
 */
function grantDepths(grants: AclGrant[]): (grantor: string | null, privilege: string) => number {
  // A role's grant option for a privilege, as one key: neither name can hold a NUL.
  const link = (privilege: string, role: string) => `${privilege}\0${role}`;
  // Where each role holds its grant option from: the grantors of its grantable grants (the owner's not among them).
  const optionFrom = new Map<string, string[]>();
  for (const g of grants) {
    if (!g.grantable || g.grantor === null) continue;
    const key = link(g.privilege, g.grantee);
    const from = optionFrom.get(key);
    if (from) from.push(link(g.privilege, g.grantor));
    else optionFrom.set(key, [link(g.privilege, g.grantor)]);
  }
  const depths = new Map<string, number>();
  const walk = (start: string): number => {
    const stack = [{ key: start, next: 0, deepest: 0 }];
    const onPath = new Set([start]);
    for (let top = stack[0]; top !== undefined; top = stack[stack.length - 1]) {
      const from = optionFrom.get(top.key) ?? [];
      if (top.next < from.length) {
        const grantor = from[top.next++] as string;
        const known = depths.get(grantor);
        if (known !== undefined) top.deepest = Math.max(top.deepest, known);
        else if (!onPath.has(grantor)) {
          onPath.add(grantor);
          stack.push({ key: grantor, next: 0, deepest: 0 });
        }
        continue;
      }
      stack.pop();
      onPath.delete(top.key);
      depths.set(top.key, top.deepest + 1);
      const below = stack[stack.length - 1];
      if (below) below.deepest = Math.max(below.deepest, top.deepest + 1);
    }
    return depths.get(start) as number;
  };
  return (grantor, privilege) => (grantor === null ? 0 : (depths.get(link(privilege, grantor)) ?? walk(link(privilege, grantor))));
}

/**
 * Whether taking a grantee's option of a privilege away waits until the grants are made.
 * PostgreSQL refuses to take a grantee's last option of a privilege while grants through
 * it stand (2BP01). Where the source keeps the option (through another grantor's grant,
 * which the plan makes) or grants through it, the option is taken once the grants are
 * made, when it is no longer the grantee's last; so is the option of a grantor of such a
 * grantee, after the grantee's (revokes go dependents first).
 */
function lateRevokes(source: Grant[], current: Grant[]): (grantee: string, privilege: string) => boolean {
  const key = (role: string, privilege: string) => `${role}\0${privilege}`;
  /** Who keeps each privilege's option on the source: its holders, and the grantors of grants through it. */
  const kept = new Set<string>();
  for (const g of source) {
    if (g.grantable) kept.add(key(g.grantee, g.privilege));
    if (g.grantor !== null) kept.add(key(g.grantor, g.privilege));
  }
  const sourceOptions = new Set(source.filter((g) => g.grantable).map((g) => `${g.grantee}\0${g.grantor ?? ''}\0${g.privilege}`));
  /** The grantees of each role's grants on the target whose option the plan takes back. */
  const optionsTaken = new Map<string, string[]>();
  for (const g of current) {
    if (g.grantor === null || !g.grantable || sourceOptions.has(`${g.grantee}\0${g.grantor}\0${g.privilege}`)) continue;
    const by = key(g.grantor, g.privilege);
    const grantees = optionsTaken.get(by);
    if (grantees) grantees.push(g.grantee);
    else optionsTaken.set(by, [g.grantee]);
  }
  const decided = new Map<string, boolean>();
  const late = (grantee: string, privilege: string): boolean => {
    const k = key(grantee, privilege);
    const known = decided.get(k);
    if (known !== undefined) return known;
    // Met again below itself: a cycle, which decides nothing.
    decided.set(k, false);
    const found = kept.has(k) || (optionsTaken.get(k) ?? []).some((next) => late(next, privilege));
    decided.set(k, found);
    return found;
  };
  return late;
}

/** A side without an entry's row holds the built-in default there. */
function compareDefaultPrivileges(source: DefaultPrivilege[], target: DefaultPrivilege[]): Extract<Change, { type: 'privileges' }>[] {
  const group = (d: DefaultPrivilege) => `${d.role}\0${d.schema ?? ''}\0${d.schema === null ? 'g' : 's'}\0${d.objectType}\0${d.grantee}`;
  const ours = new Map(source.map((d) => [`${group(d)}\0${d.privilege}`, d]));
  const theirs = new Map(target.map((d) => [`${group(d)}\0${d.privilege}`, d]));
  const changes = new Map<string, { entry: DefaultPrivilege; changes: PrivilegeChange[] }>();
  for (const k of sorted(new Set([...ours.keys(), ...theirs.keys()]))) {
    const to = ours.get(k);
    const from = theirs.get(k);
    const entry = (to ?? from) as DefaultPrivilege;
    const wanted = to?.state ?? entry.defaultState;
    const current = from?.state ?? entry.defaultState;
    if (wanted === current) continue;
    const g = changes.get(group(entry)) ?? { entry, changes: [] };
    g.changes.push({ privilege: entry.privilege, from: current, to: wanted });
    changes.set(group(entry), g);
  }
  return [...changes.values()].map(({ entry, changes: list }) => ({
    type: 'privileges',
    target: { on: 'default', role: entry.role, schema: entry.schema, objectType: entry.objectType },
    grantee: entry.grantee,
    grantor: null,
    depth: { source: 0, target: 0 },
    changes: list,
  }));
}

function sorted<T extends string>(values: Iterable<T>): T[] {
  return [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
