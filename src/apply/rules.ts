import type { ReplayStatement } from '../capture/statements.js';

export interface CompiledRule {
  action: 'include' | 'exclude';
  commandTag?: string;
  rolePattern?: RegExp;
  schemaPattern?: RegExp;
}

export type Admission = { admitted: true } | { admitted: false; reason: string };

/** Whether every criterion a rule names holds for the statement. */
function matches(rule: CompiledRule, statement: ReplayStatement): boolean {
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
 * there are none) and no exclude rule. Grants to an excluded role (postgres, pg_*, ...)
 * are never carried.
 */
export function admit(
  statement: ReplayStatement,
  rules: readonly CompiledRule[],
  isExcludedRole: (role: string) => boolean,
): Admission {
  if (statement.kind === 'GRANT' || statement.kind === 'REVOKE' || statement.kind === 'ALTER DEFAULT PRIVILEGES') {
    const excluded = statement.grantees.find(isExcludedRole);
    if (excluded !== undefined) return { admitted: false, reason: `names excluded role "${excluded}"` };
  }
  const exclude = rules.find((r) => r.action === 'exclude' && matches(r, statement));
  if (exclude) return { admitted: false, reason: `matches ${describe(exclude)}` };
  const includes = rules.filter((r) => r.action === 'include');
  if (includes.length > 0 && !includes.some((r) => matches(r, statement))) {
    return { admitted: false, reason: 'matches no include rule' };
  }
  return { admitted: true };
}
