import { describe, expect, it } from 'vitest';
import { isOurs, judgeStatements } from '../src/plan/role-ownership.js';
import type { Statement } from '../src/sql/statement.js';

/** The role watcher's revoke of c's privilege, run as its grantor b; it tolerates a missing role or database (42704, 3D000). */
function revokeAs(runAs: string, ordinal: number): Statement {
  return {
    kind: 'REVOKE ON DATABASE',
    sql: `SET LOCAL ROLE ${runAs}; REVOKE CREATE ON DATABASE x FROM c; RESET ROLE`,
    roles: ['c', runAs],
    grantees: ['c'],
    schemas: [],
    runAs,
    ignoreCodes: ['3D000', '42704', '42501'],
    ordinal,
  };
}

describe('judgeStatements', () => {
  const owners = { managed: new Map([[20_000, { name: 'b' }]]), sourceSuperuser: 'postgres' };

  it('leaves out a statement run as a role the target does not have, whatever else it tolerates (SET ROLE fails with 22023)', () => {
    const verdict = judgeStatements([revokeAs('b', 1), revokeAs('gone', 2)], undefined, new Map([['b', 20_000]]), owners);
    expect(verdict.kept.map((s) => s.ordinal)).toEqual([1]);
    expect(verdict.notes).toEqual([expect.stringMatching(/^statement 2 \(REVOKE ON DATABASE\) not carried: role "gone" does not exist here/)]);
  });

  it('keeps one whose grantee alone is missing: the statement tolerates it', () => {
    const verdict = judgeStatements([revokeAs('b', 1)], undefined, new Map([['b', 20_000]]), owners);
    expect(verdict.kept).toHaveLength(1);
    expect(verdict.notes).toEqual([]);
  });
});

/** The role watcher's CREATE ROLE of the source's role of oid `sourceOid`. */
function createRole(name: string, sourceOid: number): Statement {
  return {
    kind: 'CREATE ROLE',
    sql: `CREATE ROLE ${name}`,
    roles: [name],
    grantees: [name],
    schemas: [],
    ignoreCodes: ['42710'],
    sourceOids: { [name]: sourceOid },
    ordinal: 1,
  };
}

/** The role watcher's GRANT of role `granted` (the source's of oid `grantedOid`) to m (16_001 there). */
function grantRole(granted: string, grantedOid: number): Statement {
  return {
    kind: 'GRANT ROLE',
    sql: `GRANT ${granted} TO m`,
    roles: ['m', granted],
    grantees: ['m'],
    granted,
    schemas: [],
    sourceOids: { m: 16_001, [granted]: grantedOid },
    ordinal: 1,
  };
}

describe('a managed role stands for one source role', () => {
  const owners = {
    managed: new Map([
      [20_000, { name: 'b', sourceOid: 16_500 }],
      [20_001, { name: 'm', sourceOid: 16_001 }],
    ]),
    sourceSuperuser: 'postgres',
  };
  const target = new Map([
    ['b', 20_000],
    ['m', 20_001],
  ]);

  it('a CREATE ROLE of that source role again (a batch applied twice) keeps it', () => {
    const verdict = judgeStatements([createRole('b', 16_500)], undefined, target, owners);
    expect({ kept: verdict.kept.length, disowned: verdict.disowned, conflicts: verdict.conflicts }).toEqual({ kept: 1, disowned: [], conflicts: [] });
  });

  it("a CREATE ROLE of another source role of its name makes it the target's own, and is not carried", () => {
    const verdict = judgeStatements([createRole('b', 16_900)], undefined, target, owners);
    expect(verdict.kept).toEqual([]);
    expect(verdict.disowned).toEqual([{ role: 'b', oid: 20_000 }]);
    expect(verdict.conflicts).toEqual([expect.objectContaining({ role: 'b', oid: 20_000 })]);
  });

  it("a grant of the name the source gave another role is not carried, and the role here is the target's own", () => {
    const verdict = judgeStatements([grantRole('b', 16_900)], undefined, target, owners);
    expect({ kept: verdict.kept.length, disowned: verdict.disowned }).toEqual({ kept: 0, disowned: [{ role: 'b', oid: 20_000 }] });
    expect(judgeStatements([grantRole('b', 16_500)], undefined, target, owners).kept).toHaveLength(1);
  });

  it("a statement naming an earlier source role of its name (a reconcile ran ahead of it) is not carried, and the role here stays permsync's", () => {
    const verdict = judgeStatements([createRole('b', 16_400)], undefined, target, owners);
    expect({ kept: verdict.kept.length, disowned: verdict.disowned, conflicts: verdict.conflicts }).toEqual({ kept: 0, disowned: [], conflicts: [] });
    expect(verdict.notes).toEqual([expect.stringMatching(/not carried: it names an earlier role "b"/)]);
  });

  it("a batch whose author is another source role of the name runs nowhere here: a newer one makes the role the target's own", () => {
    const grant: Statement = { kind: 'GRANT', sql: 'GRANT SELECT ON t TO m', roles: ['m'], grantees: ['m'], schemas: [], ordinal: 1 };
    expect(judgeStatements([grant], 'b', target, owners, 16_500).kept).toHaveLength(1);
    // Capture could not tell who the author was: run as nobody.
    expect(judgeStatements([grant], 'b', target, owners).kept).toHaveLength(0);
    const newer = judgeStatements([grant], 'b', target, owners, 16_900);
    expect({ kept: newer.kept.length, disowned: newer.disowned }).toEqual({ kept: 0, disowned: [{ role: 'b', oid: 20_000 }] });
    const earlier = judgeStatements([grant], 'b', target, owners, 16_400);
    expect({ kept: earlier.kept.length, disowned: earlier.disowned }).toEqual({ kept: 0, disowned: [] });
  });

  it("is the target's own where the source's role of its name is another, and permsync's where it is the same or unknown", () => {
    expect(isOurs('b', 20_000, { ...owners, sourceOids: new Map([['b', 16_900]]) })).toBe(false);
    expect(isOurs('b', 20_000, { ...owners, sourceOids: new Map([['b', 16_500]]) })).toBe(true);
    expect(isOurs('b', 20_000, { ...owners, sourceOids: new Map() })).toBe(true);
    expect(isOurs('b', 20_000, { managed: new Map([[20_000, { name: 'b' }]]), sourceSuperuser: 'postgres', sourceOids: new Map([['b', 1]]) })).toBe(
      true,
    );
  });
});
