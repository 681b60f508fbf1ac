import { PUBLIC, type AclObject, type Grant, type ObjectAcl } from '../catalog/catalog.js';
import { settleRevokes, type AclGrant, type ChainStep } from '../catalog/grant-chains.js';
import { quoteIdent } from '../sql/quote.js';
import type { Statement } from '../sql/statement.js';
import { withCascade } from './changes.js';

/**
 * The objects of a role watcher's statements that hold a revoke cut out of a circle of
 * grant options (capture/grant-order.ts): their ACLs are read on the target to settle them.
 * `databaseFor` names a database of the source's (not its own) on the target.
 */
export function cycleObjects(statements: Statement[], databaseFor: (source: string) => string): AclObject[] {
  const objects = new Map<string, AclObject>();
  for (const s of statements) {
    const object = aclObject(s, databaseFor);
    if (object && s.acl?.cycle) objects.set(aclKey(object), object);
  }
  return [...objects.values()];
}

export interface SettledCycles<T> {
  statements: T[];
  notes: string[];
  /** Per object left as it was, why a revoke with CASCADE is not made there: what else it would take, say. */
  unsettled: string[];
}

/**
 * A role watcher's statements with the revokes it leaves in a circle of grant options (the
 * source's REVOKE ... CASCADE took it apart) settled on the target's ACLs as reconcile
 * settles them (grant-chains.ts, settleRevokes): each revoke the target would refuse
 * (2BP01) goes after the other statements on its object, plainly where it is accepted by
 * then, else with CASCADE, and one left with nothing to take is left out. Only where the
 * object's ACL then holds exactly what the batch's statements, each read as written, leave
 * it: a cascade that takes anything more (a grant to or by a role of the target's own,
 * which no statement kept here names, or one the source does not have the same) is not
 * made, and the target refuses the revoke as before. Nor is a revoke moved past a statement
 * of another kind (a DROP ROLE may need it made first), nor a batch settled that changes
 * memberships. `acls` are the target's, in
 * cycleObjects' order.
 */
export function settleCycles<T extends Statement>(
  statements: T[],
  databaseFor: (source: string) => string,
  acls: (ObjectAcl | undefined)[],
): SettledCycles<T> {
  const read = new Map(cycleObjects(statements, databaseFor).map((object, i) => [aclKey(object), { object, acl: acls[i] }]));
  const onObject = new Map<string, number[]>();
  for (const [i, s] of statements.entries()) {
    const object = aclObject(s, databaseFor);
    if (object && read.has(aclKey(object))) onObject.set(aclKey(object), [...(onObject.get(aclKey(object)) ?? []), i]);
  }
  const out: SettledCycles<T> = { statements: [], notes: [], unsettled: [] };
  // Whose options a role keeps is read as the target has its memberships before the batch
  // (ObjectAcl.privilegesOf): a batch that changes one, or a role's INHERIT or SUPERUSER,
  // could make a role keep an option the model takes from it (GRANT h TO b, h holding one),
  // so that the cascade leaves a grant the batch revokes. Such a batch is not settled.
  const membership = statements.find((s) => s.granted !== undefined || (s.kind === 'ALTER ROLE' && /\b(NO)?(INHERIT|SUPERUSER)\b/i.test(s.sql)));
  if (membership && onObject.size > 0) {
    out.unsettled.push(
      `the batch changes a membership or a role's INHERIT or SUPERUSER (statement ${membership.ordinal}), which the settling of a circle of grant options does not count`,
    );
    out.statements.push(...statements);
    return out;
  }
  const left = new Set<number>();
  const after = new Map<number, T[]>();
  for (const [key, at] of onObject) {
    const { object, acl } = read.get(key) as { object: AclObject; acl: ObjectAcl | undefined };
    if (!acl) continue;
    const what = describe(object);
    const steps = at.map((i): ChainStep<number> => {
      const s = statements[i] as T;
      const change = s.acl as NonNullable<Statement['acl']>;
      return {
        acl: '',
        verb: s.kind.startsWith('GRANT') ? 'GRANT' : 'REVOKE',
        option: change.option,
        grantee: s.grantees[0] ?? PUBLIC,
        // As the target records it: a statement run as the sync user or as the owner makes the owner's grant.
        grantor: s.runAs === undefined || s.runAs === acl.owner ? null : s.runAs,
        items: [{ privilege: change.privilege, ref: i }],
        phase: 0,
        rank: 0,
      };
    });
    const settled = settleRevokes(acl.owner, acl.privilegesOf, new Map([['', acl.grants]]), new Map([['', asWritten(acl.grants, steps)]]), steps, {
      relation: false,
      compared: () => true,
    });
    // Nothing refused there (the target holds an option the source's circle lacked, say).
    if (!settled) continue;
    if (settled.regrants.length > 0) {
      const taken = settled.regrants.map(({ grant }) => grantText(grant));
      const shownTaken = taken.slice(0, 3).join(', ') + (taken.length > 3 ? `, and ${taken.length - 3} more` : '');
      out.unsettled.push(`on ${what} it would also take ${shownTaken}, which the batch does not revoke`);
      continue;
    }
    const moved = [...settled.last.map(({ ref }) => ref), ...settled.taken];
    const end = at[at.length - 1] as number;
    const crossed = statements.slice(Math.min(...moved), end + 1).find((s) => s.acl === undefined);
    if (crossed) {
      out.unsettled.push(`on ${what} it would go past statement ${crossed.ordinal} (${crossed.kind})`);
      continue;
    }
    for (const i of moved) left.add(i);
    after.set(
      end,
      settled.last.map(({ ref, cascade }) => (cascade ? withCascade(statements[ref] as T) : (statements[ref] as T))),
    );
    const ordinals = (refs: number[]) => refs.map((i) => statements[i]?.ordinal).join(', ');
    const cascaded = settled.last.filter((l) => l.cascade).map((l) => l.ref);
    out.notes.push(
      `statement(s) ${ordinals(settled.last.map((l) => l.ref))} made after the others on ${what}` +
        (cascaded.length > 0
          ? `, ${ordinals(cascaded)} with CASCADE, which takes apart the circle of grant options there and no more than the batch revokes`
          : '') +
        (settled.taken.length > 0 ? `; statement(s) ${ordinals(settled.taken)} left out: the cascade took what they revoke` : ''),
    );
  }
  for (const [i, s] of statements.entries()) {
    if (!left.has(i)) out.statements.push(s);
    out.statements.push(...(after.get(i) ?? []));
  }
  return out;
}

/** The object whose ACL a statement changes, by its name on the target. */
function aclObject(s: Statement, databaseFor: (source: string) => string): AclObject | undefined {
  if (!s.acl) return undefined;
  if (s.acl.on !== 'database') return { on: s.acl.on, name: s.acl.name ?? null };
  return { on: 'database', name: s.database !== undefined ? databaseFor(s.database) : null };
}

function aclKey(o: AclObject): string {
  return `${o.on}\0${o.name ?? ''}`;
}

function describe(o: AclObject): string {
  return o.name === null ? "the environment's database" : `${o.on} ${quoteIdent(o.name)}`;
}

function grantText(g: AclGrant): string {
  const grantor = g.grantor === null ? "the owner's" : `${quoteIdent(g.grantor)}'s`;
  return `${grantor} grant of ${g.privilege} to ${g.grantee === PUBLIC ? 'PUBLIC' : quoteIdent(g.grantee)}${g.grantable ? ' with grant option' : ''}`;
}

/**
 * The grants an ACL holds once the statements are made as written, each changing its own
 * grant alone: what the batch means the target to hold, as the source's catalogs came to.
 */
function asWritten(grants: Grant[], steps: ChainStep<number>[]): AclGrant[] {
  const held = new Map(grants.map((g) => [grantKey(g.grantee, g.grantor, g.privilege), g]));
  for (const step of steps) {
    for (const { privilege } of step.items) {
      const key = grantKey(step.grantee, step.grantor, privilege);
      const was = held.get(key);
      if (step.verb === 'GRANT')
        held.set(key, { grantee: step.grantee, grantor: step.grantor, privilege, grantable: step.option || (was?.grantable ?? false) });
      else if (!step.option) held.delete(key);
      else if (was) held.set(key, { ...was, grantable: false });
    }
  }
  return [...held.values()];
}

/** A grant's key: no name holds a NUL. */
function grantKey(grantee: string, grantor: string | null, privilege: string): string {
  return `${grantee}\0${grantor ?? ''}\0${privilege}`;
}
