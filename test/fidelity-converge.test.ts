import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERMSYNC_ROLES } from '../src/config/rules.js';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { accountDifference, canDump, catalogAccount, dumpAccount, type AccountOptions } from './support/dump.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';
import { runCli, writeConfigFile } from './support/cli.js';
import { waitFor } from './support/wait.js';

/**
 * What statement replay cannot carry, judged as a DBA would: permission scripts of the
 * kinds real projects ship that grant from DO blocks, from a helper function, with dynamic
 * SQL and inside CREATE SCHEMA, run on the source (roles and permissions) with the schema
 * run as migrations on every server. Each target's roles and privileges by pg_dumpall and
 * pg_dump then equal the source's, without an operator, and `permsync drift` exits 0.
 */

/** An API served from a schema, its grants in a DO block as such projects' setup scripts write them. */
const API = {
  roles: `
    CREATE ROLE api_owner NOLOGIN;
    CREATE ROLE web_anon NOLOGIN;
    CREATE ROLE web_user NOLOGIN;
    CREATE ROLE authenticator LOGIN NOINHERIT;
    GRANT web_anon, web_user TO authenticator`,
  migration: `
    CREATE SCHEMA api AUTHORIZATION api_owner;
    CREATE TABLE api.todos (id serial PRIMARY KEY, task text NOT NULL, done boolean DEFAULT false);
    CREATE VIEW api.open_todos AS SELECT id, task FROM api.todos WHERE NOT done;
    CREATE FUNCTION api.add_todo(task text) RETURNS int LANGUAGE sql AS 'INSERT INTO api.todos (task) VALUES (task) RETURNING id';
    ALTER TABLE api.todos OWNER TO api_owner;
    ALTER VIEW api.open_todos OWNER TO api_owner;
    ALTER FUNCTION api.add_todo(text) OWNER TO api_owner`,
  grants: [
    `
    DO $$
    BEGIN
      GRANT USAGE ON SCHEMA api TO web_anon, web_user;
      GRANT SELECT ON api.open_todos TO web_anon;
      GRANT SELECT, INSERT, UPDATE (done), DELETE ON api.todos TO web_user;
      EXECUTE format('GRANT USAGE ON SEQUENCE %I.%I TO %I', 'api', 'todos_id_seq', 'web_user');
      REVOKE EXECUTE ON FUNCTION api.add_todo(text) FROM PUBLIC;
      GRANT EXECUTE ON FUNCTION api.add_todo(text) TO web_user;
      IF NOT EXISTS (SELECT 1 FROM pg_default_acl d JOIN pg_roles r ON r.oid = d.defaclrole WHERE r.rolname = 'api_owner') THEN
        ALTER DEFAULT PRIVILEGES FOR ROLE api_owner IN SCHEMA api GRANT SELECT ON TABLES TO web_anon;
      END IF;
    END
    $$`,
  ],
  // A later migration: the default privileges above give its table its grants on each server.
  later: `SET ROLE api_owner; CREATE TABLE api.tags (id int PRIMARY KEY, name text); RESET ROLE`,
};

/** Reporting: a helper function that grants read access, and a loop that hands the tables to their owner. */
const REPORTING = {
  roles: `CREATE ROLE analyst NOLOGIN; CREATE ROLE reporting_owner NOLOGIN`,
  migration: `
    CREATE SCHEMA reporting;
    CREATE TABLE reporting.daily (day date PRIMARY KEY, total numeric);
    CREATE TABLE reporting.monthly (month date PRIMARY KEY, total numeric);
    CREATE FUNCTION public.grant_read_access(target_schema text, reader text) RETURNS void LANGUAGE plpgsql AS $f$
    BEGIN
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', target_schema, reader);
      EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', target_schema, reader);
    END
    $f$`,
  grants: [
    `SELECT public.grant_read_access('reporting', 'analyst')`,
    `DO $$
     DECLARE t record;
     BEGIN
       FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'reporting' LOOP
         EXECUTE format('ALTER TABLE reporting.%I OWNER TO reporting_owner', t.tablename);
       END LOOP;
     END
     $$`,
  ],
};

/** An audit schema created with its tables and their grants in one CREATE SCHEMA; the targets' migration creates it without the grants. */
const AUDIT = {
  roles: `CREATE ROLE audit_owner NOLOGIN; CREATE ROLE auditor NOLOGIN`,
  elements: `
    CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, what text)
    CREATE VIEW recent AS SELECT id, what FROM events`,
  grants: `GRANT SELECT ON events, recent TO auditor GRANT INSERT ON events TO api_owner`,
};

describe.each([14, 18] as PostgresMajor[])('PostgreSQL %i', (major) => {
  let p: Pipeline;
  let dir: string;

  /** Runs the CLI in this process, as bin/permsync.js does, capturing what it prints. */
  async function cli(...args: string[]): Promise<{ code: number; out: string }> {
    const { code, out } = await runCli(...args);
    return { code, out };
  }

  const configFile = (): Promise<string> => writeConfigFile(dir, p.config());

  /** A server's account by pg_dump where an installed one reads this major, else by the catalog. */
  async function account(name: 'source' | 'dev' | 'prod'): Promise<string[]> {
    const options: AccountOptions = { ignoreRoles: PERMSYNC_ROLES, database: 'postgres', withoutMembershipGrantors: true };
    const server = name === 'source' ? p.source : p.env(name).server;
    const client = name === 'source' ? p.sourceClient : p.env(name).client;
    return canDump(major) ? dumpAccount(server.url, options) : catalogAccount(client, options);
  }

  /** Waits for the role watcher to see the source's roles, and the targets to carry every batch. */
  const settle = () => p.settleRoles();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'permsync-converge-'));
    p = await startPipeline(['dev', 'prod'], { major });
  });

  afterAll(async () => {
    await p?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('grants from DO blocks, a helper function, dynamic SQL and CREATE SCHEMA reach every target: equal by pg_dump, and drift exits 0', async () => {
    const daemon = await p.startDaemon();
    await p.dba(`${API.roles}; ${REPORTING.roles}; ${AUDIT.roles}`);
    await settle();
    await p.everywhere(`${API.migration}; ${REPORTING.migration}`);
    await Promise.all(p.environments.map((e) => e.client.query(`CREATE SCHEMA audit AUTHORIZATION audit_owner ${AUDIT.elements}`)));
    await p.dba(`CREATE SCHEMA audit AUTHORIZATION audit_owner ${AUDIT.elements} ${AUDIT.grants}`);
    for (const statement of [...API.grants, ...REPORTING.grants]) await p.dba(statement);
    await settle();
    await p.everywhere(API.later);
    await daemon.stop();

    const { rows } = await p.sourceClient.query<{ environment_name: string; execution_status: string; result_message: string }>(
      `SELECT x.environment_name, x.execution_status, x.result_message
         FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE b.origin = 'event_trigger' AND b.not_replayable IS NULL ORDER BY b.commit_seq, x.environment_name`,
    );
    // CREATE SCHEMA, the DO block, the helper, the owner loop: each converged on each target
    // (the loop's owners may have come with the helper's batch, which converged the same tables).
    expect(rows).toHaveLength(8);
    for (const row of rows) {
      expect(row).toMatchObject({
        execution_status: 'success',
        result_message: expect.stringMatching(
          /^(converged \d+ object\(s\) it touched to the source's state|the objects it touched match the source's state here)/,
        ),
      });
    }

    const source = await account('source');
    for (const name of ['dev', 'prod'] as const) {
      expect({ name, ...accountDifference(source, await account(name)) }).toEqual({ name, onlySource: [], onlyTarget: [] });
    }
    expect(source).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/GRANT SELECT ON TABLE api\.tags TO web_anon| api\.tags web_anon SELECT /),
        expect.stringMatching(/GRANT SELECT ON TABLE audit\.recent TO auditor| audit\.recent auditor SELECT /),
        expect.stringMatching(/ALTER TABLE reporting\.monthly OWNER TO reporting_owner| reporting\.monthly owner reporting_owner/),
      ]),
    );
    expect(await cli('drift', '--config', await configFile())).toEqual({ code: 0, out: 'dev: matches the source\nprod: matches the source\n' });
  });

  it('a string of more permission commands than capture records reaches every target whole: equal by pg_dump, and drift exits 0', async () => {
    const daemon = await p.startDaemon();
    await p.dba('CREATE ROLE bulk_reader NOLOGIN');
    await settle();
    await p.everywhere(`CREATE SCHEMA bulk; DO $$ BEGIN FOR i IN 0..1199 LOOP EXECUTE format('CREATE TABLE bulk.t%s (id int)', i); END LOOP; END $$`);
    // As a migration tool sends a generated file: one string, one transaction, 1,200 GRANTs.
    await p.dba(Array.from({ length: 1200 }, (_, i) => `GRANT SELECT ON bulk.t${i} TO bulk_reader`).join('; '));
    await settle();
    await daemon.stop();

    const { rows } = await p.sourceClient.query<{ environment_name: string; execution_status: string; result_message: string }>(
      `SELECT x.environment_name, x.execution_status, x.result_message
         FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE b.not_replayable LIKE 'the string ran more than 1000 permission commands%' ORDER BY x.environment_name`,
    );
    expect(rows.map((r) => [r.environment_name, r.execution_status, r.result_message.match(/^converged (\d+) object/)?.[1]])).toEqual([
      ['dev', 'success', '1200'],
      ['prod', 'success', '1200'],
    ]);
    const source = await account('source');
    expect(source.filter((line) => /bulk_reader/.test(line)).length).toBeGreaterThanOrEqual(1200);
    for (const name of ['dev', 'prod'] as const) {
      expect({ name, ...accountDifference(source, await account(name)) }).toEqual({ name, onlySource: [], onlyTarget: [] });
    }
    expect(await cli('drift', '--config', await configFile())).toEqual({ code: 0, out: 'dev: matches the source\nprod: matches the source\n' });
  });

  it('REASSIGN OWNED of roles that are kept reaches every target, but not past the former owner or another unseen change: pg_dump and drift agree', async () => {
    const daemon = await p.startDaemon();
    await p.dba(`CREATE ROLE app_v1 NOLOGIN; CREATE ROLE app_v2 NOLOGIN; CREATE ROLE billing_reader NOLOGIN;
                 CREATE ROLE legacy NOLOGIN; CREATE ROLE keeper NOLOGIN; CREATE ROLE vendor NOLOGIN`);
    await settle();
    await p.everywhere(`
      CREATE SCHEMA billing AUTHORIZATION app_v1;
      SET ROLE app_v1;
      CREATE TABLE billing.invoices (id serial PRIMARY KEY, total numeric);
      CREATE VIEW billing.unpaid AS SELECT id FROM billing.invoices;
      CREATE FUNCTION billing.total(int) RETURNS numeric LANGUAGE sql AS 'SELECT 1::numeric';
      CREATE TABLE billing.archive (id int);
      RESET ROLE;
      CREATE TABLE public.legacy_notes (id int);
      ALTER TABLE public.legacy_notes OWNER TO legacy;
      CREATE TABLE public.vendor_rates (id int);
      CREATE TABLE public.vendor_terms (id int);
      ALTER TABLE public.vendor_rates OWNER TO vendor;
      ALTER TABLE public.vendor_terms OWNER TO vendor`);
    // prod's archive is another role's there: app_v1's REASSIGN OWNED does not reach it.
    await p.env('prod').client.query('ALTER TABLE billing.archive OWNER TO keeper');
    await p.dba(`SET ROLE app_v1;
                 GRANT USAGE ON SCHEMA billing TO billing_reader;
                 GRANT SELECT ON billing.invoices, billing.unpaid TO billing_reader;
                 GRANT EXECUTE ON FUNCTION billing.total(int) TO billing_reader WITH GRANT OPTION;
                 RESET ROLE`);
    await settle();
    await p.dba('REASSIGN OWNED BY app_v1 TO app_v2');
    await p.dba('REASSIGN OWNED BY legacy TO postgres');
    // An owner change permsync does not see (no event trigger fires in replica mode) that
    // leaves the former owner something here: no REASSIGN OWNED made it, and no target's
    // object is given away for it.
    await p.dba(`SET session_replication_role = replica; ALTER TABLE public.vendor_rates OWNER TO app_v2;
                 RESET session_replication_role`);

    const moved = async () =>
      (
        await p.sourceClient.query<{ identity: string; reassigned_from: string; current_user_name: string }>(
          `SELECT a.object_identity AS identity, a.reassigned_from, a.current_user_name
             FROM permsync.audit_log a JOIN permsync.batches b ON b.id = a.batch_id
            WHERE b.origin = 'owner_watcher' ORDER BY a.object_identity`,
        )
      ).rows;
    // The ledger's last owner of vendor_rates: the watcher noted the change it found.
    const vendorRatesNoted = async () =>
      (
        await p.sourceClient.query<{ owner: string }>(
          `SELECT o.owner_oid::regrole::text AS owner FROM permsync.object_owners o
            WHERE o.classid = 'pg_class'::regclass AND o.objid = 'public.vendor_rates'::regclass ORDER BY o.noted DESC LIMIT 1`,
        )
      ).rows[0]?.owner;
    await waitFor(
      async () => (await moved()).length >= 6 && (await vendorRatesNoted()) === 'app_v2',
      20_000,
      'the role watcher to find the owners REASSIGN OWNED changed',
    );
    expect(await moved()).toEqual(
      [
        ['billing', 'app_v1', 'app_v2'],
        ['billing.archive', 'app_v1', 'app_v2'],
        ['billing.invoices', 'app_v1', 'app_v2'],
        ['billing.total(integer)', 'app_v1', 'app_v2'],
        ['billing.unpaid', 'app_v1', 'app_v2'],
        ['public.legacy_notes', 'legacy', 'postgres'],
      ].map(([identity, from, to]) => ({ identity, reassigned_from: from, current_user_name: to })),
    );
    await p.settle();
    await daemon.stop();

    const { rows } = await p.sourceClient.query<{ environment_name: string; execution_status: string; result_message: string }>(
      `SELECT x.environment_name, x.execution_status, x.result_message
         FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE b.origin = 'owner_watcher' ORDER BY b.commit_seq, x.environment_name`,
    );

    expect(rows.length).toBeGreaterThanOrEqual(2);
    for (const row of rows) {
      expect(row).toMatchObject({ execution_status: 'success', result_message: expect.stringMatching(/^converged \d+ object\(s\) it touched/) });
    }
    expect(
      rows
        .filter((r) => r.environment_name === 'dev')
        .map((r) => r.result_message)
        .join('\n'),
    ).not.toMatch(/left as they are/);
    expect(rows.filter((r) => r.environment_name === 'prod').map((r) => r.result_message)).toContainEqual(
      expect.stringMatching(/; 1 object\(s\) the role watcher found given away left as they are/),
    );

    const source = await account('source');
    const vendorRates = {
      onlySource: [expect.stringMatching(/ALTER TABLE public\.vendor_rates OWNER TO app_v2| public\.vendor_rates owner app_v2/)],
      onlyTarget: [expect.stringMatching(/ALTER TABLE public\.vendor_rates OWNER TO vendor| public\.vendor_rates owner vendor/)],
    };
    expect(accountDifference(source, await account('dev'))).toEqual(vendorRates);
    const prod = accountDifference(source, await account('prod'));
    expect(prod.onlySource.filter((l) => !/vendor_rates/.test(l))).toEqual([
      expect.stringMatching(/ALTER TABLE billing\.archive OWNER TO app_v2| billing\.archive owner app_v2/),
    ]);
    expect(prod.onlyTarget.filter((l) => !/vendor_rates/.test(l))).toEqual([
      expect.stringMatching(/ALTER TABLE billing\.archive OWNER TO keeper| billing\.archive owner keeper/),
    ]);
    expect(source).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/ALTER TABLE billing\.invoices OWNER TO app_v2| billing\.invoices owner app_v2/),
        expect.stringMatching(/ALTER TABLE public\.legacy_notes OWNER TO postgres| public\.legacy_notes owner postgres/),
        expect.stringMatching(/GRANT SELECT ON TABLE billing\.invoices TO billing_reader| billing\.invoices billing_reader SELECT by app_v2/),
      ]),
    );
    const drift = await cli('drift', '--config', await configFile());
    expect(drift.code).not.toBe(0);
    expect(drift.out).toMatch(/^  table "public"\."vendor_rates": owned by "app_v2" on the source, by "vendor" on dev$/m);
    expect(drift.out).toMatch(/^  table "billing"\."archive": owned by "app_v2" on the source, by "keeper" on prod$/m);
  });

  it("a DBA's grants as the new owner, or as a member of it, right after REASSIGN OWNED reach every target after the owner change they need: pg_dump agrees", async () => {
    await p.dba(`CREATE ROLE ledger_v1 NOLOGIN; CREATE ROLE ledger_v2 NOLOGIN; CREATE ROLE ledger_old NOLOGIN; CREATE ROLE ledger_reader NOLOGIN;
                 CREATE ROLE ledger_dev NOLOGIN IN ROLE ledger_v2`);
    const daemon = await p.startDaemon();
    /** Waits for the role watcher to find that `table` changed hands. */
    const found = (table: string) =>
      waitFor(
        async () =>
          ((
            await p.sourceClient.query(
              `SELECT FROM permsync.audit_log a JOIN permsync.batches b ON b.id = a.batch_id
                WHERE b.origin = 'owner_watcher' AND a.object_identity = $1`,
              [table],
            )
          ).rowCount ?? 0) > 0,
        20_000,
        'the role watcher to find the owner change',
      );
    try {
      await settle();
      await p.everywhere(`CREATE SCHEMA ledger AUTHORIZATION ledger_v1; CREATE TABLE ledger.entries (id int); ALTER TABLE ledger.entries OWNER TO ledger_v1;
                          CREATE TABLE ledger.audit (id int); ALTER TABLE ledger.audit OWNER TO ledger_old`);
      await settle();
      // The grants commit, and reach the targets, before the role watcher finds the owner
      // change (REASSIGN OWNED fires no event trigger): as ledger_v2 they need it there.
      await p.dba('REASSIGN OWNED BY ledger_v1 TO ledger_v2');
      await p.dba('SET ROLE ledger_v2; GRANT USAGE ON SCHEMA ledger TO ledger_reader; GRANT SELECT ON ledger.entries TO ledger_reader; RESET ROLE');
      await found('ledger.entries');
      await settle();
      // As a role that inherits the new owner's privileges (PostgreSQL grants as the owner).
      await p.dba('REASSIGN OWNED BY ledger_old TO ledger_v2');
      await p.dba('SET ROLE ledger_dev; GRANT SELECT ON ledger.audit TO ledger_reader; RESET ROLE');
      await found('ledger.audit');
      await settle();
    } finally {
      await daemon.stop();
    }
    // Applied everywhere, the owner changes first (result_message says so; unless the role
    // watcher's look came between the REASSIGN OWNED and the grants, which is rare).
    const { rows } = await p.sourceClient.query<{ environment_name: string; execution_status: string }>(
      `SELECT x.environment_name, x.execution_status
         FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE b.query_text LIKE '%TO ledger_reader%' ORDER BY b.commit_seq, x.environment_name`,
    );
    expect(rows).toEqual([1, 2].flatMap(() => ['dev', 'prod'].map((environment_name) => ({ environment_name, execution_status: 'success' }))));
    const ledger = (lines: string[]) => lines.filter((l) => /ledger/.test(l));
    const source = ledger(await account('source'));
    expect(source).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/ALTER TABLE ledger\.entries OWNER TO ledger_v2| ledger\.entries owner ledger_v2/),
        expect.stringMatching(/GRANT SELECT ON TABLE ledger\.entries TO ledger_reader| ledger\.entries ledger_reader SELECT by ledger_v2/),
        expect.stringMatching(/GRANT SELECT ON TABLE ledger\.audit TO ledger_reader| ledger\.audit ledger_reader SELECT by ledger_v2/),
      ]),
    );
    expect(ledger(await account('dev'))).toEqual(source);
    expect(ledger(await account('prod'))).toEqual(source);
  });
});
