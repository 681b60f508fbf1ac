import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERMSYNC_ROLES } from '../src/config/rules.js';
import type { Config, Settings } from '../src/config/schema.js';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { accountDifference, canDump, catalogAccount, dumpAccount, type AccountOptions } from './support/dump.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';
import { runCli } from './support/cli.js';

/**
 * What permsync leaves out, judged as a DBA would: real-world role and grant scripts run
 * (roles and permission statements on the source, schema as migrations on every server),
 * then each target's roles and privileges by pg_dumpall and pg_dump against the source's.
 * With the default configuration a target differs from the source in exactly what the
 * configuration excludes (grants to postgres, a membership in a predefined role, BYPASSRLS),
 * and `permsync drift` exits 1, marking every difference so; once the configuration carries
 * those too, reconcile brings the target level and drift exits 0.
 */

/** The login permsync connects as everywhere: a superuser of its own, so that postgres is the DBAs'. */
const SYNC = { user: 'permsync_sync', password: 'sync-Pa55word' };

/** An API platform's roles and grants, in the spirit of what such platforms' init scripts ship. */
const PLATFORM = {
  roles: `
    CREATE ROLE platform_admin NOLOGIN;
    CREATE ROLE anon NOLOGIN NOINHERIT;
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    CREATE ROLE authenticator LOGIN NOINHERIT;
    GRANT anon, authenticated, service_role TO authenticator;
    GRANT anon, authenticated, service_role TO postgres`,
  migration: `
    CREATE SCHEMA api AUTHORIZATION platform_admin;
    SET ROLE platform_admin;
    CREATE TABLE api.todos (id serial PRIMARY KEY, task text, done boolean);
    CREATE FUNCTION api.search(q text) RETURNS SETOF api.todos LANGUAGE sql STABLE AS 'SELECT * FROM api.todos WHERE task LIKE q';
    RESET ROLE`,
  grants: `
    GRANT USAGE ON SCHEMA api TO postgres, anon, authenticated, service_role;
    GRANT ALL ON ALL TABLES IN SCHEMA api TO postgres, anon, authenticated, service_role;
    GRANT ALL ON ALL SEQUENCES IN SCHEMA api TO postgres, anon, authenticated, service_role;
    GRANT ALL ON ALL FUNCTIONS IN SCHEMA api TO postgres, anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES FOR ROLE platform_admin IN SCHEMA api GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES FOR ROLE platform_admin IN SCHEMA api GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES FOR ROLE platform_admin IN SCHEMA api GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;
    REVOKE EXECUTE ON FUNCTION api.search(text) FROM PUBLIC, anon`,
  // A later migration: the default privileges above give its table its grants on each server.
  later: `SET ROLE platform_admin; CREATE TABLE api.profiles (id int PRIMARY KEY, name text); RESET ROLE`,
};

/** A monitoring tool's setup: a login in pg_monitor, and its functions and views granted to predefined roles. */
const MONITORING = {
  roles: `
    CREATE ROLE metrics LOGIN CONNECTION LIMIT 3;
    GRANT pg_monitor TO metrics`,
  migration: `
    CREATE SCHEMA monitor;
    CREATE FUNCTION monitor.backends() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
      AS 'SELECT count(*) FROM pg_stat_activity';
    CREATE VIEW monitor.activity AS SELECT pid, state FROM pg_catalog.pg_stat_activity`,
  grants: `
    REVOKE ALL ON FUNCTION monitor.backends() FROM PUBLIC;
    GRANT USAGE ON SCHEMA monitor TO pg_monitor, metrics;
    GRANT EXECUTE ON FUNCTION monitor.backends() TO pg_monitor;
    GRANT SELECT ON monitor.activity TO pg_read_all_stats, metrics, postgres`,
};

/** The default configuration's exclusions, as the lines of an account that show them (pg_dump's, or the catalog's). */
function excludedByDefault(line: string): boolean {
  return (
    /\b(TO|FROM) postgres\b| postgres [A-Z ]+ by /.test(line) || // grants to postgres, and memberships of it
    /^GRANT "?pg_monitor"? TO "?metrics"?\b/.test(line) || // a membership in a predefined role
    /\bservice_role\b.*\b(BYPASSRLS|NOBYPASSRLS|bypassrls=)/.test(line)
  ); // an attribute only a superuser gives
}

/** What carries all of it: excluded_roles, carry_predefined_roles and carry_role_attributes opened up. */
const CARRY_ALL: Partial<Settings> = { excludedRoles: [], carryPredefinedRoles: ['pg_monitor'], carryRoleAttributes: ['BYPASSRLS'] };

describe.each([14, 18] as PostgresMajor[])('PostgreSQL %i', (major) => {
  let p: Pipeline;
  let dir: string;

  /** The pipeline's configuration with permsync connecting as SYNC everywhere. */
  function config(settings: Partial<Settings> = {}): Config {
    const base = p.config({ settings });
    const asSync = (url: string) => {
      const u = new URL(url);
      u.username = SYNC.user;
      u.password = SYNC.password;
      return u.toString();
    };
    return {
      ...base,
      source: { ...base.source, url: asSync(base.source.url) },
      environments: base.environments.map((e) => ({ ...e, url: asSync(e.url) })),
    };
  }

  async function configFile(name: string, settings: Partial<Settings> = {}): Promise<string> {
    const c = config(settings);
    const file = join(dir, `${name}.yaml`);
    await writeFile(
      file,
      [
        'source:',
        `  url: "${c.source.url}"`,
        'environments:',
        ...c.environments.flatMap((e) => [`  - name: ${e.name}`, `    url: "${e.url}"`]),
        'settings:',
        '  drift_check_cron: null',
        `  excluded_roles: ${JSON.stringify(c.settings.excludedRoles)}`,
        `  carry_predefined_roles: ${JSON.stringify(c.settings.carryPredefinedRoles)}`,
        `  carry_role_attributes: ${JSON.stringify(c.settings.carryRoleAttributes)}`,
      ].join('\n'),
    );
    return file;
  }

  /** Runs the CLI in this process, as bin/permsync.js does, capturing what it prints. */
  async function cli(...args: string[]): Promise<{ code: number; out: string }> {
    const { code, out } = await runCli(...args);
    return { code, out };
  }

  /** Each server's account, by pg_dump where an installed one reads this major, else by the catalog. */
  async function accounts(): Promise<{ source: string[]; prod: string[] }> {
    const options: AccountOptions = {
      ignoreRoles: [...PERMSYNC_ROLES, SYNC.user],
      database: 'postgres',
      // Who granted a membership is issue 15's item 2, not this test's.
      withoutMembershipGrantors: true,
    };
    const prod = p.env('prod');
    if (canDump(major)) {
      return { source: await dumpAccount(p.source.url, options), prod: await dumpAccount(prod.server.url, options) };
    }
    return { source: await catalogAccount(p.sourceClient, options), prod: await catalogAccount(prod.client, options) };
  }

  /** Waits for the role watcher to see the source's roles, and the target to carry every batch. */
  const settle = () => p.settleRoles();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'permsync-fidelity-'));
    p = await startPipeline(['prod'], { major });
    await p.everywhere(`CREATE ROLE ${SYNC.user} LOGIN SUPERUSER PASSWORD '${SYNC.password}'`);
  });

  afterAll(async () => {
    await p?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('with the default configuration, the target differs from the source in what it excludes, and drift says so', async () => {
    const daemon = await p.startDaemon(config());
    for (const script of [PLATFORM, MONITORING]) {
      await p.dba(script.roles);
      await settle();
      await p.everywhere(script.migration);
      await p.dba(script.grants);
      await settle();
    }
    await p.everywhere(PLATFORM.later);
    await daemon.stop();

    const { source, prod } = await accounts();
    const { onlySource, onlyTarget } = accountDifference(source, prod);
    // anon, authenticated and service_role got every grant the statements naming postgres too gave them.
    expect(onlySource.length).toBeGreaterThan(0);
    expect({ onlySource: onlySource.filter((l) => !excludedByDefault(l)), onlyTarget: onlyTarget.filter((l) => !excludedByDefault(l)) }).toEqual({
      onlySource: [],
      onlyTarget: [],
    });
    expect(prod).toEqual(expect.arrayContaining([expect.stringMatching(/ON SCHEMA monitor TO pg_monitor| monitor pg_monitor USAGE /)]));

    const drift = await cli('drift', '--json', '--config', await configFile('default'));
    const [env] = (
      JSON.parse(drift.out) as {
        environments: { differences: number; excluded_by_configuration: number; items: { subject: string; excluded?: string }[] }[];
      }
    ).environments;
    expect(drift.code).toBe(1);
    expect(env?.differences).toBeGreaterThan(0);
    expect(env?.items.filter((i) => i.excluded === undefined)).toEqual([]);
    expect(env?.excluded_by_configuration).toBe(env?.differences);
    expect(new Set(env?.items.map((i) => i.excluded))).toEqual(
      new Set([
        'names excluded role "postgres"',
        'membership in predefined role "pg_monitor", which settings.carry_predefined_roles does not list',
        'gives BYPASSRLS, which settings.carry_role_attributes does not list',
      ]),
    );
  });

  it('once the configuration carries all of it, reconcile makes the target equal by pg_dump, and drift exits 0', async () => {
    const file = await configFile('carry-all', CARRY_ALL);
    const reconciled = await cli('reconcile', '--env', 'prod', '--apply', '--config', file);
    expect(reconciled.out).toMatch(/^after reconcile: prod: matches the source$/m);
    expect(reconciled.code).toBe(0);
    const { source, prod } = await accounts();
    expect(accountDifference(source, prod)).toEqual({ onlySource: [], onlyTarget: [] });
    expect((await cli('drift', '--config', file)).code).toBe(0);
    // The default configuration no longer finds anything either: the target holds what it would have excluded.
    expect(await cli('drift', '--config', await configFile('default-after'))).toMatchObject({ code: 0, out: 'prod: matches the source\n' });
  });

  it("with postgres left out of excluded_roles, the daemon carries the bootstrap superuser's memberships and settings", async () => {
    const daemon = await p.startDaemon(config(CARRY_ALL));
    await p.dba(`
      GRANT platform_admin TO postgres WITH ADMIN OPTION;
      REVOKE service_role FROM postgres;
      GRANT anon TO postgres WITH ADMIN OPTION;
      ALTER ROLE postgres SET work_mem = '8MB';
      ALTER ROLE postgres IN DATABASE postgres SET statement_timeout = '1min'`);
    await settle();
    await p.dba(`ALTER ROLE postgres RESET work_mem; ALTER ROLE postgres SET maintenance_work_mem = '96MB'; REVOKE authenticated FROM postgres`);
    await settle();
    await daemon.stop();

    const { source, prod } = await accounts();
    expect(source).toEqual(expect.arrayContaining([expect.stringMatching(/GRANT "?platform_admin"? TO "?postgres"?/)]));
    expect(accountDifference(source, prod)).toEqual({ onlySource: [], onlyTarget: [] });
    const [setting] = await p
      .env('prod')
      .client.query<{ setconfig: string[] }>(
        `SELECT setconfig FROM pg_db_role_setting WHERE setrole = 10 AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      )
      .then((r) => r.rows);
    expect(setting?.setconfig).toEqual(['statement_timeout=1min']);
    expect((await cli('drift', '--config', await configFile('carry-all-daemon', CARRY_ALL))).code).toBe(0);
  });
});
