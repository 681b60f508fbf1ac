import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { permissionDump } from './support/dump-shared.js';
import { sharedGrants } from './support/catalog.js';
import { reconcileFirst, startPipeline, type Pipeline } from './support/pipeline.js';
import { TablespaceDirs } from './support/tablespace.js';
import { runCli, writeConfigFile } from './support/cli.js';
import { waitFor } from './support/wait.js';

/**
 * Grant-option cycles on a database (the source's own and another), a tablespace and (15+)
 * a parameter, which PostgreSQL takes apart only with CASCADE: two roles holding an option
 * only through each other's grants, once the owner's were taken back. Made on the target
 * by hand, reconcile takes them apart and grants again what the source has, so that the
 * target's privileges are the source's by aclexplode and by pg_dump, and drift exits 0;
 * a cycle one of whose grants goes to a role of the target's own is left as it was. A role
 * watcher batch that carries the source's own `REVOKE ... CASCADE` of such a cycle takes it
 * apart there with CASCADE too, and the target is the source; where the cascade would take
 * a grant of the target's own roles, it holds the environment, saying which and the way
 * out. An option whose grantee keeps one as a member of the owner is taken plainly, as
 * PostgreSQL takes it. Each test has roles of its own (its prefix).
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
    return reconcileFirst(p);
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

  /**
   * The cycle as cycle() makes it, on the source, each step seen by the role watcher, so
   * that the daemon carries it to dev; then b takes back its grant to a with CASCADE, and
   * with it everything the cycle held, which the role watcher's batch carries as plain
   * revokes. `onDev` runs on dev just before. Returns the batch's id, and dev's grants
   * before it.
   */
  async function cycleTakenApart(prefix: string, onDev = ''): Promise<{ batch: string; before: string[] }> {
    const [a, b, c] = ['a', 'b', 'c'].map((r) => `${prefix}_${r}`);
    await p.sourceClient.query(onEach((o, x) => `GRANT ${x} ON ${o} TO ${a}, ${b} WITH GRANT OPTION`));
    await p.settleRoles();
    await p.sourceClient.query(
      [
        onEach((o, x) => `GRANT ${x} ON ${o} TO ${b} WITH GRANT OPTION`, a),
        onEach((o, x) => `GRANT ${x} ON ${o} TO ${a} WITH GRANT OPTION`, b),
        onEach((o, x) => `GRANT ${x} ON ${o} TO ${c}`, b),
      ].join('; '),
    );
    await p.settleRoles();
    await p.sourceClient.query(onEach((o, x) => `REVOKE ${x} ON ${o} FROM ${a}, ${b}`));
    await p.settleRoles();
    expect(await acl(p.env('dev').client, prefix)).toEqual(await acl(p.sourceClient, prefix));
    if (onDev) await p.env('dev').client.query(onDev);
    const before = await acl(p.env('dev').client, prefix);
    await p.sourceClient.query(onEach((o, x) => `REVOKE ${x} ON ${o} FROM ${a} CASCADE`, b));
    await p.settleRoles();
    const { rows } = await p.sourceClient.query<{ id: string }>(`SELECT max(id)::text AS id FROM permsync.batches WHERE origin = 'role_watcher'`);
    return { batch: rows[0]?.id as string, before };
  }

  /** Dev's outcomes of a batch, oldest first. */
  async function outcomes(batch: string): Promise<{ status: string; message: string; hint: string | null }[]> {
    const { rows } = await p.sourceClient.query<{ status: string; message: string; hint: string | null }>(
      `SELECT execution_status AS status, result_message AS message, error_hint AS hint FROM permsync.execution_log
        WHERE environment_name = 'dev' AND batch_id = $1 ORDER BY id`,
      [batch],
    );
    return rows;
  }

  it("the source's REVOKE ... CASCADE of a cycle is carried by the daemon, with CASCADE there, and dev is the source", async () => {
    await p.everywhere('CREATE ROLE wo_a; CREATE ROLE wo_b; CREATE ROLE wo_c');
    await p.adopt(['wo_a', 'wo_b', 'wo_c']);
    const daemon = await p.startDaemon();
    onTestFinished(async () => {
      await daemon.stop();
    });
    const { batch } = await cycleTakenApart('wo');
    const [outcome, ...more] = await outcomes(batch);
    expect(more).toEqual([]);
    expect(outcome?.status).toBe('success');
    // Each object's circle is taken apart by one revoke with CASCADE, the other's left out.
    const cascades = objects(major, own).length;
    expect(outcome?.message.match(/with CASCADE, which takes apart the circle of grant options there/g)).toHaveLength(cascades);
    expect(outcome?.message.match(/left out: the cascade took what they revoke/g)).toHaveLength(cascades);
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

  it("a cascade that would take a grant of dev's own roles holds dev, saying which, until dev takes it back", async () => {
    await p.everywhere('CREATE ROLE tx_a; CREATE ROLE tx_b; CREATE ROLE tx_c');
    await p.adopt(['tx_a', 'tx_b', 'tx_c']);
    const daemon = await p.startDaemon();
    onTestFinished(async () => {
      await daemon.stop();
      // Where the test stopped before dev took tx_x's grants back.
      const dev = p.env('dev').client;
      if ((await dev.query("SELECT FROM pg_roles WHERE rolname = 'tx_x'")).rowCount) {
        await dev.query(onEach((o, x) => `REVOKE ${x} ON ${o} FROM tx_x CASCADE`, 'tx_b'));
        await dev.query('DROP ROLE tx_x');
      }
    });
    // tx_x is dev's own: on dev, b gives it the option, and it grants c through it.
    const own = [
      'CREATE ROLE tx_x',
      onEach((o, x) => `GRANT ${x} ON ${o} TO tx_x WITH GRANT OPTION`, 'tx_b'),
      onEach((o, x) => `GRANT ${x} ON ${o} TO tx_c`, 'tx_x'),
    ].join('; ');
    const { batch, before } = await cycleTakenApart('tx', own);
    expect(before).toContain('tablespace sc_ts: tx_x granted CREATE to tx_c');
    expect(await acl(p.env('dev').client, 'tx')).toEqual(before);
    const [failed, ...more] = await outcomes(batch);
    expect(more).toEqual([]);
    expect(failed?.status).toBe('failed');
    expect(failed?.message).toMatch(
      /^failed at ".*REVOKE .*dependent privileges exist: a grant made through the option this revoke takes stands on dev \(it is not revoked with CASCADE there: on .*, which the batch does not revoke\), and the batch does not take it; skip the batch with `permsync skip --env dev --batch \d+ .*permsync reconcile --env dev --apply/,
    );
    expect(failed?.message).toContain(
      `on tablespace "sc_ts" it would also take "tx_b"'s grant of CREATE to "tx_x" with grant option, "tx_x"'s grant of CREATE to "tx_c", which the batch does not revoke`,
    );
    expect(failed?.hint).toMatch(/revoking it there and `permsync retry --env dev` lets the batch through/);
    // Dev's DBA takes back what dev's own role holds; the retried batch takes the circle apart.
    await p.env('dev').client.query(onEach((o, x) => `REVOKE ${x} ON ${o} FROM tx_x CASCADE`, 'tx_b'));
    await p.sourceClient.query(`SELECT permsync.retry_failed('dev')`);
    await waitFor(async () => (await outcomes(batch)).some((o) => o.status === 'success'), 15_000, 'the retried batch to apply');
    await p.env('dev').client.query('DROP ROLE tx_x');
    await expectEqual('tx');
    expect(await acl(p.sourceClient, 'tx')).toEqual([]);
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
