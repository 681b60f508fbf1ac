import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Settings } from '../src/config/schema.js';
import type { Daemon } from '../src/daemon.js';
import { checkEnvironments } from '../src/drift/check.js';
import { describeReport } from '../src/drift/format.js';
import { adoptRoles } from '../src/drift/adopt.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';
import { runAs } from './support/servers.js';

/**
 * What a source login below a DBA (a CREATEROLE user, or anyone who gets a role change
 * made on the source) must not reach through permsync's role replication, with the
 * configuration's defaults: roles of a target's own, the powers a superuser guards, and
 * the roles permsync leaves alone. prod's rule keeps dev_ roles off it.
 */
let p: Pipeline;
let daemon: Daemon;

/** A source login with CREATEROLE and nothing else, as the review's attacker. */
const MALLORY = 'mallory';

const asMallory = (sql: string) => runAs(p.source.urlFor('postgres', MALLORY, 'mallory-pw'), sql);

/** Waits until the role watcher has captured every role change and every environment has carried what it could. */
const settle = () => p.settleRoles();

/** Mallory creates those of `names` the source does not have yet. */
async function mallorysRoles(...names: string[]): Promise<void> {
  const { rows } = await p.sourceClient.query<{ name: string }>('SELECT rolname AS name FROM pg_roles WHERE rolname = ANY ($1)', [names]);
  const missing = names.filter((name) => !rows.some((r) => r.name === name));
  if (missing.length > 0) await asMallory(missing.map((name) => `CREATE ROLE ${name}`).join('; '));
}

/** The daemon with this file's configuration: passwords travel, prod's rule keeps dev_ roles off it. */
function startDaemon(settings: Partial<Settings> = {}): Promise<Daemon> {
  return p.startDaemon(
    p.config({
      settings: { syncPasswords: true, ...settings },
      environments: [{}, { rules: [{ action: 'exclude', rolePattern: '^dev_' }] }],
    }),
  );
}

async function conflictCounts(): Promise<Record<string, number>> {
  const { rows } = await p.sourceClient.query<{ environment: string; n: number }>(
    `SELECT environment, role_conflicts::int AS n FROM permsync.v_environment_status`,
  );
  return Object.fromEntries(rows.map((r) => [r.environment, r.n]));
}

async function role(client: pg.Client, name: string) {
  const { rows } = await client.query<{ super: boolean; login: boolean; password: string | null; members_of: string[] }>(
    `SELECT rolsuper AS super, rolcanlogin AS login, rolpassword AS password,
            ARRAY(SELECT pg_get_userbyid(m.roleid)::text FROM pg_auth_members m WHERE m.member = a.oid ORDER BY 1) AS members_of
       FROM pg_authid a WHERE rolname = $1`,
    [name],
  );
  return rows[0];
}

async function memberOf(client: pg.Client, member: string): Promise<string[]> {
  const { rows } = await client.query<{ role: string }>(
    `SELECT pg_get_userbyid(roleid) AS role FROM pg_auth_members WHERE member = to_regrole($1) ORDER BY 1`,
    [member],
  );
  return rows.map((r) => r.role);
}

async function notes(environment: string, pattern: string): Promise<string[]> {
  const { rows } = await p.sourceClient.query<{ note: string }>(
    `SELECT execution_status || ': ' || coalesce(result_message, '') AS note FROM permsync.execution_log
      WHERE environment_name = $1 AND result_message LIKE $2 ORDER BY id`,
    [environment, `%${pattern}%`],
  );
  return rows.map((r) => r.note);
}

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod']);
  await p.everywhere(`CREATE SCHEMA app; GRANT USAGE ON SCHEMA app TO PUBLIC; CREATE TABLE app.orders (id int); CREATE TABLE app.invoices (id int)`);
  // prod's own roles: a superuser for its on-call team, and the owner of its invoices.
  await p.env('prod').client.query(`
    CREATE ROLE prod_admin SUPERUSER LOGIN PASSWORD 'prod-only-secret';
    CREATE ROLE billing NOLOGIN;
    ALTER TABLE app.invoices OWNER TO billing;
    GRANT SELECT ON app.orders TO billing`);
  // Verifiers travel: a look-alike's password must still not reach a role of prod's own.
  await p.sourceClient.query('SELECT permsync.enable_password_sync()');
  await p.sourceClient.query(`CREATE ROLE ${MALLORY} LOGIN CREATEROLE PASSWORD 'mallory-pw'`);
  daemon = await startDaemon();
  await settle();
});

afterAll(async () => {
  await daemon?.stop();
  await p?.close();
});

describe("a role of a target's own", () => {
  it('is never altered, granted, given a password or dropped through a look-alike created on the source', async () => {
    const before = await role(p.env('prod').client, 'prod_admin');
    const counted = await conflictCounts();
    await mallorysRoles('crew');
    await asMallory(`CREATE ROLE prod_admin LOGIN PASSWORD 'attacker-pw'; GRANT crew TO prod_admin`);
    await asMallory(`ALTER ROLE prod_admin CONNECTION LIMIT 1 VALID UNTIL '2000-01-01'`);
    await settle();
    expect(await role(p.env('prod').client, 'prod_admin')).toEqual(before);
    // dev has no role of that name: there it is the source's, created by permsync, its verifier included.
    const source = await role(p.sourceClient, 'prod_admin');
    expect(await role(p.env('dev').client, 'prod_admin')).toMatchObject({ login: true, members_of: ['crew'], password: source?.password });
    expect(source?.password).toMatch(/^SCRAM-SHA-256\$/);

    const { rows: conflicts } = await p.sourceClient.query(
      `SELECT environment_name, role_name, reason FROM permsync.v_role_conflicts WHERE role_name = 'prod_admin'`,
    );
    expect(conflicts).toEqual([
      {
        environment_name: 'prod',
        role_name: 'prod_admin',
        reason: 'the source created a role of this name, and this target already has one permsync did not create',
      },
    ]);
    const conflicting = { dev: counted.dev, prod: (counted.prod ?? 0) + 1 };
    expect(await conflictCounts()).toEqual(conflicting);
    const metrics = await (await fetch(`http://${daemon.http.host}:${daemon.http.port}/metrics`)).text();
    expect(metrics).toContain(`permsync_role_conflicts{environment="prod"} ${conflicting.prod}`);
    expect(await notes('prod', 'role "prod_admin" exists here and is not permsync\'s')).not.toEqual([]);

    await asMallory(`DROP ROLE prod_admin`);
    await settle();
    expect(await role(p.env('prod').client, 'prod_admin')).toEqual(before);
    expect(await role(p.env('dev').client, 'prod_admin')).toBeUndefined();
  });

  it("is shown by drift as what it is, a role of the target's own, with nothing planned for it", async () => {
    await p.env('prod').client.query(`CREATE ROLE night_dba SUPERUSER LOGIN`);
    await asMallory(`CREATE ROLE night_dba NOLOGIN`);
    await mallorysRoles('billing');
    await settle();
    const config = p.config();
    const [prod] = await checkEnvironments(config, p.sourceClient, config.environments.slice(1), { dropExtraRoles: false });
    if (!prod?.report) throw new Error(`prod could not be compared: ${prod?.error}`);
    for (const name of ['night_dba', 'billing']) {
      const items = describeReport(prod.report).filter((d) => d.subject === `role "${name}"`);
      expect(items).toEqual([expect.objectContaining({ category: 'role conflict', sql: [] })]);
      expect(prod.report.plan.map((s) => s.sql).filter((sql) => sql.includes(name))).toEqual([]);
    }
  });

  it("is never run as: the source's statements of a role of that name do not act as the target's", async () => {
    // The source's billing (created by mallory) is given the source's invoices by a DBA.
    await mallorysRoles('billing', 'crew');
    await settle();
    await p.dba(`ALTER TABLE app.invoices OWNER TO billing`);
    await p.dba(`SET ROLE billing; GRANT SELECT ON app.invoices TO crew; RESET ROLE`);
    await p.dba(`GRANT SELECT ON app.orders TO crew`); // a later change still reaches prod
    await settle();
    const { rows } = await p
      .env('prod')
      .client.query<{ acl: string }>(`SELECT relacl::text AS acl FROM pg_class WHERE oid = 'app.invoices'::regclass`);
    expect(rows[0]?.acl ?? '').not.toContain('crew');
    expect(await notes('prod', 'its author "billing" is a role of this target\'s own')).toHaveLength(1);
    const orders = await p.env('prod').client.query<{ ok: boolean }>(`SELECT has_table_privilege('crew', 'app.orders', 'SELECT') AS ok`);
    expect(orders.rows[0]?.ok).toBe(true);
  });

  it('is changed only once an operator hands it over', async () => {
    await p.env('prod').client.query(`CREATE ROLE auditor NOLOGIN`);
    await asMallory(`CREATE ROLE auditor LOGIN`);
    await settle();
    await asMallory(`ALTER ROLE auditor CONNECTION LIMIT 5`);
    await settle();
    expect((await p.env('prod').client.query(`SELECT rolconnlimit FROM pg_roles WHERE rolname = 'auditor'`)).rows).toEqual([{ rolconnlimit: -1 }]);
    const prodEnv = p.config().environments[1];
    if (!prodEnv) throw new Error('no prod');
    expect(await adoptRoles(p.config(), prodEnv, p.sourceClient, ['auditor'])).toEqual({ adopted: ['auditor'], already: [], heldBack: [] });
    await asMallory(`ALTER ROLE auditor CONNECTION LIMIT 6`);
    await settle();
    expect((await p.env('prod').client.query(`SELECT rolconnlimit FROM pg_roles WHERE rolname = 'auditor'`)).rows).toEqual([{ rolconnlimit: 6 }]);
    const { rows } = await p.sourceClient.query(
      `SELECT role_name FROM permsync.v_role_conflicts WHERE environment_name = 'prod' AND role_name = 'auditor'`,
    );
    expect(rows).toEqual([]);
  });
});

describe('the powers a superuser guards', () => {
  it('membership in a predefined role is not carried unless the configuration lists it', async () => {
    // On PostgreSQL 15 and earlier, a CREATEROLE user may grant itself these; here a superuser does it for the test.
    await p.dba(`GRANT pg_execute_server_program, pg_read_server_files TO ${MALLORY}`);
    await settle();
    for (const name of ['dev', 'prod']) expect((await memberOf(p.env(name).client, MALLORY)).filter((r) => r.startsWith('pg_'))).toEqual([]);
    expect(
      await notes('dev', 'membership in predefined role "pg_execute_server_program", which settings.carry_predefined_roles does not list'),
    ).not.toEqual([]);
    await p.dba(`REVOKE pg_execute_server_program, pg_read_server_files FROM ${MALLORY}`);
  });

  it('SUPERUSER, REPLICATION and BYPASSRLS are not given unless the configuration lists each', async () => {
    await p.dba(`CREATE ROLE strong SUPERUSER REPLICATION BYPASSRLS LOGIN`);
    await settle();
    for (const name of ['dev', 'prod']) {
      const { rows } = await p
        .env(name)
        .client.query(`SELECT rolsuper, rolreplication, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'strong'`);
      expect(rows).toEqual([{ rolsuper: false, rolreplication: false, rolbypassrls: false, rolcanlogin: true }]);
    }
    expect(await notes('dev', 'gives SUPERUSER, which settings.carry_role_attributes does not list')).not.toEqual([]);
  });

  it('a role in excluded_roles is never granted to anyone', async () => {
    await p.dba(`CREATE ROLE ops_root; CREATE ROLE ops_member`);
    await settle();
    await daemon.stop();
    daemon = await startDaemon({ excludedRoles: ['postgres', 'pg_*', 'ops_root'] });
    try {
      await p.dba(`GRANT ops_root TO ops_member`);
      await settle();
      for (const name of ['dev', 'prod']) expect(await memberOf(p.env(name).client, 'ops_member')).toEqual([]);
      expect(await notes('dev', 'grants excluded role "ops_root"')).not.toEqual([]);
    } finally {
      await daemon.stop();
      daemon = await startDaemon();
    }
  });
});

describe('what a CREATEROLE user stores on a role stays bounded', () => {
  it('a comment over 8 kB is not carried, and the rest of the role is', async () => {
    await asMallory(`CREATE ROLE chatty LOGIN CONNECTION LIMIT 4; COMMENT ON ROLE chatty IS '${'x'.repeat(9000)}'`);
    await settle();
    const { rows } = await p
      .env('dev')
      .client.query(`SELECT rolconnlimit, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = 'chatty'`);
    expect(rows).toEqual([{ rolconnlimit: 4, comment: null }]);
  });
});

describe('what a target cannot apply does not hold it', () => {
  it('a role setting for a database the target lacks, and a grant by a role a rule keeps off it', async () => {
    await p.sourceClient.query(`CREATE DATABASE source_only`);
    await asMallory(`CREATE ROLE dev_tool LOGIN; CREATE ROLE plain_login LOGIN PASSWORD 'plain-pw'`);
    await settle();
    // Any login may store settings for itself, for any database.
    const plain = new pg.Client(p.source.urlFor('postgres', 'plain_login', 'plain-pw'));
    await plain.connect();
    await plain.query(`ALTER ROLE plain_login IN DATABASE source_only SET work_mem = '8MB'`);
    await plain.end();
    await p.dba(`GRANT SELECT ON app.orders TO dev_tool WITH GRANT OPTION`);
    await p.dba(`SET ROLE dev_tool; GRANT SELECT ON app.orders TO plain_login; RESET ROLE`);
    await p.dba(`GRANT INSERT ON app.orders TO plain_login`);
    await settle();
    const { rows } = await p.sourceClient.query<{ environment: string; state: string }>(
      `SELECT environment, state FROM permsync.v_environment_status ORDER BY 1`,
    );
    expect(rows).toEqual([
      { environment: 'dev', state: 'ok' },
      { environment: 'prod', state: 'ok' },
    ]);
    const prod = await p.env('prod').client.query<{ insert: boolean }>(`SELECT has_table_privilege('plain_login', 'app.orders', 'INSERT') AS insert`);
    expect(prod.rows[0]?.insert).toBe(true);
    expect(await notes('prod', 'left as it is: database "source_only" does not exist (SQLSTATE 3D000)')).not.toEqual([]);
    expect(await notes('prod', 'its author "dev_tool" does not exist here')).not.toEqual([]);
  });
});
