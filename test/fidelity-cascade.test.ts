import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { PERMSYNC_ROLES } from '../src/config/rules.js';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { permissionSnapshot } from './support/catalog.js';
import { accountDifference, canDump, catalogAccount, dumpAccount, type AccountOptions } from './support/dump.js';
import { reconcileFirst, startPipeline, type Pipeline } from './support/pipeline.js';
import { runCli, writeConfigFile } from './support/cli.js';

/**
 * Grant-option chains on a target that PostgreSQL takes apart only with CASCADE: options
 * left in a cycle (two roles holding an option only through each other's grants, once
 * the owner's was taken back), and a grantee's option on a column that the source does
 * not give it while a grant it made on the column stands; and an option whose grantee
 * keeps one through a membership, which PostgreSQL takes plainly, leaving the grants made
 * through it. Each is made on the target by
 * hand; reconcile, or a converged batch, makes the target's privileges the source's by
 * pg_dump (the catalog's account where no pg_dump reads the major), grants the cascade
 * took that the source has included, and drift then exits 0.
 */
describe.each([14, 18] as PostgresMajor[])('PostgreSQL %i', (major) => {
  let p: Pipeline;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'permsync-cascade-'));
    p = await startPipeline(['dev'], { major });
  });

  afterAll(async () => {
    await p?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const dev = (sql: string) => p.env('dev').client.query(sql);

  /** Roles and a schema on both servers, the first role owning the schema, handed over to permsync on dev; dropped once the test is over. */
  async function given(roles: string[], schema: string, sql: string): Promise<void> {
    onTestFinished(() => p.everywhere(`DROP SCHEMA IF EXISTS ${schema} CASCADE; DROP OWNED BY ${roles.join(', ')}; DROP ROLE ${roles.join(', ')}`));
    await p.everywhere(`${roles.map((r) => `CREATE ROLE ${r};`).join(' ')} CREATE SCHEMA ${schema} AUTHORIZATION ${roles[0]}; ${sql}`);
    await p.adopt(roles);
  }

  /** Privilege lines (grantee, privilege, grant option, grantor) of the schema's objects, columns included. */
  async function privileges(client: 'source' | 'dev', schema: string): Promise<string[]> {
    const lines = await permissionSnapshot(client === 'source' ? p.sourceClient : p.env('dev').client);
    return lines.filter((l) => l.split(' ')[1]?.startsWith(`${schema}.`));
  }

  /** The account by pg_dump where an installed one reads this major, else by the catalog. */
  async function account(client: 'source' | 'dev'): Promise<string[]> {
    const options: AccountOptions = { ignoreRoles: [...PERMSYNC_ROLES], database: 'postgres' };
    const server = client === 'source' ? p.source : p.env('dev').server;
    return canDump(major) ? dumpAccount(server.url, options) : catalogAccount(client === 'source' ? p.sourceClient : p.env('dev').client, options);
  }

  /** `permsync drift`, run in this process as bin/permsync.js runs it. */
  async function drift(): Promise<{ code: number; out: string }> {
    const { code, out } = await runCli('drift', '--config', await writeConfigFile(dir, p.config()));
    return { code, out };
  }

  /** Dev holds the source's privileges on the schema, its whole account is the source's, and drift exits 0. */
  async function expectEqual(schema: string): Promise<void> {
    expect(await privileges('dev', schema)).toEqual(await privileges('source', schema));
    expect(accountDifference(await account('source'), await account('dev'))).toEqual({ onlySource: [], onlyTarget: [] });
    expect(await drift()).toEqual({ code: 0, out: 'dev: matches the source\n' });
  }

  async function reconcileDev(schema: string): Promise<void> {
    expect(await privileges('dev', schema)).not.toEqual(await privileges('source', schema));
    const result = await reconcileFirst(p);
    expect(result.failure).toBeUndefined();
    expect(result.after?.report?.differences).toEqual([]);
  }

  /**
   * On dev, a and b hold SELECT's option only through each other's grants (the owner gave
   * each its own, then took both back: each revoke was accepted, the other's grant
   * standing), and b granted c through it. The source's owner grants c alone.
   */
  const CYCLE = (s: string) => `SET ROLE ${s}_owner; GRANT SELECT ON ${s}.orders TO ${s}_a, ${s}_b WITH GRANT OPTION;
    SET ROLE ${s}_a; GRANT SELECT ON ${s}.orders TO ${s}_b WITH GRANT OPTION;
    SET ROLE ${s}_b; GRANT SELECT ON ${s}.orders TO ${s}_a WITH GRANT OPTION; GRANT SELECT ON ${s}.orders TO ${s}_c;
    SET ROLE ${s}_owner; REVOKE SELECT ON ${s}.orders FROM ${s}_a; REVOKE SELECT ON ${s}.orders FROM ${s}_b; RESET ROLE`;
  const cycleRoles = (s: string) => ['owner', 'a', 'b', 'c'].map((r) => `${s}_${r}`);
  const cycleSchema = (s: string) =>
    `CREATE TABLE ${s}.orders (id int); ALTER TABLE ${s}.orders OWNER TO ${s}_owner; GRANT USAGE ON SCHEMA ${s} TO ${s}_a, ${s}_b, ${s}_c`;

  it('options left in a cycle are converged by a converged batch, which no longer holds the environment', async () => {
    // The roles are handed over before a daemon runs: one running already may find them on
    // dev first, still dev's own, and record a conflict instead.
    await given(cycleRoles('cb'), 'cb', cycleSchema('cb'));
    const daemon = await p.startDaemon();
    onTestFinished(() => daemon.stop());
    await p.settleRoles();
    await dev(CYCLE('cb'));
    // A grant in a DO block is converged: the table is brought to the source's state.
    await p.dba(`DO $$ BEGIN GRANT SELECT ON cb.orders TO cb_c; END $$`);
    await p.settle();
    const { rows } = await p.sourceClient.query<{ execution_status: string; result_message: string }>(
      `SELECT x.execution_status, x.result_message FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE b.origin = 'event_trigger' AND x.environment_name = 'dev' ORDER BY b.commit_seq DESC LIMIT 1`,
    );
    expect(rows).toEqual([{ execution_status: 'success', result_message: expect.stringMatching(/^converged 1 object\(s\)/) }]);
    await daemon.stop();
    await expectEqual('cb');
  });

  it('options left in a cycle are taken back with CASCADE by reconcile, and what the source has is granted', async () => {
    await given(cycleRoles('cy'), 'cy', cycleSchema('cy'));
    await dev(CYCLE('cy'));
    await p.dba(`SET ROLE cy_owner; GRANT SELECT ON cy.orders TO cy_c; RESET ROLE`);
    await reconcileDev('cy');
    await expectEqual('cy');
  });

  it("a column's option the source does not give, held where the grantee granted on the column through the table's option, goes, and that grant stays", async () => {
    await given(
      ['co_owner', 'co_lead', 'co_team'],
      'co',
      `CREATE TABLE co.orders (id int, note text); ALTER TABLE co.orders OWNER TO co_owner; GRANT USAGE ON SCHEMA co TO co_lead, co_team`,
    );
    // On both the lead holds the table's option and grants the team a column; on dev it holds the column's option too.
    await p.everywhere(`SET ROLE co_owner; GRANT SELECT ON co.orders TO co_lead WITH GRANT OPTION; RESET ROLE`);
    await dev(`SET ROLE co_owner; GRANT SELECT (note) ON co.orders TO co_lead WITH GRANT OPTION; RESET ROLE`);
    await p.everywhere(`SET ROLE co_lead; GRANT SELECT (note) ON co.orders TO co_team; RESET ROLE`);
    await reconcileDev('co');
    await expectEqual('co');
  });

  it('an option its grantee keeps through a membership is taken plainly, and the grants made through it stay', async () => {
    await given(
      ['mo_owner', 'mo_lead', 'mo_team', 'mo_app'],
      'mo',
      `CREATE TABLE mo.orders (id int); ALTER TABLE mo.orders OWNER TO mo_owner; GRANT USAGE ON SCHEMA mo TO mo_lead, mo_team, mo_app;
       GRANT mo_team TO mo_lead`,
    );
    // Everywhere the lead, a member of the team, grants the app through its own option.
    await p.everywhere(`SET ROLE mo_owner; GRANT SELECT ON mo.orders TO mo_lead, mo_team WITH GRANT OPTION;
                        SET ROLE mo_lead; GRANT SELECT ON mo.orders TO mo_app; RESET ROLE`);
    // The source takes the lead's option back: PostgreSQL accepts it, the lead keeping the team's, and the app's grant stays.
    await p.dba(`SET ROLE mo_owner; REVOKE GRANT OPTION FOR SELECT ON mo.orders FROM mo_lead; RESET ROLE`);
    expect(await privileges('source', 'mo')).toContain('r mo.orders mo_app SELECT by mo_lead');
    await reconcileDev('mo');
    await expectEqual('mo');
  });

  it('an option its grantee keeps through a membership the plan grants first is taken plainly too', async () => {
    await given(
      ['mp_owner', 'mp_lead', 'mp_team', 'mp_app'],
      'mp',
      `CREATE TABLE mp.orders (id int); ALTER TABLE mp.orders OWNER TO mp_owner; GRANT USAGE ON SCHEMA mp TO mp_lead, mp_team, mp_app`,
    );
    await p.everywhere(`SET ROLE mp_owner; GRANT SELECT ON mp.orders TO mp_lead, mp_team WITH GRANT OPTION;
                        SET ROLE mp_lead; GRANT SELECT ON mp.orders TO mp_app; RESET ROLE`);
    // Only the source makes the lead a member of the team, then takes the lead's option back.
    await p.dba(`GRANT mp_team TO mp_lead; SET ROLE mp_owner; REVOKE GRANT OPTION FOR SELECT ON mp.orders FROM mp_lead; RESET ROLE`);
    await reconcileDev('mp');
    await expectEqual('mp');
  });

  it("an option the database's owner keeps as pg_database_owner is taken plainly on a schema that role owns, and the grants made through it stay", async () => {
    // Schema public from PostgreSQL 15 is such a schema; this one is the test's own.
    onTestFinished(() =>
      p.everywhere(
        `ALTER DATABASE postgres OWNER TO postgres; DROP SCHEMA IF EXISTS pd CASCADE; DROP OWNED BY pd_dbo, pd_app; DROP ROLE pd_dbo, pd_app`,
      ),
    );
    // Everywhere the future owner of the database holds USAGE's option from the schema's
    // owner, and grants the app through it; then it becomes the database's owner.
    await p.everywhere(`CREATE ROLE pd_dbo; CREATE ROLE pd_app; CREATE SCHEMA pd; ALTER SCHEMA pd OWNER TO pg_database_owner;
                        GRANT USAGE ON SCHEMA pd TO pd_dbo WITH GRANT OPTION; SET ROLE pd_dbo; GRANT USAGE ON SCHEMA pd TO pd_app; RESET ROLE;
                        ALTER DATABASE postgres OWNER TO pd_dbo`);
    await p.adopt(['pd_dbo', 'pd_app']);
    // The source takes its option back: PostgreSQL accepts it, the owner keeping pg_database_owner's, and the app's grant stays.
    await p.dba('REVOKE GRANT OPTION FOR USAGE ON SCHEMA pd FROM pd_dbo');
    const schema = async (client: 'source' | 'dev') =>
      (await permissionSnapshot(client === 'source' ? p.sourceClient : p.env('dev').client)).filter((l) => l.startsWith('schema pd '));
    expect(await schema('source')).toContain('schema pd pd_app USAGE by pd_dbo');
    expect(await schema('source')).toContain('schema pd pd_dbo USAGE by pg_database_owner');
    const result = await reconcileFirst(p);
    expect(result.failure).toBeUndefined();
    expect(result.after?.report?.differences).toEqual([]);
    expect(await schema('dev')).toEqual(await schema('source'));
    expect(accountDifference(await account('source'), await account('dev'))).toEqual({ onlySource: [], onlyTarget: [] });
    expect(await drift()).toEqual({ code: 0, out: 'dev: matches the source\n' });
  });

  it('what revokes with CASCADE take down a column chain is granted again where the source has it', async () => {
    await given(
      ['ch_owner', 'ch_lead', 'ch_team', 'ch_app', 'ch_tool'],
      'ch',
      `CREATE TABLE ch.orders (id int, note text); ALTER TABLE ch.orders OWNER TO ch_owner;
       GRANT USAGE ON SCHEMA ch TO ch_lead, ch_team, ch_app, ch_tool`,
    );
    await p.everywhere(`SET ROLE ch_owner; GRANT SELECT ON ch.orders TO ch_lead WITH GRANT OPTION;
                        SET ROLE ch_lead; GRANT SELECT ON ch.orders TO ch_team WITH GRANT OPTION; RESET ROLE`);
    // On the source the column's grants rest on the table's options.
    await p.dba(`SET ROLE ch_lead; GRANT SELECT (note) ON ch.orders TO ch_team;
                 SET ROLE ch_team; GRANT SELECT (note) ON ch.orders TO ch_app; RESET ROLE`);
    // On dev the lead holds the column's option too and passes it on; the team grants the tool as well.
    await dev(`SET ROLE ch_owner; GRANT SELECT (note) ON ch.orders TO ch_lead WITH GRANT OPTION;
               SET ROLE ch_lead; GRANT SELECT (note) ON ch.orders TO ch_team WITH GRANT OPTION;
               SET ROLE ch_team; GRANT SELECT (note) ON ch.orders TO ch_app, ch_tool; RESET ROLE`);
    await reconcileDev('ch');
    await expectEqual('ch');
    expect(await privileges('dev', 'ch')).toEqual(
      expect.arrayContaining(['column ch.orders.note ch_team SELECT by ch_lead', 'column ch.orders.note ch_app SELECT by ch_team']),
    );
  });
});
