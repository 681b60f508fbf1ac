import { withoutGrantees } from '../capture/statements.js';
import type { Statement } from '../sql/statement.js';
import { isPredefinedRole, type CompiledRule, type RoleScope } from '../config/rules.js';

/**
 * Admitted: the statement to carry, which may be the one judged without some of its
 * grantees (`leftOut` says which, and why).
 */
export type StatementAdmission = { admitted: true; statement: Statement; leftOut?: string } | { admitted: false; reason: string };

/** Whether every criterion a rule names holds for the statement. */
function matches(rule: CompiledRule, statement: Statement): boolean {
  if (rule.commandTag !== undefined && rule.commandTag !== statement.kind) return false;
  if (rule.rolePattern && !statement.roles.some((r) => rule.rolePattern?.test(r))) return false;
  if (rule.schemaPattern && !statement.schemas.some((s) => rule.schemaPattern?.test(s))) return false;
  return true;
}

function describe(rule: CompiledRule): string {
  const parts = [
    rule.commandTag && `command_tag ${rule.commandTag}`,
    rule.rolePattern && `role_pattern ${rule.rolePattern.source}`,
    rule.schemaPattern && `schema_pattern ${rule.schemaPattern.source}`,
  ].filter(Boolean);
  return `${rule.action} rule (${parts.join(', ')})`;
}

/**
 * An environment's rules: a statement is carried when it matches an include rule (or
 * there are none) and no exclude rule. An excluded role (postgres, the sync users) is never
 * changed, never granted anything and never granted to anyone. The powers a superuser
 * guards are handed out only where the configuration says so: membership in a predefined
 * role (pg_execute_server_program runs programs as the server's OS user) and the
 * attributes SUPERUSER, REPLICATION and BYPASSRLS; taking them away is always carried.
 * A predefined role is never made a member of another role: every login the target
 * granted it to would get that role's privileges.
 *
 * A GRANT, REVOKE or ALTER DEFAULT PRIVILEGES naming several grantees is judged grantee by
 * grantee, as if written once for each (as drift plans it): the grantees not carried are cut
 * from its list, and it is left out only when none is left.
 */
export function admit(statement: Statement, rules: readonly CompiledRule[], roles: RoleScope): StatementAdmission {
  const list = statement.grantList;
  const entries: (string | null)[] = [...statement.grantees, ...(list?.public ? [null] : [])];
  if (!list || entries.length < 2) return admitWhole(statement, rules, roles);
  const refused = new Map<string | null, string>();
  for (const grantee of entries) {
    const alone: Statement = {
      ...statement,
      grantees: grantee === null ? [] : [grantee],
      roles: [...new Set([...list.otherRoles, ...(grantee === null ? [] : [grantee])])],
      grantList: { otherRoles: list.otherRoles, public: grantee === null },
    };
    const verdict = admitWhole(alone, rules, roles);
    if (!verdict.admitted) refused.set(grantee, verdict.reason);
  }
  if (refused.size === 0) return { admitted: true, statement };
  const reasons = [...new Set(refused.values())];
  const cut = refused.size < entries.length ? withoutGrantees(statement, new Set(refused.keys())) : undefined;
  if (!cut) return { admitted: false, reason: reasons.join('; ') };
  const names = [...refused.keys()].map((g) => (g === null ? 'PUBLIC' : `"${g}"`)).join(', ');
  return { admitted: true, statement: cut, leftOut: `without ${names}: ${reasons.join('; ')}` };
}

function admitWhole(statement: Statement, rules: readonly CompiledRule[], roles: RoleScope): StatementAdmission {
  const excluded = statement.grantees.find((r) => roles.excluded(r));
  if (excluded !== undefined) return { admitted: false, reason: `names excluded role "${excluded}"` };
  // A grantor the statement runs as may do only what the configuration lets permsync do with it.
  const runAs = statement.runAs;
  if (runAs !== undefined && roles.excluded(runAs)) return { admitted: false, reason: `runs as excluded role "${runAs}", its grantor` };
  if (runAs !== undefined && isPredefinedRole(runAs)) return { admitted: false, reason: `runs as predefined role "${runAs}", its grantor` };
  const granted = statement.granted;
  if (granted !== undefined) {
    const predefinedMember = statement.grantees.find(isPredefinedRole);
    if (predefinedMember !== undefined) return { admitted: false, reason: `makes predefined role "${predefinedMember}" a member of a role` };
  }
  if (granted !== undefined && isPredefinedRole(granted)) {
    if (!roles.carriesMembershipIn(granted)) {
      return { admitted: false, reason: `membership in predefined role "${granted}", which settings.carry_predefined_roles does not list` };
    }
  } else if (granted !== undefined && roles.internal(granted)) {
    return { admitted: false, reason: `grants role "${granted}", which exists on the source only` };
  } else if (granted !== undefined && roles.excluded(granted)) {
    return { admitted: false, reason: `grants excluded role "${granted}"` };
  }
  const attribute = statement.attribute;
  if (attribute !== undefined && !attribute.startsWith('NO') && !roles.carriesAttribute(attribute)) {
    return { admitted: false, reason: `gives ${attribute}, which settings.carry_role_attributes does not list` };
  }
  const exclude = rules.find((r) => r.action === 'exclude' && matches(r, statement));
  if (exclude) return { admitted: false, reason: `matches ${describe(exclude)}` };
  const includes = rules.filter((r) => r.action === 'include');
  if (includes.length > 0 && !includes.some((r) => matches(r, statement))) {
    return { admitted: false, reason: 'matches no include rule' };
  }
  return { admitted: true, statement };
}
