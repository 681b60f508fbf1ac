import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERMSYNC_ROLES } from '../src/config/rules.js';
import { Target } from '../src/target/target.js';
import { checkEnvironments } from '../src/drift/check.js';
import { reconcile } from '../src/drift/reconcile.js';
import { startLocalCluster, type LocalCluster, type PostgresMajor } from '../dev/embedded/cluster.js';
import { permissionSnapshot, relationPrivileges } from './support/catalog.js';
import { startPipeline, testSettings, type Pipeline } from './support/pipeline.js';
import { roleCatalog } from './support/roles.js';

/**
 * The core scenarios on every PostgreSQL major the README promises: each source with a
 * target of its own major, and a 14 source with an 18 target and the other way round
 * (an upgrade in either direction). Five pipelines, twelve servers, started once each.
 */
const PAIRS: { source: PostgresMajor; targets: PostgresMajor[] }[] = [
  { source: 14, targets: [14, 18] },
  { source: 15, targets: [15] },
  { source: 16, targets: [16] },
  { source: 17, targets: [17] },
  { source: 18, targets: [18, 14] },
];

const OUT_OF_SCOPE = ['postgres', ...PERMSYNC_ROLES];

const OBJECTS = `
  CREATE SCHEMA app;
  CREATE TABLE app.orders (id int, note text);
  CREATE TABLE app.items (id int);
  CREATE FUNCTION app.f(n int) RETURNS int LANGUAGE sql AS 'SELECT n';
  -- PostgreSQL 15 changed what initdb gives schema public (owned by pg_database_owner, no
  -- CREATE for PUBLIC): every server starts out as 15's, so that only permsync's work differs.
  ALTER SCHEMA public OWNER TO pg_database_owner;
  REVOKE CREATE ON SCHEMA public FROM PUBLIC`;

/** Memberships as they act: on PostgreSQL 14 and 15 every membership allows SET ROLE and is inherited when the member is INHERIT. */
const MEMBERSHIPS = `
  SELECT pg_get_userbyid(m.roleid) AS role, pg_get_userbyid(m.member) AS member, m.admin_option AS admin,
         coalesce((to_jsonb(m) ->> 'inherit_option')::boolean, r.rolinherit) AS inherit,
         coalesce((to_jsonb(m) ->> 'set_option')::boolean, true) AS set,
         r.rolinherit AS member_inherits
    FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
   WHERE m.member >= 16384 AND NOT r.rolname = ANY ($1)`;

interface MembershipRow {
  role: string;
  member: string;
  admin: boolean;
  inherit: boolean;
  set: boolean;
  member_inherits: boolean;
}

const line = (m: MembershipRow) => `${m.member} in ${m.role} admin=${m.admin} inherit=${m.inherit} set=${m.set}`;

async function memberships(client: pg.ClientBase): Promise<MembershipRow[]> {
  return (await client.query<MembershipRow>(MEMBERSHIPS, [OUT_OF_SCOPE])).rows;
}

/**
 * What a target of `major` holds of the source's memberships: before 16 a membership
 * without SET is not granted (it would let the member SET ROLE), and whether one is
 * inherited is the member's INHERIT attribute there; before 17 there is no pg_maintain.
 */
function membershipsOn(major: PostgresMajor, source: MembershipRow[]): string[] {
  const held = source.filter((m) => m.role !== 'pg_maintain' || major >= 17);
  if (major >= 16) return held.map(line).sort();
  return held
    .filter((m) => m.set)
    .map((m) => line({ ...m, inherit: m.member_inherits }))
    .sort();
}

/**
 * A permission snapshot as far as a server of `major` can hold it: MAINTAIN is
 * PostgreSQL 17's (an owner holds it there without a grant), default privileges on
 * large objects are 18's, pg_ls_logicalsnapdir() is 15's.
 */
function within(major: PostgresMajor, snapshot: string[]): string[] {
  return snapshot
    .filter(
      (l) =>
        (major >= 17 || !/ MAINTAIN( |$)/.test(l)) &&
        (major >= 18 || !/^default \S+ in \S+ on L /.test(l)) &&
        (major >= 15 || !/pg_ls_logicalsnapdir/.test(l)),
    )
    .sort();
}

/** The role facts other than memberships (compared by membershipsOn). */
async function roleFacts(client: pg.ClientBase): Promise<string[]> {
  return (await roleCatalog(client, OUT_OF_SCOPE)).filter((l) => !l.startsWith('member '));
}

describe.each(PAIRS)('PostgreSQL $source source, targets $targets', ({ source, targets }) => {
  let p: Pipeline;
  const names = targets.map((major, i) => `pg${major}${i === 0 ? '' : '-other'}`);
  /** The daemon's and drift's: memberships in these predefined roles are carried too. */
  const config = () => p.config({ settings: { carryPredefinedRoles: ['pg_read_all_data', 'pg_maintain'] } });

  /** Waits for the role watcher to see the source's roles, and every target to carry every batch. */
  const settle = () => p.settleRoles();

  /** Every batch carried successfully everywhere (a failure would hold the environment). */
  async function expectNoFailure(): Promise<void> {
    const { rows } = await p.sourceClient.query<{ environment_name: string; execution_status: string; result_message: string }>(
      `SELECT environment_name, execution_status, result_message FROM permsync.execution_log WHERE execution_status = 'failed'`,
    );
    expect(rows).toEqual([]);
  }

  /** What the execution log says of the batches carried to one environment, joined. */
  async function notes(environment: string): Promise<string> {
    const { rows } = await p.sourceClient.query<{ message: string }>(
      `SELECT string_agg(result_message, ' | ' ORDER BY batch_id) AS message FROM permsync.execution_log WHERE environment_name = $1`,
      [environment],
    );
    return rows[0]?.message ?? '';
  }

  beforeAll(async () => {
    p = await startPipeline(names, { major: source, targetMajors: targets });
    await p.everywhere(OBJECTS);
    await p.startDaemon(config());
  });

  afterAll(async () => {
    await p?.close();
  });

  it('GRANT, REVOKE, default privileges and owner changes reach every target as its version can hold them', async () => {
    await p.dba(`CREATE ROLE app_owner; CREATE ROLE reader; CREATE ROLE writer`);
    await p.dba(`GRANT USAGE ON SCHEMA app TO reader, writer`);
    await p.dba(`GRANT SELECT ON app.orders TO reader; GRANT UPDATE (note) ON app.orders TO reader`);
    await p.dba(`GRANT INSERT, UPDATE, DELETE ON app.orders TO writer WITH GRANT OPTION`);
    await p.dba(`REVOKE DELETE ON app.orders FROM writer`);
    await p.dba(`ALTER TABLE app.items OWNER TO app_owner`);
    await p.dba(`ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app GRANT SELECT ON TABLES TO reader`);
    await p.dba(`ALTER DEFAULT PRIVILEGES FOR ROLE app_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`);
    await p.dba(`REVOKE EXECUTE ON FUNCTION app.f(int) FROM PUBLIC; GRANT EXECUTE ON FUNCTION app.f(int) TO reader`);
    if (source >= 17) {
      await p.dba(`GRANT MAINTAIN ON app.orders TO writer`);
      await p.dba(`GRANT SELECT, MAINTAIN ON app.items TO writer`);
      await p.dba(`ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app GRANT MAINTAIN, INSERT ON TABLES TO writer`);
    }
    if (source >= 18) {
      await p.dba(`ALTER DEFAULT PRIVILEGES FOR ROLE app_owner GRANT SELECT ON LARGE OBJECTS TO reader`);
    }
    if (source >= 15) {
      // A system function PostgreSQL 14 lacks, granted by a DO block (converged): nothing to do there, and nothing held.
      await p.dba(`DO $$BEGIN EXECUTE 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_logicalsnapdir() TO reader'; END$$`);
    }
    await settle();
    await expectNoFailure();
    const expected = await permissionSnapshot(p.sourceClient);
    for (const [i, major] of targets.entries()) {
      const environment = p.env(names[i] as string);
      const both = Math.min(source, major) as PostgresMajor;
      expect({ environment: environment.name, snapshot: within(both, await permissionSnapshot(environment.client)) }).toEqual({
        environment: environment.name,
        snapshot: within(both, expected),
      });
      if (source >= 17 && major < 17) {
        const said = await notes(environment.name);
        expect(said).toMatch(/skipped "GRANT MAINTAIN ON app\.orders TO writer": .*PostgreSQL 1[456]/);
        expect(said).toMatch(/MAINTAIN is left out of "GRANT SELECT, MAINTAIN ON app\.items TO writer"/);
      }
      if (source >= 18 && major < 18) {
        expect(await notes(environment.name)).toMatch(
          /skipped "ALTER DEFAULT PRIVILEGES FOR ROLE app_owner GRANT SELECT ON LARGE OBJECTS TO reader"/,
        );
      }
    }
  });

  it('roles, memberships with the options the source has, and role settings reach every target', async () => {
    await p.dba(`CREATE ROLE app_login LOGIN NOINHERIT CONNECTION LIMIT 3 VALID UNTIL '2031-01-01 00:00:00+00'`);
    await p.dba(`COMMENT ON ROLE app_login IS 'the application'`);
    await p.dba(`CREATE ROLE team`);
    await p.dba(`GRANT team TO app_login WITH ADMIN OPTION`);
    await p.dba(`GRANT reader TO team`);
    await p.dba(`GRANT pg_read_all_data TO reader`);
    if (source >= 17) await p.dba(`GRANT pg_maintain TO writer`);
    if (source >= 16) {
      await p.dba(`GRANT writer TO team WITH INHERIT FALSE`);
      await p.dba(`GRANT app_owner TO reader WITH SET FALSE`);
      await p.dba(`GRANT app_owner TO writer WITH ADMIN OPTION, INHERIT FALSE, SET FALSE`);
    } else {
      await p.dba(`GRANT writer TO team`);
    }
    await p.dba(`ALTER ROLE app_login SET statement_timeout = '5s'`);
    await p.dba(`ALTER ROLE team IN DATABASE postgres SET work_mem = '8MB'`);
    await settle();
    await p.dba(`REVOKE ADMIN OPTION FOR team FROM app_login`);
    if (source >= 16) {
      // Options change back and forth: a target before 16 loses and regains the membership.
      await p.dba(`GRANT app_owner TO reader WITH SET TRUE`);
      await p.dba(`GRANT writer TO team WITH INHERIT TRUE`);
      await p.dba(`GRANT reader TO team WITH SET FALSE`);
    }
    // Before 16 this decides whether every membership of team is inherited; from 16 on, only new ones'.
    await p.dba(`ALTER ROLE team NOINHERIT`);
    await p.dba(`ALTER ROLE app_login RESET statement_timeout; ALTER ROLE app_login SET lock_timeout = '2s'`);
    await settle();
    await expectNoFailure();
    const facts = await roleFacts(p.sourceClient);
    const members = await memberships(p.sourceClient);
    for (const [i, major] of targets.entries()) {
      const environment = p.env(names[i] as string);
      expect({ environment: environment.name, facts: await roleFacts(environment.client) }).toEqual({ environment: environment.name, facts });
      expect({ environment: environment.name, members: (await memberships(environment.client)).map(line).sort() }).toEqual({
        environment: environment.name,
        members: membershipsOn(major, members),
      });
      if (source >= 16 && major < 16) {
        const said = await notes(environment.name);
        expect(said).toContain(
          '"GRANT app_owner TO writer WITH ADMIN TRUE, INHERIT FALSE, SET FALSE": PostgreSQL 14 has no SET option for a membership',
        );
        expect(said).toContain('"GRANT writer TO team WITH ADMIN FALSE, INHERIT FALSE, SET TRUE": INHERIT FALSE is left out');
      }
      if (source >= 17 && major < 17) {
        expect(await notes(environment.name)).toContain(
          'skipped "GRANT pg_maintain TO writer": pg_maintain is PostgreSQL 17\'s, and this server runs PostgreSQL 14',
        );
      }
    }
  });

  it('drift finds every target matching once the daemon carried everything, then finds and converges a planted difference', async () => {
    const results = () => checkEnvironments(config(), p.sourceClient, config().environments, { dropExtraRoles: false });
    const check = async () =>
      (await results()).map((r) => ({ environment: r.environment, error: r.error, differences: r.report?.differences.map((d) => d.change) }));
    expect(await check()).toEqual(names.map((environment) => ({ environment, error: undefined, differences: [] })));
    // What a target's version cannot hold is not a difference, and the report says so.
    for (const [i, result] of (await results()).entries()) {
      const major = targets[i] as PostgresMajor;
      const said = result.report?.notes.join('\n') ?? '';
      if (source >= 16 && major < 16) expect(said).toContain('2 membership(s) without SET on the source are not expected on pg14-other');
      if (source >= 17 && major < 17) expect(said).toMatch(/grant\(s\) of MAINTAIN on the source are not compared: pg14-other runs PostgreSQL 14/);
      if (source >= 18 && major < 18) expect(said).toContain('1 default privilege(s) on large objects on the source are not compared');
      if (source >= 17 && major < 17) expect(said).toContain('1 membership(s) in pg_maintain on the source are not compared');
    }

    // On 16 and later a membership's INHERIT is its own: one that acts otherwise than on the source.
    const inherits = (await memberships(p.sourceClient)).find((m) => m.role === 'writer' && m.member === 'team')?.inherit;
    const withOptions = (major: PostgresMajor) => major >= 16;
    for (const [i, environment] of p.environments.entries()) {
      // A system function every major has, granted on the target alone: compared across majors too.
      await environment.client.query(
        `GRANT SELECT ON app.items TO team; REVOKE team FROM app_login; GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO team`,
      );
      if (withOptions(targets[i] as PostgresMajor)) await environment.client.query(`GRANT writer TO team WITH INHERIT ${!inherits}`);
    }
    for (const [i, result] of (await check()).entries()) {
      const planted = [
        expect.objectContaining({
          type: 'privileges',
          grantee: 'team',
          target: expect.objectContaining({ object: expect.objectContaining({ name: 'items' }) }),
        }),
        expect.objectContaining({
          type: 'privileges',
          grantee: 'team',
          target: expect.objectContaining({ object: expect.objectContaining({ name: 'pg_reload_conf' }) }),
        }),
        expect.objectContaining({ type: 'membership', role: 'team', member: 'app_login' }),
        ...(withOptions(targets[i] as PostgresMajor) ? [expect.objectContaining({ type: 'membership', role: 'writer', member: 'team' })] : []),
      ];
      expect({ environment: result.environment, differences: result.differences }).toEqual({
        environment: result.environment,
        differences: expect.arrayContaining(planted),
      });
      expect(result.differences).toHaveLength(planted.length);
    }
    for (const environment of config().environments) {
      const result = await reconcile(config(), environment, p.sourceClient, { apply: true, dropExtraRoles: false });
      expect({ environment: environment.name, failure: result.failure }).toEqual({ environment: environment.name, failure: undefined });
    }
    expect(await check()).toEqual(names.map((environment) => ({ environment, error: undefined, differences: [] })));
  });
});

describe('a target upgraded in place', () => {
  const clusters: LocalCluster[] = [];

  afterAll(async () => {
    await Promise.all(clusters.map((c) => c.destroy()));
  });

  /** A server of `major` with the objects the grant names, on `port` when given. */
  async function server(major: PostgresMajor, port?: number): Promise<LocalCluster> {
    const cluster = await startLocalCluster({ name: `upgraded-${major}`, major, ...(port !== undefined && { port }) });
    clusters.push(cluster);
    const client = new pg.Client(cluster.url);
    await client.connect();
    await client.query('CREATE TABLE orders (id int); CREATE ROLE writer');
    await client.end();
    return cluster;
  }

  it('is taken for the version it runs now: what the old one could not hold is carried', async () => {
    const old = await server(16);
    const target = new Target(
      { name: 'upgraded', url: old.url, priority: 10, enabled: true, rules: [], onPermanentFailure: 'hold' },
      testSettings,
      () => {},
    );
    try {
      const statements = [{ kind: 'GRANT' as const, sql: 'GRANT SELECT, MAINTAIN ON orders TO writer', roles: [], grantees: [], schemas: [] }];
      const before = await target.execute({ searchPath: 'public' }, statements);
      expect(before.notes).toEqual([expect.stringMatching(/^MAINTAIN is left out of .*PostgreSQL 16$/)]);
      // pg_upgrade in place: the same address, now PostgreSQL 17.
      await old.stop();
      const upgraded = await server(17, old.port);
      const after = await target.execute({ searchPath: 'public' }, statements);
      expect(after).toMatchObject({ notes: [], serverVersion: expect.stringMatching(/^17\./) });
      const client = new pg.Client(upgraded.url);
      await client.connect();
      expect(await relationPrivileges(client, 'orders')).toEqual(
        expect.arrayContaining(['writer MAINTAIN by postgres', 'writer SELECT by postgres']),
      );
      await client.end();
    } finally {
      await target.close();
    }
  });
});
