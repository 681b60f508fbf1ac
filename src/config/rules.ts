import { excludedRoleMatcher, type Config, type SyncRule } from './schema.js';

/** permsync's own roles, which its install creates on the source: not the DBAs' to carry. */
export const PERMSYNC_ROLES = ['permsync_admin', 'permsync_operator', 'permsync_reader', 'permsync_daemon'];

export interface CompiledRule {
  action: 'include' | 'exclude';
  commandTag?: string;
  rolePattern?: RegExp;
  schemaPattern?: RegExp;
}

/** Which roles permsync leaves alone, and which powers it may hand out. */
export interface RoleScope {
  /** Never changed, never granted anything: excluded_roles, the sync users, permsync's own roles. */
  excluded(role: string): boolean;
  /** Exist on the source only (the sync users, permsync's own roles): never granted to anyone either. */
  internal(role: string): boolean;
  /** settings.carry_predefined_roles lists this predefined role: memberships in it are carried. */
  carriesMembershipIn(role: string): boolean;
  /** settings.carry_role_attributes lists this attribute (SUPERUSER, REPLICATION, BYPASSRLS). */
  carriesAttribute(attribute: string): boolean;
}

/** Role names starting with pg_ are reserved for PostgreSQL's predefined roles. */
export function isPredefinedRole(role: string): boolean {
  return role.startsWith('pg_');
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
  const predefined = new Set(config.settings.carryPredefinedRoles);
  const attributes = new Set<string>(config.settings.carryRoleAttributes);
  return {
    excluded: (role) => configured(role) || internal.has(role),
    internal: (role) => internal.has(role),
    carriesMembershipIn: (role) => predefined.has(role),
    carriesAttribute: (attribute) => attributes.has(attribute),
  };
}
