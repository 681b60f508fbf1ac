import type pg from 'pg';
import type { ReplayStatement } from '../capture/statements.js';
import { inCatalogSnapshot, toDefaultPrivilege, type DefaultPrivilege, type DefaultPrivilegeRow, type GrantState } from '../drift/catalog.js';
import * as Q from '../drift/catalog-queries.js';
import { objectKey, type Change, type ObjectRef } from '../drift/compare.js';
import { planChange, type PlanContext, type PlannedStatement } from '../drift/plan.js';

/**
 * A role dropped on the source held nothing there, in any database: DROP ROLE allows
 * nothing else. Its owned objects went to other roles and its privileges were revoked,
 * typically by `REASSIGN OWNED BY ... TO ...; DROP OWNED BY ...`, which fire no event
 * trigger (or are not replayed: DROP OWNED drops objects). A target still has them, and
 * its DROP ROLE would fail (2BP01). What the role holds in the target's database is
 * released first, as the source released it: each object it owns goes to the object's
 * owner on the source, and its privileges and default privileges are revoked. An object
 * the source does not have, or ownership in another database of the target's cluster, is
 * left as it is: DROP ROLE then fails and says what depends on the role.
 */

/** What `role` holds in the target's current database. */
export interface RoleHoldings {
  objects: HeldObject[];
  databaseGrants: HeldGrant[];
  defaultPrivileges: DefaultPrivilege[];
}

interface HeldObject extends ObjectRef {
  /** Owned by the role. */
  owned: boolean;
  /** The role's privileges on it. */
  grants: HeldGrant[];
}

interface HeldGrant {
  privilege: string;
  state: GrantState;
}

/** Objects the role owns or holds a privilege on, with its privileges (drift's catalog query, narrowed). */
const HELD_OBJECTS = `
  SELECT o.kind, o.schema, o.name, o.args, coalesce(o.owner::text = $1::text, false) AS owned,
         (SELECT coalesce(json_agg(json_build_array(g->>1, (g->>2)::boolean)), '[]')
            FROM json_array_elements(coalesce(o.grants, '[]')) g WHERE g->>0 = $1::text) AS grants
    FROM (${Q.OBJECTS}) o
   WHERE o.owner::text = $1::text
      OR EXISTS (SELECT 1 FROM json_array_elements(coalesce(o.grants, '[]')) g WHERE g->>0 = $1::text)`;

const HELD_DATABASE_GRANTS = `
  SELECT g->>1 AS privilege, (g->>2)::boolean AS grantable
    FROM (${Q.DATABASE}) d, json_array_elements(d.grants) g
   WHERE g->>0 = $1::text AND d.owner::text <> $1::text`;

const HELD_DEFAULT_PRIVILEGES = `SELECT * FROM (${Q.DEFAULT_PRIVILEGES}) d WHERE d.role::text = $1::text OR d.grantee::text = $1::text`;

/** The owners of these objects on the source (those it has, with an owner of their own). */
const OWNERS = `
  SELECT o.kind, o.schema, o.name, o.args, o.owner
    FROM (${Q.OBJECTS}) o
    JOIN jsonb_to_recordset($1::jsonb) AS w(kind text, schema text, name text, args text)
      ON w.kind = o.kind AND w.schema = o.schema
     AND w.name IS NOT DISTINCT FROM o.name AND w.args IS NOT DISTINCT FROM o.args
   WHERE o.owner IS NOT NULL`;

type Granted = [privilege: string, grantable: boolean];

/** Drift's catalog queries, in drift's snapshot: names print as on the source. */
export function readRoleHoldings(target: pg.ClientBase, role: string): Promise<RoleHoldings> {
  return inCatalogSnapshot(target, async () => {
    const state = (grantable: boolean): GrantState => (grantable ? 'grantable' : 'granted');
    const objects = await target.query<ObjectRef & { owned: boolean; grants: Granted[] }>(HELD_OBJECTS, [role]);
    const database = await target.query<{ privilege: string; grantable: boolean }>(HELD_DATABASE_GRANTS, [role]);
    const defaults = await target.query<DefaultPrivilegeRow>(HELD_DEFAULT_PRIVILEGES, [role]);
    return {
      objects: objects.rows.map((o) => ({
        kind: o.kind, schema: o.schema, name: o.name, args: o.args, owned: o.owned,
        grants: o.grants.map(([privilege, grantable]) => ({ privilege, state: state(grantable) })),
      })),
      databaseGrants: database.rows.map((g) => ({ privilege: g.privilege, state: state(g.grantable) })),
      defaultPrivileges: defaults.rows.map(toDefaultPrivilege),
    };
  });
}

/** Each object's owner on the source, by the object's key (objectKey). */
export async function readSourceOwners(source: pg.ClientBase, objects: ObjectRef[]): Promise<Map<string, string>> {
  if (objects.length === 0) return new Map();
  const wanted = objects.map(({ kind, schema, name, args }) => ({ kind, schema, name, args }));
  const { rows } = await inCatalogSnapshot(source, () => source.query<ObjectRef & { owner: string }>(OWNERS, [JSON.stringify(wanted)]));
  return new Map(rows.map((r) => [objectKey(r), r.owner]));
}

/**
 * The statements that release `role` on the target, in drift's plan order (owners, then
 * revokes, then default privileges), as replay statements of a generated batch.
 */
export function releaseStatements(role: string, held: RoleHoldings, sourceOwners: Map<string, string>, context: PlanContext): ReplayStatement[] {
  const absent = (grants: HeldGrant[]) => grants.map((g) => ({ privilege: g.privilege, from: g.state, to: 'absent' as const }));
  const changes: Change[] = [];
  for (const object of held.objects) {
    const ref: ObjectRef = { kind: object.kind, schema: object.schema, name: object.name, args: object.args };
    const owner = sourceOwners.get(objectKey(ref));
    if (object.owned && owner !== undefined && owner !== role) changes.push({ type: 'owner', object: ref, from: role, to: owner });
    // An owner's own privileges go with the object to its new owner.
    if (!object.owned && object.grants.length > 0) {
      changes.push({ type: 'privileges', target: { on: 'object', object: ref }, grantee: role, changes: absent(object.grants) });
    }
  }
  if (held.databaseGrants.length > 0) {
    changes.push({ type: 'privileges', target: { on: 'database' }, grantee: role, changes: absent(held.databaseGrants) });
  }
  for (const d of held.defaultPrivileges) {
    changes.push({
      type: 'privileges', target: { on: 'default', role: d.role, schema: d.schema, objectType: d.objectType }, grantee: d.grantee,
      changes: [{ privilege: d.privilege, from: d.state, to: d.defaultState }],
    });
  }
  // DROP OWNED revoked what the role had granted on with the grant option, too.
  const cascade = (s: PlannedStatement) => (s.kind === 'REVOKE' || s.kind === 'REVOKE ON DATABASE'
    ? { ...s, sql: `${s.sql} CASCADE`, display: `${s.display} CASCADE` } : s);
  return changes
    .flatMap((c) => planChange(c, context))
    .sort((a, b) => a.phase - b.phase)
    .map(cascade)
    .map((s, i) => ({
      ordinal: i + 1, kind: s.kind, sourceText: s.display, sql: s.sql, display: s.display,
      roles: s.roles, grantees: s.grantees, schemas: s.schemas,
      ...(s.granted !== undefined && { granted: s.granted }),
      ...(s.ignoreCodes && { ignoreCodes: s.ignoreCodes }),
      ...(s.privileged && { privileged: true }),
      ...(s.onTargetDatabase && { onTargetDatabase: true }),
    }));
}
