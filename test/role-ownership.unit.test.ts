import { describe, expect, it } from 'vitest';
import { judgeStatements } from '../src/plan/role-ownership.js';
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
  const owners = { managed: new Map([[20_000, 'b']]), sourceSuperuser: 'postgres' };

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
