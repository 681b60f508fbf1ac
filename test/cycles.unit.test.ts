import { describe, expect, it } from 'vitest';
import type { Grant, ObjectAcl } from '../src/catalog/catalog.js';
import { cycleObjects, settleCycles } from '../src/plan/cycles.js';
import type { Statement } from '../src/sql/statement.js';

// A role watcher batch whose revokes leave a circle of grant options on a tablespace (a
// and b hold the option only through each other's grants, b granted c through it), as
// the source's REVOKE ... CASCADE took it apart: the daemon settles it on the target's ACL.

const CHAIN = { on: 'tablespace' as const, name: 'ts', privilege: 'CREATE' };

/** A revoke of a grant whole, as `grantor`; `cycle`, the one grant-order.ts cut the circle at. */
function revoke(grantee: string, grantor: string, cycle = false): Statement {
  const sql = `SET LOCAL ROLE ${grantor}; REVOKE CREATE ON TABLESPACE ts FROM ${grantee}; RESET ROLE`;
  return {
    kind: 'REVOKE',
    sql,
    roles: [grantee, grantor],
    grantees: [grantee],
    schemas: [],
    runAs: grantor,
    acl: { ...CHAIN, option: false, ...(cycle && { cycle: true as const }) },
    ordinal: 0,
  };
}

const grant = (grantee: string, grantor: string | null, grantable = false): Grant => ({ grantee, grantor, privilege: 'CREATE', grantable });
const circle: Grant[] = [grant('a', 'b', true), grant('b', 'a', true), grant('c', 'b')];
const numbered = (statements: Statement[]) => statements.map((s, i) => ({ ...s, ordinal: i + 1 }));
/** The batch as grant-order.ts orders it: c's first, then the circle, cut at a's. */
const batch = () => numbered([revoke('c', 'b'), revoke('a', 'b', true), revoke('b', 'a')]);
const settle = (statements: Statement[], grants: Grant[]) => {
  const acls: ObjectAcl[] = cycleObjects(statements, (d) => d).map(() => ({ owner: 'postgres', grants, privilegesOf: () => new Set() }));
  return settleCycles(statements, (d) => d, acls);
};

describe('a circle of grant options the batch takes apart', () => {
  it('is revoked with CASCADE once the rest is made, the revoke the cascade made for it left out', () => {
    const settled = settle(batch(), circle);
    expect(settled.unsettled).toEqual([]);
    expect(settled.statements.map((s) => s.sql)).toEqual([
      'SET LOCAL ROLE b; REVOKE CREATE ON TABLESPACE ts FROM c; RESET ROLE',
      'SET LOCAL ROLE b; REVOKE CREATE ON TABLESPACE ts FROM a CASCADE; RESET ROLE',
    ]);
    expect(settled.notes).toEqual([expect.stringMatching(/statement\(s\) 2 made after .*with CASCADE.*statement\(s\) 3 left out/)]);
  });

  it('is left to the target where the batch also changes a membership, which could let a role keep its option', () => {
    // GRANT h TO b, h holding the option of its own: b keeps it, and the cascade would stop there.
    const member: Statement = { kind: 'GRANT', sql: 'GRANT h TO b', roles: ['h', 'b'], grantees: ['b'], schemas: [], granted: 'h', ordinal: 0 };
    const statements = numbered([member, ...batch()]);
    const settled = settle(statements, [...circle, grant('h', null, true)]);
    expect(settled.statements).toEqual(statements);
    expect(settled.unsettled).toEqual([expect.stringMatching(/changes a membership .*\(statement 1\)/)]);
  });

  it('is left to the target where the cascade would take a grant the batch does not revoke, which it names', () => {
    const statements = batch();
    const settled = settle(statements, [...circle, grant('x', 'b', true), grant('y', 'x')]);
    expect(settled.statements).toEqual(statements);
    expect(settled.unsettled).toEqual([
      `on tablespace "ts" it would also take "b"'s grant of CREATE to "x" with grant option, "x"'s grant of CREATE to "y", which the batch does not revoke`,
    ]);
  });

  it('is left as it is where the target holds an option the source lacked: nothing is refused there', () => {
    const statements = batch();
    const settled = settle(statements, [...circle, grant('a', null, true)]);
    expect(settled).toEqual({ statements, notes: [], unsettled: [] });
  });

  it('is not moved past a statement of another kind', () => {
    const [c, a, b] = batch();
    const drop: Statement = { kind: 'DROP ROLE', sql: 'DROP ROLE a', roles: ['a'], grantees: ['a'], schemas: [] };
    const statements = numbered([c, a, drop, b] as Statement[]);
    const settled = settle(statements, circle);
    expect(settled.statements).toEqual(statements);
    expect(settled.unsettled).toEqual(['on tablespace "ts" it would go past statement 3 (DROP ROLE)']);
  });
});
