import { policyKey, type HeldGrant, type OwnerOnSource, type RoleHoldings, type SourcePolicy } from '../catalog/role-holdings.js';
import { objectKey, type Change, type ObjectRef, type PrivilegeTarget } from '../catalog/compare.js';
import { orderPlan, planChange, withCascade, type PlanContext } from './changes.js';
import { mayChange, type ManagedRoles, type RoleOwners, type TargetRoles } from './role-ownership.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import type { Statement } from '../sql/statement.js';

/**
 * A role dropped on the source held nothing there, in any database: DROP ROLE allows
 * nothing else. Its owned objects went to other roles and its privileges were revoked,
 * typically by `REASSIGN OWNED BY ... TO ...; DROP OWNED BY ...`, which fire no event
 * trigger (or are not replayed: DROP OWNED drops objects). A target still has them, and
 * its DROP ROLE would fail (2BP01). What the role holds in the target's database is
 * released first, as the source released it: each object it owns goes to the owner of the
 * source's object of its name, where that object was the role's when permsync last saw its
 * owner (catalog/role-holdings.ts reads only those; another's object made to look like it
 * is not one), its privileges and default privileges are revoked, and it is taken
 * out of the row-level security policies that name it, as DROP OWNED does: a policy that
 * names other roles too keeps those, and one that names it alone is dropped where the
 * source has no policy of that name on that table. Either is no change for any other role
 * (a policy applies to the roles it names and their members, and the role is about to go).
 * An object the source does not have as the role's (a table, or a policy on a table the
 * source lacks), or ownership in another database of the target's cluster, is left as it
 * is: DROP ROLE then fails and says what depends on the role.
 */

/**
 * The statements that release `role` on the target, in drift's plan order (owners, then
 * revokes, then default privileges), then its policies (see the top of this file).
 */
export function releaseStatements(
  role: string,
  held: RoleHoldings,
  sourceOwners: Map<string, string>,
  context: PlanContext,
  sourcePolicies: Map<string, SourcePolicy> = new Map(),
): Statement[] {
  // One revoke per grantor, each run as its grantor: a grant through a grant option is
  // revoked by its grantor only.
  const revoked = (target: PrivilegeTarget, grants: HeldGrant[]): Change[] =>
    [...new Set(grants.map((g) => g.grantor))].map((grantor) => ({
      type: 'privileges' as const,
      target,
      grantee: role,
      grantor,
      depth: { source: 0, target: grantor === null ? 0 : 1 },
      changes: grants.filter((g) => g.grantor === grantor).map((g) => ({ privilege: g.privilege, from: g.state, to: 'absent' as const })),
    }));
  const changes: Change[] = ownerChanges(role, held, sourceOwners).filter((c) => c.to !== role);
  // An owner's own privileges go with the object to its new owner.
  for (const object of held.objects) if (!object.owned) changes.push(...revoked({ on: 'object', object: refOf(object) }, object.grants));
  changes.push(...revoked({ on: 'database' }, held.databaseGrants));
  for (const d of held.defaultPrivileges) {
    changes.push({
      type: 'privileges',
      target: { on: 'default', role: d.role, schema: d.schema, objectType: d.objectType },
      grantee: d.grantee,
      grantor: null,
      depth: { source: 0, target: 0 },
      changes: [{ privilege: d.privilege, from: d.state, to: d.defaultState }],
    });
  }
  // DROP OWNED revoked what the role had granted on with the grant option, too.
  return [...orderPlan(changes.flatMap((c) => planChange(c, context))).map(withCascade), ...policyStatements(role, held, sourcePolicies)];
}

/** A managed role on the target: its oid there and its name. */
export interface StandingRole {
  oid: number;
  name: string;
}

/** The managed roles that stand for these source roles, by the source role's oid: read once for all of a release's objects. */
export function standingFor(managed: ManagedRoles, sourceOids: ReadonlySet<number>): Map<number, StandingRole> {
  return new Map(
    [...managed].flatMap(([oid, m]) =>
      m.sourceOid !== undefined && sourceOids.has(m.sourceOid) ? [[m.sourceOid, { oid, name: m.name }] as const] : [],
    ),
  );
}

/**
 * The name of the target's role that takes over an object from a dropped role, for the
 * source's owner of the object; none where no role may. The role watcher writes the
 * creations of a look that drops a role in a batch of their own before the rest, and its
 * drops before its renames, so the owner is there before the DROP ROLE's batch, under the
 * name the target has it by at the DROP ROLE: the role permsync manages for that source
 * role (by its oid there), else a role of the owner's name permsync may change for it
 * (managed with no source oid known, predefined, the bootstrap superuser's counterpart)
 * that the batch neither drops nor renames. A role the batch renames onto a name a role of
 * the target's own holds is none: that rename is refused there, and the role disowned.
 * Nor is a role the batch creates under a name it frees (drops or renames away) in the
 * same moment: it comes after the DROP ROLE (heirCreatedLater).
 */
export function heirOnTarget(
  owner: OwnerOnSource,
  standing: ReadonlyMap<number, StandingRole>,
  present: TargetRoles,
  owners: RoleOwners,
  batch: readonly Statement[],
): string | undefined {
  const managed = standing.get(owner.oid);
  if (managed !== undefined && present.get(managed.name) === managed.oid) {
    const end = batch.reduce((n, s) => (s.renamedFrom === n ? (s.grantees[0] ?? n) : n), managed.name);
    return end === managed.name || !present.has(end) || mayChange(end, present, owners) ? managed.name : undefined;
  }
  const changed = batch.some((s) => s.renamedFrom === owner.name || (s.kind === 'DROP ROLE' && s.grantees[0] === owner.name));
  if (!present.has(owner.name) || changed) return undefined;
  return mayChange(owner.name, present, { ...owners, sourceOids: new Map([[owner.name, owner.oid]]) }) ? owner.name : undefined;
}

/**
 * The role the batch creates after its statement `after` (a DROP ROLE) for the source's
 * owner, by the owner's oid there: one under a name a drop or rename of the same moment
 * frees (`DROP ROLE h; CREATE ROLE h`, a new role renamed onto the dropped one's name), as
 * the role watcher writes only such creations after a drop. The objects go to it once it
 * is created (handoverStatements). Its name, and its position in the batch.
 */
export function heirCreatedLater(owner: OwnerOnSource, batch: readonly Statement[], after: number): { name: string; index: number } | undefined {
  const index = batch.findIndex((s, i) => i > after && s.kind === 'CREATE ROLE' && s.sourceOids?.[s.grantees[0] ?? ''] === owner.oid);
  const name = batch[index]?.grantees[0];
  return name === undefined ? undefined : { name, index };
}

/**
 * The owner changes that give the dropped role's objects to the roles the batch creates
 * after its DROP ROLE (heirCreatedLater), by object key; each says which DROP ROLE it is
 * for, by the drop's position in the batch (Statement.handsOverFor).
 */
export function handoverStatements(
  role: string,
  held: RoleHoldings,
  heirs: ReadonlyMap<string, string>,
  context: PlanContext,
  drop: number,
): Statement[] {
  return orderPlan(ownerChanges(role, held, heirs).flatMap((c) => planChange(c, context))).map((s) => ({ ...s, handsOverFor: drop }));
}

function refOf(object: RoleHoldings['objects'][number]): ObjectRef {
  return { kind: object.kind, schema: object.schema, name: object.name, args: object.args };
}

/** Each object the role owns here that has an heir (by object key), to that heir. */
function ownerChanges(role: string, held: RoleHoldings, heirs: ReadonlyMap<string, string>): Extract<Change, { type: 'owner' }>[] {
  return held.objects.flatMap((object) => {
    const ref = refOf(object);
    const heir = heirs.get(objectKey(ref));
    return object.owned && heir !== undefined ? [{ type: 'owner' as const, object: ref, from: role, to: heir }] : [];
  });
}

/**
 * The role out of the policies that name it, where the source has their table: ALTER
 * POLICY keeps the other roles; a policy naming it alone is dropped unless the source has
 * one of that name there. They go with the DROP ROLE they make possible.
 */
function policyStatements(role: string, held: RoleHoldings, sourcePolicies: Map<string, SourcePolicy>): Statement[] {
  return held.policies.flatMap((p) => {
    const source = sourcePolicies.get(policyKey(p));
    if (!source?.table || (p.others.length === 0 && source.policy)) return [];
    const on = `${quoteIdent(p.name)} ON ${quoteQualified(p.schema, p.table)}`;
    const sql =
      p.others.length > 0 ? `ALTER POLICY ${on} TO ${p.others.map((r) => (r === '' ? 'PUBLIC' : quoteIdent(r))).join(', ')}` : `DROP POLICY ${on}`;
    return [{ kind: 'DROP ROLE' as const, sql, display: sql, roles: [role], grantees: [], schemas: [p.schema] }];
  });
}
