import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

/**
 * The release before a DROP ROLE on a PostgreSQL 15 source, where an empty table's owner
 * may turn it into a view (CREATE RULE "_RETURN"): its catalog row, identity and notes stay
 * (a tenth attacker read; the others are in role-scope-attacks.test.ts, on 17).
 */

let p: Pipeline;
const prod = () => p.env('prod').client;

async function prodState(): Promise<string | undefined> {
  const { rows } = await p.sourceClient.query<{ state: string }>(`SELECT state FROM permsync.v_environment_status WHERE environment = 'prod'`);
  return rows[0]?.state;
}

beforeAll(async () => {
  p = await startPipeline(['prod'], { major: 15 });
  await p.dba(`CREATE ROLE mallory LOGIN PASSWORD 'mallory-pw'`);
  await p.startDaemon();
  await p.settleRoles();
});

afterAll(async () => {
  await p?.close();
});

describe('the release of a dropped role, on a PostgreSQL 15 source', () => {
  it("a table a dropped role left to a login by REASSIGN OWNED, which she turns into a view, does not take the role's view of that name on prod alone", async () => {
    await p.everywhere('CREATE SCHEMA scratch102; GRANT USAGE, CREATE ON SCHEMA scratch102 TO PUBLIC');
    await p.dba('CREATE ROLE contractor102');
    await p.settleRoles();
    // The contractor's table on the source; on prod, a view of his of that name over prod's own data.
    await p.dba('SET ROLE contractor102; CREATE TABLE scratch102.payroll (id int); RESET ROLE');
    await prod().query(`CREATE TABLE scratch102.salaries (id int);
      CREATE VIEW scratch102.payroll AS SELECT id FROM scratch102.salaries;
      ALTER VIEW scratch102.payroll OWNER TO contractor102`);
    await p.settleRoles();
    await p.dba('REASSIGN OWNED BY contractor102 TO mallory');
    // A view is not the table the contractor had: prod's view of its name is not the source's.
    const mallory = new pg.Client(p.source.urlFor('postgres', 'mallory', 'mallory-pw'));
    await mallory.connect();
    await mallory.query(`CREATE RULE "_RETURN" AS ON SELECT TO scratch102.payroll DO INSTEAD SELECT 1::int AS id`).finally(() => mallory.end());
    await p.dba('DROP OWNED BY contractor102; DROP ROLE contractor102');
    await waitFor(async () => (await prodState()) === 'held', 15_000, 'prod to hold the DROP ROLE');
    const { rows } = await prod().query<{ owner: string }>(
      `SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'scratch102.payroll'::regclass`,
    );
    expect(rows[0]?.owner).toBe('contractor102');
    // An operator leaves the role on prod.
    const { rows: held } = await p.sourceClient.query<{ id: string }>(
      `SELECT batch_id::text AS id FROM permsync.execution_log WHERE environment_name = 'prod' AND execution_status = 'failed' ORDER BY id DESC LIMIT 1`,
    );
    await p.sourceClient.query(`SELECT * FROM permsync.skip_batch('prod', $1, 'prod keeps the role')`, [held[0]?.id]);
    await waitFor(async () => (await prodState()) === 'ok', 15_000, 'prod to go on');
  });

  it("a role a CREATEROLE login drops, which owns a table prod alone has, is left on prod as prod's own, and prod goes on", async () => {
    // Before 16 a role with CREATEROLE may drop any role but a superuser.
    await p.dba('CREATE ROLE keeper103 CREATEROLE; SET ROLE keeper103; CREATE ROLE temp103; RESET ROLE');
    await p.settleRoles();
    await prod().query('CREATE TABLE public.extra103 (id int); ALTER TABLE public.extra103 OWNER TO temp103');
    await p.dba('SET ROLE keeper103; DROP ROLE temp103; RESET ROLE; CREATE ROLE after103');
    await p.settleRoles();
    const { rows } = await prod().query<{ owner: string; after: boolean }>(
      `SELECT relowner::regrole::text AS owner, EXISTS (SELECT FROM pg_roles WHERE rolname = 'after103') AS after
         FROM pg_class WHERE oid = 'public.extra103'::regclass`,
    );
    const { rows: conflicts } = await p.sourceClient.query<{ reason: string }>(
      `SELECT reason FROM permsync.v_role_conflicts WHERE environment_name = 'prod' AND role_name = 'temp103'`,
    );
    expect({ ...rows[0], state: await prodState(), conflicts: conflicts.map((c) => c.reason) }).toEqual({
      owner: 'temp103',
      after: true,
      state: 'ok',
      conflicts: ['the source dropped this role, and prod could not: owner of table public.extra103'],
    });
  });
});
