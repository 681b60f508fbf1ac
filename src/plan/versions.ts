import {
  DEFAULT_PRIVILEGE_TYPES_SINCE,
  hasPredefinedRole,
  knowsDefaultPrivilegeType,
  knowsPrivilege,
  MEMBERSHIP_OPTIONS_SINCE,
  PARAMETER_PRIVILEGES_SINCE,
  postgres,
  PREDEFINED_ROLES_SINCE,
  PRIVILEGES_SINCE,
} from '../pg-versions.js';
import type { Catalog, Grant, Membership } from '../catalog/catalog.js';
import { defaultObjects } from './changes.js';

export interface Comparable {
  source: Catalog;
  target: Catalog;
  /** What is left out of the comparison, and why. */
  notes: string[];
}

/**
 * The source's and a target's catalogs as far as both servers' versions can hold them
 * (they may run different majors during an upgrade): a privilege or a kind of default
 * privilege one of them lacks (MAINTAIN, 17; on large objects, 18), or a membership in or
 * a privilege granted to a predefined role one of them lacks (pg_maintain, 17), is
 * compared on neither side, since a 17 owner's implicit MAINTAIN is nothing a 16 server can have.
 * On a target before 16, memberships are expected as the applier carries them
 * (plan/server-version.ts): one without SET not at all, since every membership there
 * allows SET ROLE; INHERIT is the member's attribute there. From a source before 16 to a
 * target of 16 or later, a membership's INHERIT is its member's attribute on the source.
 * Grantors are compared where both sides keep them alike (both before 16, one grantor per
 * membership; or both 16 and later, one membership per grantor); else each membership is
 * compared once, whoever granted it. Privileges on parameters are 15's. Pure.
 */
export function comparable(source: Catalog, target: Catalog, environment: string): Comparable {
  const both = Math.min(source.serverVersionNum, target.serverVersionNum);
  const notes: string[] = [];
  const sides = [
    { catalog: source, name: 'the source', other: `${environment} runs ${postgres(target.serverVersionNum)}` },
    { catalog: target, name: environment, other: `the source runs ${postgres(source.serverVersionNum)}` },
  ];
  // What one side holds that the other's version cannot: not compared, and counted for the notes.
  const leftOut = (since: number, count: (catalog: Catalog) => number, what: string, lacking: string) => {
    if (both >= since) return;
    for (const side of sides) {
      const n = count(side.catalog);
      if (n > 0) notes.push(`${n} ${what} on ${side.name} are not compared: ${side.other}, which has ${lacking}`);
    }
  };
  for (const [privilege, since] of PRIVILEGES_SINCE) {
    // An owner's own privileges are implicit: only grants to others are worth a note.
    leftOut(
      since,
      (c) =>
        c.objects.reduce((n, o) => n + o.grants.filter((g) => g.privilege === privilege && g.grantee !== o.owner).length, 0) +
        c.defaultPrivileges.filter((d) => d.privilege === privilege).length,
      `grant(s) of ${privilege}`,
      'no such privilege',
    );
  }
  for (const [objectType, since] of DEFAULT_PRIVILEGE_TYPES_SINCE) {
    leftOut(
      since,
      (c) => c.defaultPrivileges.filter((d) => d.objectType === objectType).length,
      `default privilege(s) on ${defaultObjects(objectType).toLowerCase()}`,
      'none',
    );
  }
  for (const [role, since] of PREDEFINED_ROLES_SINCE) {
    leftOut(since, (c) => c.memberships.filter((m) => m.role === role).length, `membership(s) in ${role}`, 'no such role');
    leftOut(
      since,
      (c) =>
        c.databaseGrants.filter((g) => g.grantee === role).length +
        c.objects.reduce((n, o) => n + o.grants.filter((g) => g.grantee === role).length, 0) +
        c.defaultPrivileges.filter((d) => d.grantee === role || d.role === role).length,
      `privilege(s) granted to ${role}`,
      'no such role',
    );
  }
  leftOut(PARAMETER_PRIVILEGES_SINCE, (c) => c.shared.parameter.reduce((n, p) => n + p.grants.length, 0), 'privilege(s) on parameters', 'none');
  const known = (g: Grant) => knowsPrivilege(both, g.privilege) && hasPredefinedRole(both, g.grantee);
  const within = (catalog: Catalog): Catalog => ({
    ...catalog,
    memberships: catalog.memberships.filter((m) => hasPredefinedRole(both, m.role) && hasPredefinedRole(both, m.member)),
    databaseGrants: catalog.databaseGrants.filter(known),
    objects: catalog.objects.map((o) => ({ ...o, grants: o.grants.filter(known) })),
    defaultPrivileges: catalog.defaultPrivileges.filter(
      (d) =>
        knowsPrivilege(both, d.privilege) &&
        knowsDefaultPrivilegeType(both, d.objectType) &&
        hasPredefinedRole(both, d.grantee) &&
        hasPredefinedRole(both, d.role),
    ),
    shared: { ...catalog.shared, parameter: both >= PARAMETER_PRIVILEGES_SINCE ? catalog.shared.parameter : [] },
  });
  const projected = within(source);
  if (target.serverVersionNum < MEMBERSHIP_OPTIONS_SINCE && source.serverVersionNum >= MEMBERSHIP_OPTIONS_SINCE) {
    const withoutSet = projected.memberships.filter((m) => m.set === false).length;
    if (withoutSet > 0) {
      notes.push(
        `${withoutSet} membership(s) without SET on the source are not expected on ${environment}: ${postgres(target.serverVersionNum)} cannot grant a membership that does not allow SET ROLE`,
      );
    }
    projected.memberships = projected.memberships.filter((m) => m.set !== false).map((m) => ({ ...m, inherit: null, set: null }));
  } else if (source.serverVersionNum < MEMBERSHIP_OPTIONS_SINCE && target.serverVersionNum >= MEMBERSHIP_OPTIONS_SINCE) {
    // On the source, the member's INHERIT attribute says whether a membership is inherited.
    projected.memberships = projected.memberships.map((m) => ({ ...m, inherit: source.roles.get(m.member)?.inherit ?? null }));
  }
  const projectedTarget = within(target);
  if (source.serverVersionNum >= MEMBERSHIP_OPTIONS_SINCE !== target.serverVersionNum >= MEMBERSHIP_OPTIONS_SINCE) {
    if ([...source.memberships, ...target.memberships].some((m) => m.grantor !== null)) {
      notes.push(
        `membership grantors are not compared: before ${postgres(MEMBERSHIP_OPTIONS_SINCE)} a membership has one grantor, ` +
          'from it on one row per grantor',
      );
    }
    projected.memberships = withoutGrantors(projected.memberships);
    projectedTarget.memberships = withoutGrantors(projectedTarget.memberships);
  }
  return { source: projected, target: projectedTarget, notes };
}

/** Each membership once, whoever granted it: an option any grantor gives holds. */
function withoutGrantors(memberships: Membership[]): Membership[] {
  const merged = new Map<string, Membership>();
  const or = (a: boolean | null, b: boolean | null) => (a === null || b === null ? (a ?? b) : a || b);
  for (const m of memberships) {
    const key = `${m.role}\0${m.member}`;
    const seen = merged.get(key);
    merged.set(
      key,
      seen ? { ...seen, admin: seen.admin || m.admin, inherit: or(seen.inherit, m.inherit), set: or(seen.set, m.set) } : { ...m, grantor: null },
    );
  }
  return [...merged.values()];
}
