import type { ConvergeScope } from '../capture/batch.js';
import type { ArgumentType, ObjectName, Touch } from '../capture/touched.js';
import type { EnvironmentConfig, Settings } from '../config/schema.js';
import { FIRST_USER_OID, type Catalog, type CatalogObject } from '../catalog/catalog.js';
import { objectKey, targetPrivileges, type Change } from '../catalog/compare.js';
import { objectName, orderPlan, type Planned } from './changes.js';
import type { Statement } from '../sql/statement.js';
import { buildReport } from './report.js';
import { isOurs, type ManagedRoles } from './role-ownership.js';
import type { RoleScope } from '../config/rules.js';

/**
 * A batch that statement replay cannot carry (a GRANT in a DO block, a function or dynamic
 * SQL, a CREATE SCHEMA ... GRANT) converges instead: the objects its commands touched
 * (capture/touched.ts) are brought to the source's current state on the target, their
 * privileges and owner, by drift's comparison and plan restricted to those objects. Never
 * more than the batch could have changed: an object only where every role that ran the
 * commands could change it on the source (a superuser, or a member of its owner there
 * that has its privileges, the target's owner included), else only the grants there whose
 * grantor's privileges it has, and a default privilege entry only where it could (FOR ROLE
 * one whose privileges it has). Drift's rules hold as for reconcile: the target's own roles are
 * left alone (never granted to, never given or taken an object), and the configuration's
 * exclusions and the environment's rules apply. A later change the source already shows
 * is converged too, which is harmless: its own batch applies it again after this one. An
 * owner change the role watcher found (REASSIGN OWNED, which no event trigger reports)
 * gives the one object it names by oid its new owner, only where the target's is the
 * former owner's, and changes nothing else of it (see Touch.found).
 */

/** What each role that ran the batch's commands may change on the source. */
export interface Authority {
  /** By role name: whether it is a superuser, and the roles whose privileges it has (itself included). */
  roles: Map<string, { superuser: boolean; memberOf: Set<string> }>;
  /** The owners of sequences that belong to a table column (drift reads none for them), by "schema\0name". */
  sequenceOwners: Map<string, string>;
}

export interface ConvergeContext {
  environment: EnvironmentConfig;
  settings: Settings;
  roles: RoleScope;
  managed: ManagedRoles;
  source: Catalog;
  target: Catalog;
  authority: Authority;
  /** Each argument type the commands named, by argumentTypeKey: as the source's catalog prints it, null where it has none such. */
  argumentTypes: Map<string, string | null>;
  /** The identity each object the role watcher found given away has in the source catalog's snapshot, by "classid/objid" (watchedAddresses). */
  identities: Map<string, string | null>;
}

/** An argument type to look up on the source, in a search path (plan/converge.ts). */
export interface ArgumentTypeLookup {
  key: string;
  path: string[];
  type: ArgumentType;
}

export interface Converged {
  /** What converges the touched objects, in an order that works. */
  statements: Statement[];
  /** How many of the touched objects (default privilege entries included) it changes. */
  objects: number;
  /** What was left alone, and why. */
  notes: string[];
  /** Objects it names that the source has and the target lacks (as `kind name`): nothing there to converge. */
  missing: string[];
}

/** The roles whose authority decides what a batch may converge (see Authority), by name and oid: one capture could not tell has none. */
export function actorsOf(scope: ConvergeScope): { name: string; oid: number }[] {
  // An owner change the role watcher found is weighed by Touch.found, not by authority.
  return [...new Set(scope.touches.flatMap((t) => (t.found ? [] : t.actors)))].flatMap((name) => {
    const oid = scope.actorOids.get(name);
    return oid === undefined ? [] : [{ name, oid }];
  });
}

/** The objects the role watcher found given away, by "classid/objid" on the source (Touch.found). */
export function watchedAddresses(scope: ConvergeScope): string[] {
  return [...new Set(scope.touches.flatMap((t) => (t.found ? [t.found.address] : [])))];
}

/** The sequences whose owner drift does not read, among what the scope may touch on the source. */
export function ownerlessSequences(source: Catalog): { schema: string; name: string }[] {
  return source.objects.filter((o) => o.kind === 'sequence' && o.owner === null).map((o) => ({ schema: o.schema as string, name: o.name as string }));
}

/** The argument types the scope's routines were named with, in each search path their commands ran with. */
export function argumentTypeLookups(scope: ConvergeScope): ArgumentTypeLookup[] {
  const lookups = new Map<string, ArgumentTypeLookup>();
  for (const touch of scope.touches) {
    if (touch.touched.on !== 'objects') continue;
    for (const type of touch.touched.names.flatMap((n) => n.args ?? []).filter((t) => t !== null)) {
      for (const path of pathsOf(touch)) lookups.set(argumentTypeKey(type, path), { key: argumentTypeKey(type, path), path, type });
    }
  }
  return [...lookups.values()];
}

function argumentTypeKey(type: ArgumentType, path: string[]): string {
  return JSON.stringify([path, type.names, type.arrays]);
}

function pathsOf(touch: Touch): string[][] {
  return touch.searchPaths.length > 0 ? touch.searchPaths : [[]];
}

/** The statements that converge what the scope touched on the target. Pure. */
export function planConverge(scope: ConvergeScope, context: ConvergeContext): Converged {
  const { source, target, authority } = context;
  const notes: string[] = [];
  const index = indexObjects(source.objects);
  const targetOwners = new Map(target.objects.map((o) => [objectKey(o), o.owner]));
  const relationOwner = (o: CatalogObject) => index.relations.get(`${o.schema}\0${o.name}`)?.owner ?? null;
  const sourceSuperuser = [...source.roleOids].find(([, oid]) => oid < FIRST_USER_OID)?.[0] ?? '';
  // A system object is the bootstrap superuser's (its owner is not compared).
  const ownerOf = (o: CatalogObject): string | null =>
    o.owner ??
    (o.initial !== undefined
      ? sourceSuperuser
      : o.kind === 'column'
        ? relationOwner(o)
        : (authority.sequenceOwners.get(`${o.schema}\0${o.name}`) ?? null));
  /** The roles whose grants through a grant option every actor may make or take back on the source: those whose privileges it has. */
  const grantorsFor = (actors: string[]): Set<string> => {
    const sets = actors.map((actor) => authority.roles.get(actor)?.memberOf ?? new Set<string>());
    return new Set([...(sets[0] ?? [])].filter((r) => sets.every((set) => set.has(r))));
  };
  // The target's roles that are not the source's of their name (its own, or one that stands
  // for another source role): an actor's memberships on the source do not reach their
  // objects there (`there`), only a superuser's rights do.
  const owners = { managed: context.managed, sourceSuperuser, sourceOids: source.roleOids };
  const foreign = new Set([...target.roleOids].filter(([name, oid]) => !isOurs(name, oid, owners)).map(([name]) => name));
  const may = (actors: string[], owner: string | null, there = false) =>
    owner !== null &&
    actors.every((actor) => {
      const role = authority.roles.get(actor);
      return role !== undefined && (role.superuser || (!(there && foreign.has(owner)) && role.memberOf.has(owner)));
    });

  const objects = new Set<string>();
  /** The touched relations that hold columns, by "schema\0name": their key. */
  const relations = new Map<string, string>();
  const defaults = new Set<string>();
  const refused = new Set<string>();
  /** Objects the role watcher found given away whose owner is not converged here (by address), and those whose is (by key). */
  const untaken = new Set<string>();
  const ownersOnly = new Set<string>();
  /** Refused objects (a relation for its columns), by key: the grantors whose grants there the batch may still converge. */
  const grantsOnly = new Map<string, Set<string>>();
  let other = 0;
  const missing: string[] = [];
  // A batch in between ran with memberships the source has now, or the target still has
  // before the refused batch (a login may take one back on the source since, not there). A
  // role of the target's own of its author's name stands for no one of the source's, nor
  // does a superuser there (whose every role that would be) tell what it ran with.
  const privilegesThere = targetPrivileges(target);
  const runsWith = (author: string, holds: ReadonlySet<string>) => {
    const there = foreign.has(author) ? new Set<string>() : privilegesThere(author);
    return (role: string) => holds.has(role) || role === author || (there !== 'every' && there.has(role));
  };
  const between = scope.ahead?.between.map((b) => runsWith(b.author, b.holds));
  for (const touch of scope.touches) {
    const touched = touch.touched;
    if (touched.on === 'other') {
      other++;
      continue;
    }
    if (touched.on === 'default') {
      for (const role of touched.roles) {
        for (const schema of touched.schemas ?? [null]) {
          if (may(touch.actors, role)) defaults.add(defaultKey(role, schema, touched.objectType));
          else refused.add(defaultKey(role, schema, touched.objectType));
        }
      }
      continue;
    }
    if (touch.found) {
      // The one object the role watcher found given away, by its oid on the source, while
      // it keeps that name and the new owner there; here only its owner, and only where the
      // object of its name is the former owner's (what REASSIGN OWNED would have taken).
      const { address, identity, from } = touch.found;
      const object = index.addresses.get(address);
      if (object === undefined || context.identities.get(address) !== identity) {
        untaken.add(address);
        continue;
      }
      const key = objectKey(object);
      const theirs = targetOwners.get(key);
      if (theirs === undefined) {
        missing.push(`${object.kind} ${objectName(object)}`);
        continue;
      }
      if (ownerOf(object) !== touch.actors[0] || theirs !== from || foreign.has(from)) {
        if (theirs !== touch.actors[0]) untaken.add(address);
        continue;
      }
      // Ahead of a refused batch: not from a role a batch in between may need as it is.
      if (between?.slice(0, touch.found.behind).some((runs) => runs(from))) continue;
      ownersOnly.add(key);
      continue;
    }
    for (const object of resolve(touch, index, context.argumentTypes)) {
      const key = objectKey(object);
      const theirs = targetOwners.get(key);
      if (!may(touch.actors, ownerOf(object)) || (theirs != null && !may(touch.actors, theirs, true))) {
        refused.add(key);
        const grantors = grantorsFor(touch.actors);
        grantsOnly.set(key, grantors);
        if (object.columns !== null) grantsOnly.set(`${object.schema}\0${object.name}`, grantors);
        continue;
      }
      // A system object the target does not list has the privileges it was made with there.
      if (touched.on === 'objects' && !targetOwners.has(key) && object.initial === undefined) missing.push(`${object.kind} ${objectName(object)}`);
      objects.add(key);
      if (object.columns !== null) relations.set(`${object.schema}\0${object.name}`, key);
    }
  }
  if (refused.size > 0) {
    notes.push(
      `${refused.size} object(s) it names left as they are, but for the grants it made there through a grant option: the role that ran it could not change them on the source (neither a superuser nor a member of their owner)`,
    );
  }
  if (untaken.size > 0) {
    notes.push(
      `${untaken.size} object(s) the role watcher found given away left as they are: here another role than the one the source took it from owns it, or the source's has changed name or hands since`,
    );
  }
  if (other > 0) notes.push(`${other} command(s) on objects drift does not compare (a large object, ...) not converged`);

  const report = buildReport(context.environment, context.settings, context.roles, source, target, {
    dropExtraRoles: false,
    managed: context.managed,
    rolesAsTheyAre: true,
  });
  const changed = new Set<string>();
  const statements: Planned[] = [];
  for (const difference of report.differences) {
    if (difference.held !== undefined || difference.statements.length === 0) continue;
    // ALTER ... OWNER rewrites the former owner's grants as REASSIGN OWNED did.
    if (difference.change.type === 'owner' && ownersOnly.has(objectKey(difference.change.object))) {
      changed.add(objectKey(difference.change.object));
      statements.push(...difference.statements);
      continue;
    }
    const key = touchedKey(difference.change, objects, relations, defaults) ?? grantorsKey(difference.change, grantsOnly);
    if (key === undefined) continue;
    // An object is never taken from a role of the target's own.
    if (difference.change.type === 'owner' && foreign.has(difference.change.from)) {
      const object = difference.change.object;
      notes.push(`the owner of ${object.kind} ${objectName(object)} left as it is: "${difference.change.from}" is a role of this environment's own`);
      continue;
    }
    changed.add(key);
    statements.push(...difference.statements);
  }
  return { statements: orderPlan(statements), objects: changed.size, notes, missing: [...new Set(missing)] };
}

/** The touched object or entry a difference is about, by key; undefined when it is about something else. */
function touchedKey(change: Change, objects: Set<string>, relations: Map<string, string>, defaults: Set<string>): string | undefined {
  if (change.type === 'owner') return objects.has(objectKey(change.object)) ? objectKey(change.object) : undefined;
  if (change.type !== 'privileges') return undefined;
  const on = change.target;
  if (on.on === 'default') {
    const key = defaultKey(on.role, on.schema, on.objectType);
    return defaults.has(key) ? key : undefined;
  }
  if (on.on !== 'object') return undefined;
  if (on.object.kind === 'column') {
    // A column's privileges go with its relation.
    return relations.get(`${on.object.schema}\0${on.object.name}`);
  }
  return objects.has(objectKey(on.object)) ? objectKey(on.object) : undefined;
}

/**
 * A grant through a grant option on an object the batch could not otherwise change, by
 * the object's key, where its grantor is one the batch may grant as (a relation's key
 * stands for its columns).
 */
function grantorsKey(change: Change, grantsOnly: Map<string, Set<string>>): string | undefined {
  if (change.type !== 'privileges' || change.grantor === null || change.target.on !== 'object') return undefined;
  const object = change.target.object;
  const key = object.kind === 'column' ? `${object.schema}\0${object.name}` : objectKey(object);
  return grantsOnly.get(key)?.has(change.grantor) ? key : undefined;
}

function defaultKey(role: string, schema: string | null, objectType: string): string {
  return `default\0${role}\0${schema ?? ''}\0${objectType}`;
}

interface ObjectIndex {
  /** Objects in a schema, but for columns, by "schema\0name". */
  byName: Map<string, CatalogObject[]>;
  /** Objects in no schema, by name. */
  schemaless: Map<string, CatalogObject[]>;
  schemas: Map<string, CatalogObject>;
  /** Relations that can hold column privileges, by "schema\0name". */
  relations: Map<string, CatalogObject>;
  bySchema: Map<string, CatalogObject[]>;
  /** Objects of the source's own, by "classid/objid". */
  addresses: Map<string, CatalogObject>;
}

function indexObjects(objects: CatalogObject[]): ObjectIndex {
  const index: ObjectIndex = {
    byName: new Map(),
    schemaless: new Map(),
    schemas: new Map(),
    relations: new Map(),
    bySchema: new Map(),
    addresses: new Map(),
  };
  const push = (map: Map<string, CatalogObject[]>, key: string, o: CatalogObject) => map.set(key, [...(map.get(key) ?? []), o]);
  for (const o of objects) {
    if (o.address !== undefined) index.addresses.set(o.address, o);
    if (o.schema === null) {
      push(index.schemaless, o.name as string, o);
      continue;
    }
    if (o.kind === 'schema') index.schemas.set(o.schema, o);
    if (o.kind === 'schema' || o.kind === 'column') continue;
    push(index.byName, `${o.schema}\0${o.name}`, o);
    push(index.bySchema, o.schema, o);
    if (o.columns !== null) index.relations.set(`${o.schema}\0${o.name}`, o);
  }
  return index;
}

/**
 * The source's objects a touch names. An unqualified name is the first one its search
 * path finds (in each of the paths it ran with); a routine named with argument types
 * matches by them, as the source's catalog says they read in a path the command ran with
 * (by their number, where one of them is none the source has).
 */
function resolve(touch: Touch, index: ObjectIndex, argumentTypes: Map<string, string | null>): CatalogObject[] {
  const touched = touch.touched;
  if (touched.on === 'all in schema') {
    return touched.schemas.flatMap((s) => (index.bySchema.get(s) ?? []).filter((o) => touched.kinds.includes(o.kind)));
  }
  if (touched.on !== 'objects') return [];
  const signatures = (args: (ArgumentType | null)[]): string[] | undefined => {
    const printed = pathsOf(touch).map((path) => args.map((type) => (type ? (argumentTypes.get(argumentTypeKey(type, path)) ?? null) : null)));
    const known = printed.filter((types): types is string[] => types.every((t) => t !== null));
    return known.length > 0 ? known.map((types) => types.join(', ')) : undefined;
  };
  const argumentsMatch = (name: ObjectName, o: CatalogObject): boolean => {
    if (name.args === null || o.args === null) return true;
    return signatures(name.args)?.includes(o.args) ?? argumentCount(o.args) === name.args.length;
  };
  const matches = (schema: string, name: ObjectName): CatalogObject[] =>
    (index.byName.get(`${schema}\0${name.name}`) ?? []).filter((o) => touched.kinds.includes(o.kind) && argumentsMatch(name, o));
  return touched.names.flatMap((name) => {
    if (touched.kinds.includes('schema')) {
      const schema = index.schemas.get(name.name);
      return schema ? [schema] : [];
    }
    // An object in no schema is found by its name alone; objects of a schema are not among them.
    const unplaced = (index.schemaless.get(name.name) ?? []).filter((o) => touched.kinds.includes(o.kind));
    if (unplaced.length > 0) return unplaced;
    if (name.schema !== null) return matches(name.schema, name);
    return touch.searchPaths.flatMap((path) => {
      for (const schema of path) {
        const found = matches(schema, name);
        if (found.length > 0) return found;
      }
      return [];
    });
  });
}

function argumentCount(args: string): number {
  return args === '' ? 0 : args.split(', ').length;
}
