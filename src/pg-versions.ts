/**
 * What a PostgreSQL major can hold of what permsync carries, from 14 (the oldest the
 * README promises) on: source and targets may run different majors (an upgrade under
 * way), and the applier and drift both ask what a target's version can take.
 * Versions are server_version_num values (160000 is 16).
 */

/** Each membership's own INHERIT and SET options: before 16, every membership allows SET ROLE, and the member's INHERIT attribute decides inheritance. */
export const MEMBERSHIP_OPTIONS_SINCE = 160000;

/** Privileges on configuration parameters (GRANT SET ON PARAMETER, pg_parameter_acl). */
export const PARAMETER_PRIVILEGES_SINCE = 150000;

/** Privileges younger than 14, by the name GRANT takes, with the version that brought each. */
export const PRIVILEGES_SINCE: ReadonlyMap<string, number> = new Map([['MAINTAIN', 170000]]);

/** Kinds of default privileges younger than 14, by pg_default_acl.defaclobjtype. */
export const DEFAULT_PRIVILEGE_TYPES_SINCE: ReadonlyMap<string, number> = new Map([['L', 180000]]);

/** Predefined roles younger than 14, with the version that brought each. */
export const PREDEFINED_ROLES_SINCE: ReadonlyMap<string, number> = new Map([
  ['pg_checkpoint', 150000],
  ['pg_create_subscription', 160000],
  ['pg_use_reserved_connections', 160000],
  ['pg_maintain', 170000],
  ['pg_signal_autovacuum_worker', 180000],
]);

/** From this version on a server holds everything above: nothing needs a change for it. */
export const HOLDS_EVERYTHING_SINCE = Math.max(
  MEMBERSHIP_OPTIONS_SINCE,
  PARAMETER_PRIVILEGES_SINCE,
  ...PRIVILEGES_SINCE.values(),
  ...DEFAULT_PRIVILEGE_TYPES_SINCE.values(),
  ...PREDEFINED_ROLES_SINCE.values(),
);

/** "PostgreSQL 14", for messages. */
export function postgres(versionNum: number): string {
  return `PostgreSQL ${Math.floor(versionNum / 10000)}`;
}

/** Whether a server of `versionNum` knows the privilege `name` (upper case, as GRANT writes it). */
export function knowsPrivilege(versionNum: number, name: string): boolean {
  return versionNum >= (PRIVILEGES_SINCE.get(name) ?? 0);
}

/** Whether a server of `versionNum` has default privileges of `objectType` (pg_default_acl.defaclobjtype). */
export function knowsDefaultPrivilegeType(versionNum: number, objectType: string): boolean {
  return versionNum >= (DEFAULT_PRIVILEGE_TYPES_SINCE.get(objectType) ?? 0);
}

/** Whether a server of `versionNum` has the role `name`, as far as it is a predefined role younger than 14. */
export function hasPredefinedRole(versionNum: number, name: string): boolean {
  return versionNum >= (PREDEFINED_ROLES_SINCE.get(name) ?? 0);
}
