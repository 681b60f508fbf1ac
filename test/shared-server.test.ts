import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config/schema.js';
import { checkEnvironments } from '../src/drift/check.js';
import { Target } from '../src/target/target.js';
import { permissionSnapshot, sharedGrants } from './support/catalog.js';
import { runCli, writeConfigFile } from './support/cli.js';
import { canDump, catalogAccount, dumpAccount } from './support/dump.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';
import { waitFor } from './support/wait.js';

// Environments that are databases of one server share its roles: a role change reaches
// the server once, each database gets its own grants, neither environment takes the
// other's roles for roles of its own, and a dropped role is released in both databases.

const DATABASES = ['shop_a', 'shop_b'];
const SCHEMA = `CREATE SCHEMA shop; CREATE TABLE shop.orders (id int); CREATE TABLE shop.notes (id int)`;

let p: Pipeline;
let config: Config;
const clients = new Map<string, pg.Client>();

beforeAll(async () => {
  p = await startPipeline(['host']);
  const host = p.env('host');
  await p.everywhere(SCHEMA);
  for (const database of DATABASES) {
    await host.client.query(`CREATE DATABASE ${database}`);
    const client = new pg.Client(host.server.urlFor(database));
    await client.connect();
    await client.query(SCHEMA);
    clients.set(database, client);
  }
  const base = p.config();
  const [environment] = base.environments;
  if (!environment) throw new Error('no environment');
  config = {
    ...base,
    environments: DATABASES.map((database, i) => {
      const url = new URL(environment.url);
      url.pathname = `/${database}`;
      return { ...environment, name: database, url: url.toString(), priority: (i + 1) * 10 };
    }),
  };
  await p.startDaemon(config);
});

afterAll(async () => {
  for (const client of clients.values()) await client.end().catch(() => {});
  await p?.close();
});

const client = (database: string) => clients.get(database) as pg.Client;

async function logged(origin: string): Promise<{ environment: string; status: string; sql: string | null; message: string | null }[]> {
  const { rows } = await p.sourceClient.query<{ environment: string; status: string; sql: string | null; message: string | null }>(
    `SELECT x.environment_name AS environment, x.execution_status AS status, x.applied_sql AS sql, x.result_message AS message
       FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
      WHERE b.origin = $1 ORDER BY b.commit_seq, x.environment_name`,
    [origin],
  );
  return rows;
}

/** A table's owner in a database, and whether the role dropped on the source is gone from its server. */
async function ownerAfterDrop(database: string, table: string, role: string): Promise<{ owner: string; dropped: boolean } | undefined> {
  const { rows } = await client(database).query<{ owner: string; dropped: boolean }>(
    `SELECT pg_get_userbyid(c.relowner) AS owner, NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $2) AS dropped
       FROM pg_class c WHERE c.oid = $1::regclass`,
    [table, role],
  );
  return rows[0];
}

describe('environments that are databases of one server', () => {
  it('create a role once, and each database gets its grants to it', async () => {
    await p.dba(`CREATE ROLE analyst LOGIN; CREATE ROLE readers; GRANT readers TO analyst`);
    await p.dba(`GRANT USAGE ON SCHEMA shop TO readers; GRANT SELECT ON shop.orders TO readers, analyst`);
    // A setting in the source's own database is one in each environment's own.
    const own = (await p.sourceClient.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db as string;
    await p.dba(`ALTER ROLE readers IN DATABASE ${own} SET work_mem = '8MB'`);
    await p.settleRoles();

    const source = await permissionSnapshot(p.sourceClient);
    expect(source).toContain('r shop.orders analyst SELECT by postgres');
    for (const database of DATABASES) expect(await permissionSnapshot(client(database))).toEqual(source);
    const { rows: settings } = await client('shop_a').query<{ database: string; config: string[] }>(
      `SELECT d.datname AS database, s.setconfig AS config FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE s.setrole = 'readers'::regrole ORDER BY 1`,
    );
    expect(settings).toEqual(DATABASES.map((database) => ({ database, config: ['work_mem=8MB'] })));

    // One environment created the roles; the other found them there.
    const roleRuns = (await logged('role_watcher')).filter((r) => r.sql?.includes('CREATE ROLE analyst;'));
    expect(roleRuns).toHaveLength(1);
    const other = (await logged('role_watcher')).filter((r) => r.environment !== roleRuns[0]?.environment);
    expect(other.map((r) => r.status)).toEqual(['success', 'success']);
    expect(other[0]?.message).toMatch(/role changes were applied to this server by environment shop_/);
    // What is about its own database it carries itself.
    expect(other[1]?.sql).toMatch(/ALTER ROLE "?readers"? IN DATABASE "shop_[ab]" SET work_mem/);
    // Neither calls the other's roles its own.
    const { rows: conflicts } = await p.sourceClient.query('SELECT * FROM permsync.v_role_conflicts');
    expect(conflicts).toEqual([]);
    const { rows: managed } = await p.sourceClient.query<{ environment_name: string; role_name: string }>(
      `SELECT environment_name, role_name FROM permsync.v_managed_roles ORDER BY 1, 2`,
    );
    expect(managed).toEqual(DATABASES.flatMap((d) => ['analyst', 'readers'].map((r) => ({ environment_name: d, role_name: r }))));
    // The source records each once, for the server.
    const { rows: recorded } = await p.sourceClient.query<{ role_name: string }>(`SELECT role_name FROM permsync.managed_roles ORDER BY 1`);
    expect(recorded.map((r) => r.role_name)).toEqual(['analyst', 'readers']);
  });

  it('see no drift in each other', async () => {
    // Nor in a database of their server that is no environment's and that the source lacks:
    // the server's own, as its privileges are; the source can say nothing about it.
    const host = p.env('host').client;
    await host.query('CREATE DATABASE scratch');
    try {
      await host.query(`ALTER ROLE readers IN DATABASE scratch SET work_mem = '1MB'`);
      const results = await checkEnvironments(config, p.sourceClient, config.environments, { dropExtraRoles: false });
      for (const result of results) {
        expect(result.error).toBeUndefined();
        expect(result.report?.differences).toEqual([]);
      }
    } finally {
      await host.query('DROP DATABASE scratch');
    }
  });

  it('drop a role that holds objects and privileges in both databases', async () => {
    // A migration run everywhere gives the role a table of its own in every database.
    await p.dba(`SET permsync.capture = 'off'; ALTER TABLE shop.notes OWNER TO analyst; RESET permsync.capture`);
    for (const database of DATABASES) await client(database).query('ALTER TABLE shop.notes OWNER TO analyst');
    await p.dba(`REASSIGN OWNED BY analyst TO readers; DROP OWNED BY analyst; DROP ROLE analyst`);
    await p.settleRoles();

    for (const database of DATABASES) {
      expect(await ownerAfterDrop(database, 'shop.notes', 'analyst')).toEqual({ owner: 'readers', dropped: true });
      expect(await permissionSnapshot(client(database))).toEqual(await permissionSnapshot(p.sourceClient));
    }
    const failed = (await logged('role_watcher')).filter((r) => r.status !== 'success');
    expect(failed).toEqual([]);
    const drop = (await logged('role_watcher')).find((r) => r.sql?.includes('DROP ROLE IF EXISTS analyst'));
    expect(drop?.message).toMatch(/first released what "analyst" held in environment shop_[ab]'s database, on the same server/);
    const results = await checkEnvironments(config, p.sourceClient, config.environments, { dropExtraRoles: false });
    for (const result of results) expect(result.report?.differences).toEqual([]);
  });

  /**
   * A table of `leaver` in every database; then `script` on the source, in which no
   * statement fires an event trigger, gives it to `heir` and drops `leaver`: the role
   * watcher finds it all in one look. Each database's table must go to the heir before the
   * drop, in a transaction of its own there, so the heir has to be there, committed, first.
   */
  async function dropInOneLook(table: string, roles: string, leaver: string, script: string, heir: string): Promise<void> {
    await p.dba(roles);
    await p.settleRoles();
    const made = `CREATE TABLE ${table} (id int); ALTER TABLE ${table} OWNER TO ${leaver}`;
    await p.dba(`SET permsync.capture = 'off'; ${made}; RESET permsync.capture`);
    for (const database of DATABASES) await client(database).query(made);
    // The owner watcher notes the leaver's table, so that a release may give it away.
    await waitFor(
      async () =>
        (
          await p.sourceClient.query(
            `SELECT FROM permsync.object_owners o WHERE o.classid = 'pg_class'::regclass AND o.objid = $1::regclass AND o.owner_oid = $2::regrole`,
            [table, leaver],
          )
        ).rowCount === 1,
      10_000,
      `the owner watcher to note ${table}`,
    );

    await p.dba(script);
    await p.settleRoles();

    for (const database of DATABASES) expect(await ownerAfterDrop(database, table, leaver)).toEqual({ owner: heir, dropped: true });
    const failed = (await logged('role_watcher')).filter((r) => r.status !== 'success');
    expect(failed).toEqual([]);
    const results = await checkEnvironments(config, p.sourceClient, config.environments, { dropExtraRoles: false });
    for (const result of results) expect(result.report?.differences).toEqual([]);
  }

  it('drop a role whose objects went to a role created in the same moment, in both databases', async () => {
    await dropInOneLook(
      'shop.ledger',
      'CREATE ROLE clerk',
      'clerk',
      'CREATE ROLE bookkeeper; REASSIGN OWNED BY clerk TO bookkeeper; DROP ROLE clerk',
      'bookkeeper',
    );
  });

  it('the same to a role renamed in the same moment', async () => {
    await dropInOneLook(
      'shop.journal',
      'CREATE ROLE scribe; CREATE ROLE archivist',
      'scribe',
      'ALTER ROLE archivist RENAME TO curator; REASSIGN OWNED BY scribe TO curator; DROP ROLE scribe',
      'curator',
    );
  });

  it("take apart a cycle of grant options the source took apart with CASCADE: each its own database's, the server's once", async () => {
    const own = (await p.sourceClient.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db as string;
    const on = [`DATABASE ${own}`, ...(p.source.major >= 15 ? ['PARAMETER work_mem'] : [])];
    const each = (verb: (object: string, privilege: string) => string, as?: string) => {
      const statements = on.map((object) => verb(object, object.startsWith('DATABASE') ? 'CREATE' : 'SET'));
      return as === undefined ? statements.join('; ') : [`SET ROLE ${as}`, ...statements, 'RESET ROLE'].join('; ');
    };
    const grants = (c: pg.ClientBase) => sharedGrants(c, 'cy', { database: own, tablespace: '', major: p.source.major });
    await p.dba('CREATE ROLE cy_a; CREATE ROLE cy_b; CREATE ROLE cy_c');
    await p.settleRoles();
    await p.dba(each((o, x) => `GRANT ${x} ON ${o} TO cy_a, cy_b WITH GRANT OPTION`));
    await p.settleRoles();
    await p.dba(
      [
        each((o, x) => `GRANT ${x} ON ${o} TO cy_b WITH GRANT OPTION`, 'cy_a'),
        each((o, x) => `GRANT ${x} ON ${o} TO cy_a WITH GRANT OPTION`, 'cy_b'),
        each((o, x) => `GRANT ${x} ON ${o} TO cy_c`, 'cy_b'),
      ].join('; '),
    );
    await p.settleRoles();
    await p.dba(each((o, x) => `REVOKE ${x} ON ${o} FROM cy_a, cy_b`));
    await p.settleRoles();
    for (const database of DATABASES) expect(await grants(client(database))).toEqual(await grants(p.sourceClient));
    expect(await grants(p.sourceClient)).toContain('database {own}: cy_b granted CREATE to cy_c');
    await p.dba(each((o, x) => `REVOKE ${x} ON ${o} FROM cy_a CASCADE`, 'cy_b'));
    await p.settleRoles();
    expect(await grants(p.sourceClient)).toEqual([]);
    for (const database of DATABASES) expect(await grants(client(database))).toEqual([]);
    const last = (await logged('role_watcher')).slice(-DATABASES.length);
    expect(last.map((r) => r.status)).toEqual(DATABASES.map(() => 'success'));
    // One environment takes apart its database's and the server's; the other, its database's alone.
    const cascades = last.map((r) => r.message?.match(/with CASCADE/g)?.length ?? 0).sort();
    expect(cascades).toEqual([1, on.length]);
    const results = await checkEnvironments(config, p.sourceClient, config.environments, { dropExtraRoles: false });
    for (const result of results) expect(result.report?.differences).toEqual([]);
  });

  it('take apart a cycle the source took apart with CASCADE in the moment it dropped one of its roles, in both databases', async () => {
    const own = (await p.sourceClient.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db as string;
    const grants = (c: pg.ClientBase) => sharedGrants(c, 'dc', { database: own, tablespace: '', major: p.source.major });
    // The roles as pg_dumpall --roles-only has them (the catalogs, where no installed client reads the server).
    const roles = async (c: pg.ClientBase, url: string, database: string) =>
      (canDump(p.source.major)
        ? await dumpAccount(url, { ignoreRoles: [], database })
        : await catalogAccount(c, { ignoreRoles: [], database })
      ).filter((l) => /\bdc_/.test(l));
    await p.dba('CREATE ROLE dc_a; CREATE ROLE dc_b; CREATE ROLE dc_c');
    await p.settleRoles();
    await p.dba(`GRANT CREATE ON DATABASE ${own} TO dc_a, dc_b WITH GRANT OPTION`);
    await p.settleRoles();
    await p.dba(
      `SET ROLE dc_a; GRANT CREATE ON DATABASE ${own} TO dc_b WITH GRANT OPTION;
       SET ROLE dc_b; GRANT CREATE ON DATABASE ${own} TO dc_a WITH GRANT OPTION; GRANT CREATE ON DATABASE ${own} TO dc_c; RESET ROLE`,
    );
    await p.settleRoles();
    await p.dba(`REVOKE CREATE ON DATABASE ${own} FROM dc_a, dc_b`);
    await p.settleRoles();
    for (const database of DATABASES) expect(await grants(client(database))).toEqual(await grants(p.sourceClient));
    expect(await grants(p.sourceClient)).toContain('database {own}: dc_b granted CREATE to dc_a with grant option');
    // One role watcher batch: the circle taken apart, and one of its roles dropped. The
    // first environment to come releases dc_b in the other's database before its DROP ROLE.
    await p.dba(`SET ROLE dc_b; REVOKE CREATE ON DATABASE ${own} FROM dc_a CASCADE; RESET ROLE; DROP ROLE dc_b`);
    await p.settleRoles();
    expect(await grants(p.sourceClient)).toEqual([]);
    const source = await roles(p.sourceClient, p.source.url, own);
    expect(source).toContainEqual(expect.stringMatching(/dc_c/));
    expect(source.filter((l) => l.includes('dc_b'))).toEqual([]);
    for (const database of DATABASES) {
      expect(await grants(client(database))).toEqual([]);
      expect(await roles(client(database), p.env('host').server.urlFor(database), database)).toEqual(source);
    }
    const last = (await logged('role_watcher')).slice(-DATABASES.length);
    expect(last.map((r) => r.status)).toEqual(DATABASES.map(() => 'success'));
    expect(
      last.some((r) =>
        /in environment shop_[ab]: statement\(s\) \d+ made after the others on the environment's database, \d+ with CASCADE/.test(r.message ?? ''),
      ),
    ).toBe(true);
    const dir = await mkdtemp(join(tmpdir(), 'permsync-shared-server-'));
    try {
      const drift = await runCli('drift', '--config', await writeConfigFile(dir, config));
      expect({ code: drift.code, out: drift.out }).toEqual({ code: 0, out: DATABASES.map((d) => `${d}: matches the source\n`).join('') });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('are told apart by the server, also where the sync user may not read its system identifier', async () => {
    const identity = async (url: string) => {
      const target = new Target({ ...(config.environments[0] as Config['environments'][number]), url }, config.settings, () => {});
      try {
        const read = await target.serverIdentity();
        if ('error' in read) throw new Error(read.error.message);
        return read.identity;
      } finally {
        await target.close();
      }
    };
    const [a, b] = config.environments.map((e) => e.url) as [string, string];
    // A login of the target that may create functions in public cannot answer for the server
    // (nor run code as the sync user): a better match for an unqualified call would be its own.
    await client('shop_a').query(`CREATE FUNCTION public.concat_ws(text, bigint, numeric) RETURNS text LANGUAGE sql AS $$ SELECT 'forged' $$`);
    expect(await identity(a)).toBe(await identity(b));
    expect(await identity(a)).toMatch(/^\d+\/\d+(\.\d+)?$/);
    expect(await identity(p.source.url)).not.toBe(await identity(a));
    // A managed service's sync user, say: the start time and port stand for the identifier.
    const host = p.env('host');
    await host.client.query(`CREATE ROLE plain LOGIN PASSWORD 'plain'`);
    for (const database of DATABASES) await client(database).query('REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC');
    try {
      const plain = (database: string) => host.server.urlFor(database, 'plain', 'plain');
      const [one, two] = [await identity(plain('shop_a')), await identity(plain('shop_b'))];
      expect(one).toMatch(/^start\//);
      expect(one).toBe(two);
    } finally {
      for (const database of DATABASES) await client(database).query('GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC');
      await host.client.query('DROP ROLE plain');
    }
  });
});
