import { describe, expect, it } from 'vitest';
import { heirOnTarget as heirWith, standingFor } from '../src/plan/release.js';
import type { ManagedRole, RoleOwners, TargetRoles } from '../src/plan/role-ownership.js';
import type { Statement } from '../src/sql/statement.js';

// Who takes a dropped role's object on a target: the role that stands there for the
// source's owner, under the name the target has it by, before the DROP ROLE's batch.

const drop = (name: string, oid: number): Statement => ({
  kind: 'DROP ROLE',
  sql: `DROP ROLE IF EXISTS ${name}`,
  roles: [name],
  grantees: [name],
  schemas: [],
  sourceOids: { [name]: oid },
});

const rename = (from: string, to: string, oid: number): Statement => ({
  kind: 'ALTER ROLE',
  sql: `ALTER ROLE ${from} RENAME TO ${to}`,
  roles: [to],
  grantees: [to],
  schemas: [],
  renamedFrom: from,
  sourceOids: { [from]: oid, [to]: oid },
});

const owners = (managed: [number, ManagedRole][]) => ({ managed: new Map(managed), sourceSuperuser: 'postgres' });

/** heirOnTarget with the managed roles that stand for the owner found as the applier finds them. */
const heirOnTarget = (owner: { name: string; oid: number }, present: TargetRoles, owners: RoleOwners, batch: Statement[]) =>
  heirWith(owner, standingFor(owners.managed, new Set([owner.oid])), present, owners, batch);

describe('heirOnTarget', () => {
  it('names the managed role of the source owner by the name the target has it under', () => {
    const present = new Map([['heir_before', 20_000]]);
    const managed = owners([[20_000, { name: 'heir_before', sourceOid: 7 }]]);
    expect(heirOnTarget({ name: 'heir_after', oid: 7 }, present, managed, [drop('leaver', 3)])).toBe('heir_before');
  });

  it('names a managed role with no source oid known by its name, unless the batch drops or renames that name', () => {
    const present = new Map([['heir', 20_000]]);
    const managed = owners([[20_000, { name: 'heir' }]]);
    expect(heirOnTarget({ name: 'heir', oid: 8 }, present, managed, [drop('leaver', 3)])).toBe('heir');
    // The role of that name now is another than the source's owner: the batch makes a new one.
    expect(heirOnTarget({ name: 'heir', oid: 8 }, present, managed, [drop('heir', 5), drop('leaver', 3)])).toBeUndefined();
    expect(heirOnTarget({ name: 'heir', oid: 8 }, present, managed, [rename('heir', 'heir_old', 5), drop('leaver', 3)])).toBeUndefined();
  });

  it('names no role that stands for another source role, nor one of the target`s own, nor one it lacks', () => {
    const present = new Map([['heir', 20_000]]);
    expect(heirOnTarget({ name: 'heir', oid: 9 }, present, owners([[20_000, { name: 'heir', sourceOid: 5 }]]), [])).toBeUndefined();
    expect(heirOnTarget({ name: 'heir', oid: 9 }, present, owners([]), [])).toBeUndefined();
    expect(heirOnTarget({ name: 'other', oid: 9 }, present, owners([]), [])).toBeUndefined();
  });

  it('names no role the batch renames onto a name a role of the target`s own holds', () => {
    const present = new Map([
      ['heir', 20_000],
      ['h2', 20_001],
    ]);
    const managed = owners([[20_000, { name: 'heir', sourceOid: 7 }]]);
    expect(heirOnTarget({ name: 'h2', oid: 7 }, present, managed, [rename('heir', 'h2', 7), drop('leaver', 3)])).toBeUndefined();
    // Onto a name no role holds there, the rename goes through: the role is the heir.
    expect(heirOnTarget({ name: 'h3', oid: 7 }, present, managed, [rename('heir', 'h3', 7), drop('leaver', 3)])).toBe('heir');
  });
});
