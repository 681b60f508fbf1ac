import type pg from 'pg';
import { inCatalogSnapshot, objectAddress, toDefaultPrivilege, type DefaultPrivilege, type DefaultPrivilegeRow, type GrantState } from './catalog.js';
import * as catalogSql from './catalog-queries.js';
import { objectKey, type ObjectRef } from './compare.js';
import { TransientError } from '../errors.js';

/**
 * What a role dropped on the source still holds on a target, and what the source has of
 * it: the facts its release (plan/release.ts) is planned from.
 */

/** What `role` holds in the target's current database. */
export interface RoleHoldings {
  objects: HeldObject[];
  databaseGrants: HeldGrant[];
  defaultPrivileges: DefaultPrivilege[];
  policies: HeldPolicy[];
}

/** A row-level security policy that names the role. */
export interface HeldPolicy {
  schema: string;
  table: string;
  name: string;
  /** The other roles it names ('' for PUBLIC). */
  others: string[];
}

/** What the source has of a policy's table: the table, and a policy of that name on it. */
export interface SourcePolicy {
  table: boolean;
  policy: boolean;
}

interface HeldObject extends ObjectRef {
  /** Owned by the role. */
  owned: boolean;
  /** The role's privileges on it. */
  grants: HeldGrant[];
}

export interface HeldGrant {
  privilege: string;
  state: GrantState;
  /** As in catalog.ts's Grant: null for the owner's grant, else the role that granted it through its grant option. */
  grantor: string | null;
}

/** Objects the role owns or holds a privilege on, with its privileges (drift's catalog query, narrowed). */
const HELD_OBJECTS = `
  SELECT o.kind, o.schema, o.name, o.args, coalesce(o.owner::text = $1::text, false) AS owned,
         (SELECT coalesce(json_agg(json_build_array(g->>1, (g->>2)::boolean, g->>3)), '[]')
            FROM json_array_elements(coalesce(o.grants, '[]')) g WHERE g->>0 = $1::text) AS grants
    FROM (${catalogSql.OBJECTS}) o
   WHERE o.owner::text = $1::text
      OR EXISTS (SELECT 1 FROM json_array_elements(coalesce(o.grants, '[]')) g WHERE g->>0 = $1::text)`;

const HELD_DATABASE_GRANTS = `
  SELECT g->>1 AS privilege, (g->>2)::boolean AS grantable, g->>3 AS grantor
    FROM (${catalogSql.DATABASE}) d, json_array_elements(d.grants) g
   WHERE g->>0 = $1::text AND d.owner::text <> $1::text`;

const HELD_DEFAULT_PRIVILEGES = `SELECT * FROM (${catalogSql.DEFAULT_PRIVILEGES}) d WHERE d.role::text = $1::text OR d.grantee::text = $1::text`;

const HELD_POLICIES = `
  SELECT n.nspname AS schema, c.relname AS table, p.polname AS name,
         ARRAY(SELECT CASE r WHEN 0 THEN '' ELSE pg_get_userbyid(r)::text END FROM unnest(p.polroles) r
                WHERE r <> a.oid ORDER BY 1)::text[] AS others
    FROM pg_policy p
    JOIN pg_class c ON c.oid = p.polrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_roles a ON a.rolname = $1 AND a.oid = ANY (p.polroles)`;

/** Whether the source has each policy's table, and a policy of that name on it. */
const SOURCE_POLICIES = `
  SELECT w.schema, w.table, w.name, c.oid IS NOT NULL AS has_table,
         EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = w.name) AS has_policy
    FROM jsonb_to_recordset($1::jsonb) AS w(schema text, "table" text, name text)
    LEFT JOIN pg_namespace n ON n.nspname = w.schema
    LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.table AND c.relkind IN ('r', 'p')`;

/**
 * The owners of these objects on the source, of those permsync saw owned by the source
 * role $2 under the name they have now, a name no other role chose for them
 * (permsync.object_owners): the ones taken from it by REASSIGN OWNED, which no event
 * trigger sees, not others of their names. `noted`: the owner's own last row names the
 * object as it is now (or the owner is pinned, and never dropped), so that the release of
 * that owner's DROP ROLE finds it.
 */
const OWNERS = `
  SELECT o.kind, o.schema, o.name, o.args, o.owner, f.owner_oid::bigint AS owner_oid, o.classid, o.objid,
         f.owner_oid < 16384
         OR EXISTS (SELECT FROM (SELECT s.identity, s.own FROM permsync.object_owners s
                                  WHERE s.classid = o.classid AND s.objid = o.objid AND s.owner_oid = f.owner_oid
                                  ORDER BY s.noted DESC LIMIT 1) n
                     WHERE n.identity = f.identity AND n.own = f.own) AS noted
    FROM (${catalogSql.OBJECTS}) o
    JOIN jsonb_to_recordset($1::jsonb) AS w(kind text, schema text, name text, args text)
      ON w.kind = o.kind AND w.schema IS NOT DISTINCT FROM o.schema
     AND w.name IS NOT DISTINCT FROM o.name AND w.args IS NOT DISTINCT FROM o.args
   CROSS JOIN LATERAL permsync.object_facts(o.classid, o.objid) f
   CROSS JOIN LATERAL (SELECT s.identity, s.own, s.parts, s.names, s.noted FROM permsync.object_owners s
                        WHERE s.classid = o.classid AND s.objid = o.objid AND s.owner_oid = $2::oid
                        ORDER BY s.noted DESC LIMIT 1) last
   WHERE o.owner IS NOT NULL
     -- The role's last name for it (and a relation's kind) is its name now, or differs only
     -- by its schema's name, which the schema's row that gave it that name, noted since,
     -- says a superuser's gave.
     AND last.own = f.own
     AND (last.identity = f.identity
          OR (last.parts = f.parts AND last.names[2:] = f.names[2:]
              AND EXISTS (SELECT FROM (SELECT n.owner_oid, n.identity, n.noted FROM permsync.object_owners n
                                        WHERE n.classid = 'pg_namespace'::regclass AND n.objid = f.parts[1] AND n.named
                                        ORDER BY n.noted DESC LIMIT 1) n
                           JOIN pg_roles r ON r.oid = n.owner_oid AND r.rolsuper
                          WHERE n.noted > last.noted AND n.identity = 'pg_namespace ' || f.names[1])))
     AND NOT EXISTS (SELECT FROM permsync.object_owners m
                      WHERE m.classid = o.classid AND m.objid = o.objid AND m.owner_oid = 0 AND m.identity = f.identity)`;

type Granted = [privilege: string, grantable: boolean, grantor: string | null];

/** Drift's catalog queries, in drift's snapshot: names print as on the source. */
export function readRoleHoldings(target: pg.ClientBase, role: string): Promise<RoleHoldings> {
  return inCatalogSnapshot(target, async () => {
    const state = (grantable: boolean): GrantState => (grantable ? 'grantable' : 'granted');
    const objects = await target.query<ObjectRef & { owned: boolean; grants: Granted[] }>(HELD_OBJECTS, [role]);
    const database = await target.query<{ privilege: string; grantable: boolean; grantor: string | null }>(HELD_DATABASE_GRANTS, [role]);
    const defaults = await target.query<DefaultPrivilegeRow>(HELD_DEFAULT_PRIVILEGES, [role]);
    const policies = await target.query<HeldPolicy>(HELD_POLICIES, [role]);
    return {
      objects: objects.rows.map((o) => ({
        kind: o.kind,
        schema: o.schema,
        name: o.name,
        args: o.args,
        owned: o.owned,
        grants: o.grants.map(([privilege, grantable, grantor]) => ({ privilege, state: state(grantable), grantor })),
      })),
      databaseGrants: database.rows.map((g) => ({ privilege: g.privilege, state: state(g.grantable), grantor: g.grantor })),
      defaultPrivileges: defaults.rows.map(toDefaultPrivilege),
      policies: policies.rows,
    };
  });
}

/**
 * The source's ledger notes each object's owner now (sql/schema.sql, object_owners), and
 * returns the objects whose name now is no one's, which it does not note.
 */
const NOTE_RELEASED_OWNERS = 'SELECT permsync.note_released_owners($1::jsonb) AS nobodys';

/** How many times the owners are noted and read again before the release is left for a retry. */
const NOTE_ROUNDS = 3;

type SourceOwner = ObjectRef & { owner: string; owner_oid: string; classid: number; objid: number; noted: boolean };

/** A source object's owner: its name there, and its oid (which the target's managed role records). */
export interface OwnerOnSource {
  name: string;
  oid: number;
}

/**
 * Each object's owner on the source, by the object's key (objectKey), where the name the
 * source's object was last noted under as the role of source oid `formerOwner`'s is its
 * name now (sql/schema.sql, object_owners). A target is handed an owner where the ledger
 * has that owner's row for the object as it is now, in the snapshot the owner is read in:
 * the release of that owner's DROP ROLE, later, needs it. Where it has none (a REASSIGN
 * OWNED the role watcher has not looked at yet), the owners are noted and read again;
 * owners that change at each of NOTE_ROUNDS reads fail the release for a retry. An object
 * whose name now another role chose cannot be noted as its owner's: it is handed over as
 * read, and a release of that owner later finds no row for it (as before the ledger).
 */
export async function readSourceOwners(
  source: pg.ClientBase,
  objects: ObjectRef[],
  formerOwner: number | undefined,
): Promise<Map<string, OwnerOnSource>> {
  if (objects.length === 0 || formerOwner === undefined) return new Map();
  const wanted = JSON.stringify(objects.map(({ kind, schema, name, args }) => ({ kind, schema, name, args })));
  const read = async () => (await inCatalogSnapshot(source, () => source.query<SourceOwner>(OWNERS, [wanted, formerOwner]))).rows;
  const nobodys = new Set<string>();
  let rows = await read();
  for (let round = 1; ; round++) {
    const unnoted = rows.filter((r) => !r.noted && !nobodys.has(objectAddress(r.classid, r.objid)));
    if (unnoted.length === 0) break;
    if (round > NOTE_ROUNDS) {
      throw new TransientError(
        `the source's owners of ${unnoted.length} object(s) changed at each of ${NOTE_ROUNDS} reads before they could be noted: the release is tried again`,
      );
    }
    const { rows: noted } = await source.query<{ nobodys: { classid: number; objid: number }[] | null }>(NOTE_RELEASED_OWNERS, [
      JSON.stringify(unnoted.map(({ classid, objid }) => ({ classid, objid }))),
    ]);
    for (const o of noted[0]?.nobodys ?? []) nobodys.add(objectAddress(o.classid, o.objid));
    rows = await read();
  }
  return new Map(rows.map((r) => [objectKey(r), { name: r.owner, oid: Number(r.owner_oid) }]));
}

/** What the source has of these policies' tables, by policyKey. */
export async function readSourcePolicies(source: pg.ClientBase, policies: HeldPolicy[]): Promise<Map<string, SourcePolicy>> {
  if (policies.length === 0) return new Map();
  const wanted = policies.map(({ schema, table, name }) => ({ schema, table, name }));
  const { rows } = await source.query<{ schema: string; table: string; name: string; has_table: boolean; has_policy: boolean }>(SOURCE_POLICIES, [
    JSON.stringify(wanted),
  ]);
  return new Map(rows.map((r) => [policyKey(r), { table: r.has_table, policy: r.has_policy }]));
}

export function policyKey(p: { schema: string; table: string; name: string }): string {
  return `${p.schema}\0${p.table}\0${p.name}`;
}
