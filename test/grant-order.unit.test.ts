import { describe, expect, it } from 'vitest';
import { planBatch, type Batch, type StatementRecord } from '../src/capture/batch.js';
import { grantOrder } from '../src/capture/grant-order.js';
import { chainLength } from '../src/catalog/grant-chains.js';
import { testBatch } from './support/batch.js';

// The role watcher's statements on shared objects' privileges come in no order of their
// grant-option chains: the daemon puts each grantor's grant before the grants it makes,
// and revokes the other way round, however deep the chain.

/** A role watcher's statement on a shared object's privilege, as permsync.shared_privilege_statement() writes it. */
function privilege(
  verb: 'GRANT' | 'REVOKE',
  grantee: string | undefined,
  grantor: string | undefined,
  chain = 'databases/16400/CONNECT',
): StatementRecord {
  const sql = `${verb} CONNECT ON DATABASE {"database"} ${verb === 'GRANT' ? 'TO' : 'FROM'} ${grantee ?? 'PUBLIC'}`;
  return {
    kind: verb === 'GRANT' ? 'GRANT ON DATABASE' : 'REVOKE ON DATABASE',
    ...(grantee !== undefined && { role: grantee }),
    sql: grantor === undefined ? sql : `SET LOCAL ROLE ${grantor}; ${sql}; RESET ROLE`,
    display: sql,
    ...(grantor !== undefined && { run_as: grantor }),
    chain,
  };
}

function role(name: string): StatementRecord {
  return { kind: 'CREATE ROLE', role: name, sql: `CREATE ROLE ${name}`, display: `CREATE ROLE ${name}` };
}

/** Link `i` of a chain: granted by link i - 1, the first by the owner. */
const link = (i: number) => `r${i}`;
const grantOf = (i: number) => privilege('GRANT', link(i), i === 1 ? undefined : link(i - 1));
const revokeOf = (i: number) => privilege('REVOKE', link(i), i === 1 ? undefined : link(i - 1));

/** 1..n in an order that is neither the chain's nor its reverse. */
function scrambled(n: number): number[] {
  return Array.from({ length: n }, (_, i) => ((i * 37) % n) + 1);
}

function ordered(records: StatementRecord[]): StatementRecord[] {
  return grantOrder(records).map((i) => records[i] as StatementRecord);
}

function generated(statements: StatementRecord[]): Batch {
  return testBatch({ origin: 'role_watcher', statements });
}

describe('the grants of a grant-option chain in a role watcher batch', () => {
  it('are carried grantor first, however deep, each numbered as the batch stores it', async () => {
    const order = scrambled(500);
    const records = [role('r1'), ...order.map(grantOf), privilege('GRANT', undefined, link(250)), { ...role('x'), kind: 'GRANT ROLE' as const }];
    const plan = await planBatch(generated(records), () => Promise.resolve([]));
    expect(plan.unreplayable).toBeUndefined();
    const grants = plan.replay.slice(1, 502);
    // Every link after the link that grants it, PUBLIC's grant by link 250 anywhere after link 250.
    expect(grants.filter((s) => s.grantees.length > 0).map((s) => s.grantees[0])).toEqual(Array.from({ length: 500 }, (_, i) => link(i + 1)));
    expect(grants.findIndex((s) => s.grantees.length === 0)).toBeGreaterThan(grants.findIndex((s) => s.grantees[0] === link(250)));
    expect(plan.replay[0]?.sql).toBe('CREATE ROLE r1');
    expect(plan.replay[502]?.kind).toBe('GRANT ROLE');
    expect(plan.replay.map((s) => records[s.ordinal - 1]?.sql)).toEqual(plan.replay.map((s) => s.sql));
  });

  it('are revoked dependents first, down to the head, however deep', () => {
    const records = scrambled(300).map(revokeOf);
    expect(ordered(records).map((r) => r.role)).toEqual(Array.from({ length: 300 }, (_, i) => link(300 - i)));
  });

  it('stay among the statements around them: a run of revokes, then one of grants, never mixed', () => {
    const records = [revokeOf(1), revokeOf(2), role('x'), grantOf(2), grantOf(1)];
    expect(ordered(records)).toEqual([revokeOf(2), revokeOf(1), role('x'), grantOf(1), grantOf(2)]);
    const [first, second] = [grantOf(2), revokeOf(1)];
    expect(ordered([first, second])).toEqual([first, second]);
  });

  it('of another object or privilege are another chain: a grantee there is no grantor here', () => {
    const elsewhere = privilege('GRANT', 'a', undefined, 'tablespaces/16500/CREATE');
    const here = privilege('GRANT', 'b', 'a');
    expect(ordered([here, elsewhere])).toEqual([here, elsewhere]);
    const owner = privilege('GRANT', 'a', undefined);
    expect(ordered([here, elsewhere, owner])).toEqual([elsewhere, owner, here]);
  });

  it('in a circle of grantors are all carried, in some order', () => {
    const records = [privilege('GRANT', 'a', 'c'), privilege('GRANT', 'b', 'a'), privilege('GRANT', 'c', 'b')];
    expect(grantOrder(records).sort()).toEqual([0, 1, 2]);
  });
});

describe('following chains', () => {
  it('asks for each link once, whichever key it starts from', () => {
    const n = 20_000;
    let asked = 0;
    const length = chainLength<number>((i) => (asked++, i > 1 ? i - 1 : undefined));
    expect(scrambled(n).map((i) => length(i))).toEqual(scrambled(n));
    expect(asked).toBe(n);
  });

  it('ends in a circle where the walk meets itself', () => {
    const length = chainLength<string>((k) => ({ a: 'b', b: 'c', c: 'a', d: 'a' })[k]);
    expect([length('a'), length('b'), length('c'), length('d')]).toEqual([3, 2, 1, 4]);
  });
});
