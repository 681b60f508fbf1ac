import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { reconcile } from '../src/drift/reconcile.js';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { permissionDump } from './support/dump-shared.js';
import { sharedGrants } from './support/catalog.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';
import { TablespaceDirs } from './support/tablespace.js';
import { runCli, writeConfigFile } from './support/cli.js';

/**
 * Grant-option cycles on a database (the source's own and another), a tablespace and (15+)
 * a parameter, which PostgreSQL takes apart only with CASCADE: two roles holding an option
 * only through each other's grants, once the owner's were taken back. Made on the target
 * by hand, reconcile takes them apart and grants again what the source has, so that the
 * target's privileges are the source's by aclexplode and by pg_dump, and drift exits 0;
 * a cycle one of whose grants goes to a role of the target's own is left as it was. A role
 * watcher batch that carries the source's own `REVOKE ... CASCADE` of such a cycle holds
 * the environment, saying the way out (skip it, then reconcile), which ends with the
 * target as the source. An option whose grantee keeps one as a member of the owner is
 * taken plainly, as PostgreSQL takes it. Each test has roles of its own (its prefix).
 */
const LEAVE_OUT = /permsync/;

/** The objects each statement names: the source's own database, another, a tablespace and (15+) a parameter. */
function objects(major: PostgresMajor, own: string): { object: string; privilege: string }[] {
  return [
    { object: `DATABASE ${own}`, privilege: 'CREATE' },
    { object: 'DATABASE sc_db', privilege: 'CREATE' },
    { object: 'TABLESPACE sc_ts', privilege: 'CREATE' },
    ...(major >= 15 ? [{ object: 'PARAMETER work_mem', privilege: 'SET' }] : []),
  ];
}

describe.each([14, 18] as PostgresMajor[])('PostgreSQL %i', (major) => {
  let p: Pipeline;
  let own: string;
  let dir: string;
  const dirs = new TablespaceDirs();

  /** The same statement on each object, as `as` (the DBA where undefined). */
  function onEach(verb: (object: string, privilege: string) => string, as?: string): string {
    const statements = objects(major, own).map(({ object, privilege }) => verb(object, privilege));
    return as === undefined ? statements.join('; ') : [`SET ROLE ${as}`, ...statements, 'RESET ROLE'].join('; ');
  }

  /**
   * On each object, a and b hold the option only through each other's grants (the owner
   * gave each its own, then took both back: each revoke was accepted, the other's grant
   * standing), and b granted c (and `also`) through it.
   */
  function cycle(prefix: string, also: string[] = []): string {
    const [a, b, c] = ['a', 'b', 'c'].map((r) => `${prefix}_${r}`);
    return [
      onEach((o, x) => `GRANT ${x} ON ${o} TO ${a}, ${b} WITH GRANT OPTION`),
      onEach((o, x) => `GRANT ${x} ON ${o} TO ${b} WITH GRANT OPTION`, a),
      onEach((o, x) => `GRANT ${x} ON ${o} TO ${[a, ...also].join(', ')} WITH GRANT OPTION`, b),
      onEach((o, x) => `GRANT ${x} ON ${o} TO ${c}`, b),
      onEach((o, x) => `REVOKE ${x} ON ${o} FROM ${a}, ${b}`),
    ].join('; ');
  }

  const acl = (client: Pipeline['sourceClient'], prefix: string): Promise<string[]> =>
    sharedGrants(client, prefix, { database: 'sc_db', tablespace: 'sc_ts', major });

  /** `permsync drift`, run in this process as bin/permsync.js runs it. */
  async function drift(): Promise<{ code: number; out: string }> {
    const { code, out } = await runCli('drift', '--config', await writeConfigFile(dir, p.config()));
    return { code, out };
  }

  /** Dev holds the source's grants grantor by grantor, pg_dump shows both alike, and drift exits 0. */
  async function expectEqual(prefix: string): Promise<void> {
    expect(await acl(p.env('dev').client, prefix)).toEqual(await acl(p.sourceClient, prefix));
    expect(await permissionDump(p.env('dev').server, { leaveOut: LEAVE_OUT })).toEqual(await permissionDump(p.source, { leaveOut: LEAVE_OUT }));
    expect(await drift()).toEqual({ code: 0, out: 'dev: matches the source\n' });
  }

  async function reconcileDev() {
    const config = p.config();
    return reconcile(config, config.environments[0] as (typeof config.environments)[0], p.sourceClient, { apply: true, dropExtraRoles: false });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'permsync-shared-cascade-'));
    p = await startPipeline(['dev'], { major, embedded: true });
    own = ((await p.sourceClient.query<{ name: string }>('SELECT current_database() AS name')).rows[0] as { name: string }).name;
    for (const client of [p.sourceClient, p.env('dev').client]) {
      await client.query('CREATE DATABASE sc_db');
      await client.query(`CREATE TABLESPACE sc_ts LOCATION '${await dirs.make()}'`);
    }
  }, 120_000);

  afterAll(async () => {
    await p?.close();
    await dirs.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('options left in a cycle are taken back with CASCADE by reconcile, as the source has them: not at all', async () => {
    await p.everywhere('CREATE ROLE cy_a; CREATE ROLE cy_b; CREATE ROLE cy_c');
    await p.adopt(['cy_a', 'cy_b', 'cy_c']);
    await p.env('dev').client.query(cycle('cy'));
    // The source's owner grants c alone.
    await p.sourceClient.query(onEach((o, x) => `GRANT ${x} ON ${o} TO cy_c`));
    expect(await acl(p.env('dev').client, 'cy')).not.toEqual(await acl(p.sourceClient, 'cy'));
    expect((await drift()).code).toBe(1);
    const result = await reconcileDev();
    expect(result.failure).toBeUndefined();
    expect(result.after?.report?.differences).toEqual([]);
    await expectEqual('cy');
    expect((await acl(p.sourceClient, 'cy')).filter((l) => l.startsWith('database sc_db:'))).toEqual([
      expect.stringMatching(/^database sc_db: \w+ granted CREATE to cy_c$/),
    ]);
  });

  it("the source's REVOKE ... CASCADE of a cycle holds the environment with the way out, which ends with it as the source", async () => {
    await p.everywhere('CREATE ROLE wo_a; CREATE ROLE wo_b; CREATE ROLE wo_c');
    await p.adopt(['wo_a', 'wo_b', 'wo_c']);
    const daemon = await p.startDaemon();
    onTestFinished(async () => {
      await daemon.stop();
    });
    // The cycle as cycle() makes it, each step seen by the role watcher, so that dev gets it.
    await p.sourceClient.query(onEach((o, x) => `GRANT ${x} ON ${o} TO wo_a, wo_b WITH GRANT OPTION`));
    await p.settleRoles();
    await p.sourceClient.query(
      [
        onEach((o, x) => `GRANT ${x} ON ${o} TO wo_b WITH GRANT OPTION`, 'wo_a'),
        onEach((o, x) => `GRANT ${x} ON ${o} TO wo_a WITH GRANT OPTION`, 'wo_b'),
        onEach((o, x) => `GRANT ${x} ON ${o} TO wo_c`, 'wo_b'),
      ].join('; '),
    );
    await p.settleRoles();
    await p.sourceClient.query(onEach((o, x) => `REVOKE ${x} ON ${o} FROM wo_a, wo_b`));
    await p.settleRoles();
    expect(await acl(p.env('dev').client, 'wo')).toEqual(await acl(p.sourceClient, 'wo'));
    // b takes back its grant to a, and with it everything the cycle held.
    await p.sourceClient.query(onEach((o, x) => `REVOKE ${x} ON ${o} FROM wo_a CASCADE`, 'wo_b'));
    await p.settleRoles();
    const { rows } = await p.sourceClient.query<{ batch: string; message: string; hint: string }>(
      `SELECT batch_id::text AS batch, result_message AS message, error_hint AS hint FROM permsync.execution_log
        WHERE environment_name = 'dev' AND execution_status = 'failed' ORDER BY id DESC LIMIT 1`,
    );
    const [failed] = rows;
    expect(failed?.message).toMatch(
      /^failed at ".*REVOKE .*dependent privileges exist: .*permsync skip --env dev --batch \d+ .*permsync reconcile --env dev --apply/,
    );
    expect(failed?.hint).toMatch(/grants again in the same transaction what the source has/);
    await p.sourceClient.query(`SELECT permsync.skip_batch('dev', $1, 'taken apart by reconcile')`, [failed?.batch]);
    await p.settle();
    const result = await reconcileDev();
    expect(result.failure).toBeUndefined();
    await expectEqual('wo');
    expect(await acl(p.sourceClient, 'wo')).toEqual([]);
  });

  it("an option its grantee keeps as a member of a database's owner is taken plainly, and the grants made through it stay", async () => {
    await p.everywhere(`CREATE ROLE mo_dbo; CREATE ROLE mo_lead; CREATE ROLE mo_app; GRANT mo_dbo TO mo_lead`);
    for (const client of [p.sourceClient, p.env('dev').client]) await client.query('CREATE DATABASE mo_db OWNER mo_dbo');
    onTestFinished(async () => {
      for (const client of [p.sourceClient, p.env('dev').client]) await client.query('DROP DATABASE mo_db');
      await p.everywhere('DROP ROLE mo_app, mo_lead, mo_dbo');
    });
    await p.adopt(['mo_dbo', 'mo_lead', 'mo_app']);
    await p.everywhere(`SET ROLE mo_dbo; GRANT CREATE ON DATABASE mo_db TO mo_lead WITH GRANT OPTION;
                        SET ROLE mo_lead; GRANT CREATE ON DATABASE mo_db TO mo_app; RESET ROLE`);
    // Accepted on the source, the lead having its owner's options, and the app's grant stays.
    await p.sourceClient.query('SET ROLE mo_dbo; REVOKE GRANT OPTION FOR CREATE ON DATABASE mo_db FROM mo_lead; RESET ROLE');
    // The lead's and the app's grants (the owner's own and PUBLIC's are the same everywhere).
    const grants = async (client: Pipeline['sourceClient']) =>
      (await sharedGrants(client, 'mo', { database: 'mo_db', tablespace: '', major })).filter((l) => /mo_(lead|app)/.test(l));
    expect(await grants(p.sourceClient)).toEqual([
      'database mo_db: mo_dbo granted CREATE to mo_lead',
      'database mo_db: mo_lead granted CREATE to mo_app',
    ]);
    const result = await reconcileDev();
    expect(result.failure).toBeUndefined();
    expect(result.after?.report?.differences).toEqual([]);
    expect(await grants(p.env('dev').client)).toEqual(await grants(p.sourceClient));
    expect(await drift()).toEqual({ code: 0, out: 'dev: matches the source\n' });
  });

  it("a cycle one of whose grants goes to a role of the target's own is not taken with CASCADE", async () => {
    await p.everywhere('CREATE ROLE ow_a; CREATE ROLE ow_b; CREATE ROLE ow_c');
    await p.adopt(['ow_a', 'ow_b', 'ow_c']);
    // ow_x is dev's own: permsync neither created it there nor was handed it.
    await p.env('dev').client.query(`CREATE ROLE ow_x; ${cycle('ow', ['ow_x'])}`);
    // Taken apart as the source would, b's grant to a with CASCADE, so that dev is the source's again.
    onTestFinished(async () => {
      await p.env('dev').client.query(`${onEach((o, x) => `REVOKE ${x} ON ${o} FROM ow_a CASCADE`, 'ow_b')}; DROP ROLE ow_x`);
    });
    const before = await acl(p.env('dev').client, 'ow');
    const result = await reconcileDev();
    expect(result.failure).toBeDefined();
    expect(await acl(p.env('dev').client, 'ow')).toEqual(before);
    expect(before).toContain('database sc_db: ow_b granted CREATE to ow_x with grant option');
  });
});
