import { policyKey, type HeldGrant, type RoleHoldings, type SourcePolicy } from '../catalog/role-holdings.js';
import { objectKey, type Change, type ObjectRef } from '../catalog/compare.js';
import { planChange, type PlanContext, type Planned } from './changes.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { shown, type Statement } from '../sql/statement.js';

/**
 * A role dropped on the source held nothing there, in any database: DROP ROLE allows
 * nothing else. Its owned objects went to other roles and its privileges were revoked,
 * typically by `REASSIGN OWNED BY ... TO ...; DROP OWNED BY ...`, which fire no event
 * trigger (or are not replayed: DROP OWNED drops objects). A target still has them, and
 * its DROP ROLE would fail (2BP01). What the role holds in the target's database is
 * released first, as the source released it: each object it owns goes to the object's
 * owner on the source, its privileges and default privileges are revoked, and it is taken
 * out of the row-level security policies that name it, as DROP OWNED does: a policy that
 * names other roles too keeps those, and one that names it alone is dropped where the
 * source has no policy of that name on that table. Either is no change for any other role
 * (a policy applies to the roles it names and their members, and the role is about to go).
 * An object the source does not have (a table, or a policy on a table the source lacks),
 * or ownership in another database of the target's cluster, is left as it is: DROP ROLE
 * then fails and says what depends on the role.
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
      type: 'privileges',
      target: { on: 'default', role: d.role, schema: d.schema, objectType: d.objectType },
      grantee: d.grantee,
      changes: [{ privilege: d.privilege, from: d.state, to: d.defaultState }],
    });
  }
  // DROP OWNED revoked what the role had granted on with the grant option, too.
  const cascade = ({ statement: s }: Planned): Statement =>
    s.kind === 'REVOKE' || s.kind === 'REVOKE ON DATABASE' ? { ...s, sql: `${s.sql} CASCADE`, display: `${shown(s)} CASCADE` } : s;
  return [
    ...changes
      .flatMap((c) => planChange(c, context))
      .sort((a, b) => a.phase - b.phase)
      .map(cascade),
    ...policyStatements(role, held, sourcePolicies),
  ];
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
