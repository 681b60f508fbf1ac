import type { ReplayStatement } from '../capture/statements.js';
import { excludedRoleMatcher, type Config, type SyncRule } from '../config/schema.js';

/** permsync's own roles on the source (sql/0003_operator.sql): not the DBAs' to carry. */
export const PERMSYNC_ROLES = ['permsync_admin', 'permsync_operator', 'permsync_reader', 'permsync_daemon'];

export interface CompiledRule {
  action: 'include' | 'exclude';
  commandTag?: string;
  rolePattern?: RegExp;
  schemaPattern?: RegExp;
}

export type Admission = { admitted: true } | { admitted: false; reason: string };

/** Which roles permsync leaves alone. */
export interface RoleScope {
  /** Never changed, never granted anything: excluded_roles, the sync users, permsync's own roles. */
  excluded(role: string): boolean;
  /** Exist on the source only (the sync users, permsync's own roles): never granted to anyone either. */
  internal(role: string): boolean;
}

export function compileRules(rules: readonly SyncRule[]): CompiledRule[] {
  return rules.map((r) => ({
    action: r.action,
    ...(r.commandTag !== undefined && { commandTag: r.commandTag }),
    ...(r.rolePattern !== undefined && { rolePattern: new RegExp(r.rolePattern) }),
    ...(r.schemaPattern !== undefined && { schemaPattern: new RegExp(r.schemaPattern) }),
  }));
}

/** The users permsync connects as (user names of the source and environment URLs). */
function syncUsers(config: Config): string[] {
  return [config.source.url, ...config.environments.map((e) => e.url)]
    .map((url) => decodeURIComponent(new URL(url).username))
    .filter((user) => user !== '');
}

/** The roles permsync leaves alone: excluded_roles, the sync users, its own roles. */
export function roleScope(config: Config): RoleScope {
  const internal = new Set([...syncUsers(config), ...PERMSYNC_ROLES]);
  const configured = excludedRoleMatcher(config.settings.excludedRoles);
  return {
    excluded: (role) => configured(role) || internal.has(role),
    internal: (role) => internal.has(role),
  };
}

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
 * there are none) and no exclude rule. An excluded role (postgres, pg_*, the sync users)
 * is never changed and never granted anything.
 */
export function admit(statement: ReplayStatement, rules: readonly CompiledRule[], roles: RoleScope): Admission {
  const excluded = statement.grantees.find((r) => roles.excluded(r));
  if (excluded !== undefined) return { admitted: false, reason: `names excluded role "${excluded}"` };
  // Granting a built-in role such as pg_monitor is carried; granting permsync's own is not.
  if (statement.granted !== undefined && roles.internal(statement.granted)) {
    return { admitted: false, reason: `grants role "${statement.granted}", which exists on the source only` };
  }
  const exclude = rules.find((r) => r.action === 'exclude' && matches(r, statement));
  if (exclude) return { admitted: false, reason: `matches ${describe(exclude)}` };
  const includes = rules.filter((r) => r.action === 'include');
  if (includes.length > 0 && !includes.some((r) => matches(r, statement))) {
    return { admitted: false, reason: 'matches no include rule' };
  }
  return { admitted: true };
}
