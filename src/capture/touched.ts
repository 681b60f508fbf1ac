import { parseSync } from 'libpg-query';
import type { RangeVar, RoleSpec } from 'libpg-query';
import type { ObjectKind } from '../catalog/catalog.js';
import { identifiers } from '../sql/quote.js';

/**
 * What a permission command touched, by name: what a batch that statement replay cannot
 * carry (a GRANT in a DO block, a CREATE SCHEMA ... GRANT) converges on each target, and
 * nothing more (plan/converge.ts). Names are resolved against the source's catalog there.
 */

/** An object by name; schema null: unqualified (looked up in the search path). */
export interface ObjectName {
  schema: string | null;
  name: string;
  /** The argument types a routine was named with (null for one not known by name); null: any (none given). */
  args: (ArgumentType | null)[] | null;
}

/**
 * An argument type as a command named it: the parts of its name as the parser read them
 * (`int` is pg_catalog.int4), with its array dimensions. The source's catalog says which
 * type it is (plan/converge.ts).
 */
export interface ArgumentType {
  names: string[];
  arrays: number;
}

type Touched =
  /** These objects (a schema's own name is `name`, with schema null), of one of these kinds. */
  | { on: 'objects'; kinds: readonly ObjectKind[]; names: ObjectName[] }
  /** Every object of these kinds in these schemas (ON ALL ... IN SCHEMA). */
  | { on: 'all in schema'; kinds: readonly ObjectKind[]; schemas: string[] }
  /** Default privileges for objects these roles create, in these schemas (null: the global entry). */
  | { on: 'default'; roles: string[]; schemas: string[] | null; objectType: string }
  /** Something drift does not read (a large object, ...): never converged. */
  | { on: 'other'; what: string };

export interface Touch {
  touched: Touched;
  /** The roles that ran the command on the source: only what each of them could change is converged. */
  actors: string[];
  /** The search paths its unqualified names were looked up in, "$user" resolved: each is tried. */
  searchPaths: string[][];
  /**
   * An owner change no command reported (REASSIGN OWNED), which the role watcher found: the
   * object, as `classid/objid` on the source, its identity then (permsync.object_facts'), and the owner before
   * (`from`). Its actor is the owner now. Only that object's owner is converged, and only
   * where its identity is still that and the target's object of its name is `from`'s.
   * Taken ahead of a refused batch, `behind` counts the batches in between that come before
   * its own (ConvergeScope.ahead).
   */
  found?: { address: string; identity: string; from: string; behind?: number };
}

/** Who ran a command and where it looked names up. */
export interface TouchContext {
  actors: string[];
  searchPaths: string[][];
  /** current_user when it ran: ALTER DEFAULT PRIVILEGES without FOR ROLE is for it. */
  currentUser: string;
}

const RELATIONS: readonly ObjectKind[] = ['table', 'view', 'materialized view', 'foreign table', 'sequence'];
const ROUTINES: readonly ObjectKind[] = ['function', 'procedure', 'aggregate'];

/** The kinds of object a GRANT's or an owner change's object type names, or what drift does not read. */
const KINDS: Record<string, readonly ObjectKind[]> = {
  OBJECT_TABLE: RELATIONS,
  OBJECT_VIEW: RELATIONS,
  OBJECT_MATVIEW: ['materialized view'],
  OBJECT_FOREIGN_TABLE: ['foreign table'],
  OBJECT_SEQUENCE: ['sequence'],
  OBJECT_FUNCTION: ['function', 'aggregate'],
  OBJECT_AGGREGATE: ['aggregate'],
  OBJECT_PROCEDURE: ['procedure'],
  OBJECT_ROUTINE: ROUTINES,
  OBJECT_TYPE: ['type', 'domain'],
  OBJECT_DOMAIN: ['domain'],
  OBJECT_SCHEMA: ['schema'],
  OBJECT_LANGUAGE: ['language'],
  OBJECT_FDW: ['foreign-data wrapper'],
  OBJECT_FOREIGN_SERVER: ['foreign server'],
  OBJECT_COLLATION: ['collation'],
  OBJECT_CONVERSION: ['conversion'],
  OBJECT_OPERATOR: ['operator'],
  OBJECT_STATISTIC_EXT: ['statistics object'],
  OBJECT_TSCONFIGURATION: ['text search configuration'],
  OBJECT_TSDICTIONARY: ['text search dictionary'],
  OBJECT_PUBLICATION: ['publication'],
  OBJECT_SUBSCRIPTION: ['subscription'],
};

/** ON ALL ... IN SCHEMA: which kinds each takes (ALL FUNCTIONS includes aggregates). */
const ALL_IN_SCHEMA: Record<string, readonly ObjectKind[]> = {
  OBJECT_TABLE: ['table', 'view', 'materialized view', 'foreign table'],
  OBJECT_SEQUENCE: ['sequence'],
  OBJECT_FUNCTION: ['function', 'aggregate'],
  OBJECT_PROCEDURE: ['procedure'],
  OBJECT_ROUTINE: ROUTINES,
};

/** pg_default_acl.defaclobjtype for ALTER DEFAULT PRIVILEGES ... ON <objtype>. */
const DEFAULT_TYPES: Record<string, string> = {
  OBJECT_TABLE: 'r',
  OBJECT_SEQUENCE: 'S',
  OBJECT_FUNCTION: 'f',
  OBJECT_ROUTINE: 'f',
  OBJECT_PROCEDURE: 'f',
  OBJECT_TYPE: 'T',
  OBJECT_SCHEMA: 'n',
  OBJECT_LARGEOBJECT: 'L',
};

/** pg_identify_object's object types for the owner changes an audit row names. */
const IDENTITY_KINDS: Record<string, readonly ObjectKind[]> = {
  table: ['table'],
  view: ['view'],
  'materialized view': ['materialized view'],
  sequence: ['sequence'],
  'foreign table': ['foreign table'],
  schema: ['schema'],
  function: ['function'],
  procedure: ['procedure'],
  aggregate: ['aggregate'],
  type: ['type'],
  domain: ['domain'],
  language: ['language'],
  'foreign-data wrapper': ['foreign-data wrapper'],
  server: ['foreign server'],
  collation: ['collation'],
  conversion: ['conversion'],
  'statistics object': ['statistics object'],
  'text search configuration': ['text search configuration'],
  'text search dictionary': ['text search dictionary'],
  publication: ['publication'],
  subscription: ['subscription'],
};

type Fields = Record<string, unknown>;

/**
 * What the permission statements of a text touched: those at `ordinals` (1-based, as
 * analyzeQuery numbers them), or every one. Throws when the text does not parse.
 */
export function touchesOfText(text: string, context: TouchContext, ordinals?: number[]): Touch[] {
  const statements = parseSync(text).stmts ?? [];
  const wanted = ordinals === undefined ? undefined : new Set(ordinals);
  return statements.flatMap((raw, index) => {
    if (wanted && !wanted.has(index + 1)) return [];
    const [type, body] = Object.entries(raw.stmt ?? {})[0] ?? [];
    return type === undefined ? [] : touchesOfStatement(type, (body ?? {}) as Fields, context);
  });
}

/** What one statement touched; nothing for one that is no permission change. */
function touchesOfStatement(type: string, body: Fields, context: TouchContext): Touch[] {
  const touch = (touched: Touched, searchPaths = context.searchPaths): Touch => ({ touched, actors: context.actors, searchPaths });
  switch (type) {
    case 'GrantStmt':
      return [touch(grantTouched(body))];
    case 'AlterDefaultPrivilegesStmt': {
      const action = (body.action ?? {}) as Fields;
      const option = (name: string) =>
        ((body.options ?? []) as { DefElem?: { defname?: string; arg?: unknown } }[]).find((o) => o.DefElem?.defname === name)?.DefElem?.arg;
      const roles = option('roles');
      const schemas = option('schemas');
      const objectType = DEFAULT_TYPES[String(action.objtype)];
      if (objectType === undefined) return [touch({ on: 'other', what: `default privileges on ${String(action.objtype)}` })];
      return [
        touch({
          on: 'default',
          objectType,
          roles: roles === undefined ? [context.currentUser] : roleNames(roles, context.currentUser),
          schemas: schemas === undefined ? null : stringValues(schemas),
        }),
      ];
    }
    case 'AlterOwnerStmt': {
      const kinds = KINDS[String(body.objectType)];
      const name = objectName(body.object as Fields | undefined, String(body.objectType));
      return [touch(kinds && name ? { on: 'objects', kinds, names: [name] } : { on: 'other', what: `the owner of ${String(body.objectType)}` })];
    }
    case 'AlterTableStmt': {
      const owner = ((body.cmds ?? []) as { AlterTableCmd?: Fields }[]).some((c) => c.AlterTableCmd?.subtype === 'AT_ChangeOwner');
      const relation = body.relation as RangeVar | undefined;
      const kinds = KINDS[String(body.objtype)];
      if (!owner || !relation?.relname || !kinds) return [];
      return [touch({ on: 'objects', kinds, names: [{ schema: relation.schemaname ?? null, name: relation.relname, args: null }] })];
    }
    case 'CreateSchemaStmt': {
      // Its elements run with the new schema first in the search path, and create their
      // relations there; the schema itself gets its owner.
      const authorization = body.authrole as RoleSpec | undefined;
      const schema = (body.schemaname as string | undefined) ?? authorization?.rolename;
      if (schema === undefined) return [];
      const inSchema = context.searchPaths.map((path) => [schema, ...path]);
      const created = ((body.schemaElts ?? []) as Fields[]).flatMap((element) => {
        const [kind, node] = Object.entries(element)[0] ?? [];
        const relation = ((node ?? {}) as Fields)[kind === 'ViewStmt' ? 'view' : kind === 'CreateSeqStmt' ? 'sequence' : 'relation'] as
          RangeVar | undefined;
        return kind !== 'IndexStmt' && kind !== 'CreateTrigStmt' && relation?.relname ? [{ schema, name: relation.relname, args: null }] : [];
      });
      const grants = ((body.schemaElts ?? []) as { GrantStmt?: Fields }[]).flatMap((e) => (e.GrantStmt ? [e.GrantStmt] : []));
      return [
        touch({ on: 'objects', kinds: ['schema'], names: [{ schema: null, name: schema, args: null }] }),
        ...(created.length > 0 ? [touch({ on: 'objects', kinds: RELATIONS, names: created })] : []),
        ...grants.map((g) => touch(grantTouched(g), inSchema)),
      ];
    }
    default:
      return [];
  }
}

/**
 * An owner change an audit row names by its identity (pg_identify_object's: schema.name,
 * each part quoted where needed; a routine with its argument types), for a command whose
 * statement the source did not name.
 */
export function touchOfIdentity(objectType: string, identity: string, context: TouchContext): Touch {
  const kinds = IDENTITY_KINDS[objectType];
  const open = routineArgumentsStart(identity);
  const parts = identityParts(identity);
  const args = open < 0 ? null : identity.slice(open + 1, -1).trim();
  const name =
    kinds?.[0] === 'schema'
      ? { schema: null, name: parts[0] ?? '', args: null }
      : {
          schema: parts.length > 1 ? (parts[0] as string) : null,
          name: parts[parts.length - 1] ?? '',
          // An identity prints its argument types, which no parser reads back safely: their number only.
          args: args === null ? null : args === '' ? [] : args.split(',').map(() => null),
        };
  return {
    touched: kinds ? { on: 'objects', kinds, names: [name] } : { on: 'other', what: `the owner of ${objectType} ${identity}` },
    actors: context.actors,
    searchPaths: context.searchPaths,
  };
}

function grantTouched(body: Fields): Touched {
  const objtype = String(body.objtype);
  if (body.targtype === 'ACL_TARGET_ALL_IN_SCHEMA') {
    const kinds = ALL_IN_SCHEMA[objtype];
    // A schema named twice is read once: each names every object in it.
    return kinds
      ? { on: 'all in schema', kinds, schemas: [...new Set(stringValues(body.objects))] }
      : { on: 'other', what: `every ${objtype} in a schema` };
  }
  const kinds = KINDS[objtype];
  const names = ((body.objects ?? []) as Fields[]).map((o) => objectName(o, objtype));
  if (!kinds || names.some((n) => n === undefined)) return { on: 'other', what: `privileges on ${objtype}` };
  return { on: 'objects', kinds, names: names as ObjectName[] };
}

/** The name of one object of a GRANT's list or an owner change. */
function objectName(object: Fields | undefined, objtype: string): ObjectName | undefined {
  if (!object) return undefined;
  if (object.RangeVar) {
    const rv = object.RangeVar as RangeVar;
    return rv.relname ? { schema: rv.schemaname ?? null, name: rv.relname, args: null } : undefined;
  }
  if (object.ObjectWithArgs) {
    const routine = object.ObjectWithArgs as Fields;
    const args = ((routine.objargs ?? []) as { TypeName?: Fields }[]).map(({ TypeName: type }): ArgumentType | null =>
      !type || type.pct_type ? null : { names: stringValues(type.names), arrays: ((type.arrayBounds ?? []) as unknown[]).length },
    );
    return qualified(stringValues(routine.objname), routine.args_unspecified === true ? null : args);
  }
  if (objtype === 'OBJECT_SCHEMA') {
    const [schema] = stringValues(object);
    return schema === undefined ? undefined : { schema: null, name: schema, args: null };
  }
  if (object.List || object.String) return qualified(stringValues(object), null);
  if (object.TypeName) return qualified(stringValues((object.TypeName as Fields).names), null);
  return undefined;
}

function qualified(names: string[], args: (ArgumentType | null)[] | null): ObjectName | undefined {
  const name = names[names.length - 1];
  if (name === undefined || names.length > 3) return undefined;
  return { schema: names.length > 1 ? (names[names.length - 2] as string) : null, name, args };
}

function roleNames(list: unknown, currentUser: string): string[] {
  const out: string[] = [];
  walk(list, (value) => {
    const spec = value as RoleSpec;
    if (typeof value !== 'object' || value === null || typeof spec.roletype !== 'string') return;
    if (spec.roletype === 'ROLESPEC_CSTRING' && spec.rolename) out.push(spec.rolename);
    else if (spec.roletype === 'ROLESPEC_CURRENT_USER' || spec.roletype === 'ROLESPEC_CURRENT_ROLE') out.push(currentUser);
  });
  return out;
}

function stringValues(value: unknown): string[] {
  const out: string[] = [];
  walk(value, (v) => {
    if (typeof v === 'object' && v !== null && 'String' in v) out.push(String((v as { String: { sval?: string } }).String.sval ?? ''));
  });
  return out;
}

function walk(value: unknown, visit: (value: unknown) => void): void {
  visit(value);
  if (Array.isArray(value)) value.forEach((v) => walk(v, visit));
  else if (typeof value === 'object' && value !== null) Object.values(value).forEach((v) => walk(v, visit));
}

/** Where a routine identity's argument list opens: its first "(" outside quotes, or -1. */
function routineArgumentsStart(identity: string): number {
  let quoted = false;
  for (let i = 0; i < identity.length; i++) {
    if (identity[i] === '"') quoted = !quoted;
    else if (identity[i] === '(' && !quoted) return identity.endsWith(')') ? i : -1;
  }
  return -1;
}

/** The dot-separated parts of an object identity, unquoted, without a routine's argument list. */
export function identityParts(identity: string): string[] {
  const open = routineArgumentsStart(identity);
  return identifiers(open < 0 ? identity : identity.slice(0, open), '.') ?? [];
}
