import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { PERMSYNC_ROLES } from '../src/config/rules.js';
import { DriftCheckProcess } from '../src/drift/check-process.js';
import { permissionSnapshot } from './support/catalog.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';
import { startServer } from './support/servers.js';
import { roleCatalog } from './support/roles.js';
import { runCli } from './support/cli.js';

let p: Pipeline;
let dir: string;
let configFile: string;

const OUT_OF_SCOPE = ['postgres', ...PERMSYNC_ROLES];
const PASSWORD = 'Reporting-Pa55word';

/** Schema objects: the same everywhere (creating them is not permsync's job). */
const OBJECTS = `
  CREATE SCHEMA app;
  CREATE TABLE app.orders (id serial PRIMARY KEY, amount int, note text);
  CREATE VIEW app.v AS SELECT id FROM app.orders;
  CREATE MATERIALIZED VIEW app.mv AS SELECT id FROM app.orders;
  CREATE SEQUENCE app.seq;
  CREATE FOREIGN DATA WRAPPER dummy;
  CREATE SERVER nowhere FOREIGN DATA WRAPPER dummy;
  CREATE FOREIGN TABLE app.ft (id int) SERVER nowhere;
  CREATE FUNCTION app.f(n int) RETURNS int LANGUAGE sql AS 'SELECT n';
  CREATE PROCEDURE app.p() LANGUAGE sql AS 'SELECT 1';
  CREATE TYPE app.mood AS ENUM ('ok', 'not ok');
  CREATE DOMAIN app.posint AS int CHECK (VALUE > 0)`;

/** The declared permission state: the source's, and dev's too until a test makes dev differ. */
const DECLARED = `
  CREATE ROLE reporting LOGIN CONNECTION LIMIT 5 VALID UNTIL '2030-01-01 00:00:00+00';
  COMMENT ON ROLE reporting IS 'the reports';
  CREATE ROLE readers;
  CREATE ROLE writers;
  GRANT readers TO reporting WITH ADMIN OPTION;
  GRANT readers TO writers WITH INHERIT FALSE;
  ALTER ROLE reporting SET statement_timeout = '10s';
  ALTER ROLE reporting IN DATABASE postgres SET work_mem = '8MB';
  GRANT CONNECT, TEMPORARY ON DATABASE postgres TO readers;
  GRANT CREATE ON DATABASE postgres TO writers WITH GRANT OPTION;
  ALTER SCHEMA app OWNER TO writers;
  GRANT USAGE ON SCHEMA app TO readers;
  GRANT SELECT ON app.orders TO readers;
  GRANT SELECT, INSERT ON app.orders TO writers WITH GRANT OPTION;
  GRANT UPDATE (amount) ON app.orders TO reporting;
  GRANT SELECT ON app.v TO readers;
  ALTER MATERIALIZED VIEW app.mv OWNER TO writers;
  GRANT USAGE ON SEQUENCE app.seq TO writers;
  GRANT SELECT ON app.ft TO readers;
  REVOKE EXECUTE ON FUNCTION app.f(int) FROM PUBLIC;
  GRANT EXECUTE ON FUNCTION app.f(int) TO readers;
  GRANT EXECUTE ON PROCEDURE app.p() TO writers;
  REVOKE USAGE ON TYPE app.mood FROM PUBLIC;
  ALTER DOMAIN app.posint OWNER TO writers;
  ALTER DEFAULT PRIVILEGES FOR ROLE writers IN SCHEMA app GRANT SELECT ON TABLES TO readers;
  ALTER DEFAULT PRIVILEGES FOR ROLE writers REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`;

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs the CLI in this process, as bin/permsync.js does, capturing what it prints. */
function cli(...args: string[]): Promise<Run> {
  return runCli(...args, ...(args.includes('--config') ? [] : ['--config', configFile]));
}

async function json(...args: string[]) {
  const run = await cli(...args, '--json');
  return { code: run.code, body: JSON.parse(run.out) as Record<string, unknown>, err: run.err };
}

interface Item {
  category: string;
  subject: string;
  detail: string;
  sql: string[];
}

async function driftItems(env: string): Promise<Item[]> {
  const { body } = await json('drift', '--env', env);
  return (body.environments as { items?: Item[] }[])[0]?.items ?? [];
}

const dev = (sql: string) => p.env('dev').client.query(sql);

/** Every privilege, owner and role fact of the user objects; grantors aside (drift ignores them). */
async function state(client: pg.Client): Promise<string[]> {
  const lines = (await permissionSnapshot(client)).map((line) => line.replace(/ by \S+$/, ''));
  return [...new Set([...lines, ...(await roleCatalog(client, OUT_OF_SCOPE))])].sort();
}

async function writeConfig(name: string, environments: { name: string; url: string; rules?: string }[], sourceUrl = p.source.url): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    [
      'source:',
      `  url: "${sourceUrl}"`,
      'environments:',
      ...environments.flatMap((e) => [`  - name: ${e.name}`, `    url: "${e.url}"`, ...(e.rules ? [`    rules: ${e.rules}`] : [])]),
      'settings:',
      '  sync_passwords: true',
      '  drift_check_cron: null',
    ].join('\n'),
  );
  return file;
}

/** Brings an environment to the source's state, as an operator would. */
async function converge(env: string): Promise<void> {
  const run = await cli('reconcile', '--env', env, '--apply');
  if (run.code !== 0) throw new Error(`reconcile --env ${env} --apply exited ${run.code}: ${run.out}${run.err}`);
}

async function roleExists(client: pg.Client, name: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rows.length > 0;
}

/**
 * Makes dev differ from the source in every way drift names, 32 differences from where
 * dev matches it: the source declares more (a role, a grant, a grant a DO block ran), and
 * dev was changed by hand.
 */
async function makeDevDiffer(): Promise<void> {
  if (!(await roleExists(p.sourceClient, 'auditors'))) await p.dba('CREATE ROLE auditors');
  await p.dba('GRANT SELECT ON app.orders TO auditors');
  await p.dba(`DO $$ BEGIN EXECUTE 'GRANT SELECT ON app.v TO writers'; END $$`);
  // An earlier reconcile may have brought them to dev: what the source declares more is missing there.
  await dev(`REVOKE SELECT ON app.v FROM writers`);
  if (await roleExists(p.env('dev').client, 'auditors')) await dev('DROP OWNED BY auditors; DROP ROLE auditors');
  await dev(`
    ALTER ROLE reporting NOLOGIN CONNECTION LIMIT 1 PASSWORD 'changed-by-hand';
    COMMENT ON ROLE reporting IS 'changed';
    REVOKE readers FROM reporting;
    GRANT writers TO reporting;
    GRANT readers TO writers WITH INHERIT TRUE;
    ALTER ROLE reporting SET statement_timeout = '99s';
    ALTER ROLE reporting IN DATABASE postgres RESET work_mem;
    ALTER ROLE readers SET search_path = app, public;
    ALTER ROLE postgres SET work_mem = '3MB';
    REVOKE CONNECT ON DATABASE postgres FROM readers;
    GRANT CREATE ON DATABASE postgres TO reporting;
    REVOKE GRANT OPTION FOR CREATE ON DATABASE postgres FROM writers;
    REVOKE USAGE ON SCHEMA app FROM readers;
    ALTER SCHEMA app OWNER TO postgres;
    GRANT DELETE ON app.orders TO readers;
    REVOKE GRANT OPTION FOR INSERT ON app.orders FROM writers;
    REVOKE UPDATE (amount) ON app.orders FROM reporting;
    GRANT SELECT (note) ON app.orders TO reporting;
    REVOKE SELECT ON app.v FROM readers;
    ALTER MATERIALIZED VIEW app.mv OWNER TO postgres;
    REVOKE USAGE ON SEQUENCE app.seq FROM writers;
    GRANT INSERT ON app.ft TO readers;
    GRANT EXECUTE ON FUNCTION app.f(int) TO PUBLIC;
    ALTER FUNCTION app.f(int) OWNER TO readers;
    REVOKE EXECUTE ON PROCEDURE app.p() FROM writers;
    GRANT USAGE ON TYPE app.mood TO PUBLIC;
    ALTER DOMAIN app.posint OWNER TO postgres;
    ALTER DEFAULT PRIVILEGES FOR ROLE writers IN SCHEMA app REVOKE SELECT ON TABLES FROM readers;
    ALTER DEFAULT PRIVILEGES FOR ROLE writers GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
    ALTER DEFAULT PRIVILEGES FOR ROLE reporting GRANT USAGE ON SEQUENCES TO readers`);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'permsync-drift-'));
  p = await startPipeline(['dev', 'fresh']);
  // Verifiers are compared only where the source captures them, which an admin turns on.
  await p.sourceClient.query('SELECT permsync.enable_password_sync()');
  await p.everywhere(OBJECTS);
  // The declared state on the source and dev; fresh has the objects and no role at all.
  await p.sourceClient.query(`SET permsync.capture = 'off'; ${DECLARED}; ALTER ROLE reporting PASSWORD '${PASSWORD}'; RESET permsync.capture`);
  await dev(DECLARED);
  const { rows } = await p.sourceClient.query<{ v: string }>(`SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'reporting'`);
  // The same verifier (not just the same password: a new salt makes another one).
  await dev(`ALTER ROLE reporting PASSWORD '${rows[0]?.v}'`);
  // Roles created on dev by hand are dev's own until handed over (onboarding).
  await p.adopt();
  configFile = await writeConfig('permsync', [
    { name: 'dev', url: p.env('dev').server.url },
    { name: 'fresh', url: p.env('fresh').server.url },
  ]);
});

afterAll(async () => {
  await p?.close();
  await rm(dir, { recursive: true, force: true });
});

// Each test starts where dev holds what the source declares; what it changes, the next undoes.
beforeEach(() => converge('dev'));

describe('drift', () => {
  it('finds nothing where the environment holds what the source declares, and exits 0', async () => {
    const run = await cli('drift', '--env', 'dev');
    expect(run).toMatchObject({ code: 0, err: '' });
    expect(run.out).toMatch(/^dev: matches the source$/m);
  });

  it('reports every kind of difference by name, with the SQL that converges it, verifiers masked', async () => {
    await makeDevDiffer();
    const items = await driftItems('dev');
    const find = (subject: string) => items.find((i) => i.subject === subject);
    expect(find('role "auditors"')).toMatchObject({ detail: 'missing on dev', sql: ['CREATE ROLE "auditors";'] });
    expect(find('role "reporting"')?.detail).toBe(
      'login true on the source, false on dev; connlimit 5 on the source, 1 on dev; comment differs; password differs',
    );
    expect(find('role "reporting"')?.sql).toEqual([
      'ALTER ROLE "reporting" WITH LOGIN CONNECTION LIMIT 5;',
      `ALTER ROLE "reporting" WITH PASSWORD '********';`,
      `COMMENT ON ROLE "reporting" IS 'the reports';`,
    ]);
    expect(find('membership of "reporting" in "readers"')?.sql).toEqual(['GRANT "readers" TO "reporting" WITH ADMIN TRUE, INHERIT TRUE, SET TRUE;']);
    expect(find('membership of "reporting" in "writers"')?.sql).toEqual(['REVOKE "writers" FROM "reporting";']);
    expect(find('membership of "writers" in "readers"')).toMatchObject({
      detail: 'inherit option false on the source, true on dev',
      sql: ['GRANT "readers" TO "writers" WITH ADMIN FALSE, INHERIT FALSE, SET TRUE;'],
    });
    expect(find('setting statement_timeout of role "reporting"')?.sql).toEqual([`ALTER ROLE "reporting" SET "statement_timeout" TO '10s';`]);
    expect(find('setting work_mem of role "reporting" in this database')?.sql).toEqual([
      `ALTER ROLE "reporting" IN DATABASE {"database"} SET "work_mem" TO '8MB';`,
    ]);
    expect(find('setting search_path of role "readers"')?.sql).toEqual(['ALTER ROLE "readers" RESET "search_path";']);
    expect(find('database, "readers"')?.sql).toEqual(['GRANT CONNECT ON DATABASE {"database"} TO "readers";']);
    expect(find('database, "reporting"')?.sql).toEqual(['REVOKE CREATE ON DATABASE {"database"} FROM "reporting";']);
    expect(find('database, "writers"')?.sql).toEqual(['GRANT CREATE ON DATABASE {"database"} TO "writers" WITH GRANT OPTION;']);
    expect(find('schema "app"')?.sql).toEqual(['ALTER SCHEMA "app" OWNER TO "writers";']);
    expect(find('schema "app", "readers"')?.sql).toEqual(['GRANT USAGE ON SCHEMA "app" TO "readers";']);
    expect(find('table "app"."orders", "readers"')?.sql).toEqual(['REVOKE DELETE ON TABLE "app"."orders" FROM "readers";']);
    expect(find('table "app"."orders", "writers"')?.sql).toEqual(['GRANT INSERT ON TABLE "app"."orders" TO "writers" WITH GRANT OPTION;']);
    expect(find('table "app"."orders", "auditors"')?.sql).toEqual(['GRANT SELECT ON TABLE "app"."orders" TO "auditors";']);
    expect(find('column "amount" of "app"."orders", "reporting"')?.sql).toEqual(['GRANT UPDATE ("amount") ON TABLE "app"."orders" TO "reporting";']);
    expect(find('column "note" of "app"."orders", "reporting"')?.sql).toEqual(['REVOKE SELECT ("note") ON TABLE "app"."orders" FROM "reporting";']);
    expect(find('view "app"."v", "readers"')?.sql).toEqual(['GRANT SELECT ON TABLE "app"."v" TO "readers";']);
    expect(find('view "app"."v", "writers"')?.sql).toEqual(['GRANT SELECT ON TABLE "app"."v" TO "writers";']);
    expect(find('materialized view "app"."mv"')?.sql).toEqual(['ALTER MATERIALIZED VIEW "app"."mv" OWNER TO "writers";']);
    expect(find('sequence "app"."seq", "writers"')?.sql).toEqual(['GRANT USAGE ON SEQUENCE "app"."seq" TO "writers";']);
    expect(find('foreign table "app"."ft", "readers"')?.sql).toEqual(['REVOKE INSERT ON TABLE "app"."ft" FROM "readers";']);
    expect(find('function "app"."f"(integer)')?.sql).toEqual(['ALTER FUNCTION "app"."f"(integer) OWNER TO "postgres";']);
    expect(find('function "app"."f"(integer), PUBLIC')?.sql).toEqual(['REVOKE EXECUTE ON FUNCTION "app"."f"(integer) FROM PUBLIC;']);
    expect(find('procedure "app"."p"(), "writers"')?.sql).toEqual(['GRANT EXECUTE ON PROCEDURE "app"."p"() TO "writers";']);
    expect(find('type "app"."mood", PUBLIC')?.sql).toEqual(['REVOKE USAGE ON TYPE "app"."mood" FROM PUBLIC;']);
    expect(find('domain "app"."posint"')?.sql).toEqual(['ALTER DOMAIN "app"."posint" OWNER TO "writers";']);
    expect(find('default privileges of "writers" in schema "app" on tables, "readers"')?.sql).toEqual([
      'ALTER DEFAULT PRIVILEGES FOR ROLE "writers" IN SCHEMA "app" GRANT SELECT ON TABLES TO "readers";',
    ]);
    expect(find('default privileges of "writers" on functions, PUBLIC')?.sql).toEqual([
      'ALTER DEFAULT PRIVILEGES FOR ROLE "writers" REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;',
    ]);
    expect(find('default privileges of "reporting" on sequences, "readers"')?.sql).toEqual([
      'ALTER DEFAULT PRIVILEGES FOR ROLE "reporting" REVOKE USAGE ON SEQUENCES FROM "readers";',
    ]);
    // The new owner takes over the old one's privileges: one difference, not three.
    expect(items.filter((i) => i.subject.startsWith('schema "app"'))).toHaveLength(2);
    // Excluded roles (postgres) are never compared.
    expect(items.some((i) => i.subject.includes('"postgres"') && i.category !== 'owner')).toBe(false);
    expect(items).toHaveLength(32);
  });

  it('never prints a password verifier, and exits 1', async () => {
    await makeDevDiffer();
    const { rows } = await p.sourceClient.query<{ v: string }>(`SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'reporting'`);
    const run = await cli('drift');
    expect(run.code).toBe(1);
    expect(run.out).toMatch(/^dev: 32 difference\(s\) from the source$/m);
    expect(run.out).toContain(`ALTER ROLE "reporting" WITH PASSWORD '********';`);
    expect(run.out).not.toContain(rows[0]?.v.slice(0, 30));
    expect(run.out).not.toContain('SCRAM-SHA-256$');
  });

  it('points out batches that could not be replayed since the environment last matched', async () => {
    await makeDevDiffer();
    const { rows } = await p.sourceClient.query<{ id: string; seq: string }>(
      `SELECT id::text, commit_seq::text AS seq FROM permsync.batches WHERE query_text LIKE 'DO %' ORDER BY id DESC LIMIT 1`,
    );
    const batch = rows[0];
    // As the daemon records it (src/apply/applier.ts).
    await p.sourceClient.query(
      `INSERT INTO permsync.execution_log (batch_id, environment_name, commit_seq, execution_status, started_at, finished_at,
                                           duration_ms, result_message)
       VALUES ($1, 'dev', $2, 'skipped', now(), now(), 0, 'not replayable: the trigger saw [GRANT] but ...')`,
      [batch?.id, batch?.seq],
    );
    const run = await cli('drift', '--env', 'dev');
    expect(run.out).toMatch(
      new RegExp(`^  hint: 1 batch\\(es\\) for dev could not be replayed since it last matched the source \\(batch ${batch?.id}\\)`, 'm'),
    );
  });

  it("reports what the environment's rules do not carry there, marked as excluded by configuration, and plans none of it", async () => {
    await makeDevDiffer();
    const file = await writeConfig('rules', [
      { name: 'dev', url: p.env('dev').server.url, rules: '[{ action: exclude, role_pattern: "^auditors$" }]' },
    ]);
    const { code, body } = await json('drift', '--config', file);
    const [env] = body.environments as { differences: number; excluded_by_configuration: number; items: Item[]; plan: string[] }[];
    expect(code).toBe(1);
    expect(env?.differences).toBe(32);
    expect(env?.excluded_by_configuration).toBe(2);
    const rule = 'matches exclude rule (role_pattern ^auditors$)';
    expect(env?.items.filter((i) => i.subject.includes('auditors'))).toEqual([
      {
        category: 'role',
        subject: 'role "auditors"',
        sql: [],
        excluded: rule,
        detail: `missing on dev; excluded by configuration (permsync does not carry it there): ${rule}`,
      },
      {
        category: 'privileges',
        subject: 'table "app"."orders", "auditors"',
        sql: [],
        excluded: rule,
        detail: `SELECT held on the source, not held on dev; excluded by configuration (permsync does not carry it there): ${rule}`,
      },
    ]);
    expect(env?.plan.filter((s) => s.includes('auditors'))).toEqual([]);
    const text = await cli('drift', '--config', file);
    expect(text.out).toMatch(/^dev: 32 difference\(s\) from the source, 2 of them excluded by configuration$/m);
  });
});

describe('reconcile', () => {
  it('without --apply prints the plan and changes nothing', async () => {
    await makeDevDiffer();
    const before = await state(p.env('dev').client);
    const run = await cli('reconcile', '--env', 'dev');
    expect(run.code).toBe(1);
    expect(run.out).toContain('nothing applied: run again with --apply');
    // Roles come first, memberships after them, revokes before grants, default privileges last.
    const plan = run.out
      .split('\n')
      .filter((l) => /^ {2}[A-Z]/.test(l) && l.endsWith(';'))
      .map((l) => l.trim());
    const at = (prefix: string) => plan.findIndex((l) => l.startsWith(prefix));
    expect(at('CREATE ROLE "auditors"')).toBe(0);
    expect(at('GRANT "readers" TO "reporting"')).toBeGreaterThan(at('REVOKE "writers" FROM "reporting"'));
    expect(at('GRANT SELECT ON TABLE "app"."orders" TO "auditors"')).toBeGreaterThan(at('REVOKE DELETE ON TABLE "app"."orders"'));
    expect(at('ALTER DEFAULT PRIVILEGES')).toBeGreaterThan(at('GRANT SELECT ON TABLE "app"."orders" TO "auditors"'));
    expect(await state(p.env('dev').client)).toEqual(before);
  });

  it('--apply converges the environment in one transaction, recorded as a batch the logs show', async () => {
    await makeDevDiffer();
    const run = await cli('reconcile', '--env', 'dev', '--apply');
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/^applied \d+ statement\(s\) to dev in one transaction in \d+ ms; recorded as batch \d+$/m);
    expect(run.out).toMatch(/^after reconcile: dev: matches the source$/m);
    expect(await state(p.env('dev').client)).toEqual(await state(p.sourceClient));
    expect((await cli('drift', '--env', 'dev')).code).toBe(0);

    const { rows } = await p.sourceClient.query<{
      id: string;
      query_text: string;
      query_masked: boolean;
      statements: { kind: string; role: string; sql: string; display: string }[];
      execution_status: string;
      same_seq: boolean;
      finished: boolean;
    }>(
      `SELECT b.id::text, b.query_text, b.query_masked, b.statements, x.execution_status, x.commit_seq = b.commit_seq AS same_seq,
              o.finished
         FROM permsync.batches b
         JOIN permsync.execution_log x ON x.batch_id = b.id AND x.environment_name = 'dev'
         LEFT JOIN permsync.v_batch_outcomes o ON o.batch_id = b.id AND o.environment_name = 'dev'
        WHERE b.origin = 'reconcile' AND b.target_environment = 'dev'
        ORDER BY b.id DESC LIMIT 1`,
    );
    const batch = rows[0];
    expect(batch).toMatchObject({ execution_status: 'success', same_seq: true, query_masked: true });
    expect(run.out).toContain(`recorded as batch ${batch?.id}`);
    expect(batch?.query_text).toContain(`ALTER ROLE "reporting" WITH PASSWORD '********';`);
    expect(batch?.query_text).not.toContain('SCRAM-SHA-256$');
    // The role dev's stands for: the source's, by its oid there.
    const { rows: made } = await p.sourceClient.query<{ oid: number }>(`SELECT 'auditors'::regrole::oid::int8::float8 AS oid`);
    expect(batch?.statements[0]).toEqual({
      kind: 'CREATE ROLE',
      role: 'auditors',
      sql: 'CREATE ROLE "auditors"',
      display: 'CREATE ROLE "auditors"',
      ignore_codes: ['42710'],
      oids: { auditors: made[0]?.oid },
    });
    // The verifier travels in `sql` (as the role watcher's batches carry it), never in `display`.
    const password = batch?.statements.find((s) => s.display.includes('PASSWORD'));
    expect(password?.sql).toMatch(/^ALTER ROLE "reporting" WITH PASSWORD 'SCRAM-SHA-256\$/);
  });

  it('reports objects on one side only, and never creates them', async () => {
    await p.dba(`SET permsync.capture = 'off'; CREATE TABLE app.source_only (id int); GRANT SELECT ON app.source_only TO readers`);
    await dev(`CREATE TABLE app.dev_only (id int); GRANT SELECT ON app.dev_only TO readers`);
    const items = await driftItems('dev');
    expect(items).toEqual([
      { category: 'object', subject: 'table "app"."dev_only"', detail: 'exists only on dev', sql: [] },
      { category: 'object', subject: 'table "app"."source_only"', detail: 'missing on dev (permsync never creates objects)', sql: [] },
    ]);
    const run = await cli('reconcile', '--env', 'dev', '--apply');
    expect(run.code).toBe(1);
    expect(run.out).not.toContain('applied');
    const { rows } = await dev(`SELECT to_regclass('app.source_only') AS missing, has_table_privilege('readers', 'app.dev_only', 'SELECT') AS kept`);
    expect(rows[0]).toEqual({ missing: null, kept: true });
    await p.dba(`SET permsync.capture = 'off'; DROP TABLE app.source_only`);
    await dev(`DROP TABLE app.dev_only`);
  });

  it("drops only a role it created there, only with --drop-extra-roles; a role of the environment's own never", async () => {
    // reconcile creates retired on dev, so it is permsync's there; then the source drops it.
    await p.dba(`CREATE ROLE retired`);
    expect((await cli('reconcile', '--env', 'dev', '--apply')).code).toBe(0);
    await p.dba(`DROP ROLE retired`);
    await dev(`GRANT SELECT ON app.orders TO retired; GRANT readers TO retired;
               ALTER DEFAULT PRIVILEGES FOR ROLE retired GRANT SELECT ON TABLES TO readers;
               CREATE ROLE dev_only LOGIN; GRANT SELECT ON app.orders TO dev_only`);
    expect(await driftItems('dev')).toEqual([
      {
        category: 'role',
        subject: 'role "dev_only"',
        sql: [],
        detail: 'exists only on dev, a role of its own (permsync did not create it there); left alone: permsync never drops a role it did not create',
      },
      { category: 'role', subject: 'role "retired"', detail: 'exists only on dev; left alone: `reconcile --drop-extra-roles` drops it', sql: [] },
    ]);
    expect((await cli('reconcile', '--env', 'dev', '--apply')).code).toBe(1);
    const kept = await dev(`SELECT has_table_privilege('retired', 'app.orders', 'SELECT') AS kept`);
    expect(kept.rows[0]).toEqual({ kept: true });

    const run = await cli('reconcile', '--env', 'dev', '--apply', '--drop-extra-roles');
    expect(run.out).toMatch(/REVOKE SELECT ON TABLE "app"."orders" FROM "retired";\n(.*\n)*.*DROP ROLE "retired";/);
    expect(run.out).not.toMatch(/(REVOKE|DROP).*"dev_only"/);
    const { rows } = await dev(`SELECT rolname, has_table_privilege(rolname, 'app.orders', 'SELECT') AS reads
                                  FROM pg_roles WHERE rolname IN ('retired', 'dev_only')`);
    expect(rows).toEqual([{ rolname: 'dev_only', reads: true }]);
    await dev(`REVOKE SELECT ON app.orders FROM dev_only; DROP ROLE dev_only`);
  });

  it('a role that still owns objects is not dropped: the whole plan rolls back, nothing is reassigned', async () => {
    await p.dba(`CREATE ROLE owner_only`);
    expect((await cli('reconcile', '--env', 'dev', '--apply')).code).toBe(0);
    await p.dba(`DROP ROLE owner_only`);
    await p.dba(`SET permsync.capture = 'off'; GRANT UPDATE ON app.v TO reporting`);
    await dev(`CREATE TABLE app.owned (id int); ALTER TABLE app.owned OWNER TO owner_only`);
    const run = await cli('reconcile', '--env', 'dev', '--apply', '--drop-extra-roles');
    expect(run.code).toBe(1);
    expect(run.out).toMatch(
      /^reconcile failed on dev: role "owner_only" cannot be dropped because some objects depend on it \(SQLSTATE 2BP01\) at "DROP ROLE "owner_only"": owner of table app.owned/m,
    );
    expect(run.out).toContain('nothing was changed, nothing recorded');
    const { rows } = await dev(`SELECT has_table_privilege('reporting', 'app.v', 'UPDATE') AS granted,
                                       (SELECT relowner::regrole::text FROM pg_class WHERE oid = 'app.owned'::regclass) AS owner`);
    expect(rows[0]).toEqual({ granted: false, owner: 'owner_only' });
    expect((await cli('reconcile', '--env', 'dev', '--apply')).out).toMatch(/^after reconcile: dev: 2 difference/m);
    await dev(`DROP TABLE app.owned; DROP ROLE owner_only`);
    expect((await cli('drift', '--env', 'dev')).code).toBe(0);
  });

  it("brings a new, empty environment to the source's state in one run (bootstrap)", async () => {
    const server = await startServer('empty');
    try {
      const empty = new pg.Client(server.url);
      await empty.connect();
      try {
        await empty.query(OBJECTS);
        const config = await writeConfig('bootstrap', [{ name: 'empty', url: server.url }]);
        const before = await json('drift', '--config', config);
        const missing = ((before.body.environments as { items: Item[] }[])[0]?.items ?? [])
          .filter((i) => i.detail === 'missing on empty' && i.category === 'role')
          .map((i) => i.subject)
          .sort();
        const { rows } = await p.sourceClient.query<{ name: string }>(
          `SELECT rolname AS name FROM pg_roles WHERE rolname !~ '^pg_' AND NOT rolname = ANY ($1)`,
          [OUT_OF_SCOPE],
        );
        expect(missing).toEqual(rows.map((r) => `role "${r.name}"`).sort());
        expect(missing).toEqual(expect.arrayContaining(['role "readers"', 'role "reporting"', 'role "writers"']));
        const run = await cli('reconcile', '--env', 'empty', '--apply', '--config', config);
        expect(run.code).toBe(0);
        expect(await state(empty)).toEqual(await state(p.sourceClient));
      } finally {
        await empty.end();
      }
      // The password verifier came along: the same password logs in.
      const login = new pg.Client(server.urlFor('postgres', 'reporting', PASSWORD));
      await login.connect();
      await login.end();
    } finally {
      await server.destroy();
    }
  });
});

describe('errors', () => {
  it('exit 2, naming the cause, never a password', async () => {
    const broken = await writeConfig('broken', [
      { name: 'dev', url: p.env('dev').server.url },
      { name: 'gone', url: 'postgres://someone:secret-pw@127.0.0.1:1/app' },
    ]);
    const run = await cli('drift', '--config', broken);
    expect(run.code).toBe(2);
    expect(run.out).toMatch(/^gone: ERROR cannot connect to postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/app: .*ECONNREFUSED/m);
    expect(run.out).toMatch(/^dev: matches the source$/m);
    expect(run.out).not.toContain('secret-pw');

    const badSource = join(dir, 'bad-source.yaml');
    await writeFile(
      badSource,
      `source:\n  url: "postgres://me:secret-pw@127.0.0.1:1/src"\nenvironments:\n  - { name: dev, url: "${p.env('dev').server.url}" }\n`,
    );
    const source = await cli('drift', '--config', badSource);
    expect(source.code).toBe(2);
    expect(source.err).toMatch(/^permsync: source: cannot connect to postgres:\/\/me:\*\*\*@127\.0\.0\.1:1\/src: /);
    expect(source.err).not.toContain('secret-pw');

    expect((await cli('reconcile', '--env', 'nope')).code).toBe(2);
    expect((await cli('drift', '--config', join(dir, 'missing.yaml'))).code).toBe(2);
  });
});

describe("as the logins permsync's roles are granted to", () => {
  /** Runs work with a configuration whose source user is a new login holding `role`. */
  async function asLogin(role: string, work: (config: string) => Promise<void>): Promise<void> {
    await p.dba(`SET permsync.capture = 'off'; CREATE ROLE drift_login LOGIN PASSWORD 'pw' IN ROLE ${role}`);
    try {
      // The source user is a sync user: never compared, so it makes no difference on dev.
      await work(await writeConfig(role, [{ name: 'dev', url: p.env('dev').server.url }], p.source.urlFor('postgres', 'drift_login', 'pw')));
    } finally {
      await p.dba(`SET permsync.capture = 'off'; DROP ROLE drift_login`);
    }
  }

  it('permsync_daemon: drift and reconcile --apply, both recorded', async () => {
    await dev(`GRANT TRUNCATE ON app.orders TO readers`);
    await asLogin('permsync_daemon', async (config) => {
      const drift = await cli('drift', '--config', config);
      expect(drift).toMatchObject({ code: 1, err: '' });
      // It may not read pg_authid: it compares the verifiers the source captures.
      expect(drift.out).not.toContain('password verifiers');
      const run = await cli('reconcile', '--env', 'dev', '--apply', '--config', config);
      expect(run).toMatchObject({ code: 0, err: '' });
    });
    const { rows } = await p.sourceClient.query(
      `SELECT b.session_user_name, x.execution_status FROM permsync.batches b JOIN permsync.execution_log x ON x.batch_id = b.id
        WHERE b.origin = 'reconcile' ORDER BY b.id DESC LIMIT 1`,
    );
    expect(rows[0]).toEqual({ session_user_name: 'drift_login', execution_status: 'success' });
  });

  it('permsync_reader: drift reports (unrecorded); reconcile --apply refuses before changing anything', async () => {
    await dev(`GRANT TRUNCATE ON app.orders TO readers`);
    await asLogin('permsync_reader', async (config) => {
      const drift = await cli('drift', '--config', config);
      expect(drift.code).toBe(1);
      expect(drift.err).toMatch(/^permsync: this check of dev was not recorded: permission denied for table drift_checks/);
      const run = await cli('reconcile', '--env', 'dev', '--apply', '--config', config);
      expect(run.code).toBe(2);
      expect(run.err).toContain('may not record a reconcile (it needs permsync_daemon or permsync_admin): nothing was applied');
    });
    const { rows } = await dev(`SELECT has_table_privilege('readers', 'app.orders', 'TRUNCATE') AS still`);
    expect(rows[0]).toEqual({ still: true });
    await dev(`REVOKE TRUNCATE ON app.orders FROM readers`);
  });
});

describe('the scheduled check', () => {
  const checkConfig = () => ({
    source: { url: p.source.url, applicationName: 'permsync-test' },
    environments: [
      { name: 'dev', url: p.env('dev').server.url, priority: 1, enabled: true, rules: [], onPermanentFailure: 'hold' as const },
      { name: 'fresh', url: p.env('fresh').server.url, priority: 2, enabled: true, rules: [], onPermanentFailure: 'hold' as const },
    ],
    settings: p.config().settings,
    http: { port: 0, host: '127.0.0.1' },
    // The child logs to this process's output: only what would need a person.
    log: { level: 'error' as const },
  });

  it("records each environment's result, in a process of its own, and v_drift_status says when each last matched", async () => {
    await converge('fresh');
    await dev(`GRANT TRUNCATE ON app.orders TO readers`);
    const config = checkConfig();
    // A heap limit meant for the daemon (4 MB here: too small for node to load the check)
    // is not passed on to the check's process.
    const nodeOptions = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = '--max-old-space-size=4';
    const results = await new DriftCheckProcess().run(config).finally(() => {
      if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = nodeOptions;
    });
    expect(results?.map((r) => [r.environment, r.differences])).toEqual([
      ['dev', 1],
      ['fresh', 0],
    ]);
    expect(results?.[0]?.summary).toMatchObject({ privileges: 1, statements: 1 });
    expect(results?.[0]?.checkedAt).toBeInstanceOf(Date);
    const { rows } = await p.sourceClient.query<{ environment: string; state: string; matched_now: boolean; last_differences: number }>(
      `SELECT environment, state, last_differences, last_matched_at > now() - interval '1 minute' AS matched_now
         FROM permsync.v_drift_status WHERE environment IN ('dev', 'fresh') ORDER BY environment`,
    );
    expect(rows).toEqual([
      { environment: 'dev', state: 'drifted', last_differences: 1, matched_now: true },
      { environment: 'fresh', state: 'matches', last_differences: 0, matched_now: true },
    ]);
    await dev(`REVOKE TRUNCATE ON app.orders FROM readers`);
  });

  it("starts its process without the daemon's secrets in its environment, and ends quietly when stopped", async () => {
    // As if loaded from .env: readable in /proc/<pid>/environ had the child inherited them.
    process.env.PERMSYNC_TEST_SECRET = 'env-secret-value';
    process.env.PGPASSWORD = 'libpq-secret-value';
    // pg's default user name, for URLs that name none: passed on.
    const user = process.env.USER;
    process.env.USER = 'permsync-check-user';
    const check = new DriftCheckProcess();
    let running: Promise<unknown>;
    let environ: string;
    try {
      running = check.run(checkConfig());
      const child = await vi.waitFor(
        async () => (await childProcessRunning('check-child.js')) ?? Promise.reject(new Error('no drift check process yet')),
        { timeout: 10_000, interval: 20 },
      );
      environ = await readFile(`/proc/${child}/environ`, 'utf8');
    } finally {
      delete process.env.PERMSYNC_TEST_SECRET;
      delete process.env.PGPASSWORD;
      if (user === undefined) delete process.env.USER;
      else process.env.USER = user;
    }
    expect(environ).toContain('PATH=');
    expect(environ.split('\0')).toContain('USER=permsync-check-user');
    expect(environ).not.toContain('secret-value');
    check.stop();
    await expect(running).resolves.toBeNull();
  });
});

/** The pid of this process's child whose command line holds `script`, once there is one. */
async function childProcessRunning(script: string): Promise<number | undefined> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (parent !== process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(script)) return Number(entry);
  }
  return undefined;
}

describe('at scale', () => {
  it('2,000 roles and 20,000 grants: bootstrapped in one run, then matching', async () => {
    await converge('fresh');
    await p.sourceClient.query(`SET permsync.capture = 'off';
      CREATE SCHEMA bulk;
      DO $$ BEGIN
        FOR t IN 1..200 LOOP EXECUTE format('CREATE TABLE bulk.t%s (id int)', t); END LOOP;
        FOR r IN 1..2000 LOOP
          EXECUTE format('CREATE ROLE bulk_role_%s', r);
          FOR g IN 0..9 LOOP EXECUTE format('GRANT SELECT ON bulk.t%s TO bulk_role_%s', (r + g * 17) % 200 + 1, r); END LOOP;
        END LOOP;
      END $$;
      RESET permsync.capture`);
    await p.env('fresh').client.query(`CREATE SCHEMA bulk;
      DO $$ BEGIN FOR t IN 1..200 LOOP EXECUTE format('CREATE TABLE bulk.t%s (id int)', t); END LOOP; END $$`);
    // Changes on the source are not captured here: the role snapshot must not mind.
    let started = performance.now();
    const run = await cli('reconcile', '--env', 'fresh', '--apply');
    const reconcileMs = performance.now() - started;
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/^applied 22000 statement\(s\) to fresh/m);
    started = performance.now();
    const drift = await cli('drift', '--env', 'fresh');
    const driftMs = performance.now() - started;
    expect(drift.code).toBe(0);
    expect(drift.out).toMatch(/^fresh: matches the source$/m);
    // Timings are the benchmark's (npm run bench, measurement 7); this only shows them.
    process.stderr.write(`drift at scale: reconcile (bootstrap) ${Math.round(reconcileMs)} ms, drift ${Math.round(driftMs)} ms\n`);
    // So many roles would slow every later comparison.
    const dropBulk = `DROP SCHEMA bulk CASCADE; DO $$ BEGIN FOR r IN 1..2000 LOOP EXECUTE format('DROP ROLE bulk_role_%s', r); END LOOP; END $$`;
    await p.sourceClient.query(`SET permsync.capture = 'off'; ${dropBulk}; RESET permsync.capture`);
    await p.env('fresh').client.query(dropBulk);
  });
});

describe("the daemon's schedule", () => {
  it('runs the check on drift_check_cron, in its own process, and exports each result', async () => {
    const since = new Date();
    const daemon = await p.startDaemon(p.config({ settings: { driftCheckCron: '* * * * * *' } }));
    const recorded = async () =>
      (
        await p.sourceClient.query<{ environment: string }>(
          `SELECT DISTINCT environment FROM permsync.drift_checks WHERE checked_at >= $1 ORDER BY 1`,
          [since],
        )
      ).rows.map((r) => r.environment);
    const deadline = Date.now() + 20_000;
    while ((await recorded()).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await recorded()).toEqual(['dev', 'fresh']);
    const metrics = await (await fetch(`http://${daemon.http.host}:${daemon.http.port}/metrics`)).text();
    expect(metrics).toMatch(/^permsync_drift_differences\{environment="dev"\} \d+$/m);
    expect(metrics).toMatch(/^permsync_drift_differences\{environment="fresh"\} \d+$/m);
    await daemon.stop();
  });
});
