/** A grant in one ACL: `grantor` null for the owner's. */
export interface AclGrant {
  grantee: string;
  grantor: string | null;
  privilege: string;
  grantable: boolean;
}

/**
 * One ACL (an object's, or one column's: a column's is apart from its table's) as
 * PostgreSQL changes it (aclupdate and recursive_revoke in acl.c): a grantee that loses
 * its last grant option of a privilege loses the grants it made through that option with
 * it, which RESTRICT refuses (2BP01) and CASCADE takes, and theirs in turn. The owner
 * never loses its options, nor does a role that has the privileges of the owner or of a
 * holder of the option here (aclmask with has_privs_of_role: a superuser, or a member
 * that inherits from it), whose grants through it then stay.
 */
class AclModel {
  /** By privilege and grantee: its grants, by grantor ('' for the owner), and whether each is grantable. */
  private readonly held = new Map<string, Map<string, boolean>>();
  /** By privilege and grantor: the grantees of its grants. */
  private readonly given = new Map<string, Set<string>>();

  constructor(
    private readonly owner: string,
    private readonly privilegesOf: PrivilegesOf,
    grants: AclGrant[],
  ) {
    for (const g of grants) this.grant(g.grantee, g.grantor, g.privilege, g.grantable);
  }

  state(grantee: string, grantor: string | null, privilege: string): 'absent' | 'granted' | 'grantable' {
    const grantable = this.held.get(key(privilege, grantee))?.get(grantor ?? '');
    return grantable === undefined ? 'absent' : grantable ? 'grantable' : 'granted';
  }

  grant(grantee: string, grantor: string | null, privilege: string, option: boolean): void {
    const from = grantor ?? '';
    const held = this.held.get(key(privilege, grantee)) ?? new Map<string, boolean>();
    held.set(from, option || (held.get(from) ?? false));
    this.held.set(key(privilege, grantee), held);
    const given = this.given.get(key(privilege, from)) ?? new Set<string>();
    this.given.set(key(privilege, from), given.add(grantee));
  }

  /** Whether a revoke (of the grant, or of its option alone) changes anything here. */
  changes(grantee: string, grantor: string | null, privilege: string, optionOnly: boolean): boolean {
    const state = this.state(grantee, grantor, privilege);
    return optionOnly ? state === 'grantable' : state !== 'absent';
  }

  /** Whether RESTRICT refuses the revoke: it takes the grantee's last option while grants it made through it stand. */
  refuses(grantee: string, grantor: string | null, privilege: string): boolean {
    if (this.state(grantee, grantor, privilege) !== 'grantable') return false;
    return !this.keeps(grantee, privilege, grantor ?? '') && (this.given.get(key(privilege, grantee))?.size ?? 0) > 0;
  }

  /** Whether a role holds the privilege's option here, the grant from `except` aside (recursive_revoke's aclmask). */
  private keeps(role: string, privilege: string, except?: string): boolean {
    const holds = (r: string, but?: string) => [...(this.held.get(key(privilege, r)) ?? [])].some(([from, grantable]) => grantable && from !== but);
    if (role === this.owner || holds(role, except)) return true;
    const of = this.privilegesOf(role);
    return of === 'every' || of.has(this.owner) || [...of].some((r) => holds(r));
  }

  /** Makes the revoke with CASCADE (a plain one where nothing depends on it); returns the grants it took besides. */
  revoke(grantee: string, grantor: string | null, privilege: string, optionOnly: boolean): AclGrant[] {
    const lost = this.state(grantee, grantor, privilege) === 'grantable';
    if (optionOnly) this.held.get(key(privilege, grantee))?.set(grantor ?? '', false);
    else this.remove(grantee, grantor ?? '', privilege);
    const taken: AclGrant[] = [];
    // Iterative: a chain is as long as any login made it.
    const losing = lost ? [grantee] : [];
    for (let role = losing.pop(); role !== undefined; role = losing.pop()) {
      if (this.keeps(role, privilege)) continue;
      for (const dependent of [...(this.given.get(key(privilege, role)) ?? [])]) {
        const grantable = this.state(dependent, role, privilege) === 'grantable';
        taken.push({ grantee: dependent, grantor: role, privilege, grantable });
        this.remove(dependent, role, privilege);
        if (grantable) losing.push(dependent);
      }
    }
    return taken;
  }

  private remove(grantee: string, from: string, privilege: string): void {
    const held = this.held.get(key(privilege, grantee));
    held?.delete(from);
    if (held?.size === 0) this.held.delete(key(privilege, grantee));
    const given = this.given.get(key(privilege, from));
    given?.delete(grantee);
    if (given?.size === 0) this.given.delete(key(privilege, from));
  }
}

/**
 * The roles whose privileges a role has besides its own (has_privs_of_role: those it
 * inherits from through its memberships), or 'every' for a superuser's.
 */
export type PrivilegesOf = (role: string) => ReadonlySet<string> | 'every';

/** A role's entry for a privilege, as one key: neither name can hold a NUL. */
function key(privilege: string, role: string): string {
  return `${privilege}\0${role}`;
}

/** One statement of a plan on one object, as the revokes are settled (settleRevokes). */
export interface ChainStep<T> {
  /** '' for the object's own ACL, else a column's name. */
  acl: string;
  verb: 'GRANT' | 'REVOKE';
  /** WITH GRANT OPTION, or GRANT OPTION FOR. */
  option: boolean;
  grantee: string;
  grantor: string | null;
  /** Its privileges, each with what the caller knows it by. */
  items: { privilege: string; ref: T }[];
  /** Where it runs: by phase, then rank, then the order of the steps given. */
  phase: number;
  rank: number;
}

export interface Settled<T> {
  /** The revokes made last, in this order, after every other statement on the object: with CASCADE where `cascade`. */
  last: { ref: T; cascade: boolean }[];
  /** Revokes left with nothing to take: a revoke with CASCADE before them took it. */
  taken: T[];
  /** What the object's ACLs hold of the source's grants then no longer (or without the option): granted again, after. */
  regrants: { acl: string; grant: AclGrant; from: 'absent' | 'granted' }[];
}

/**
 * Runs a plan's statements on one object (a relation with its columns: a revoke on a
 * relation revokes on each of its columns too) in their order on the target's ACLs, with
 * its roles' memberships as `privilegesOf` gives them, and settles the revokes PostgreSQL
 * would refuse there (2BP01): each is made after every other statement on the object
 * instead, plainly where that is accepted by then, else with CASCADE; then what the
 * source has that the object's ACLs have lost is granted again. Undefined where no revoke is refused, or where a CASCADE would take a grant
 * `compared` does not accept (a grant of the target's own roles): the plan then stays.
 */
export function settleRevokes<T>(
  owner: string,
  privilegesOf: PrivilegesOf,
  target: Map<string, AclGrant[]>,
  source: Map<string, AclGrant[]>,
  steps: ChainStep<T>[],
  options: { relation: boolean; compared: (g: AclGrant) => boolean },
): Settled<T> | undefined {
  const acls = new Map<string, AclModel>();
  const model = (acl: string): AclModel => {
    const known = acls.get(acl);
    if (known) return known;
    const made = new AclModel(owner, privilegesOf, target.get(acl) ?? []);
    acls.set(acl, made);
    return made;
  };
  for (const acl of [...target.keys(), ...source.keys()]) model(acl);
  // A revoke on a relation revokes on every column too, with the same grantee and grantor.
  const reach = (step: ChainStep<T>) => (step.acl === '' && options.relation ? [...acls.values()] : [model(step.acl)]);
  const deferred: { step: ChainStep<T>; privilege: string; ref: T }[] = [];
  const ordered = steps.map((step, i) => ({ step, i })).sort((a, b) => a.step.phase - b.step.phase || a.step.rank - b.step.rank || a.i - b.i);
  for (const { step } of ordered) {
    const { grantee, grantor } = step;
    if (step.verb === 'GRANT') {
      for (const { privilege } of step.items) model(step.acl).grant(grantee, grantor, privilege, step.option);
      continue;
    }
    if (step.items.some(({ privilege }) => reach(step).some((acl) => acl.refuses(grantee, grantor, privilege)))) {
      deferred.push(...step.items.map((item) => ({ step, ...item })));
      continue;
    }
    for (const { privilege } of step.items) for (const acl of reach(step)) acl.revoke(grantee, grantor, privilege, step.option);
  }
  if (deferred.length === 0) return undefined;
  const settled: Settled<T> = { last: [], taken: [], regrants: [] };
  for (const { step, privilege, ref } of deferred) {
    const { grantee, grantor } = step;
    if (!reach(step).some((acl) => acl.changes(grantee, grantor, privilege, step.option))) {
      settled.taken.push(ref);
      continue;
    }
    const cascade = reach(step).some((acl) => acl.refuses(grantee, grantor, privilege));
    for (const acl of reach(step)) {
      if (!acl.revoke(grantee, grantor, privilege, step.option).every(options.compared)) return undefined;
    }
    settled.last.push({ ref, cascade });
  }
  for (const [acl, grants] of source) {
    for (const grant of grants) {
      const state = model(acl).state(grant.grantee, grant.grantor, grant.privilege);
      if (state === 'absent' || (state === 'granted' && grant.grantable)) settled.regrants.push({ acl, grant, from: state });
    }
  }
  return settled;
}
