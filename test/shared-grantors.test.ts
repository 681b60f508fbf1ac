import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkEnvironments } from '../src/drift/check.js';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { permissionDump } from './support/dump-shared.js';
import { sharedGrants } from './support/catalog.js';
import { reconcileFirst, startPipeline, type Pipeline } from './support/pipeline.js';
import { TablespaceDirs } from './support/tablespace.js';

/**
 * A privilege on a database, tablespace or parameter that a grantee holds from several
 * grantors is carried grant by grant, each as its grantor, as pg_dump shows them: two
 * grantors' grants to one role, a circle of two grantors each holding the option from the
 * other too, one grantor's grant revoked while the other's stays, a grantor renamed in the
 * batch that revokes and grants as it, and one dropped in the batch that revokes its
 * grants. Then every target equals the source by aclexplode and by pg_dump, and drift
 * agrees; drift sees one grantor's grant missing, and reconcile brings it back. Each test
 * has roles of its own (its prefix), so that each stands alone. On the oldest and newest
 * majors.
 */
const LEAVE_OUT = /permsync/;

/** The objects each statement names: the source's own database, another, a tablespace and (15+) a parameter. */
function on(major: PostgresMajor, own: string): { object: string; privileges: string }[] {
  return [
    { object: `DATABASE ${own}`, privileges: 'CONNECT, CREATE' },
    { object: 'DATABASE sg_db', privileges: 'CONNECT, CREATE' },
    { object: 'TABLESPACE sg_ts', privileges: 'CREATE' },
    ...(major >= 15 ? [{ object: 'PARAMETER work_mem', privileges: 'SET' }] : []),
  ];
}

describe.each([14, 18] as const)('PostgreSQL %i', (major) => {
  let p: Pipeline;
  let own: string;
  const dirs = new TablespaceDirs();

  /** The same statement on each object, as `as` (the DBA where undefined). */
  function onEach(verb: (object: string, privileges: string) => string, as?: string): string {
    const statements = on(major, own).map(({ object, privileges }) => verb(object, privileges));
    return as === undefined ? statements.join('; ') : [`SET ROLE ${as}`, ...statements, 'RESET ROLE'].join('; ');
  }

  const acl = (client: Pipeline['sourceClient'], prefix: string): Promise<string[]> =>
    sharedGrants(client, prefix, { database: 'sg_db', tablespace: 'sg_ts', major });

  async function differences(): Promise<unknown[]> {
    const [result] = await checkEnvironments(p.config(), p.sourceClient, p.config().environments, { dropExtraRoles: false });
    expect(result?.error).toBeUndefined();
    return result?.report?.differences.map((d) => d.change) ?? [];
  }

  /**
   * Every target equals the source: the test's grants grantor by grantor, by aclexplode, and
   * everything by pg_dump; drift agrees; nothing failed. Returns the source's grants.
   */
  async function expectEqual(prefix: string): Promise<string[]> {
    const source = await acl(p.sourceClient, prefix);
    for (const e of p.environments) expect(await acl(e.client, prefix)).toEqual(source);
    const dump = await permissionDump(p.source, { leaveOut: LEAVE_OUT });
    for (const e of p.environments) expect(await permissionDump(e.server, { leaveOut: LEAVE_OUT })).toEqual(dump);
    expect(await differences()).toEqual([]);
    const { rows } = await p.sourceClient.query(`SELECT result_message FROM permsync.execution_log WHERE execution_status = 'failed'`);
    expect(rows).toEqual([]);
    return source;
  }

  beforeAll(async () => {
    p = await startPipeline([`pg${major}`], { major, embedded: true });
    own = ((await p.sourceClient.query<{ name: string }>('SELECT current_database() AS name')).rows[0] as { name: string }).name;
    for (const client of [p.sourceClient, ...p.environments.map((e) => e.client)]) {
      await client.query('CREATE DATABASE sg_db');
      await client.query(`CREATE TABLESPACE sg_ts LOCATION '${await dirs.make()}'`);
    }
    await p.startDaemon();
  }, 120_000);

  afterAll(async () => {
    await p?.close();
    await dirs.remove();
  });

  it('a privilege one role holds from two grantors arrives with both grants, each by its grantor', async () => {
    // One transaction, one batch: the roles, the owner's grants of the option, and both grantors' grants.
    await p.dba(
      [
        'CREATE ROLE two_a; CREATE ROLE two_b; CREATE ROLE two_c',
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO two_a, two_b WITH GRANT OPTION`),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO two_c`, 'two_a'),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO two_c`, 'two_b'),
      ].join('; '),
    );
    await p.settleRoles();
    const source = await expectEqual('two');
    expect(source).toContain('database sg_db: two_a granted CREATE to two_c');
    expect(source).toContain('database sg_db: two_b granted CREATE to two_c');
    expect(source).toContain('tablespace sg_ts: two_b granted CREATE to two_c');
    expect(source).toContain('database {own}: two_a granted CONNECT to two_c');
  });

  it('a circle of two grantors, each granting the option to the other, is carried', async () => {
    await p.dba(
      [
        'CREATE ROLE ring_a; CREATE ROLE ring_b',
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO ring_a, ring_b WITH GRANT OPTION`),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO ring_b WITH GRANT OPTION`, 'ring_a'),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO ring_a WITH GRANT OPTION`, 'ring_b'),
      ].join('; '),
    );
    await p.settleRoles();
    const source = await expectEqual('ring');
    expect(source).toContain('database sg_db: ring_a granted CONNECT to ring_b with grant option');
    expect(source).toContain('database sg_db: ring_b granted CONNECT to ring_a with grant option');
    expect(source).toContain('tablespace sg_ts: ring_b granted CREATE to ring_a with grant option');
  });

  it("revoking one grantor's grant leaves the other's", async () => {
    // Both grantors' grants made on every server, as the schema is: the revoke alone is carried.
    await p.everywhere(
      [
        'CREATE ROLE cut_a; CREATE ROLE cut_b; CREATE ROLE cut_c',
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO cut_a, cut_b WITH GRANT OPTION`),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO cut_c`, 'cut_a'),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO cut_c`, 'cut_b'),
      ].join('; '),
    );
    await p.adopt(['cut_a', 'cut_b', 'cut_c']);
    await p.settleRoles();
    expect(await expectEqual('cut')).toContain('database sg_db: cut_a granted CONNECT to cut_c');
    await p.dba(onEach((object, privileges) => `REVOKE ${privileges} ON ${object} FROM cut_c`, 'cut_a'));
    await p.settleRoles();
    const source = await expectEqual('cut');
    expect(source.filter((l) => l.endsWith(' to cut_c'))).toEqual(source.filter((l) => / cut_b granted .* to cut_c$/.test(l)));
    expect(source).toContain('database sg_db: cut_b granted CONNECT to cut_c');
  });

  it('a grantor renamed in the batch that revokes and grants as it does so under its new name', async () => {
    await p.dba(
      [
        'CREATE ROLE rn_a; CREATE ROLE rn_c',
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO rn_a WITH GRANT OPTION`),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO rn_c`, 'rn_a'),
      ].join('; '),
    );
    await p.settleRoles();
    expect(await expectEqual('rn')).toContain('database sg_db: rn_a granted CREATE to rn_c');
    await p.dba(
      [
        'CREATE ROLE rn_d',
        'ALTER ROLE rn_a RENAME TO rn_a2',
        onEach((object, privileges) => `REVOKE ${privileges} ON ${object} FROM rn_c`, 'rn_a2'),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO rn_d`, 'rn_a2'),
      ].join('; '),
    );
    await p.settleRoles();
    const source = await expectEqual('rn');
    expect(source.filter((l) => l.endsWith(' to rn_c'))).toEqual([]);
    expect(source).toContain('database sg_db: rn_a2 granted CREATE to rn_d');
  });

  it('a grantor dropped in the batch that revokes its grants has them revoked before the drop', async () => {
    await p.dba(
      [
        'CREATE ROLE gone_a; CREATE ROLE gone_c',
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO gone_a WITH GRANT OPTION`),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO gone_c`, 'gone_a'),
      ].join('; '),
    );
    await p.settleRoles();
    expect(await expectEqual('gone')).toContain('database sg_db: gone_a granted CREATE to gone_c');
    await p.dba(
      [
        onEach((object, privileges) => `REVOKE ${privileges} ON ${object} FROM gone_c`, 'gone_a'),
        onEach((object, privileges) => `REVOKE ${privileges} ON ${object} FROM gone_a`),
        'DROP ROLE gone_a',
      ].join('; '),
    );
    await p.settleRoles();
    expect(await expectEqual('gone')).toEqual([]);
    const { rows } = await p.env(`pg${major}`).client.query(`SELECT 1 FROM pg_roles WHERE rolname = 'gone_a'`);
    expect(rows).toEqual([]);
  });

  it("drift shows one grantor's grant missing on a target, and reconcile brings it back", async () => {
    await p.dba(
      [
        'CREATE ROLE dr_a; CREATE ROLE dr_b',
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO dr_a, dr_b WITH GRANT OPTION`),
        onEach((object, privileges) => `GRANT ${privileges} ON ${object} TO dr_b WITH GRANT OPTION`, 'dr_a'),
      ].join('; '),
    );
    await p.settleRoles();
    await expectEqual('dr');
    const target = p.environments[0]?.client as Pipeline['sourceClient'];
    await target.query('SET ROLE dr_a; REVOKE CREATE ON DATABASE sg_db FROM dr_b; RESET ROLE');
    expect(await differences()).toEqual([
      expect.objectContaining({
        type: 'privileges',
        target: { on: 'shared', kind: 'database', name: 'sg_db' },
        grantee: 'dr_b',
        grantor: 'dr_a',
        changes: [{ privilege: 'CREATE', from: 'absent', to: 'grantable' }],
      }),
    ]);
    const result = await reconcileFirst(p);
    expect(result.failure).toBeUndefined();
    expect(result.after?.report?.differences).toEqual([]);
    await expectEqual('dr');
  });
});
