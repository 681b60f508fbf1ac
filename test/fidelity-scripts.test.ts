import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERMSYNC_ROLES } from '../src/config/rules.js';
import type { Config } from '../src/config/schema.js';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { accountDifference, canDump, catalogAccount, dumpAccount, type AccountOptions } from './support/dump.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';
import { runCli, writeConfigFile } from './support/cli.js';

/**
 * Fidelity by pg_dump's account for the DBA scripts people copy: the examples of
 * PostgreSQL's own documentation, grant-option chains and CASCADE as its regression suite
 * exercises them, default privileges kept per schema owner, a role retired with REASSIGN
 * OWNED, DROP OWNED and DROP ROLE, and roles made between the grants of one string.
 * Schema runs on every server as migrations would, the permission statements on the
 * source only, as its bootstrap superuser while permsync connects as a superuser of its own. Then each target's roles and privileges by
 * pg_dumpall and pg_dump (memberships with their grantors) equal the source's, and
 * `permsync drift` exits 0; after a target is changed by hand, drift exits 1.
 */

const SYNC = { user: 'permsync_sync', password: 'sync-Pa55word' };

interface Script {
  name: string;
  /** Roles, on the source only: the role watcher carries them. */
  roles: string;
  /** Schema, on every server, as migrations would make it. */
  migration: string;
  /** Permission statements on the source, each sent as psql sends a line. */
  grants: string[];
  /** A later migration on every server, after the grants (default privileges at work). */
  later?: string;
}

/** The examples of the GRANT, REVOKE, ALTER DEFAULT PRIVILEGES, CREATE ROLE and ALTER ROLE pages and of "Privileges". */
function documentation(major: PostgresMajor): Script {
  return {
    name: 'documentation examples',
    roles: `
      CREATE ROLE jonathan LOGIN;
      CREATE USER davide WITH PASSWORD 'jw8s0F4';
      CREATE ROLE miriam WITH LOGIN PASSWORD 'jw8s0F4' VALID UNTIL '2005-01-01';
      CREATE ROLE admin WITH CREATEDB CREATEROLE;
      CREATE ROLE manuel; CREATE ROLE joe LOGIN; CREATE ROLE admins; CREATE ROLE webuser;
      CREATE ROLE miriam_rw; CREATE ROLE wheel; CREATE ROLE island; CREATE ROLE worker_bee;
      CREATE ROLE fred LOGIN; CREATE ROLE chris LOGIN`,
    migration: `
      CREATE TABLE films (code char(5) PRIMARY KEY, title varchar(40), kind varchar(10));
      CREATE TABLE kinds (id int PRIMARY KEY, name text);
      CREATE TABLE accounts (id int PRIMARY KEY, balance numeric);
      CREATE TABLE mytable (col1 int, col2 text);
      CREATE SCHEMA myschema`,
    grants: [
      'GRANT INSERT ON films TO PUBLIC',
      'GRANT ALL PRIVILEGES ON kinds TO manuel',
      'GRANT admins TO joe',
      'GRANT UPDATE ON accounts TO joe',
      'GRANT SELECT (col1), UPDATE (col1) ON mytable TO miriam_rw',
      'REVOKE CREATE ON SCHEMA public FROM PUBLIC',
      'ALTER DEFAULT PRIVILEGES IN SCHEMA myschema GRANT SELECT ON TABLES TO PUBLIC',
      'ALTER DEFAULT PRIVILEGES IN SCHEMA myschema GRANT INSERT ON TABLES TO webuser',
      'ALTER DEFAULT PRIVILEGES IN SCHEMA myschema REVOKE SELECT ON TABLES FROM PUBLIC',
      'ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC',
      'REVOKE INSERT ON films FROM PUBLIC',
      'REVOKE ALL PRIVILEGES ON kinds FROM manuel',
      'GRANT SELECT ON kinds TO manuel',
      'ALTER ROLE davide WITH PASSWORD NULL',
      "ALTER ROLE chris VALID UNTIL 'May 4 12:00:00 2015 +1'",
      "ALTER ROLE fred VALID UNTIL 'infinity'",
      'ALTER ROLE worker_bee SET maintenance_work_mem = 100000',
      'ALTER ROLE fred IN DATABASE postgres SET client_min_messages = DEBUG',
      ...(major >= 16
        ? ['GRANT admin TO joe WITH INHERIT TRUE', 'GRANT wheel TO admin WITH INHERIT FALSE', 'GRANT island TO joe WITH INHERIT TRUE, SET FALSE']
        : ['GRANT admin TO joe', 'GRANT wheel TO admin', 'GRANT island TO joe']),
      'REVOKE admins FROM joe',
      'ALTER ROLE manuel RENAME TO manuel_ro',
    ],
    later: 'CREATE TABLE myschema.reviews (id int PRIMARY KEY, body text)',
  };
}

/** Grant-option chains among non-superusers and CASCADE, in the spirit of the regression suite's privileges tests. */
const CHAINS: Script = {
  name: 'grant-option chains',
  roles: `
    CREATE ROLE regress_owner; CREATE ROLE regress_u1; CREATE ROLE regress_u2; CREATE ROLE regress_u3; CREATE ROLE regress_u4;
    CREATE ROLE regress_group; GRANT regress_group TO regress_u4`,
  migration: `
    CREATE SCHEMA regress AUTHORIZATION regress_owner;
    CREATE TABLE regress.atest1 (a int, b text);
    CREATE TABLE regress.atest2 (col1 varchar(10), col2 boolean);
    CREATE SEQUENCE regress.x_seq;
    CREATE FUNCTION regress.priv_testfunc(int) RETURNS int LANGUAGE sql AS 'SELECT 2 * $1';
    ALTER TABLE regress.atest1 OWNER TO regress_owner;
    ALTER TABLE regress.atest2 OWNER TO regress_owner;
    ALTER SEQUENCE regress.x_seq OWNER TO regress_owner;
    ALTER FUNCTION regress.priv_testfunc(int) OWNER TO regress_owner`,
  grants: [
    'SET ROLE regress_owner',
    'GRANT USAGE ON SCHEMA regress TO regress_u1, regress_u2, regress_u3',
    'GRANT SELECT, UPDATE ON regress.atest1 TO regress_u1 WITH GRANT OPTION',
    'GRANT INSERT (col1) ON regress.atest2 TO regress_u1 WITH GRANT OPTION',
    'GRANT USAGE ON SEQUENCE regress.x_seq TO regress_u1 WITH GRANT OPTION',
    'REVOKE ALL ON FUNCTION regress.priv_testfunc(int) FROM PUBLIC',
    'GRANT EXECUTE ON FUNCTION regress.priv_testfunc(int) TO regress_u1 WITH GRANT OPTION',
    'SET ROLE regress_u1',
    'GRANT SELECT ON regress.atest1 TO regress_u2 WITH GRANT OPTION',
    'GRANT UPDATE ON regress.atest1 TO regress_group',
    'GRANT INSERT (col1) ON regress.atest2 TO regress_u2',
    'GRANT USAGE ON SEQUENCE regress.x_seq TO regress_u2',
    'GRANT EXECUTE ON FUNCTION regress.priv_testfunc(int) TO regress_u3',
    // A grant-option holder granting in a DO block: not replayable, converged as its grantor.
    `DO $$ BEGIN
       EXECUTE format('GRANT INSERT (col1) ON regress.atest2 TO %I', 'regress_u4');
       GRANT EXECUTE ON FUNCTION regress.priv_testfunc(int) TO regress_u4;
     END $$`,
    'SET ROLE regress_u2',
    'GRANT SELECT ON regress.atest1 TO regress_u3',
    'SET ROLE regress_owner',
    'REVOKE GRANT OPTION FOR SELECT ON regress.atest1 FROM regress_u1 CASCADE',
    'REVOKE USAGE ON SEQUENCE regress.x_seq FROM regress_u1 CASCADE',
    'RESET ROLE',
  ],
};

/** Default privileges kept per schema owner, as teams give each service its schema. */
const DEFAULTS: Script = {
  name: 'default privileges per schema owner',
  roles: `
    CREATE ROLE orders_owner; CREATE ROLE billing_owner; CREATE ROLE readers; CREATE ROLE writers;
    CREATE ROLE orders_svc LOGIN IN ROLE writers; CREATE ROLE bi LOGIN IN ROLE readers`,
  migration: `
    CREATE SCHEMA orders AUTHORIZATION orders_owner;
    CREATE SCHEMA billing AUTHORIZATION billing_owner`,
  grants: [
    'GRANT USAGE ON SCHEMA orders, billing TO readers, writers',
    'ALTER DEFAULT PRIVILEGES FOR ROLE orders_owner IN SCHEMA orders GRANT SELECT ON TABLES TO readers',
    'ALTER DEFAULT PRIVILEGES FOR ROLE orders_owner IN SCHEMA orders GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO writers',
    'ALTER DEFAULT PRIVILEGES FOR ROLE orders_owner IN SCHEMA orders GRANT USAGE, SELECT ON SEQUENCES TO writers',
    'ALTER DEFAULT PRIVILEGES FOR ROLE billing_owner IN SCHEMA billing GRANT SELECT ON TABLES TO readers',
    'ALTER DEFAULT PRIVILEGES FOR ROLE billing_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC',
    'ALTER DEFAULT PRIVILEGES FOR ROLE billing_owner GRANT EXECUTE ON FUNCTIONS TO writers',
    'ALTER DEFAULT PRIVILEGES FOR ROLE orders_owner, billing_owner GRANT USAGE ON TYPES TO readers',
  ],
  later: `
    SET ROLE orders_owner; CREATE TABLE orders.orders (id bigserial PRIMARY KEY, total numeric); RESET ROLE;
    SET ROLE billing_owner; CREATE TABLE billing.invoices (id int PRIMARY KEY);
    CREATE FUNCTION billing.total(int) RETURNS numeric LANGUAGE sql AS 'SELECT 0::numeric'; RESET ROLE`,
};

/** A role retired as the documentation's "Dropping Roles" says: REASSIGN OWNED, DROP OWNED, DROP ROLE. */
const RETIREMENT: Script = {
  name: 'a role retired with its objects reassigned',
  roles: `
    CREATE ROLE doomed_role LOGIN; CREATE ROLE successor_role; CREATE ROLE viewer;
    GRANT viewer TO doomed_role`,
  migration: `
    CREATE SCHEMA legacy AUTHORIZATION doomed_role;
    CREATE TABLE legacy.items (id int PRIMARY KEY);
    CREATE TABLE public.notes (id int PRIMARY KEY);
    ALTER TABLE legacy.items OWNER TO doomed_role;
    ALTER TABLE public.notes OWNER TO doomed_role`,
  grants: [
    'GRANT USAGE ON SCHEMA legacy TO viewer',
    'GRANT SELECT ON legacy.items, public.notes TO viewer',
    'GRANT SELECT ON public.films TO doomed_role',
    'ALTER DEFAULT PRIVILEGES FOR ROLE doomed_role IN SCHEMA legacy GRANT SELECT ON TABLES TO viewer',
    'REASSIGN OWNED BY doomed_role TO successor_role',
    'DROP OWNED BY doomed_role',
    'DROP ROLE doomed_role',
  ],
};

/** A team lead with CREATEROLE working as itself: SET ROLE, CURRENT_USER, default privileges without FOR ROLE. */
const DELEGATED: Script = {
  name: 'a delegated team lead',
  roles: `
    CREATE ROLE team_lead CREATEROLE; CREATE ROLE team_member; CREATE ROLE team_app LOGIN;
    GRANT team_member TO team_lead WITH ADMIN OPTION`,
  migration: `
    CREATE SCHEMA team AUTHORIZATION team_lead;
    CREATE TABLE team.tasks (id int PRIMARY KEY, title text);
    ALTER TABLE team.tasks OWNER TO team_lead`,
  grants: [
    'SET ROLE team_lead',
    'ALTER DEFAULT PRIVILEGES IN SCHEMA team GRANT SELECT ON TABLES TO team_member',
    'ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO team_member',
    'GRANT SELECT, INSERT ON team.tasks TO team_member WITH GRANT OPTION',
    'GRANT team_member TO team_app',
    "ALTER ROLE CURRENT_USER SET work_mem = '16MB'",
    'REVOKE ALL ON SCHEMA team FROM PUBLIC',
    'GRANT USAGE ON SCHEMA team TO team_member',
    'SET ROLE team_member',
    'GRANT SELECT ON team.tasks TO team_app',
    'RESET ROLE',
  ],
  later: 'SET ROLE team_lead; CREATE TABLE team.notes (id serial PRIMARY KEY); RESET ROLE',
};

/**
 * A provisioning file sent as one string (psql -c, a migration tool): a role created and
 * made a member between its grants, and in another string a role renamed between them.
 */
const ONE_STRING: Script = {
  name: 'provisioning sent as one string',
  roles: 'CREATE ROLE reporting; CREATE ROLE legacy_etl LOGIN',
  migration: `
    CREATE SCHEMA reports;
    CREATE TABLE reports.daily (day date PRIMARY KEY, total numeric);
    CREATE TABLE reports.monthly (month date PRIMARY KEY)`,
  grants: [
    `GRANT USAGE ON SCHEMA reports TO reporting; GRANT SELECT ON reports.daily TO reporting;
     CREATE ROLE report_reader LOGIN; GRANT reporting TO report_reader;
     GRANT SELECT ON reports.monthly TO report_reader; GRANT USAGE ON SCHEMA reports TO report_reader`,
    'GRANT SELECT ON reports.monthly TO legacy_etl; ALTER ROLE legacy_etl RENAME TO etl; GRANT INSERT ON reports.daily TO etl',
  ],
};

/**
 * Foreign data kept to the roles that load it, and languages kept from PUBLIC, as a
 * hardening guide has it: privileges (with grant options, and one passed on through one)
 * and owners of foreign-data wrappers, foreign servers and languages, one grant made by a
 * DO block (converged, since no statement replay can carry it).
 */
const FOREIGN: Script = {
  name: 'foreign data and languages',
  roles: 'CREATE ROLE fdw_admin; CREATE ROLE fdw_loader LOGIN; CREATE ROLE report_writer; CREATE ROLE sql_author',
  migration: `
    CREATE FOREIGN DATA WRAPPER files_fdw;
    CREATE SERVER archive FOREIGN DATA WRAPPER files_fdw;
    CREATE SERVER warehouse FOREIGN DATA WRAPPER files_fdw`,
  grants: [
    'GRANT USAGE ON FOREIGN DATA WRAPPER files_fdw TO fdw_admin WITH GRANT OPTION',
    'ALTER SERVER warehouse OWNER TO fdw_admin',
    'GRANT USAGE ON FOREIGN SERVER archive TO fdw_admin WITH GRANT OPTION',
    'SET ROLE fdw_admin',
    'GRANT USAGE ON FOREIGN SERVER archive TO fdw_loader',
    'GRANT USAGE ON FOREIGN SERVER warehouse TO report_writer',
    'RESET ROLE',
    'REVOKE USAGE ON LANGUAGE sql FROM PUBLIC',
    'GRANT USAGE ON LANGUAGE sql TO sql_author',
    'GRANT USAGE ON LANGUAGE plpgsql TO report_writer WITH GRANT OPTION',
    `DO $$BEGIN EXECUTE 'GRANT USAGE ON FOREIGN DATA WRAPPER files_fdw TO report_writer'; END$$`,
  ],
};

/**
 * A search team's objects handed to the role that maintains them: the owners of objects
 * that hold no privileges (collations, conversions, operators, operator classes and
 * families, extended statistics, text search objects, publications, subscriptions), one
 * changed by a DO block (converged). Before 16 a subscription's owner must be a superuser.
 */
const owners = (major: PostgresMajor): Script => ({
  name: 'owners of objects without privileges',
  roles: 'CREATE ROLE search_owner; CREATE ROLE replication_owner',
  migration: `
    CREATE SCHEMA search;
    CREATE TABLE search.docs (id int PRIMARY KEY, body text, lang int);
    CREATE COLLATION search.c_sorted FROM "C";
    CREATE CONVERSION search.latin1_utf8 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;
    CREATE OPERATOR search.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq);
    CREATE OPERATOR search.!! (RIGHTARG = int, FUNCTION = int4abs);
    CREATE OPERATOR FAMILY search.int_family USING hash;
    CREATE OPERATOR CLASS search.int_ops FOR TYPE int USING btree AS
      OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 btint4cmp(int, int);
    CREATE STATISTICS search.docs_stats ON id, lang FROM search.docs;
    CREATE TEXT SEARCH CONFIGURATION search.docs_config (COPY = english);
    CREATE TEXT SEARCH DICTIONARY search.docs_dict (TEMPLATE = simple);
    CREATE PUBLICATION docs_feed FOR TABLE search.docs;
    CREATE SUBSCRIPTION docs_copy CONNECTION 'dbname=nowhere' PUBLICATION docs_feed WITH (connect = false);
    CREATE FUNCTION search.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$;
    CREATE EVENT TRIGGER note_ddl ON ddl_command_end EXECUTE FUNCTION search.note_ddl()`,
  grants: [
    'ALTER COLLATION search.c_sorted OWNER TO search_owner',
    'ALTER CONVERSION search.latin1_utf8 OWNER TO search_owner',
    'ALTER OPERATOR search.=== (int, int) OWNER TO search_owner',
    'ALTER OPERATOR search.!! (NONE, int) OWNER TO search_owner',
    'ALTER OPERATOR FAMILY search.int_family USING hash OWNER TO search_owner',
    'ALTER OPERATOR CLASS search.int_ops USING btree OWNER TO search_owner',
    'ALTER STATISTICS search.docs_stats OWNER TO search_owner',
    'ALTER TEXT SEARCH CONFIGURATION search.docs_config OWNER TO search_owner',
    'ALTER PUBLICATION docs_feed OWNER TO replication_owner',
    ...(major >= 16 ? ['ALTER SUBSCRIPTION docs_copy OWNER TO replication_owner'] : []),
    `DO $$BEGIN EXECUTE 'ALTER TEXT SEARCH DICTIONARY search.docs_dict OWNER TO search_owner'; END$$`,
  ],
});

/**
 * Logins renamed as deployments do: a blue-green switch that swaps two names through a
 * spare one, a name handed down a chain, a team admin renamed right after it granted a
 * membership; and memberships of NOINHERIT logins that inherit all the same (16+ says so
 * per membership; a plain GRANT there would take the login's NOINHERIT).
 */
const renames = (major: PostgresMajor): Script => ({
  name: 'logins renamed, swapped and made NOINHERIT',
  roles: `
    CREATE ROLE blue LOGIN CONNECTION LIMIT 1; CREATE ROLE green LOGIN CONNECTION LIMIT 2; CREATE ROLE deployers;
    GRANT deployers TO blue;
    CREATE ROLE release_1; CREATE ROLE release_2;
    CREATE ROLE ops_readers; CREATE ROLE ops_admin LOGIN; CREATE ROLE ops_member LOGIN;
    GRANT ops_readers TO ops_admin WITH ADMIN OPTION;
    CREATE ROLE inheriting_group; CREATE ROLE narrow_login LOGIN NOINHERIT; CREATE ROLE late_login LOGIN`,
  migration: 'CREATE SCHEMA deploy; CREATE TABLE deploy.slots (id int)',
  grants: [
    'GRANT SELECT ON deploy.slots TO blue',
    "ALTER ROLE blue SET application_name = 'blue'",
    'ALTER ROLE blue RENAME TO spare; ALTER ROLE green RENAME TO blue; ALTER ROLE spare RENAME TO green',
    'ALTER ROLE release_2 RENAME TO release_3; ALTER ROLE release_1 RENAME TO release_2',
    'SET ROLE ops_admin; GRANT ops_readers TO ops_member; RESET ROLE; ALTER ROLE ops_admin RENAME TO ops_lead',
    major >= 16 ? 'GRANT inheriting_group TO narrow_login WITH INHERIT TRUE' : 'GRANT inheriting_group TO narrow_login',
    'GRANT inheriting_group TO late_login; ALTER ROLE late_login NOINHERIT',
  ],
});

/**
 * A monitoring agent's setup as such tools document it: system functions and catalogs
 * granted to its login, one by a DO block (converged), and a size function kept from
 * PUBLIC. pg_dump prints the privileges of system objects that differ from initdb's.
 */
const MONITORING: Script = {
  name: 'a monitoring agent given system functions and catalogs',
  roles: 'CREATE ROLE monitor_agent LOGIN; CREATE ROLE monitor_admin',
  migration: 'CREATE SCHEMA monitoring',
  grants: [
    'GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO monitor_agent',
    'GRANT SELECT ON pg_catalog.pg_statistic TO monitor_agent',
    'GRANT SELECT ON pg_catalog.pg_authid TO monitor_admin WITH GRANT OPTION',
    `DO $$BEGIN EXECUTE 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_waldir() TO monitor_agent'; END$$`,
    'REVOKE EXECUTE ON FUNCTION pg_catalog.pg_tablespace_size(name) FROM PUBLIC',
  ],
};

const SCRIPTS = (major: PostgresMajor) => [
  documentation(major),
  CHAINS,
  DEFAULTS,
  RETIREMENT,
  DELEGATED,
  ONE_STRING,
  FOREIGN,
  owners(major),
  renames(major),
  MONITORING,
];

describe.each([14, 18] as PostgresMajor[])('PostgreSQL %i', (major) => {
  let p: Pipeline;
  let dir: string;

  function config(): Config {
    const base = p.config();
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

  const configFile = (): Promise<string> => writeConfigFile(dir, config());

  async function cli(...args: string[]): Promise<{ code: number; out: string }> {
    const { code, out } = await runCli(...args);
    return { code, out };
  }

  /** A server's account by pg_dump where an installed one reads this major, else by the catalog. */
  async function account(name: 'source' | 'dev' | 'prod'): Promise<string[]> {
    const options: AccountOptions = { ignoreRoles: [...PERMSYNC_ROLES, SYNC.user], database: 'postgres' };
    const server = name === 'source' ? p.source : p.env(name).server;
    const client = name === 'source' ? p.sourceClient : p.env(name).client;
    return canDump(major) ? dumpAccount(server.url, options) : catalogAccount(client, options);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'permsync-scripts-'));
    p = await startPipeline(['dev', 'prod'], { major });
    await p.everywhere(`CREATE ROLE ${SYNC.user} LOGIN SUPERUSER PASSWORD '${SYNC.password}'`);
  });

  afterAll(async () => {
    await p?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('each script leaves every target equal to the source by pg_dump, and drift exits 0', async () => {
    const daemon = await p.startDaemon(config());
    for (const script of SCRIPTS(major)) {
      await p.dba(script.roles);
      await p.settleRoles();
      await p.everywhere(script.migration);
      for (const statement of script.grants) await p.dba(statement);
      await p.settleRoles();
      if (script.later) await p.everywhere(script.later);
      const source = await account('source');
      for (const name of ['dev', 'prod'] as const) {
        expect({ script: script.name, name, ...accountDifference(source, await account(name)) }).toEqual({
          script: script.name,
          name,
          onlySource: [],
          onlyTarget: [],
        });
      }
    }
    await daemon.stop();
    const { rows } = await p.sourceClient.query(
      `SELECT environment_name, result_message FROM permsync.execution_log WHERE execution_status = 'failed'`,
    );
    expect(rows).toEqual([]);
    expect(await cli('drift', '--config', await configFile())).toEqual({ code: 0, out: 'dev: matches the source\nprod: matches the source\n' });
  });

  it('drift exits 1 once a target is changed by hand, naming the change, and reconcile makes it equal by pg_dump again', async () => {
    // A privilege added, and one granted by the owner where the source's came from a grant option.
    await p.env('prod').client.query(`
      GRANT DELETE ON regress.atest1 TO regress_u3;
      SET ROLE regress_u1; REVOKE UPDATE ON regress.atest1 FROM regress_group; RESET ROLE;
      GRANT UPDATE ON regress.atest1 TO regress_group`);
    expect(accountDifference(await account('source'), await account('prod')).onlySource).toEqual([
      expect.stringMatching(/regress\.atest1 .*regress_group.*regress_u1/),
    ]);
    const file = await configFile();
    const drift = await cli('drift', '--config', file);
    expect(drift.code).toBe(1);
    expect(drift.out).toMatch(/^dev: matches the source$/m);
    expect(drift.out).toMatch(/^ {2}table "regress"\."atest1", "regress_u3": DELETE not held on the source, held on prod$/m);
    expect(drift.out).toMatch(
      /^ {2}table "regress"\."atest1", "regress_group" granted by "regress_u1": UPDATE held on the source, not held on prod$/m,
    );
    expect(drift.out).toMatch(/^ {2}table "regress"\."atest1", "regress_group": UPDATE not held on the source, held on prod$/m);

    const reconciled = await cli('reconcile', '--env', 'prod', '--apply', '--config', file);
    expect(reconciled.out).toMatch(/^after reconcile: prod: matches the source$/m);
    expect(accountDifference(await account('source'), await account('prod'))).toEqual({ onlySource: [], onlyTarget: [] });
    expect((await cli('drift', '--config', file)).code).toBe(0);
  });

  it("drift sees a foreign server's, a foreign-data wrapper's, a language's and system objects' privileges and owners changed by hand, and reconcile brings them back", async () => {
    await p.env('dev').client.query(`
      GRANT USAGE ON FOREIGN SERVER warehouse TO sql_author;
      REVOKE USAGE ON LANGUAGE sql FROM sql_author;
      GRANT USAGE ON FOREIGN DATA WRAPPER files_fdw TO fdw_loader;
      ALTER SERVER archive OWNER TO report_writer;
      ALTER OPERATOR search.!! (NONE, int) OWNER TO replication_owner;
      ALTER OPERATOR CLASS search.int_ops USING btree OWNER TO replication_owner;
      ALTER PUBLICATION docs_feed OWNER TO search_owner;
      ALTER EVENT TRIGGER note_ddl OWNER TO ${SYNC.user};
      REVOKE EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() FROM monitor_agent;
      GRANT SELECT ON pg_catalog.pg_stat_activity TO monitor_admin`);
    expect(accountDifference(await account('source'), await account('dev')).onlySource.length).toBeGreaterThan(0);
    const file = await configFile();
    const drift = await cli('drift', '--config', file);
    expect(drift.code).toBe(1);
    expect(drift.out).toMatch(/^ {2}foreign server "warehouse", "sql_author": USAGE not held on the source, held on dev$/m);
    expect(drift.out).toMatch(/^ {2}language "sql", "sql_author": USAGE held on the source, not held on dev$/m);
    expect(drift.out).toMatch(/^ {2}foreign-data wrapper "files_fdw", "fdw_loader": USAGE not held on the source, held on dev$/m);
    expect(drift.out).toMatch(/^ {2}foreign server "archive": owned by "postgres" on the source, by "report_writer" on dev$/m);
    expect(drift.out).toMatch(/^ {2}operator "search"\.!! \(NONE, integer\): owned by "search_owner" on the source, by "replication_owner" on dev$/m);
    expect(drift.out).toMatch(
      /^ {2}operator class "search"\."int_ops" USING "btree": owned by "search_owner" on the source, by "replication_owner" on dev$/m,
    );
    expect(drift.out).toMatch(/^ {2}publication "docs_feed": owned by "replication_owner" on the source, by "search_owner" on dev$/m);
    expect(drift.out).toMatch(new RegExp(`^ {2}event trigger "note_ddl": owned by "postgres" on the source, by "${SYNC.user}" on dev$`, 'm'));
    expect(drift.out).toMatch(/^ {2}function "pg_catalog"\."pg_reload_conf"\(\), "monitor_agent": EXECUTE held on the source, not held on dev$/m);
    expect(drift.out).toMatch(/^ {2}view "pg_catalog"\."pg_stat_activity", "monitor_admin": SELECT not held on the source, held on dev$/m);

    const reconciled = await cli('reconcile', '--env', 'dev', '--apply', '--config', file);
    expect(reconciled.out).toMatch(/^after reconcile: dev: matches the source$/m);
    expect(accountDifference(await account('source'), await account('dev'))).toEqual({ onlySource: [], onlyTarget: [] });
    expect((await cli('drift', '--config', file)).code).toBe(0);
  });
});
