import { describe, expect, it } from 'vitest';
import { heirOnTarget } from '../src/plan/release.js';
import type { ManagedRole } from '../src/plan/role-ownership.js';
import type { Statement } from '../src/sql/statement.js';

// Who takes a dropped role's object on a target: the role that stands there for the
// source's owner, under the name it has at the DROP ROLE's place in its batch.

const role = (kind: 'CREATE ROLE' | 'DROP ROLE', name: string, oid: number): Statement => ({
  kind,
  sql: `${kind} ${name}`,
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

describe('heirOnTarget', () => {
  it('names the managed role of the source owner, under the name the renames before the DROP ROLE give it', () => {
    const ran = [rename('heir_before', 'heir_after', 7)];
    const present = new Map([['heir_before', 20_000]]);
    const managed = owners([[20_000, { name: 'heir_before', sourceOid: 7 }]]);
    expect(heirOnTarget({ name: 'heir_after', oid: 7 }, present, managed, ran, ran)).toBe('heir_after');
    // In another database of the server, released before the batch, it has its old name.
    expect(heirOnTarget({ name: 'heir_after', oid: 7 }, present, managed, [], ran)).toBe('heir_before');
  });

  it('names a role the batch created for the owner where it dropped the one of that name first', () => {
    const ran = [role('DROP ROLE', 'heir', 5), role('CREATE ROLE', 'heir', 9)];
    const present = new Map([['heir', 20_000]]);
    const managed = owners([[20_000, { name: 'heir', sourceOid: 5 }]]);
    expect(heirOnTarget({ name: 'heir', oid: 9 }, present, managed, ran, ran)).toBe('heir');
    // Not before the batch (the old role holds the name), nor where a role of the target's own holds it.
    expect(heirOnTarget({ name: 'heir', oid: 9 }, present, managed, [], ran)).toBeUndefined();
    expect(heirOnTarget({ name: 'heir', oid: 9 }, present, owners([]), [role('CREATE ROLE', 'heir', 9)], ran)).toBeUndefined();
  });

  it('follows a rename of a managed role whose source oid is not known', () => {
    const ran = [rename('heir_nb', 'heir_na', 8)];
    const present = new Map([['heir_nb', 20_000]]);
    expect(heirOnTarget({ name: 'heir_na', oid: 8 }, present, owners([[20_000, { name: 'heir_nb' }]]), ran, ran)).toBe('heir_na');
  });

  it('names no role that stands for another source role, nor one of the target`s own', () => {
    const present = new Map([['heir', 20_000]]);
    expect(heirOnTarget({ name: 'heir', oid: 9 }, present, owners([[20_000, { name: 'heir', sourceOid: 5 }]]), [], [])).toBeUndefined();
    expect(heirOnTarget({ name: 'heir', oid: 9 }, present, owners([]), [], [])).toBeUndefined();
  });

  it('names no role the batch renames onto a name a role of the target`s own holds, before the batch or in it', () => {
    const batch = [rename('heir', 'h2', 7)];
    const present = new Map([
      ['heir', 20_000],
      ['h2', 20_001],
    ]);
    const managed = owners([[20_000, { name: 'heir', sourceOid: 7 }]]);
    expect(heirOnTarget({ name: 'h2', oid: 7 }, present, managed, [], batch)).toBeUndefined();
    expect(heirOnTarget({ name: 'h2', oid: 7 }, present, managed, batch, batch)).toBeUndefined();
  });
});
