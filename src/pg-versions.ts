/**
 * What a PostgreSQL major can hold of what permsync carries, from 14 (the oldest the
 * README promises) on: source and targets may run different majors (an upgrade under
 * way), and the applier and drift both ask what a target's version can take.
 * Versions are server_version_num values (160000 is 16).
 */

/** Each membership's own INHERIT and SET options: before 16, every membership allows SET ROLE, and the member's INHERIT attribute decides inheritance. */
export const MEMBERSHIP_OPTIONS_SINCE = 160000;

/** Privileges younger than 14, by the name GRANT takes, with the version that brought each. */
export const PRIVILEGES_SINCE: ReadonlyMap<string, number> = new Map([['MAINTAIN', 170000]]);

/** Kinds of default privileges younger than 14, by pg_default_acl.defaclobjtype. */
export const DEFAULT_PRIVILEGE_TYPES_SINCE: ReadonlyMap<string, number> = new Map([['L', 180000]]);

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
