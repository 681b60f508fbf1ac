import type { Statement } from '../sql/statement.js';
import { isPredefinedRole } from '../config/rules.js';
import { SQLSTATE } from '../errors.js';
import { withoutGrantor } from './target-statements.js';
import { FIRST_USER_OID } from '../catalog/catalog.js';

/**
 * Which roles on one target permsync may change. The role watcher cannot know who
 * changed a role on the source (no event trigger fires for roles), and a CREATEROLE user
 * may create any role there: a look-alike of a target's own role (a prod-only superuser,
 * an auditor) must not hand that role over. So permsync changes, grants to, runs as and
 * drops only the roles it manages on each target: those it created there, and those an
 * operator handed over (`permsync adopt`), by their oid and name on the target: a role
 * dropped and created again there under the same name is not taken for the old one, nor
 * is a role another cluster (an environment pointed elsewhere) has under a recorded oid.
 * Predefined roles (pg_*) are the same on every server and nobody's to take over. The
 * bootstrap superuser (oid 10) has whatever name initdb gave it: a target's stands for the
 * source's only under the same name (the DBAs' postgres on both), never for an ordinary
 * source role that took its name.
 */

/** A target role, by name, as the target answered: its oid, or absent. */
export type TargetRoles = Map<string, number>;

/** A role permsync manages on an environment: the name permsync last gave it, and the source role it stands for (its oid there), where known. */
export interface ManagedRole {
  name: string;
  sourceOid?: number;
}

/** The roles permsync manages on an environment, by their oid there. */
export type ManagedRoles = ReadonlyMap<number, ManagedRole>;

/** What tells permsync's roles on a target from the target's own. */
export interface RoleOwners {
  managed: ManagedRoles;
  /** The name of the source's bootstrap superuser (oid 10). */
  sourceSuperuser: string;
  /**
   * The source's roles' oids by name, where the caller read them (drift, reconcile, a
   * converged batch): a managed role that stands for another source role than the one of
   * its name now (the source dropped its own, the drop not carried) is the target's own.
   */
  sourceOids?: ReadonlyMap<string, number>;
}

/** Whether the target's role `name` (of oid `oid`) is permsync's to name: predefined, the source's bootstrap superuser's counterpart, or managed under that name for the source's role of that name. */
export function isOurs(name: string, oid: number, owners: RoleOwners): boolean {
  if (oid < FIRST_USER_OID) return isPredefinedRole(name) || name === owners.sourceSuperuser;
  const role = owners.managed.get(oid);
  if (role?.name !== name) return false;
  const now = owners.sourceOids?.get(name);
  return role.sourceOid === undefined || now === undefined || now === role.sourceOid;
}

/** A name the source uses that a target role permsync does not manage holds there. */
interface RoleConflict {
  role: string;
  /** The target role's oid. */
  oid: number;
  reason: string;
}

export interface OwnershipVerdict {
  /** The statements to run, in order. */
  kept: Statement[];
  /** Why each left-out statement is not carried. */
  notes: string[];
  conflicts: RoleConflict[];
  /** Roles this batch creates there, by their CREATE ROLE: to be recorded as managed once created. */
  creates: { role: string; statement: Statement }[];
  /** Managed roles this batch drops there, with their oids: to be forgotten once dropped. */
  drops: { role: string; oid: number }[];
  /** Managed roles this batch renames there. */
  renames: { from: string; to: string; oid: number }[];
  /**
   * Managed roles whose name the source gave to another role, by a rename this target
   * could not follow: the role of that name here is no longer the source's, and is the
   * target's own from now on.
   */
  disowned: { role: string; oid: number }[];
}

/** Every role name the statements and their author name, for one lookup on the target. */
export function namesToLookUp(statements: Statement[], author: string | undefined): string[] {
  const names = new Set<string>(author === undefined ? [] : [author]);
  for (const s of statements) for (const r of s.roles) names.add(r);
  return [...names];
}

/**
 * Keeps the statements that touch only roles permsync may change here, in order. A
 * statement names roles (grantees, granted roles, new owners, FOR ROLE, both names of a
 * rename) and, for an authored batch, runs as its author: each must be predefined,
 * managed, or absent where the statement allows it (a role this batch creates, one
 * whose absence the statement itself tolerates). A role present and not managed is the
 * target's own: the statement is left out and the collision is a conflict. A statement
 * that needs a role the target does not have (one its rules keep off, or a look-alike
 * renamed away from a conflict) is left out too, rather than failing there and holding
 * every later change behind it.
 */
export function judgeStatements(
  statements: Statement[],
  author: string | undefined,
  roles: TargetRoles,
  owners: RoleOwners,
  authorSourceOid?: number,
): OwnershipVerdict {
  const state = new Map(roles);
  // A rename earlier in the batch takes a managed role's new name with it.
  const managed = new Map(owners.managed);
  const ours = (name: string, oid: number) => isOurs(name, oid, { ...owners, managed });
  const verdict: OwnershipVerdict = { kept: [], notes: [], conflicts: [], creates: [], drops: [], renames: [], disowned: [] };
  const conflicted = new Set<string>();
  const conflict = (role: string, oid: number, reason: string) => {
    if (conflicted.has(role)) return;
    conflicted.add(role);
    verdict.conflicts.push({ role, oid, reason });
  };
  const created = new Set<string>();
  // A role left here under a name the source gave up or gave another role is no longer
  // permsync's: else a role the source makes of that name later would be taken for it.
  const disown = (role: string, reason: string) => {
    const oid = state.get(role);
    if (oid === undefined || created.has(role) || !managed.has(oid)) return;
    managed.delete(oid);
    verdict.disowned.push({ role, oid });
    conflict(role, oid, reason);
  };
  // Which source role a name held by a statement is (`now`), against the one the managed
  // role here of that name stands for: the same (or not known), the source's newer role of
  // the name, or an earlier one (a reconcile or an adoption took the newer ahead of these
  // batches). Oids grow; after a wraparound a newer role looks earlier, and its statements
  // are left out rather than carried to another role.
  const standing = (name: string, now: number | undefined): 'same' | 'newer' | 'earlier' => {
    const oid = state.get(name);
    if (oid === undefined || now === undefined || created.has(name)) return 'same';
    const standsFor = managed.get(oid)?.sourceOid;
    if (standsFor === undefined || standsFor === now) return 'same';
    return now > standsFor ? 'newer' : 'earlier';
  };
  const givenAway = 'the source gives this name to another role than the one here stands for (its drop or rename was not carried here)';

  if (author !== undefined) {
    const noneCarried = (why: string) => {
      for (const s of statements) verdict.notes.push(`statement ${s.ordinal} (${s.kind}) not carried: ${why}`);
      return verdict;
    };
    // Capture names no author it could not tell (a role renamed since the session set it):
    // such a batch is converged, so one that comes without is run as nobody.
    if (authorSourceOid === undefined) return noneCarried(`its author "${author}" is not known by its oid`);
    const was = standing(author, authorSourceOid);
    if (was === 'newer') disown(author, givenAway);
    if (was === 'earlier') return noneCarried(`its author "${author}" is an earlier role of that name than the one here`);
    const oid = state.get(author);
    if (oid === undefined || !ours(author, oid)) {
      if (oid !== undefined) conflict(author, oid, 'the source runs statements as a role of this name');
      return noneCarried(
        oid === undefined
          ? `its author "${author}" does not exist here (a role this environment does not carry, or one dropped here)`
          : `its author "${author}" is a role of this target's own, which permsync does not manage`,
      );
    }
  }

  for (const s of statements) {
    const name = s.grantees[0];
    // A name the source gave another role than the one a managed role here stands for
    // (the source dropped or renamed its own, and that was not carried here: skipped, or
    // kept off by the rules) is that other role's: the one here, with what it holds, is
    // the target's own from now on.
    const earlier = s.roles.find((r) => standing(r, s.sourceOids?.[r]) === 'earlier');
    if (earlier !== undefined) {
      verdict.notes.push(`statement ${s.ordinal} (${s.kind}) not carried: it names an earlier role "${earlier}" than the one here`);
      continue;
    }
    for (const r of s.roles) if (standing(r, s.sourceOids?.[r]) === 'newer') disown(r, givenAway);
    const foreign = s.roles.find((r) => {
      const oid = state.get(r);
      return oid !== undefined && !created.has(r) && !ours(r, oid);
    });
    if (foreign !== undefined) {
      const oid = state.get(foreign) as number;
      conflict(
        foreign,
        oid,
        s.kind === 'CREATE ROLE' && s.grantees[0] === foreign
          ? 'the source created a role of this name, and this target already has one permsync did not create'
          : 'the source changes a role of this name, and this target has one permsync did not create',
      );
      verdict.notes.push(
        `statement ${s.ordinal} (${s.kind}) not carried: role "${foreign}" exists here and is not permsync's ` +
          `(a role of this target's own; \`permsync adopt\` hands it over)`,
      );
      if (s.renamedFrom !== undefined) disown(s.renamedFrom, 'the source renamed this role, and this target could not follow');
      continue;
    }
    // A rename onto a name a role has here already (one this environment does not
    // follow the source in, say) would fail and hold every later change. Where the
    // renamed role is here too, the source now gives that name to another role: a managed
    // role holding it here is no longer the source's, or whatever the source grants to
    // the name would go to it.
    if (s.renamedFrom !== undefined && name !== undefined && (state.has(name) || created.has(name))) {
      if (state.has(s.renamedFrom)) {
        disown(name, 'the source gave this name to another role, which this target could not rename to it');
        disown(s.renamedFrom, 'the source renamed this role, and this target could not follow');
      }
      verdict.notes.push(`statement ${s.ordinal} (${s.kind}) not carried: a role named "${name}" exists here already`);
      continue;
    }
    const missing = requiredRoles(s).find((r) => !state.has(r) && !created.has(r));
    if (missing !== undefined) {
      verdict.notes.push(
        `statement ${s.ordinal} (${s.kind}) not carried: role "${missing}" does not exist here ` +
          '(a role this environment does not carry, one dropped here, or one whose creation was a conflict)',
      );
      continue;
    }
    verdict.kept.push(s);
    if (name === undefined) continue;
    if (s.kind === 'CREATE ROLE' && !state.has(name)) {
      created.add(name);
      verdict.creates.push({ role: name, statement: s });
    } else if (s.kind === 'DROP ROLE') {
      const oid = state.get(name);
      if (oid !== undefined && !created.has(name)) verdict.drops.push({ role: name, oid });
      state.delete(name);
      created.delete(name);
    } else if (s.renamedFrom !== undefined) {
      const oid = followRename(s.renamedFrom, name, state, managed);
      if (oid !== undefined) verdict.renames.push({ from: s.renamedFrom, to: name, oid });
    }
  }
  return verdict;
}

/**
 * A rename earlier in the batch: the role, and permsync's record of it, go under the new
 * name in these maps. Returns the role's oid here, if it is here.
 */
function followRename(from: string, to: string, present: Map<string, number>, managed: Map<number, ManagedRole>): number | undefined {
  const oid = present.get(from);
  present.delete(from);
  if (oid === undefined) return undefined;
  present.set(to, oid);
  const role = managed.get(oid);
  if (role !== undefined) managed.set(oid, { ...role, name: to });
  return oid;
}

/**
 * The roles a statement needs to exist for it to apply: none where it creates or drops
 * its role, or tolerates its absence, but for the role it runs as, whose absence no
 * statement survives (SET ROLE fails with 22023). A predefined role a target's version
 * lacks is for the applier's version rewriting (server-version.ts) to say.
 */
function requiredRoles(s: Statement): string[] {
  if (s.ignoreCodes?.includes(SQLSTATE.undefinedObject)) return s.runAs !== undefined && !isPredefinedRole(s.runAs) ? [s.runAs] : [];
  const named = s.roles.filter((r) => !isPredefinedRole(r));
  if (s.kind === 'CREATE ROLE' || s.kind === 'DROP ROLE') return named.filter((r) => r !== s.grantees[0]);
  return named;
}

/** Whether permsync may change `role` on a target (absent, or one isOurs). */
export function mayChange(role: string, roles: TargetRoles, owners: RoleOwners): boolean {
  const oid = roles.get(role);
  return oid === undefined || isOurs(role, oid, owners);
}

/**
 * A membership's grantor (GRANTED BY) is named on a target only where permsync may name
 * it: a role it manages there (or creates earlier in the batch), or the bootstrap
 * superuser standing for the source's, and never an excluded role otherwise. Elsewhere
 * the clause is left out, with a note: the membership is granted all the same, recorded
 * as the sync user's, rather than held back for the grantor's sake.
 */
export function settleGrantors(
  statements: Statement[],
  roles: TargetRoles,
  owners: RoleOwners,
  excluded: (role: string) => boolean,
): { statements: Statement[]; notes: string[] } {
  const notes: string[] = [];
  const created = new Set<string>();
  // A rename earlier in the batch gives the role, and permsync's record of it, its new name.
  const present = new Map(roles);
  const managed = new Map(owners.managed);
  const settled = statements.map((s) => {
    const name = s.grantees[0];
    if (s.kind === 'CREATE ROLE' && name !== undefined && !present.has(name)) created.add(name);
    if (s.renamedFrom !== undefined && name !== undefined) {
      followRename(s.renamedFrom, name, present, managed);
      if (created.delete(s.renamedFrom)) created.add(name);
    }
    const grantor = s.grantor;
    if (grantor === undefined) return s;
    const why = grantorProblem(grantor, present.get(grantor), created, { ...owners, managed }, excluded);
    if (why === undefined) return s;
    notes.push(`statement ${s.ordinal} (${s.kind}): without GRANTED BY "${grantor}", which ${why}: the sync user stands for it`);
    return { ...withoutGrantor(s), roles: s.roles.filter((r) => r !== grantor) };
  });
  return { statements: settled, notes };
}

function grantorProblem(
  grantor: string,
  oid: number | undefined,
  created: Set<string>,
  owners: RoleOwners,
  excluded: (role: string) => boolean,
): string | undefined {
  if (oid === undefined) return created.has(grantor) ? undefined : 'does not exist here';
  if (!isOurs(grantor, oid, owners)) return "is a role of this target's own, which permsync does not manage";
  if (excluded(grantor) && oid >= FIRST_USER_OID) return 'is an excluded role';
  return undefined;
}
