import { describe, expect, it } from 'vitest';
import { planBatch, type Batch, type StatementRecord } from '../src/capture/batch.js';
import { grantOrder } from '../src/capture/grant-order.js';
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
  option = true,
): StatementRecord {
  const sql = `${verb} CONNECT ON DATABASE {"database"} ${verb === 'GRANT' ? 'TO' : 'FROM'} ${grantee ?? 'PUBLIC'}`;
  return {
    kind: verb === 'GRANT' ? 'GRANT ON DATABASE' : 'REVOKE ON DATABASE',
    ...(grantee !== undefined && { role: grantee }),
    sql: grantor === undefined ? sql : `SET LOCAL ROLE ${grantor}; ${sql}; RESET ROLE`,
    display: sql,
    ...(grantor !== undefined && { run_as: grantor }),
    chain,
    ...(option && { option }),
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
  return grantOrder(records).order.map((i) => records[i] as StatementRecord);
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
    expect(grantOrder(records).order.sort()).toEqual([0, 1, 2]);
    // Only a revoke's cut is one the applier settles.
    expect(grantOrder(records).cut.size).toBe(0);
  });
});

describe('the grants of a grantee that holds its option from several grantors', () => {
  const by = (grantee: string, grantor: string | undefined, option = true) => privilege('GRANT', grantee, grantor, undefined, option);
  const revoke = (grantee: string, grantor: string | undefined, option = true) => privilege('REVOKE', grantee, grantor, undefined, option);
  const pairs = (records: StatementRecord[]) => records.map((r) => `${r.run_as ?? 'owner'}>${r.role ?? 'PUBLIC'}`);

  it("go after the first grant that gives a grantor the option, however deep its other grantors' chains", () => {
    // x holds the option from the owner directly and from the end of a chain 50 deep.
    const chain = scrambled(50).map(grantOf);
    const records = [by('c', 'x'), ...chain, by('x', link(50)), by('x', undefined)];
    const order = pairs(ordered(records));
    expect(order.indexOf('x>c')).toBeGreaterThan(order.indexOf('owner>x'));
    expect(order.indexOf('x>c')).toBeLessThan(order.indexOf('r49>r50'));
    expect(order.indexOf(`${link(50)}>x`)).toBeGreaterThan(order.indexOf('r49>r50'));
  });

  it('wait for a grant of the option, not for a grant without it', () => {
    const records = [by('c', 'x'), by('x', 'p', false), by('x', 'q'), by('q', 'r'), by('r', undefined)];
    expect(pairs(ordered(records))).toEqual(['p>x', 'owner>r', 'r>q', 'q>x', 'x>c']);
  });

  it('in a circle two grantors close, each holding the option from the owner too, are carried owner first', () => {
    const records = [by('a', 'b'), by('b', 'a'), by('c', 'a'), by('a', undefined), by('b', undefined)];
    expect(pairs(ordered(records))).toEqual(['owner>a', 'owner>b', 'b>a', 'a>b', 'a>c']);
  });

  it('in a circle alone are all carried, cut at its first grant', () => {
    const records = [by('a', 'c'), by('b', 'a'), by('d', 'b'), by('c', 'b')];
    expect(pairs(ordered(records))).toEqual(['c>a', 'a>b', 'b>d', 'b>c']);
  });

  it("are revoked before each revoke that takes their grantor's option, whichever grantor's", () => {
    const records = [revoke('x', 'p'), revoke('x', undefined), revoke('c', 'x', false), revoke('d', 'x'), revoke('e', 'd', false)];
    expect(pairs(ordered(records))).toEqual(['x>c', 'd>e', 'x>d', 'p>x', 'owner>x']);
  });

  it('are revoked in a circle all the same, cut at its first revoke', () => {
    const records = [revoke('a', 'b'), revoke('b', 'a'), revoke('a', undefined), revoke('b', undefined)];
    expect(grantOrder(records).order.sort()).toEqual([0, 1, 2, 3]);
    expect(pairs(ordered(records)).slice(2).sort()).toEqual(['owner>a', 'owner>b']);
    // The revoke it was cut at is marked for the applier, and only it: a chain is cut nowhere.
    expect([...grantOrder(records).cut]).toEqual([0]);
    expect(grantOrder(scrambled(30).map(revokeOf)).cut.size).toBe(0);
  });
});
