import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/daemon.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

/**
 * An attacker's review of the owner watcher (capture_owner_changes, owner_watcher batches):
 * mallory is an ordinary login on the source; payroll is a role she has no privileges of.
 */
let p: Pipeline;
let daemon: Daemon;
let prod: pg.Client;

const MALLORY = 'mallory';
const PW = 'mallory-pw';

async function asMallory(sql: string): Promise<void> {
  const client = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function prodRoutineOwner(routine: string): Promise<string | undefined> {
  const { rows } = await prod.query<{ owner: string }>(`SELECT proowner::regrole::text AS owner FROM pg_proc WHERE oid = $1::regprocedure`, [
    routine,
  ]);
  return rows[0]?.owner;
}

async function prodOwner(table: string): Promise<string | undefined> {
  const { rows } = await prod.query<{ owner: string }>(`SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = $1::regclass`, [table]);
  return rows[0]?.owner;
}

async function ownerWatcherRows(): Promise<{ identity: string; reassigned_from: string | null; current_user_name: string }[]> {
  return (
    await p.sourceClient.query<{ identity: string; reassigned_from: string | null; current_user_name: string }>(
      `SELECT a.object_identity AS identity, a.reassigned_from, a.current_user_name
         FROM permsync.audit_log a JOIN permsync.batches b ON b.id = a.batch_id
        WHERE b.origin = 'owner_watcher' ORDER BY a.id`,
    )
  ).rows;
}

beforeAll(async () => {
  p = await startPipeline(['prod']);
  prod = p.env('prod').client;
  daemon = await p.startDaemon();
  await p.dba(`CREATE ROLE ${MALLORY} LOGIN CREATEROLE PASSWORD '${PW}'; CREATE ROLE payroll NOLOGIN; CREATE ROLE legacy NOLOGIN`);
  await p.settleRoles();
});

afterAll(async () => {
  await daemon?.stop();
  await p?.close();
});

describe('owner watcher', () => {
  it("a DBA's REASSIGN OWNED TO postgres does not converge mallory's overload over prod's function of payroll", async () => {
    await p.everywhere(`
      CREATE SCHEMA reports;
      GRANT USAGE, CREATE ON SCHEMA reports TO ${MALLORY};
      CREATE FUNCTION reports.summary(int) RETURNS int LANGUAGE sql AS 'SELECT 1';
      ALTER FUNCTION reports.summary(int) OWNER TO legacy`);
    // prod's own reports.summary(text), made by prod's migrations, is payroll's.
    await prod.query(`CREATE FUNCTION reports.summary(text) RETURNS int LANGUAGE sql AS 'SELECT 2';
                      ALTER FUNCTION reports.summary(text) OWNER TO payroll;
                      REVOKE EXECUTE ON FUNCTION reports.summary(text) FROM PUBLIC`);
    // On the source mallory makes an overload of the same name and number of arguments.
    await asMallory(`CREATE FUNCTION reports.summary(text) RETURNS int LANGUAGE sql AS 'SELECT 3'`);
    await p.settle();
    expect(await prodRoutineOwner('reports.summary(text)')).toBe('payroll');

    await p.dba('REASSIGN OWNED BY legacy TO postgres');
    await waitFor(async () => (await ownerWatcherRows()).some((r) => r.identity === 'reports.summary(integer)'), 20_000, 'the owner watcher');
    await p.settle();
    expect(await prodRoutineOwner('reports.summary(integer)')).toBe('postgres');
    // The safe outcome: prod's function of payroll stays payroll's.
    expect(await prodRoutineOwner('reports.summary(text)')).toBe('payroll');
  });

  it("a DBA's REASSIGN OWNED TO postgres, converged after mallory swapped the schema's name, does not give her prod's table", async () => {
    // mallory's schema holds a table of legacy's (she let a colleague create there).
    await p.everywhere(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA ms AUTHORIZATION ${MALLORY}; GRANT USAGE, CREATE ON SCHEMA ms TO legacy;
                        CREATE TABLE ms.ledger (id int, amount numeric); ALTER TABLE ms.ledger OWNER TO legacy`);
    await p.settle();
    expect(await prodOwner('ms.ledger')).toBe('legacy');
    // prod is not applying yet (a backlog, a hold, an outage): the owner_watcher batch waits there.
    await p.dba(`SELECT permsync.pause_environment('prod')`);
    await p.dba('REASSIGN OWNED BY legacy TO postgres');
    await waitFor(async () => (await ownerWatcherRows()).some((r) => r.identity === 'ms.ledger'), 20_000, 'the owner watcher');
    // After the look, before prod applies it: the name ms.ledger now names a table of mallory's on the source.
    await asMallory(`ALTER SCHEMA ms RENAME TO ms_old; CREATE SCHEMA ms; CREATE TABLE ms.ledger (id int)`);
    await p.dba(`SELECT permsync.resume_environment('prod')`);
    await p.settle();
    // The safe outcome: prod's table (legacy's, with its rows) goes to postgres as on the source, or stays legacy's; never to mallory.
    const { rows } = await prod.query<{ name: string; owner: string }>(
      `SELECT c.oid::regclass::text AS name, c.relowner::regrole::text AS owner FROM pg_class c WHERE c.relname = 'ledger'`,
    );
    expect(rows).toEqual([{ name: expect.any(String), owner: expect.stringMatching(/^(postgres|legacy)$/) }]);
  });
});
