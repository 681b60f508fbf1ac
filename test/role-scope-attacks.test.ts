import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config/schema.js';
import type { Daemon } from '../src/daemon.js';
import { adoptRoles } from '../src/drift/adopt.js';
import { reconcile } from '../src/drift/reconcile.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { runAs } from './support/servers.js';

/**
 * An attacker's review of role scope and operator controls: each test is a way a
 * CREATEROLE login (mallory) tried to reach further on prod, and what must hold instead.
 * Tests share one pipeline; each makes the roles it needs.
 *
 * prod's bootstrap superuser (oid 10) is called root_dba here, as after `initdb -U root_dba`;
 * the daemon connects to prod as another superuser, syncer.
 */
let p: Pipeline;
let daemon: Daemon;
let config: Config;
let prod: pg.Client;

const MALLORY = 'mallory';
const PW = 'mallory-pw';

const asMallory = (sql: string) => runAs(p.source.urlFor('postgres', MALLORY, PW), sql);

const settle = () => p.settleRoles();

async function memberOf(client: pg.Client, member: string): Promise<string[]> {
  const { rows } = await client.query<{ role: string }>(
    `SELECT pg_get_userbyid(roleid) AS role FROM pg_auth_members WHERE member = to_regrole($1) ORDER BY 1`,
    [member],
  );
  return rows.map((r) => r.role);
}

async function prodState(): Promise<string | undefined> {
  const { rows } = await p.sourceClient.query<{ state: string }>(`SELECT state FROM permsync.v_environment_status WHERE environment = 'prod'`);
  return rows[0]?.state;
}

/** Whether mallory may read `table` on the source and on prod. */
async function malloryReads(table: string): Promise<{ source: boolean | undefined; prod: boolean | undefined }> {
  const canRead = async (client: pg.Client) =>
    (await client.query<{ can: boolean }>(`SELECT has_table_privilege($1, $2, 'SELECT') AS can`, [MALLORY, table])).rows[0]?.can;
  return { source: await canRead(p.sourceClient), prod: await canRead(prod) };
}

/**
 * Mallory sets one session to a role of hers, then renames that role from another: the
 * session runs as the renamed role, while its role setting still names `name`, which a DBA's
 * role (`dbaRole`, made after, then `arrange`d) takes. The session then runs `commands`: by
 * default it grants mallory more on `table` (readable by everyone: a grant of more is only
 * a warning on the source) and default privileges.
 */
async function stalePrivilegeGrab(
  name: string,
  dbaRole: string,
  table: string,
  arrange: () => Promise<void>,
  commands = [`GRANT UPDATE ON ${table} TO ${MALLORY}`, `ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO ${MALLORY}`],
): Promise<void> {
  const [set, other] = [new pg.Client(p.source.urlFor('postgres', MALLORY, PW)), new pg.Client(p.source.urlFor('postgres', MALLORY, PW))];
  await set.connect();
  await other.connect();
  try {
    await other.query(`CREATE ROLE ${name}; GRANT ${name} TO ${MALLORY}`);
    await set.query(`SET ROLE ${name}`);
    await other.query(`ALTER ROLE ${name} RENAME TO parked_${name}`);
    await settle();
    await p.everywhere(`CREATE TABLE ${table} (id int); GRANT SELECT ON ${table} TO PUBLIC`);
    await p.dba(dbaRole);
    await settle();
    await arrange();
    for (const command of commands) await set.query(command);
  } finally {
    await set.end();
    await other.end();
  }
  await settle();
}

/** Whether mallory may read `table` on prod, a table of prod's alone. */
async function malloryReadsOnly(table: string): Promise<boolean | undefined> {
  const { rows } = await prod.query<{ can: boolean }>(`SELECT has_table_privilege($1, $2, 'SELECT') AS can`, [MALLORY, table]);
  return rows[0]?.can;
}

/** The owner of `table` on prod. */
async function prodOwner(table: string): Promise<string | undefined> {
  const { rows } = await prod.query<{ owner: string }>(`SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = $1::regclass`, [table]);
  return rows[0]?.owner;
}

/** Asks prod to run the batch it holds on again, as an operator would, and waits for that run's end. */
async function prodRoutineOwner(routine: string): Promise<string | undefined> {
  const { rows } = await prod.query<{ owner: string }>(`SELECT proowner::regrole::text AS owner FROM pg_proc WHERE oid = $1::regprocedure`, [
    routine,
  ]);
  return rows[0]?.owner;
}

async function retryProd(): Promise<void> {
  const last = async () =>
    (
      await p.sourceClient.query<{ at: string }>(
        `SELECT finished_at::text AS at FROM permsync.execution_log WHERE environment_name = 'prod' ORDER BY commit_seq DESC LIMIT 1`,
      )
    ).rows[0]?.at;
  const before = await last();
  await p.sourceClient.query(`SELECT * FROM permsync.retry_failed('prod')`);
  await waitFor(async () => (await last()) !== before, 15_000, 'prod to run its held batch again');
}

/** Waits for prod to have run a batch after commit_seq `seq`. */
async function untilProdRan(seq: string): Promise<void> {
  const ran = async () =>
    (await p.sourceClient.query(`SELECT FROM permsync.execution_log WHERE environment_name = 'prod' AND commit_seq > $1`, [seq])).rows.length > 0;
  await waitFor(ran, 15_000, 'prod to run the batch');
}

/** Lets prod go on where a test left it holding (skipped, as an operator would), then checks what the test saw. */
async function thenExpect(outcome: unknown, expected: unknown): Promise<void> {
  if ((await prodState()) === 'held') {
    await skipProdHold();
    await settle();
  }
  expect(outcome).toEqual(expected);
}

/** The newest batch's commit_seq. */
async function lastCommitSeq(): Promise<string> {
  const { rows } = await p.sourceClient.query<{ seq: string }>('SELECT coalesce(max(commit_seq), 0)::text AS seq FROM permsync.batches');
  return rows[0]?.seq ?? '0';
}

/** The failures prod logged for batches after `seq`. */
async function prodFailuresSince(seq: string): Promise<{ execution_status: string; error_code: string | null; result_message: string }[]> {
  const { rows } = await p.sourceClient.query<{ execution_status: string; error_code: string | null; result_message: string }>(
    `SELECT execution_status, error_code, result_message FROM permsync.execution_log
      WHERE environment_name = 'prod' AND execution_status = 'failed' AND commit_seq > $1`,
    [seq],
  );
  return rows;
}

/** Waits for prod to hold on the newest batch, and skips it there as an operator would. */
async function skipProdHold(): Promise<void> {
  await waitFor(async () => (await prodState()) === 'held', 15_000, 'prod to hold');
  const {
    rows: [held],
  } = await p.sourceClient.query<{ id: string }>(
    `SELECT b.id::text FROM permsync.batches b JOIN permsync.execution_log x ON x.batch_id = b.id
      WHERE x.environment_name = 'prod' AND x.execution_status = 'failed' ORDER BY b.commit_seq DESC LIMIT 1`,
  );
  await p.sourceClient.query(`SELECT * FROM permsync.skip_batch('prod', $1, 'prod keeps the role')`, [held?.id]);
}

beforeAll(async () => {
  p = await startPipeline(['prod']);
  prod = p.env('prod').client;
  await p.everywhere(`CREATE TABLE t5 (id int); CREATE TABLE t6 (id int); CREATE TABLE t7 (id int)`);
  await prod.query(`CREATE ROLE syncer SUPERUSER LOGIN PASSWORD 'syncer-pw'`);
  const syncer = new pg.Client(p.env('prod').server.urlFor('postgres', 'syncer', 'syncer-pw'));
  await syncer.connect();
  await syncer.query(`ALTER ROLE postgres RENAME TO root_dba`);
  // A role of prod's own by the source's superuser's name, so that objects the source's postgres owns compare as prod's.
  await syncer.query(`CREATE ROLE postgres NOLOGIN`);
  await syncer.end();
  await p.sourceClient.query('SELECT permsync.enable_password_sync()');
  // A CREATEROLE login, created by a DBA: permsync creates it on prod, so it is permsync's there.
  await p.dba(`CREATE ROLE ${MALLORY} LOGIN CREATEROLE PASSWORD '${PW}'`);
  config = p.config({
    settings: { syncPasswords: true },
    environments: [{ url: p.env('prod').proxy.rewrite(p.env('prod').server.urlFor('postgres', 'syncer', 'syncer-pw')) }],
  });
  daemon = await p.startDaemon(config);
  await settle();
  expect(await memberOf(prod, MALLORY)).toEqual([]);
});

afterAll(async () => {
  await daemon?.stop();
  await p?.close();
});

describe('role scope', () => {
  it("a look-alike of the target's bootstrap superuser (oid 10) does not take it over", async () => {
    const before = (await prod.query<{ rolname: string; rolpassword: string | null }>(`SELECT rolname, rolpassword FROM pg_authid WHERE oid = 10`))
      .rows[0];
    expect(before?.rolname).toBe('root_dba');
    await asMallory(`CREATE ROLE root_dba LOGIN PASSWORD 'attacker-pw'`);
    await settle();
    await asMallory(`GRANT root_dba TO ${MALLORY}`);
    await settle();
    const after = (await prod.query<{ rolname: string; rolpassword: string | null }>(`SELECT rolname, rolpassword FROM pg_authid WHERE oid = 10`))
      .rows[0];
    const members = (await prod.query(`SELECT pg_get_userbyid(member) AS member FROM pg_auth_members WHERE roleid = 10`)).rows;
    let attackerIn = false;
    const attacker = new pg.Client(p.env('prod').server.urlFor('postgres', 'root_dba', 'attacker-pw'));
    try {
      await attacker.connect();
      attackerIn =
        (await attacker.query<{ rolsuper: boolean }>(`SELECT rolsuper FROM pg_roles WHERE rolname = current_user`)).rows[0]?.rolsuper === true;
    } catch {
      attackerIn = false;
    } finally {
      await attacker.end().catch(() => {});
    }
    expect({ password: after?.rolpassword, members, attackerIn }).toEqual({ password: before?.rolpassword, members: [], attackerIn: false });
  });

  it('`adopt --all` does not hand over a role whose name a look-alike holds (an open conflict)', async () => {
    await prod.query(`CREATE ROLE prod_root SUPERUSER NOLOGIN`);
    await asMallory(`CREATE ROLE prod_root`);
    await settle();
    const { rows: open } = await p.sourceClient.query(`SELECT role_name FROM permsync.v_role_conflicts WHERE role_name = 'prod_root'`);
    expect(open).toEqual([{ role_name: 'prod_root' }]);
    // Onboarding: hand over every role prod shares with the source.
    await adoptRoles(config, config.environments[0] as Config['environments'][number], p.sourceClient, undefined);
    await asMallory(`GRANT prod_root TO ${MALLORY}`);
    await settle();
    expect(await memberOf(prod, MALLORY)).not.toContain('prod_root');
  });

  it('a role renamed to "PUBLIC" does not make the watcher revoke from PUBLIC on the target', async () => {
    await asMallory(`CREATE ROLE app1 LOGIN`);
    await settle();
    // An ordinary DBA action: the app may connect.
    await p.dba(`GRANT CONNECT ON DATABASE postgres TO app1`);
    await settle();
    await asMallory(`ALTER ROLE app1 RENAME TO "PUBLIC"`);
    await settle();
    // Offboarding the app later: the DBA revokes what the role "PUBLIC" holds (not PUBLIC).
    await p.dba(`REVOKE CONNECT ON DATABASE postgres FROM "PUBLIC"`);
    await settle();
    const { rows } = await prod.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
        WHERE d.datname = 'postgres' AND a.grantee = 0 AND a.privilege_type = 'CONNECT'`,
    );
    // The role "PUBLIC" lost its grant there, and PUBLIC kept its own: the database's privileges are its defaults.
    const { rows: acl } = await prod.query<{ defaults: boolean }>(
      `SELECT coalesce(datacl = acldefault('d', datdba), true) AS defaults FROM pg_database WHERE datname = 'postgres'`,
    );
    expect({ publicConnect: rows[0]?.n, defaults: acl[0]?.defaults }).toEqual({ publicConnect: 1, defaults: true });
  });
});

describe('operator controls', () => {
  it('a batch skipped while it is being applied is not logged as skipped once the target committed it', async () => {
    const locker = new pg.Client(p.env('prod').server.urlFor('postgres', 'syncer', 'syncer-pw'));
    await locker.connect();
    await locker.query(`BEGIN; LOCK TABLE t5 IN ACCESS EXCLUSIVE MODE`);
    const text = `ALTER TABLE t5 OWNER TO ${MALLORY}`;
    await p.dba(text);
    await waitFor(
      async () =>
        (await prod.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'permsync:prod' AND wait_event_type = 'Lock'`)).rows.length > 0,
      5000,
      'the daemon to wait on the lock',
    );
    const {
      rows: [batch],
    } = await p.sourceClient.query<{ id: string }>(`SELECT id::text FROM permsync.batches WHERE query_text = $1`, [text]);
    // Sent to prod, no outcome yet: the skip is refused rather than logged for what prod then commits.
    await expect(p.sourceClient.query(`SELECT * FROM permsync.skip_batch('prod', $1, 'not for prod')`, [batch?.id])).rejects.toMatchObject({
      code: '55000',
    });
    await locker.query('COMMIT');
    await locker.end();
    await settle();
    const {
      rows: [logged],
    } = await p.sourceClient.query<{ execution_status: string }>(`SELECT execution_status FROM permsync.execution_log WHERE batch_id = $1`, [
      batch?.id,
    ]);
    const {
      rows: [owner],
    } = await prod.query<{ owner: string }>(`SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = 't5'::regclass`);
    expect({ status: logged?.execution_status, owner: owner?.owner }).toEqual({ status: 'success', owner: MALLORY });
  });
});

describe('role scope: a race between the lookup and the statements', () => {
  it("a role of the target's own created between the daemon's lookup and its CREATE ROLE is not given the source's password", async () => {
    const admin = new pg.Client(p.env('prod').server.urlFor('postgres', 'syncer', 'syncer-pw'));
    await admin.connect();
    // prod's admin creates its on-call superuser; the transaction commits a moment later.
    await admin.query('BEGIN');
    await admin.query('LOCK TABLE pg_catalog.pg_authid IN SHARE ROW EXCLUSIVE MODE');
    await admin.query(`CREATE ROLE oncall SUPERUSER LOGIN PASSWORD 'prod-secret'`);
    await asMallory(`CREATE ROLE oncall LOGIN PASSWORD 'attacker-pw'`);
    await waitFor(
      async () =>
        (await prod.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'permsync:prod' AND wait_event_type = 'Lock'`)).rows.length > 0,
      5000,
      'the daemon to have looked oncall up, and to wait to create it',
    );
    await admin.query('COMMIT');
    await admin.end();
    await settle();
    let attackerIn = false;
    const attacker = new pg.Client(p.env('prod').server.urlFor('postgres', 'oncall', 'attacker-pw'));
    try {
      await attacker.connect();
      attackerIn =
        (await attacker.query<{ rolsuper: boolean }>(`SELECT rolsuper FROM pg_roles WHERE rolname = current_user`)).rows[0]?.rolsuper === true;
    } catch {
      attackerIn = false;
    } finally {
      await attacker.end().catch(() => {});
    }
    expect(attackerIn).toBe(false);
  });
});

/**
 * Roles of prod's own (audit_ro, audit_ro2, m2) that mallory's statements name: a GRANT, ALTER
 * DEFAULT PRIVILEGES (FOR ROLE) and OWNER TO naming one, a rename onto one, a role prod
 * dropped and created again. Made once, for the tests that look at what held.
 */
let lookAlikes: Promise<void> | undefined;
const arrangeLookAlikes = () =>
  (lookAlikes ??= (async () => {
    await prod.query(`CREATE ROLE audit_ro NOLOGIN; CREATE ROLE audit_ro2 NOLOGIN`);
    await p.dba(`ALTER TABLE t7 OWNER TO ${MALLORY}`);
    await asMallory(`CREATE ROLE audit_ro; GRANT audit_ro TO ${MALLORY}; CREATE ROLE m1; CREATE ROLE m2`);
    await p.dba(`GRANT CREATE ON SCHEMA public TO audit_ro`);
    await settle();
    await asMallory(`GRANT SELECT ON t7 TO audit_ro; GRANT UPDATE ON t7 TO m1 GRANTED BY CURRENT_USER;
                   ALTER DEFAULT PRIVILEGES FOR ROLE audit_ro GRANT SELECT ON TABLES TO m1;
                   ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO audit_ro`);
    await asMallory(`ALTER TABLE t7 OWNER TO audit_ro`);
    await asMallory(`ALTER ROLE m1 RENAME TO audit_ro2`);
    await prod.query(`DROP ROLE m2; CREATE ROLE m2 NOLOGIN`);
    await settle();
    await asMallory(`ALTER ROLE m2 CONNECTION LIMIT 2; ALTER ROLE audit_ro2 CONNECTION LIMIT 2`);
    await settle();
  })());

describe('what held', () => {
  it("a managed author's GRANT, ALTER DEFAULT PRIVILEGES (FOR ROLE) and OWNER TO naming a role of prod's own; a rename onto one; a role prod dropped and created again; reconcile --drop-extra-roles drops none of prod's own", async () => {
    await arrangeLookAlikes();
    const t7 = (
      await prod.query<{ owner: string; acl: string | null }>(
        `SELECT pg_get_userbyid(relowner) AS owner, relacl::text AS acl FROM pg_class WHERE oid = 't7'::regclass`,
      )
    ).rows[0];
    expect(t7?.owner).toBe(MALLORY);
    expect(t7?.acl ?? '').not.toMatch(/audit_ro/);
    const defaults = (await prod.query(`SELECT pg_get_userbyid(defaclrole) AS role, defaclacl::text AS acl FROM pg_default_acl`)).rows;
    expect(JSON.stringify(defaults)).not.toMatch(/audit_ro/);
    const roles = (await prod.query(`SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname IN ('m1', 'm2', 'audit_ro', 'audit_ro2') ORDER BY 1`))
      .rows;
    expect(roles).toEqual([
      { rolname: 'audit_ro', rolconnlimit: -1 },
      { rolname: 'audit_ro2', rolconnlimit: -1 },
      { rolname: 'm1', rolconnlimit: -1 },
      { rolname: 'm2', rolconnlimit: -1 },
    ]);
    const environment = config.environments[0] as Config['environments'][number];
    const { plan } = await reconcile(config, environment, p.sourceClient, { apply: false, dropExtraRoles: true });
    // m1 was renamed on the source onto a name of prod's own, which prod could not follow:
    // it is prod's own from then on (a role the source makes later as m1 is not taken for
    // it), and none of prod's own is dropped.
    expect((plan.report?.plan ?? []).filter((s) => s.kind === 'DROP ROLE').map((s) => s.sql)).toEqual([]);
  });
});

describe('reconcile', () => {
  it("reconcile does not grant object privileges to a role of prod's own that a source look-alike holds", async () => {
    await arrangeLookAlikes();
    const environment = config.environments[0] as Config['environments'][number];
    const { plan } = await reconcile(config, environment, p.sourceClient, { apply: false, dropExtraRoles: false });
    const planned = (plan.report?.plan ?? []).map((s) => s.sql).filter((s) => /"audit_ro2?"/.test(s));
    const applied = await reconcile(config, environment, p.sourceClient, { apply: true, dropExtraRoles: false });
    expect(applied.failure).toBeUndefined();
    const {
      rows: [t7],
    } = await prod.query<{ acl: string | null }>(`SELECT relacl::text AS acl FROM pg_class WHERE oid = 't7'::regclass`);
    const {
      rows: [schema],
    } = await prod.query<{ acl: string | null }>(`SELECT nspacl::text AS acl FROM pg_namespace WHERE nspname = 'public'`);
    expect({ planned, t7: /audit_ro/.test(t7?.acl ?? ''), schema: /audit_ro/.test(schema?.acl ?? '') }).toEqual({
      planned: [],
      t7: false,
      schema: false,
    });
  });
});

describe('role scope: a renamed look-alike', () => {
  it('renaming a look-alike and changing it does not hold the environment', async () => {
    const start = await lastCommitSeq();
    await prod.query(`CREATE ROLE auditor2 NOLOGIN`);
    await asMallory(`CREATE ROLE auditor2`);
    await settle();
    await asMallory(`ALTER ROLE auditor2 RENAME TO shadow`);
    await settle();
    await asMallory(`ALTER ROLE shadow CONNECTION LIMIT 3`);
    await settle();
    expect({ state: await prodState(), failed: await prodFailuresSince(start) }).toEqual({ state: 'ok', failed: [] });
  });

  it("a rename onto a name prod's own role holds there, then another rename onto the name prod kept, does not hold prod", async () => {
    const start = await lastCommitSeq();
    await prod.query(`CREATE ROLE auditor3 NOLOGIN`);
    await asMallory(`CREATE ROLE a_side; CREATE ROLE b_side`);
    await settle();
    // Refused on prod (auditor3 is prod's own): prod keeps a_side under its old name.
    await asMallory(`ALTER ROLE a_side RENAME TO auditor3`);
    await settle();
    await asMallory(`ALTER ROLE b_side RENAME TO a_side`);
    await settle();
    expect({ state: await prodState(), failed: await prodFailuresSince(start) }).toEqual({ state: 'ok', failed: [] });
    const { rows: notes } = await p.sourceClient.query<{ message: string }>(
      `SELECT result_message AS message FROM permsync.execution_log WHERE environment_name = 'prod' AND commit_seq > $1`,
      [start],
    );
    // a_side there is no longer permsync's once the source renamed it and prod could not follow.
    expect(notes.map((n) => n.message).join('\n')).toMatch(/not carried: role "a_side" exists here and is not permsync's/);
  });

  it("a name the source gave another role, by a rename prod could not follow, does not give that role prod's role of the name", async () => {
    await p.everywhere('CREATE TABLE secrets9 (id int)');
    await p.dba('CREATE ROLE reporting9');
    await settle();
    await p.dba('GRANT SELECT ON secrets9 TO reporting9');
    await prod.query('CREATE ROLE auditor9 NOLOGIN');
    // prod cannot follow this (auditor9 is its own): its reporting9 keeps the name and the grant.
    await p.dba('ALTER ROLE reporting9 RENAME TO auditor9');
    await settle();
    await asMallory('CREATE ROLE decoy9');
    await settle();
    await asMallory('ALTER ROLE decoy9 RENAME TO reporting9');
    await settle();
    await asMallory('GRANT reporting9 TO mallory');
    await settle();
    expect(await malloryReads('secrets9')).toEqual({ source: false, prod: false });
    expect(await prodState()).toBe('ok');
  });

  it("a role the source makes under the name of one prod could not rename is not taken for prod's role of that name", async () => {
    await p.everywhere('CREATE TABLE secrets8 (id int)');
    await p.dba('CREATE ROLE reporting8');
    await settle();
    await p.dba('GRANT SELECT ON secrets8 TO reporting8');
    await prod.query('CREATE ROLE auditor8 NOLOGIN');
    await p.dba('ALTER ROLE reporting8 RENAME TO auditor8');
    await settle();
    await asMallory('CREATE ROLE reporting8');
    await settle();
    await asMallory('GRANT reporting8 TO mallory');
    await settle();
    expect(await malloryReads('secrets8')).toEqual({ source: false, prod: false });
    expect(await prodState()).toBe('ok');
  });

  it("a role the source makes under the name of one it dropped, whose drop an operator skipped on prod, is not taken for prod's role of that name", async () => {
    await p.dba('CREATE ROLE reporting7');
    await settle();
    // prod cannot drop it (it owns a table of prod's own): prod holds, and an operator skips the drop there.
    await prod.query('CREATE TABLE only_on_prod7 (id int); ALTER TABLE only_on_prod7 OWNER TO reporting7');
    await p.dba('DROP ROLE reporting7');
    await skipProdHold();
    await settle();
    await asMallory('CREATE ROLE reporting7');
    await settle();
    await asMallory('GRANT reporting7 TO mallory');
    await settle();
    expect({ prod: await malloryReadsOnly('only_on_prod7'), state: await prodState() }).toEqual({ prod: false, state: 'ok' });
  });

  it("reconcile, run before the daemon has seen the new role, does not take prod's role that stands for the dropped one for it", async () => {
    await p.dba('CREATE ROLE reporting6');
    await settle();
    await prod.query('CREATE TABLE only_on_prod6 (id int); ALTER TABLE only_on_prod6 OWNER TO reporting6');
    await p.dba('DROP ROLE reporting6');
    await skipProdHold();
    await daemon.stop();
    await asMallory('CREATE ROLE reporting6; GRANT reporting6 TO mallory');
    const environment = config.environments[0] as Config['environments'][number];
    const applied = await reconcile(config, environment, p.sourceClient, { apply: true, dropExtraRoles: false });
    daemon = await p.startDaemon(config);
    await settle();
    expect({ failure: applied.failure, mallory: (await memberOf(prod, MALLORY)).includes('reporting6'), state: await prodState() }).toEqual({
      failure: undefined,
      mallory: false,
      state: 'ok',
    });
  });

  it("a role the source makes of a dropped role's name in the batch of the drop, which an operator skips on prod, is not taken for prod's role", async () => {
    await p.dba('CREATE ROLE reporting5');
    await settle();
    await prod.query('CREATE TABLE only_on_prod5 (id int); ALTER TABLE only_on_prod5 OWNER TO reporting5');
    // The role watcher sees the drop and mallory's role of the name at once: one batch.
    await daemon.stop();
    await p.dba('DROP ROLE reporting5');
    await asMallory('CREATE ROLE reporting5');
    daemon = await p.startDaemon(config);
    await skipProdHold();
    await settle();
    await asMallory('GRANT reporting5 TO mallory');
    await settle();
    expect({ prod: await malloryReadsOnly('only_on_prod5'), state: await prodState() }).toEqual({ prod: false, state: 'ok' });
  });

  it("a role renamed onto a dropped role's name, from a name prod keeps for its own role, is not taken for prod's role of that name", async () => {
    await prod.query('CREATE ROLE auditor4');
    await asMallory('CREATE ROLE auditor4');
    await p.dba('CREATE ROLE reporting4');
    await settle();
    await prod.query('CREATE TABLE only_on_prod4 (id int); ALTER TABLE only_on_prod4 OWNER TO reporting4');
    await p.dba('DROP ROLE reporting4');
    await skipProdHold();
    await settle();
    await asMallory('ALTER ROLE auditor4 RENAME TO reporting4');
    await settle();
    await asMallory('GRANT reporting4 TO mallory');
    await settle();
    expect({ prod: await malloryReadsOnly('only_on_prod4'), state: await prodState() }).toEqual({ prod: false, state: 'ok' });
  });

  it("a login the source makes of a dropped role's name, in the batch of the drop an operator skips on prod, does not run its statements there as prod's role", async () => {
    // Readable by everyone: a GRANT of more on it by one who does not own it is only a warning on the source, and is captured.
    await p.everywhere('CREATE TABLE shared1 (id int); GRANT SELECT ON shared1 TO PUBLIC');
    await p.dba('CREATE ROLE reporting1');
    await settle();
    await p.dba('ALTER TABLE shared1 OWNER TO reporting1');
    await settle();
    await prod.query('CREATE TABLE only_on_prod1 (id int); ALTER TABLE only_on_prod1 OWNER TO reporting1');
    await daemon.stop();
    await p.dba('REASSIGN OWNED BY reporting1 TO postgres; DROP OWNED BY reporting1; DROP ROLE reporting1');
    await asMallory(`CREATE ROLE reporting1 LOGIN PASSWORD 'r1-pw'`);
    daemon = await p.startDaemon(config);
    await skipProdHold();
    await settle();
    // Nothing the role watcher sees names reporting1 again: she runs captured commands as it.
    const asReporting = new pg.Client(p.source.urlFor('postgres', 'reporting1', 'r1-pw'));
    await asReporting.connect();
    try {
      await asReporting.query(`GRANT UPDATE ON shared1 TO ${MALLORY}`);
      await asReporting.query(`ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO ${MALLORY}`);
    } finally {
      await asReporting.end();
    }
    await settle();
    const { rows } = await prod.query<{ update: boolean; defaults: boolean }>(
      `SELECT has_table_privilege($1, 'shared1', 'UPDATE') AS update,
              EXISTS (SELECT FROM pg_default_acl WHERE defaclacl::text LIKE '%' || $1 || '%') AS defaults`,
      [MALLORY],
    );
    expect({ ...rows[0], state: await prodState() }).toEqual({ update: false, defaults: false, state: 'ok' });
  });

  it("a session set to a role renamed since, whose name a DBA's role took, does not run as the DBA's role on prod", async () => {
    await stalePrivilegeGrab('ops8', 'CREATE ROLE ops8', 'ledger8', async () => {
      await p.dba('ALTER TABLE ledger8 OWNER TO ops8');
      await settle();
    });
    const q = `SELECT has_table_privilege($1, 'ledger8', 'UPDATE') AS update,
                      EXISTS (SELECT FROM pg_default_acl WHERE defaclacl::text LIKE '%' || $1 || '%') AS defaults`;
    const { rows } = await prod.query<{ update: boolean; defaults: boolean }>(q, [MALLORY]);
    expect({ ...rows[0], state: await prodState() }).toEqual({ update: false, defaults: false, state: 'ok' });
  });

  it("a session set to a role renamed since, whose name a DBA's superuser took, does not run as the sync user on prod", async () => {
    await stalePrivilegeGrab('admin8', 'CREATE ROLE admin8 SUPERUSER', 'payroll8', async () => {});
    const { rows } = await prod.query<{ update: boolean }>(`SELECT has_table_privilege($1, 'payroll8', 'UPDATE') AS update`, [MALLORY]);
    expect({ ...rows[0], state: await prodState() }).toEqual({ update: false, state: 'ok' });
  });

  for (const how of ['plain', 'DO block'] as const) {
    it(`a session set to a role renamed since, whose name a DBA's role took, converges nothing with that role's rights on prod (${how})`, async () => {
      const name = how === 'plain' ? 'ops7' : 'ops6';
      const fn = `pay_${name}`;
      await p.everywhere(`CREATE FUNCTION ${fn}(int) RETURNS int LANGUAGE sql AS 'SELECT 1'`);
      // Mallory may create functions in public (PostgreSQL 14's default).
      await p.dba('GRANT CREATE ON SCHEMA public TO PUBLIC');
      const change = `ALTER FUNCTION ${fn}(text) OWNER TO ${MALLORY}`;
      await stalePrivilegeGrab(
        name,
        `CREATE ROLE ${name}`,
        `t_${name}`,
        async () => {
          await p.dba(`ALTER FUNCTION ${fn}(int) OWNER TO ${name}`);
          await settle();
          // prod's own hardening, there alone.
          await prod.query(`REVOKE EXECUTE ON FUNCTION ${fn}(int) FROM PUBLIC`);
          await asMallory(`SET permsync.capture = off; CREATE FUNCTION ${fn}(text) RETURNS int LANGUAGE sql AS 'SELECT 2'`);
        },
        // An owner change of her f(text) converges the objects of that name and number of arguments.
        [how === 'plain' ? change : `DO $$BEGIN EXECUTE '${change}'; END$$`],
      );
      await p.dba('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
      await settle();
      const { rows } = await prod.query<{ can: boolean }>(`SELECT has_function_privilege($1, $2, 'EXECUTE') AS can`, [MALLORY, `${fn}(int)`]);
      expect({ can: rows[0]?.can, state: await prodState() }).toEqual({ can: false, state: 'ok' });
    });
  }

  it("a login's look-alike of a role of prod's own, which she owns, does not let a converged batch of hers change that role's table on prod", async () => {
    await p.dba('CREATE ROLE reader5');
    await settle();
    await prod.query(`CREATE ROLE auditor5 NOLOGIN; CREATE TABLE secrets5 (id int); ALTER TABLE secrets5 OWNER TO auditor5;
                      GRANT SELECT ON secrets5 TO reader5`);
    // Mallory may create in public (PostgreSQL 14's default): a table of that name, owned by her look-alike.
    await p.dba('GRANT CREATE ON SCHEMA public TO PUBLIC');
    await asMallory('CREATE ROLE auditor5; GRANT auditor5 TO mallory');
    await asMallory('SET permsync.capture = off; CREATE TABLE secrets5 (id int); ALTER TABLE secrets5 OWNER TO auditor5');
    await settle();
    // A grant in a DO block: converged, as far as mallory may change the table.
    await asMallory(`DO $$BEGIN EXECUTE 'GRANT ALL ON secrets5 TO mallory WITH GRANT OPTION'; END$$`);
    await settle();
    await p.dba('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
    await settle();
    const { rows } = await prod.query<{ mallory: boolean; reader: boolean }>(
      `SELECT has_table_privilege($1, 'secrets5', 'SELECT') AS mallory, has_table_privilege('reader5', 'secrets5', 'SELECT') AS reader`,
      [MALLORY],
    );
    expect({ ...rows[0], state: await prodState() }).toEqual({ mallory: false, reader: true, state: 'ok' });
  });

  it("a login's table of the name of one a dropped role owns on prod alone is not handed to her by the release before the DROP ROLE", async () => {
    await p.everywhere('CREATE SCHEMA scratch9; GRANT USAGE, CREATE ON SCHEMA scratch9 TO PUBLIC');
    await p.dba('CREATE ROLE contractor9');
    await settle();
    await prod.query('CREATE TABLE scratch9.payroll (id int); ALTER TABLE scratch9.payroll OWNER TO contractor9');
    // prod refuses the drop (the role owns a table of prod's alone): an operator looks into it.
    await p.dba('DROP ROLE contractor9');
    await waitFor(async () => (await prodState()) === 'held', 15_000, 'prod to hold on the DROP ROLE');
    // Meanwhile mallory makes a table of that name on the source, which she owns.
    await asMallory('CREATE TABLE scratch9.payroll (id int)');
    await retryProd();
    expect({ owner: await prodOwner('scratch9.payroll'), reads: await malloryReadsOnly('scratch9.payroll'), state: await prodState() }).toEqual({
      owner: 'contractor9',
      reads: false,
      state: 'held',
    });
    await skipProdHold();
    await settle();
  });

  it("a login's table made before a DROP ROLE, of the name of one the dropped role owns on prod alone, is not handed to her by its release", async () => {
    await p.everywhere('CREATE SCHEMA scratch10; GRANT USAGE, CREATE ON SCHEMA scratch10 TO PUBLIC');
    await p.dba('CREATE ROLE contractor10');
    await settle();
    await prod.query('CREATE TABLE scratch10.payroll (id int); ALTER TABLE scratch10.payroll OWNER TO contractor10');
    await asMallory('CREATE TABLE scratch10.payroll (id int)');
    const start = await lastCommitSeq();
    await p.dba('DROP ROLE contractor10');
    await untilProdRan(start);
    expect({ owner: await prodOwner('scratch10.payroll'), reads: await malloryReadsOnly('scratch10.payroll'), state: await prodState() }).toEqual({
      owner: 'contractor10',
      reads: false,
      state: 'held',
    });
    await skipProdHold();
    await settle();
  });

  it('a table a dropped role left to a login by REASSIGN OWNED, renamed by her with ALTER INDEX, does not take a table the role owns on prod alone', async () => {
    await p.everywhere('CREATE SCHEMA scratch11; GRANT USAGE, CREATE ON SCHEMA scratch11 TO PUBLIC');
    await p.dba('CREATE ROLE contractor11');
    await settle();
    // The contractor's scratch table on the source, and a table of the contractor's on prod alone.
    await p.dba('SET ROLE contractor11; CREATE TABLE scratch11.tmp_import (id int); RESET ROLE');
    await prod.query('CREATE TABLE scratch11.payroll (id int); ALTER TABLE scratch11.payroll OWNER TO contractor11');
    await settle();
    // The contractor leaves; a DBA gives mallory what the contractor owned on the source.
    await p.dba('REASSIGN OWNED BY contractor11 TO mallory');
    // Mallory renames it after prod's table. ALTER INDEX renames any relation; ALTER SCHEMA
    // renames every object in a schema without a command for each.
    await asMallory('ALTER INDEX scratch11.tmp_import RENAME TO payroll');
    const start = await lastCommitSeq();
    await p.dba('DROP OWNED BY contractor11; DROP ROLE contractor11');
    await untilProdRan(start);
    expect({ owner: await prodOwner('scratch11.payroll'), state: await prodState() }).toEqual({ owner: 'contractor11', state: 'held' });
    await skipProdHold();
    await settle();
  });

  it('a login does not grow permsync.object_owners with rows of objects that are gone', async () => {
    const count = async () =>
      Number((await p.sourceClient.query<{ n: string }>('SELECT count(*)::text AS n FROM permsync.object_owners')).rows[0]?.n);
    const before = await count();
    // Each large object's owner is noted at ALTER LARGE OBJECT; lo_unlink fires no event trigger.
    await asMallory(`SET permsync.capture = off; DO $$DECLARE l oid; BEGIN
        FOR i IN 1..500 LOOP l := lo_create(0); EXECUTE format('ALTER LARGE OBJECT %s OWNER TO mallory', l); PERFORM lo_unlink(l); END LOOP;
      END$$`);
    expect((await count()) - before).toBe(0);
  });

  it('an operator a dropped role made with a COMMUTATOR it never defined is released on prod, as the source released it', async () => {
    await p.everywhere('CREATE SCHEMA scratch12; GRANT USAGE, CREATE ON SCHEMA scratch12 TO PUBLIC');
    await p.dba('CREATE ROLE leaver12; CREATE ROLE heir12');
    await settle();
    await p.everywhere(`SET ROLE leaver12;
      CREATE FUNCTION scratch12.same(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
      CREATE OPERATOR scratch12.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = scratch12.same, COMMUTATOR = OPERATOR(scratch12.====));
      RESET ROLE`);
    const start = await lastCommitSeq();
    await p.dba('REASSIGN OWNED BY leaver12 TO heir12; DROP OWNED BY leaver12; DROP ROLE leaver12');
    await untilProdRan(start);
    const { rows } = await prod.query<{ owner: string }>(
      `SELECT oprowner::regrole::text AS owner FROM pg_operator WHERE oprnamespace = 'scratch12'::regnamespace ORDER BY oprname`,
    );
    expect({ owners: rows.map((r) => r.owner), state: await prodState(), failed: await prodFailuresSince(start) }).toEqual({
      owners: ['heir12', 'heir12'],
      state: 'ok',
      failed: [],
    });
  });

  it('a table a DBA passed on twice by REASSIGN OWNED (each role then dropped) is released on prod both times', async () => {
    await p.everywhere('CREATE SCHEMA scratch13; GRANT USAGE, CREATE ON SCHEMA scratch13 TO PUBLIC');
    await p.dba('CREATE ROLE first13; CREATE ROLE lead13; CREATE ROLE heir13');
    await settle();
    await p.everywhere('SET ROLE first13; CREATE TABLE scratch13.report (id int); RESET ROLE');
    const dropped = async (sql: string) => {
      const start = await lastCommitSeq();
      await p.dba(sql);
      await untilProdRan(start);
      return { owner: await prodOwner('scratch13.report'), state: await prodState(), failed: await prodFailuresSince(start) };
    };
    const first = await dropped('REASSIGN OWNED BY first13 TO lead13; DROP OWNED BY first13; DROP ROLE first13');
    const second = await dropped('REASSIGN OWNED BY lead13 TO heir13; DROP OWNED BY lead13; DROP ROLE lead13');
    expect({ first, second }).toEqual({
      first: { owner: 'lead13', state: 'ok', failed: [] },
      second: { owner: 'heir13', state: 'ok', failed: [] },
    });
  });

  it('a role named as the spare name of a swap does not make the swap fail on the target and hold it', async () => {
    const start = await lastCommitSeq();
    await asMallory(`CREATE ROLE left_hand; CREATE ROLE right_hand`);
    await settle();
    const {
      rows: [oids],
    } = await p.sourceClient.query<{ left: string; right: string }>(
      `SELECT 'left_hand'::regrole::oid::text AS left, 'right_hand'::regrole::oid::text AS right`,
    );
    // The spare names the watcher would take first, made beforehand and carried to prod as permsync's.
    await asMallory(`CREATE ROLE "permsync_renaming_${oids?.left}_0"; CREATE ROLE "permsync_renaming_${oids?.right}_0"`);
    await settle();
    await asMallory(
      `ALTER ROLE left_hand RENAME TO spare_hand; ALTER ROLE right_hand RENAME TO left_hand; ALTER ROLE spare_hand RENAME TO right_hand`,
    );
    await settle();
    expect({ state: await prodState(), failed: await prodFailuresSince(start) }).toEqual({ state: 'ok', failed: [] });
    const names = async (client: pg.Client) =>
      (await client.query<{ name: string }>(`SELECT rolname AS name FROM pg_roles WHERE rolname ~ '_hand$|^permsync_renaming_' ORDER BY 1`)).rows;
    expect(await names(prod)).toEqual(await names(p.sourceClient));
  });
});

describe('role scope: object_owners, a second attacker read', () => {
  /** A DBA's command in a session of its own, given at most `ms`: 'ok', or the error it ended with. */
  async function dbaWithin(sql: string, ms: number): Promise<string> {
    const client = new pg.Client(p.source.url);
    await client.connect();
    try {
      await client.query(`SET statement_timeout = ${ms}`);
      await client.query(sql);
      return 'ok';
    } catch (error) {
      return (error as Error).message;
    } finally {
      await client.end();
    }
  }

  /** Whether prod has a role of this name within `ms`. */
  async function reachesProd(role: string, ms: number): Promise<boolean> {
    return waitFor(async () => (await prod.query(`SELECT FROM pg_roles WHERE rolname = $1`, [role])).rows.length > 0, ms, role).then(
      () => true,
      () => false,
    );
  }

  /** What `role` owns in this database, each as its catalog and identity, sorted. */
  async function ownedBy(client: pg.Client, role: string): Promise<string[]> {
    const { rows } = await client.query<{ id: string }>(
      `SELECT d.classid::regclass || ' ' || (pg_identify_object(d.classid, d.objid, 0)).identity AS id
         FROM pg_shdepend d
        WHERE d.deptype = 'o' AND d.refobjid = to_regrole($1) AND d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
        ORDER BY 1`,
      [role],
    );
    return rows.map((r) => r.id);
  }

  it('a DBA releases and drops a role owning objects of every kind: prod is released the same', async () => {
    await p.dba('CREATE ROLE leaver15; CREATE ROLE heir15');
    await settle();
    await p.everywhere(`CREATE SCHEMA kinds15 AUTHORIZATION leaver15;
      SET ROLE leaver15;
      CREATE TYPE kinds15.comp AS (a int, b text); CREATE TYPE kinds15.en AS ENUM ('a'); CREATE DOMAIN kinds15.dom AS int;
      CREATE TYPE kinds15.rng AS RANGE (subtype = int4);
      CREATE TABLE kinds15.tbl (id serial, v int); CREATE VIEW kinds15.vw AS SELECT 1 AS x;
      CREATE MATERIALIZED VIEW kinds15.mv AS SELECT 1 AS x; CREATE SEQUENCE kinds15.sq;
      CREATE FUNCTION kinds15.fn(kinds15.comp) RETURNS int LANGUAGE sql AS 'SELECT 1';
      CREATE PROCEDURE kinds15.pr() LANGUAGE sql AS 'SELECT 1';
      CREATE AGGREGATE kinds15.agg(int) (SFUNC = int4pl, STYPE = int);
      CREATE COLLATION kinds15.coll FROM "C"; CREATE TEXT SEARCH CONFIGURATION kinds15.tsc (COPY = english);
      CREATE TEXT SEARCH DICTIONARY kinds15.tsd (TEMPLATE = simple); CREATE STATISTICS kinds15.st ON id, v FROM kinds15.tbl;
      CREATE OPERATOR kinds15.<<< (LEFTARG = int, RIGHTARG = int, FUNCTION = int4lt);
      RESET ROLE;
      CREATE OPERATOR CLASS kinds15.ocls FOR TYPE int USING hash AS OPERATOR 1 =, FUNCTION 1 hashint4(int);
      ALTER OPERATOR CLASS kinds15.ocls USING hash OWNER TO leaver15;
      CREATE FOREIGN DATA WRAPPER fdw15; CREATE SERVER srv15 FOREIGN DATA WRAPPER fdw15; ALTER SERVER srv15 OWNER TO leaver15;
      CREATE FOREIGN TABLE kinds15.ft (a int) SERVER srv15; ALTER FOREIGN TABLE kinds15.ft OWNER TO leaver15;
      CREATE PUBLICATION pub15; ALTER PUBLICATION pub15 OWNER TO leaver15;
      CREATE FUNCTION kinds15.handler() RETURNS language_handler AS '$libdir/plpgsql', 'plpgsql_call_handler' LANGUAGE c;
      CREATE LANGUAGE lang15 HANDLER kinds15.handler; ALTER LANGUAGE lang15 OWNER TO leaver15;
      CREATE CONVERSION kinds15.conv FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8; ALTER CONVERSION kinds15.conv OWNER TO leaver15`);
    const before = await ownedBy(p.sourceClient, 'leaver15');
    expect(before.length).toBeGreaterThan(20);
    const start = await lastCommitSeq();
    await p.dba('REASSIGN OWNED BY leaver15 TO heir15; DROP OWNED BY leaver15; DROP ROLE leaver15');
    await settle();
    await thenExpect(
      { state: await prodState(), failed: await prodFailuresSince(start), heir: await ownedBy(prod, 'heir15') },
      {
        state: 'ok',
        failed: [],
        heir: await ownedBy(p.sourceClient, 'heir15'),
      },
    );
  });

  it('a schema a migration renamed everywhere, then a DBA releases and drops the role owning what is in it: prod is released the same', async () => {
    await p.dba('CREATE ROLE leaver16; CREATE ROLE heir16');
    await settle();
    await p.everywhere(`CREATE SCHEMA old16; GRANT USAGE, CREATE ON SCHEMA old16 TO leaver16;
      SET ROLE leaver16; CREATE TABLE old16.report (id int); RESET ROLE;
      ALTER SCHEMA old16 RENAME TO new16`);
    const start = await lastCommitSeq();
    await p.dba('REASSIGN OWNED BY leaver16 TO heir16; DROP OWNED BY leaver16; DROP ROLE leaver16');
    await settle();
    await thenExpect(
      { owner: await prodOwner('new16.report'), state: await prodState(), failed: await prodFailuresSince(start) },
      {
        owner: 'heir16',
        state: 'ok',
        failed: [],
      },
    );
  });

  it('a table a DBA reassigned, then altered by a migration before the DROP ROLE, is released on prod', async () => {
    await p.dba('CREATE ROLE leaver19; CREATE ROLE heir19');
    await settle();
    await p.everywhere(
      'CREATE SCHEMA app19; GRANT USAGE, CREATE ON SCHEMA app19 TO leaver19; SET ROLE leaver19; CREATE TABLE app19.report (id int); RESET ROLE',
    );
    await p.dba('REASSIGN OWNED BY leaver19 TO heir19');
    await settle();
    // The week after, a migration adds a column everywhere; then the role goes.
    await p.everywhere('ALTER TABLE app19.report ADD COLUMN note text');
    const start = await lastCommitSeq();
    await p.dba('DROP OWNED BY leaver19; DROP ROLE leaver19');
    await settle();
    await thenExpect(
      { owner: await prodOwner('app19.report'), state: await prodState(), failed: await prodFailuresSince(start) },
      {
        owner: 'heir19',
        state: 'ok',
        failed: [],
      },
    );
  });

  it("a table with serial and identity columns a DBA gave a role by ALTER TABLE OWNER, then released and dropped: prod's sequences are released too", async () => {
    await p.dba('CREATE ROLE leaver20; CREATE ROLE heir20');
    await settle();
    await p.everywhere('CREATE SCHEMA app20; CREATE TABLE app20.orders (id serial, n int GENERATED ALWAYS AS IDENTITY)');
    await p.dba('ALTER TABLE app20.orders OWNER TO leaver20');
    await settle();
    const start = await lastCommitSeq();
    await p.dba('REASSIGN OWNED BY leaver20 TO heir20; DROP OWNED BY leaver20; DROP ROLE leaver20');
    await settle();
    await thenExpect(
      { heir: await ownedBy(prod, 'heir20'), state: await prodState(), failed: await prodFailuresSince(start) },
      {
        heir: await ownedBy(p.sourceClient, 'heir20'),
        state: 'ok',
        failed: [],
      },
    );
  });

  it("a login's open transaction does not stall the capture of the DROP ROLE of a role whose objects she holds, nor a DBA's GRANT", async () => {
    await p.everywhere('CREATE SCHEMA scratch14; GRANT USAGE, CREATE ON SCHEMA scratch14 TO PUBLIC');
    // A role of mallory's own makes a table (noted as its), which REASSIGN OWNED gives her unseen.
    await asMallory(`CREATE ROLE m14; GRANT m14 TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
    await asMallory(`SET ROLE m14; CREATE TABLE scratch14.t (id int); RESET ROLE; REASSIGN OWNED BY m14 TO ${MALLORY}`);
    await settle();
    // She touches the table in a transaction she leaves open (her note of it, uncommitted), then drops m14.
    const holder = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    await holder.connect();
    try {
      await holder.query('BEGIN; ALTER TABLE scratch14.t ADD COLUMN c int');
      await asMallory('DROP ROLE m14');
      // A DBA hires someone meanwhile.
      const dba = await dbaWithin('CREATE ROLE newhire14; GRANT SELECT ON t5 TO newhire14', 8_000);
      const carried = await reachesProd('newhire14', 10_000);
      expect({ dba, carried }).toEqual({ dba: 'ok', carried: true });
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
      await settle();
    }
  });
  it("a plain login in the team a DBA hands a leaver's objects to does not stall the capture of the leaver's DROP ROLE, nor a DBA's GRANT", async () => {
    await p.everywhere('CREATE SCHEMA scratch21; GRANT USAGE, CREATE ON SCHEMA scratch21 TO PUBLIC');
    await p.dba(`CREATE ROLE eve21 LOGIN PASSWORD 'eve-pw'; CREATE ROLE team21; GRANT team21 TO eve21; CREATE ROLE leaver21`);
    await settle();
    await p.everywhere('SET ROLE leaver21; CREATE TABLE scratch21.report (id int); RESET ROLE');
    await settle();
    const eve = new pg.Client(p.source.urlFor('postgres', 'eve21', 'eve-pw'));
    await eve.connect();
    // (Eve polls for the drop and wins the race with the role watcher, which looks every
    // 500 ms by default; the daemon is stopped meanwhile here so that she surely does.)
    await daemon.stop();
    try {
      await p.dba('REASSIGN OWNED BY leaver21 TO team21; DROP OWNED BY leaver21; DROP ROLE leaver21');
      // As a member of team21 she may alter its table: her note of it stays uncommitted.
      await eve.query('BEGIN; ALTER TABLE scratch21.report ADD COLUMN c int');
      daemon = await p.startDaemon(config);
      const dba = await dbaWithin('CREATE ROLE newhire21; GRANT SELECT ON t5 TO newhire21', 8_000);
      const carried = await reachesProd('newhire21', 10_000);
      expect({ dba, carried }).toEqual({ dba: 'ok', carried: true });
    } finally {
      await eve.query('ROLLBACK').catch(() => {});
      await eve.end();
      await settle();
    }
  });

  it('a login does not grow permsync.object_owners without end by passing her objects down a chain of roles she drops', async () => {
    const count = async () =>
      Number((await p.sourceClient.query<{ n: string }>('SELECT count(*)::text AS n FROM permsync.object_owners')).rows[0]?.n);
    await p.everywhere('CREATE SCHEMA scratch17; GRANT USAGE, CREATE ON SCHEMA scratch17 TO PUBLIC');
    await asMallory(`CREATE ROLE chain17_0; GRANT chain17_0 TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
    await asMallory(`SET permsync.capture = off; SET ROLE chain17_0; DO $$BEGIN
        FOR i IN 1..200 LOOP EXECUTE format('CREATE FUNCTION scratch17.chain17_%s() RETURNS int LANGUAGE sql AS ''SELECT 1''', i); END LOOP;
      END$$`);
    await settle();
    const before = await count();
    // Each hop: a new role of hers takes the functions unseen (REASSIGN OWNED), the last one is dropped.
    for (let k = 0; k < 10; k++) {
      await asMallory(`CREATE ROLE chain17_${k + 1}; GRANT chain17_${k + 1} TO ${MALLORY} WITH INHERIT TRUE, SET TRUE;
        REASSIGN OWNED BY chain17_${k} TO chain17_${k + 1}; DROP ROLE chain17_${k}`);
      await settle();
    }
    await p.sourceClient.query('SELECT * FROM permsync.cleanup_old_logs()');
    // 200 functions, each with one owner now: the drops' releases are done everywhere.
    expect((await count()) - before).toBeLessThan(200);
  });
  it("a login's session settings do not change what the capture of a DBA's DROP ROLE notes, so the next REASSIGN down the chain is released on prod", async () => {
    await p.everywhere('CREATE SCHEMA scratch18; GRANT USAGE, CREATE ON SCHEMA scratch18 TO PUBLIC');
    await asMallory('CREATE TABLE scratch18.mine (id int)');
    await p.dba('CREATE ROLE first18; CREATE ROLE lead18; CREATE ROLE heir18');
    await settle();
    await p.everywhere('SET ROLE first18; CREATE TABLE scratch18.report (id int); RESET ROLE');
    await settle();
    // Mallory's session quotes every identifier; a permission command of hers outside READ
    // COMMITTED compares the role catalogs, and captures the DBA's drop before the watcher does.
    // (She runs it in a loop; the daemon is stopped meanwhile here so that she surely wins
    // the race with its role watcher, which looks every 500 ms by default.)
    const quoting = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    await quoting.connect();
    await daemon.stop();
    try {
      await quoting.query('SET quote_all_identifiers = on');
      await p.dba('REASSIGN OWNED BY first18 TO lead18; DROP OWNED BY first18; DROP ROLE first18');
      await quoting.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; GRANT SELECT ON scratch18.mine TO PUBLIC; COMMIT`);
    } finally {
      await quoting.end();
      daemon = await p.startDaemon(config);
    }
    await settle();
    const { rows } = await p.sourceClient.query<{ identity: string }>(
      `SELECT identity FROM permsync.object_owners WHERE classid = 'pg_class'::regclass AND objid = 'scratch18.report'::regclass AND owner_oid = 'lead18'::regrole`,
    );
    const start = await lastCommitSeq();
    await p.dba('REASSIGN OWNED BY lead18 TO heir18; DROP OWNED BY lead18; DROP ROLE lead18');
    await settle();
    await thenExpect(
      {
        noted: rows.map((r) => r.identity),
        owner: await prodOwner('scratch18.report'),
        state: await prodState(),
        failed: await prodFailuresSince(start),
      },
      {
        noted: ['pg_class scratch18.report'],
        owner: 'heir18',
        state: 'ok',
        failed: [],
      },
    );
  });
});

describe('role scope: roles provisioned on prod by hand', () => {
  it("where prod's rules keep CREATE and DROP ROLE off it, a role the source makes of a dropped role's name is not taken for prod's role", async () => {
    const q = await startPipeline(['prod']);
    let handDaemon: Daemon | undefined;
    try {
      const handProd = q.env('prod').client;
      await q.dba(`CREATE ROLE ${MALLORY} LOGIN CREATEROLE PASSWORD '${PW}'; CREATE ROLE reporting3`);
      await handProd.query(`CREATE ROLE ${MALLORY} LOGIN; CREATE ROLE reporting3;
                            CREATE TABLE only_on_prod3 (id int); ALTER TABLE only_on_prod3 OWNER TO reporting3`);
      await q.adopt([MALLORY, 'reporting3']);
      handDaemon = await q.startDaemon(
        q.config({
          environments: [
            {
              rules: [
                { action: 'exclude', commandTag: 'CREATE ROLE' },
                { action: 'exclude', commandTag: 'DROP ROLE' },
              ],
            },
          ],
        }),
      );
      await q.settleRoles();
      await q.dba('DROP ROLE reporting3');
      await q.settleRoles();
      const mallory = new pg.Client(q.source.urlFor('postgres', MALLORY, PW));
      await mallory.connect();
      try {
        await mallory.query('CREATE ROLE reporting3');
        await q.settleRoles();
        await mallory.query('GRANT reporting3 TO mallory');
        await q.settleRoles();
      } finally {
        await mallory.end();
      }
      const { rows } = await handProd.query<{ can: boolean }>(`SELECT has_table_privilege($1, 'only_on_prod3', 'SELECT') AS can`, [MALLORY]);
      expect(rows[0]?.can).toBe(false);
    } finally {
      await handDaemon?.stop();
      await q.close();
    }
  });
});

describe('role scope: a reconcile ahead of the batches', () => {
  it("a role reconcile made for the source's role of a name is not taken for an earlier role of that name the batches still name", async () => {
    const q = await startPipeline(['prod']);
    let ahead: Daemon | undefined;
    try {
      await q.everywhere('CREATE TABLE t1 (id int); CREATE TABLE t2 (id int)');
      const configured = q.config();
      ahead = await q.startDaemon(configured);
      await q.settleRoles();
      await ahead.stop();
      // Each change its own role watcher batch, none carried yet: reconcile runs ahead of them.
      const look = () => q.dba('SELECT permsync.capture_role_changes()');
      await q.dba('CREATE ROLE r1');
      await look();
      await q.dba('DROP ROLE r1');
      await look();
      await q.dba('CREATE ROLE r1');
      await look();
      await q.dba('GRANT SELECT ON t1 TO r1');
      const environment = configured.environments[0] as Config['environments'][number];
      expect((await reconcile(configured, environment, q.sourceClient, { apply: true, dropExtraRoles: false })).failure).toBeUndefined();
      ahead = await q.startDaemon(configured);
      await q.settleRoles();
      await q.dba('GRANT SELECT ON t2 TO r1');
      await q.settleRoles();
      // Both grants, the one reconcile made too: the backlog's drop of the earlier r1 released nothing of this one.
      const { rows } = await q
        .env('prod')
        .client.query<{ t1: boolean; t2: boolean }>(
          `SELECT has_table_privilege('r1', 't1', 'SELECT') AS t1, has_table_privilege('r1', 't2', 'SELECT') AS t2`,
        );
      const { rows: conflicts } = await q.sourceClient.query(`SELECT role_name FROM permsync.role_conflicts`);
      expect({ ...rows[0], conflicts }).toEqual({ t1: true, t2: true, conflicts: [] });
    } finally {
      await ahead?.stop();
      await q.close();
    }
  });
});

describe('role scope: spare names', () => {
  it("a spare name a login made and dropped, which prod's rules keep there, does not turn a DBA's swap against prod", async () => {
    const q = await startPipeline(['prod']);
    let keeping: Daemon | undefined;
    try {
      await q.dba(`CREATE ROLE ${MALLORY} LOGIN CREATEROLE PASSWORD '${PW}'`);
      await q.everywhere('CREATE TABLE t1 (id int)');
      keeping = await q.startDaemon(q.config({ environments: [{ rules: [{ action: 'exclude', commandTag: 'DROP ROLE' }] }] }));
      await q.dba('CREATE ROLE blue; CREATE ROLE green');
      await q.settleRoles();
      const { rows } = await q.sourceClient.query<{ oid: string }>(`SELECT 'blue'::regrole::oid::text AS oid`);
      const mallory = new pg.Client(q.source.urlFor('postgres', MALLORY, PW));
      await mallory.connect();
      try {
        // The spare names an earlier watcher picked first, made and carried to prod, then dropped (prod keeps them).
        for (const n of [0, 1]) {
          await mallory.query(`CREATE ROLE "permsync_renaming_${rows[0]?.oid}_${n}"`);
          await q.settleRoles();
          await mallory.query(`DROP ROLE "permsync_renaming_${rows[0]?.oid}_${n}"`);
          await q.settleRoles();
        }
      } finally {
        await mallory.end();
      }
      await q.dba('ALTER ROLE blue RENAME TO tmp; ALTER ROLE green RENAME TO blue; ALTER ROLE tmp RENAME TO green');
      await q.settleRoles();
      await q.dba('GRANT SELECT ON t1 TO blue');
      await q.settleRoles();
      const { rows: can } = await q.env('prod').client.query<{ can: boolean }>(`SELECT has_table_privilege('blue', 't1', 'SELECT') AS can`);
      const { rows: conflicts } = await q.sourceClient.query(`SELECT role_name FROM permsync.role_conflicts`);
      expect({ can: can[0]?.can, conflicts }).toEqual({ can: true, conflicts: [] });
    } finally {
      await keeping?.stop();
      await q.close();
    }
  });
});

describe('role scope: object_owners, a third attacker read', () => {
  it("a login's REPEATABLE READ transaction begun before a DBA's REASSIGN OWNED does not rename the dropped role's note of what she got, to take a table the role owns on prod alone", async () => {
    await p.everywhere('CREATE SCHEMA scratch31; GRANT USAGE, CREATE ON SCHEMA scratch31 TO PUBLIC');
    await p.dba('CREATE ROLE contractor31');
    await settle();
    // The contractor's scratch table on the source, and a table of the contractor's on prod alone.
    await p.dba('SET ROLE contractor31; CREATE TABLE scratch31.tmp_import (id int); RESET ROLE');
    await prod.query('CREATE TABLE scratch31.payroll (id int); ALTER TABLE scratch31.payroll OWNER TO contractor31');
    await settle();
    // Mallory keeps a REPEATABLE READ transaction open, its snapshot taken while the contractor owns the table.
    const stale = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    await stale.connect();
    try {
      await stale.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
      // The contractor leaves; a DBA gives mallory what the contractor owned on the source.
      await p.dba('REASSIGN OWNED BY contractor31 TO mallory');
      // In her old snapshot pg_shdepend still names the contractor as the owner: her rename must not note the new name as his.
      await stale.query('ALTER TABLE scratch31.tmp_import RENAME TO payroll');
      await stale.query('COMMIT');
    } finally {
      await stale.end();
    }
    const { rows: noted } = await p.sourceClient.query<{ owner: string; identity: string }>(
      `SELECT coalesce(owner_oid::regrole::text, owner_oid::text) AS owner, identity FROM permsync.object_owners
        WHERE classid = 'pg_class'::regclass AND objid = 'scratch31.payroll'::regclass ORDER BY 1`,
    );
    const start = await lastCommitSeq();
    await p.dba('DROP OWNED BY contractor31; DROP ROLE contractor31');
    await untilProdRan(start);
    const outcome = {
      noted,
      owner: await prodOwner('scratch31.payroll'),
      reads: await malloryReadsOnly('scratch31.payroll'),
      state: await prodState(),
    };
    if ((await prodState()) === 'held') {
      await skipProdHold();
      await settle();
    }
    expect(outcome).toEqual({
      noted: [
        { owner: 'contractor31', identity: 'pg_class scratch31.tmp_import' },
        { owner: 'mallory', identity: 'pg_class scratch31.payroll' },
      ],
      owner: 'contractor31',
      reads: false,
      state: 'held',
    });
  });

  it("a login's open transaction that renamed a table of hers does not stall a DBA's rename of the schema it is in", async () => {
    await p.everywhere('CREATE SCHEMA app32; GRANT USAGE, CREATE ON SCHEMA app32 TO PUBLIC');
    await asMallory('CREATE TABLE app32.mine (id int)');
    const holder = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    await holder.connect();
    const dba = new pg.Client(p.source.url);
    await dba.connect();
    try {
      // Her rename updates her note of the table, and she leaves the transaction open.
      await holder.query('BEGIN; ALTER TABLE app32.mine RENAME TO mine2');
      // PostgreSQL itself makes a schema's rename wait on nothing in it.
      await dba.query('SET statement_timeout = 5000');
      const renamed = await dba.query('ALTER SCHEMA app32 RENAME TO app32_renamed').then(
        () => 'ok',
        (error: Error) => error.message,
      );
      expect(renamed).toBe('ok');
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
      await dba.end();
      await settle();
    }
  });
  it("a login's open transaction that dropped a table of hers does not stall retention (cleanup_old_logs), nor the environments' rows it locks", async () => {
    await p.everywhere('CREATE SCHEMA scratch33; GRANT USAGE, CREATE ON SCHEMA scratch33 TO PUBLIC');
    // A role of hers makes a table, gives it to her, and is dropped: its note of the table stays until retention.
    await asMallory(`CREATE ROLE m33; GRANT m33 TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
    await asMallory(`SET ROLE m33; CREATE TABLE scratch33.t (id int); RESET ROLE; ALTER TABLE scratch33.t OWNER TO ${MALLORY}; DROP ROLE m33`);
    await settle();
    const holder = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    await holder.connect();
    const dba = new pg.Client(p.source.url);
    await dba.connect();
    try {
      // Her DROP TABLE deletes the table's notes (the dropped role's with them), and she leaves the transaction open.
      await holder.query('BEGIN; DROP TABLE scratch33.t');
      await dba.query('SET statement_timeout = 5000');
      const cleaned = await dba.query('SELECT * FROM permsync.cleanup_old_logs()').then(
        () => 'ok',
        (error: Error) => error.message,
      );
      expect(cleaned).toBe('ok');
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
      await dba.end();
      await settle();
    }
  });

  it("a table a DBA gave mallory on the source, whose batch an operator skipped on prod, is not handed to her on prod by the release of its former owner's DROP ROLE", async () => {
    await p.everywhere('CREATE SCHEMA scratch34; GRANT USAGE, CREATE ON SCHEMA scratch34 TO PUBLIC');
    await p.dba('CREATE ROLE owner34');
    await settle();
    await p.everywhere('SET ROLE owner34; CREATE TABLE scratch34.ledger (id int); RESET ROLE');
    await p.dba('CREATE TABLE scratch34.source_only (id int)');
    await settle();
    // The DBA gives mallory the table on the source; prod holds on the batch, and an operator skips it there.
    await p.dba(`ALTER TABLE scratch34.ledger OWNER TO ${MALLORY}; GRANT SELECT ON scratch34.source_only TO PUBLIC`);
    await skipProdHold();
    await settle();
    const skipped = await prodOwner('scratch34.ledger');
    // Later the role, which owns nothing on the source now, is dropped.
    const start = await lastCommitSeq();
    await p.dba('DROP ROLE owner34');
    await untilProdRan(start);
    const outcome = { skipped, owner: await prodOwner('scratch34.ledger'), state: await prodState() };
    if ((await prodState()) === 'held') {
      await skipProdHold();
      await settle();
    }
    expect(outcome).toEqual({ skipped: 'owner34', owner: 'owner34', state: 'held' });
  });
});

describe('role scope: object_owners, a fourth attacker read', () => {
  it("a table a DBA gave mallory in a SERIALIZABLE migration, whose batch an operator skipped on prod, is not handed to her on prod by the release of its former owner's DROP ROLE", async () => {
    await p.everywhere('CREATE SCHEMA scratch41; GRANT USAGE, CREATE ON SCHEMA scratch41 TO PUBLIC');
    await p.dba('CREATE ROLE owner41');
    await settle();
    await p.everywhere('SET ROLE owner41; CREATE TABLE scratch41.ledger (id int); RESET ROLE');
    await p.dba('CREATE TABLE scratch41.source_only (id int)');
    await settle();
    // As in the third read's last test, but the DBA's migration runs SERIALIZABLE: nothing is noted there, so the owner change ends no note.
    await p.dba(
      `BEGIN ISOLATION LEVEL SERIALIZABLE; ALTER TABLE scratch41.ledger OWNER TO ${MALLORY}; GRANT SELECT ON scratch41.source_only TO PUBLIC; COMMIT`,
    );
    await skipProdHold();
    await settle();
    const skipped = await prodOwner('scratch41.ledger');
    const start = await lastCommitSeq();
    await p.dba('DROP ROLE owner41');
    await untilProdRan(start);
    await thenExpect(
      { skipped, owner: await prodOwner('scratch41.ledger'), reads: await malloryReadsOnly('scratch41.ledger'), state: await prodState() },
      { skipped: 'owner41', owner: 'owner41', reads: false, state: 'held' },
    );
  });

  it('a table a SERIALIZABLE migration made as a role, which a DBA then releases and drops, is released on prod', async () => {
    await p.everywhere('CREATE SCHEMA app42; GRANT USAGE, CREATE ON SCHEMA app42 TO PUBLIC');
    await p.dba('CREATE ROLE leaver42; CREATE ROLE heir42');
    await settle();
    await p.everywhere('BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL ROLE leaver42; CREATE TABLE app42.orders (id int); COMMIT');
    const start = await lastCommitSeq();
    await p.dba('REASSIGN OWNED BY leaver42 TO heir42; DROP OWNED BY leaver42; DROP ROLE leaver42');
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodOwner('app42.orders'), state: await prodState(), failed: (await prodFailuresSince(start)).map((f) => f.error_code) },
      { owner: 'heir42', state: 'ok', failed: [] },
    );
  });

  it("a login's REPEATABLE READ capture of a DBA's DROP ROLE, then an open transaction, does not keep the next REASSIGN OWNED down a chain from being released on prod", async () => {
    await p.everywhere('CREATE SCHEMA scratch43; GRANT USAGE, CREATE ON SCHEMA scratch43 TO PUBLIC');
    await p.dba('CREATE ROLE first43; CREATE ROLE lead43; CREATE ROLE heir43');
    await asMallory('CREATE ROLE m43; CREATE TABLE scratch43.mine (id int)');
    await settle();
    await p.everywhere('SET ROLE first43; CREATE TABLE scratch43.report (id int); RESET ROLE');
    const grab = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    grab.on('error', () => {});
    await grab.connect();
    let first: unknown;
    try {
      let start = await lastCommitSeq();
      // (Mallory polls for the drop and wins the race with the role watcher, which looks every
      // 500 ms by default; the daemon is stopped meanwhile here so that she surely does.)
      await daemon.stop();
      try {
        // A DBA passes the leaver's table to the lead and drops the leaver, as in test 708.
        await p.dba('REASSIGN OWNED BY first43 TO lead43; DROP OWNED BY first43; DROP ROLE first43');
        // Before the watcher looks, mallory captures the DROP ROLE in a REPEATABLE READ transaction of hers (a change of
        // her own role makes her command capture), then captures again in a transaction she leaves open.
        await grab.query(
          `BEGIN ISOLATION LEVEL REPEATABLE READ; ALTER ROLE m43 CONNECTION LIMIT 6; DO $$BEGIN EXECUTE 'GRANT SELECT ON scratch43.mine TO PUBLIC'; END$$; COMMIT;
           BEGIN; ALTER ROLE m43 CONNECTION LIMIT 7; DO $$BEGIN EXECUTE 'GRANT SELECT ON scratch43.mine TO PUBLIC'; END$$`,
        );
      } finally {
        daemon = await p.startDaemon(config);
      }
      await untilProdRan(start);
      await settle();
      first = { owner: await prodOwner('scratch43.report'), state: await prodState() };
      // Later the lead leaves too: the DBA passes the table on to the heir and drops the lead.
      start = await lastCommitSeq();
      await p.dba('REASSIGN OWNED BY lead43 TO heir43; DROP OWNED BY lead43; DROP ROLE lead43');
      await untilProdRan(start);
      await settle().catch(() => {});
    } finally {
      await grab.end().catch(() => {});
    }
    const noted = (
      await p.sourceClient.query<{ owner: string }>(
        `SELECT coalesce(owner_oid::regrole::text, owner_oid::text) AS owner FROM permsync.object_owners
          WHERE classid = 'pg_class'::regclass AND objid = 'scratch43.report'::regclass ORDER BY 1`,
      )
    ).rows.map((r) => r.owner);
    const second = { owner: await prodOwner('scratch43.report'), state: await prodState() };
    // The operator retries once she is gone: prod holds still.
    if ((await prodState()) === 'held') await retryProd();
    const retried = { owner: await prodOwner('scratch43.report'), state: await prodState() };
    await thenExpect(
      { first, noted, second, retried },
      {
        first: { owner: 'lead43', state: 'ok' },
        noted: expect.arrayContaining(['heir43']),
        second: { owner: 'heir43', state: 'ok' },
        retried: { owner: 'heir43', state: 'ok' },
      },
    );
  });

  it('a table a dropped role left to a login by REASSIGN OWNED, in a schema of hers she renamed before, does not take a table the role owns on prod alone', async () => {
    await p.dba('CREATE ROLE contractor44');
    // Mallory may make and rename schemas of her own (CREATE on the database), and has one.
    await p.dba(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA mine44 AUTHORIZATION ${MALLORY}`);
    await settle();
    // Mallory lets the contractor work in her schema; the contractor's scratch table there.
    await asMallory('SET permsync.capture = off; GRANT USAGE, CREATE ON SCHEMA mine44 TO contractor44');
    await p.dba('SET ROLE contractor44; CREATE TABLE mine44.salaries (id int); RESET ROLE');
    // A table of the contractor's on prod alone, in a schema the source does not have.
    await prod.query('CREATE SCHEMA payroll44; CREATE TABLE payroll44.salaries (id int); ALTER TABLE payroll44.salaries OWNER TO contractor44');
    await settle();
    // While the contractor still owns it, mallory renames her schema after prod's.
    await asMallory('ALTER SCHEMA mine44 RENAME TO payroll44');
    // The contractor leaves; a DBA gives mallory what the contractor owned on the source.
    const start = await lastCommitSeq();
    await p.dba('REASSIGN OWNED BY contractor44 TO mallory; DROP OWNED BY contractor44; DROP ROLE contractor44');
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodOwner('payroll44.salaries'), reads: await malloryReadsOnly('payroll44.salaries'), state: await prodState() },
      { owner: 'contractor44', reads: false, state: 'held' },
    );
  });
});

describe('role scope: object_owners, a fifth attacker read', () => {
  it("a table in a login's schema she renamed after a prod-only table's, while another role owned it, is not given to her on prod once a DBA passes it down a chain of leavers to her", async () => {
    await p.dba('CREATE ROLE first51; CREATE ROLE contractor51');
    // Mallory may make and rename schemas of her own (CREATE on the database), and has one.
    await p.dba(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA mine51 AUTHORIZATION ${MALLORY}`);
    await settle();
    // Mallory lets a colleague work in her schema; the colleague's scratch table there, on the source alone.
    await asMallory('SET permsync.capture = off; GRANT USAGE, CREATE ON SCHEMA mine51 TO first51');
    await p.dba('SET ROLE first51; CREATE TABLE mine51.salaries (id int); RESET ROLE');
    // A table of the contractor's on prod alone, in a schema the source does not have.
    await prod.query('CREATE SCHEMA payroll51; CREATE TABLE payroll51.salaries (id int); ALTER TABLE payroll51.salaries OWNER TO contractor51');
    await settle();
    // While the colleague owns the table, mallory renames her schema after prod's: not noted as the colleague's (test 1357).
    await asMallory('ALTER SCHEMA mine51 RENAME TO payroll51');
    // The colleague leaves; a DBA passes what the colleague owned to the contractor. The capture of the DROP ROLE
    // notes the table as the contractor's, under the name it has now: the one mallory gave it.
    let start = await lastCommitSeq();
    await p.dba('REASSIGN OWNED BY first51 TO contractor51; DROP OWNED BY first51; DROP ROLE first51');
    await untilProdRan(start);
    await settle();
    const noted = (
      await p.sourceClient.query<{ owner: string; identity: string }>(
        `SELECT coalesce(owner_oid::regrole::text, owner_oid::text) AS owner, identity FROM permsync.object_owners
          WHERE classid = 'pg_class'::regclass AND objid = 'payroll51.salaries'::regclass ORDER BY 1, 2`,
      )
    ).rows;
    // Later the contractor leaves too, and a DBA gives mallory what the contractor owned on the source.
    start = await lastCommitSeq();
    await p.dba(`REASSIGN OWNED BY contractor51 TO ${MALLORY}; DROP OWNED BY contractor51; DROP ROLE contractor51`);
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { noted, owner: await prodOwner('payroll51.salaries'), reads: await malloryReadsOnly('payroll51.salaries'), state: await prodState() },
      { noted: expect.anything(), owner: 'contractor51', reads: false, state: 'held' },
    );
  });

  it("a table in a login's schema she renamed after a prod-only table's, then altered by its owner, is not given to her on prod when a DBA releases and drops the owner", async () => {
    await p.dba('CREATE ROLE contractor52');
    await p.dba(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA mine52 AUTHORIZATION ${MALLORY}`);
    await settle();
    await asMallory('SET permsync.capture = off; GRANT USAGE, CREATE ON SCHEMA mine52 TO contractor52');
    // The contractor's scratch table in her schema, on the source alone; a table of the contractor's on prod alone.
    await p.dba('SET ROLE contractor52; CREATE TABLE mine52.salaries (id int); RESET ROLE');
    await prod.query('CREATE SCHEMA payroll52; CREATE TABLE payroll52.salaries (id int); ALTER TABLE payroll52.salaries OWNER TO contractor52');
    await settle();
    await asMallory('ALTER SCHEMA mine52 RENAME TO payroll52');
    // The contractor goes on working on his table: his ALTER TABLE notes it as his under the name mallory gave it.
    await p.dba('SET ROLE contractor52; ALTER TABLE payroll52.salaries ADD COLUMN note text; RESET ROLE');
    const start = await lastCommitSeq();
    await p.dba(`REASSIGN OWNED BY contractor52 TO ${MALLORY}; DROP OWNED BY contractor52; DROP ROLE contractor52`);
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodOwner('payroll52.salaries'), reads: await malloryReadsOnly('payroll52.salaries'), state: await prodState() },
      { owner: 'contractor52', reads: false, state: 'held' },
    );
  });
});

describe('role scope: object_owners, a sixth attacker read', () => {
  /** The owner of routine `fn` (regprocedure text) on prod. */
  const prodRoutineOwner = async (fn: string) =>
    (await prod.query<{ owner: string }>(`SELECT proowner::regrole::text AS owner FROM pg_proc WHERE oid = $1::regprocedure`, [fn])).rows[0]?.owner;

  it("a routine that takes a row of a login's table, renamed by her after a prod-only routine's, is not given to her on prod when its owner alters it and a DBA releases and drops him", async () => {
    await p.everywhere('CREATE SCHEMA scratch61; GRANT USAGE, CREATE ON SCHEMA scratch61 TO PUBLIC');
    await p.dba('CREATE ROLE contractor61');
    await p.dba(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA mine61 AUTHORIZATION ${MALLORY}`);
    await settle();
    // Mallory's table, whose rows the contractor's routine takes (on the source alone).
    await asMallory('SET permsync.capture = off; CREATE TABLE mine61.accounts (id int); GRANT USAGE ON SCHEMA mine61 TO PUBLIC');
    await p.dba(`SET ROLE contractor61; CREATE FUNCTION scratch61.total(mine61.accounts) RETURNS int LANGUAGE sql AS 'SELECT 1'; RESET ROLE`);
    // A routine of the contractor's on prod alone, taking rows of prod's own table.
    await prod.query(`CREATE SCHEMA mine61; CREATE TABLE mine61.salaries (id int);
      CREATE FUNCTION scratch61.total(mine61.salaries) RETURNS int LANGUAGE sql AS 'SELECT 2';
      ALTER FUNCTION scratch61.total(mine61.salaries) OWNER TO contractor61`);
    await settle();
    // Mallory renames her table after prod's: the routine's argument type (the table's row type) is renamed with it.
    // The routine depends on the row type, not on the table the command names: no mark is left under its new name.
    await asMallory('ALTER TABLE mine61.accounts RENAME TO salaries');
    // The contractor goes on working on his routine: his ALTER notes it as his under the name mallory gave it.
    await p.dba('SET ROLE contractor61; ALTER FUNCTION scratch61.total(mine61.salaries) SET work_mem = 64; RESET ROLE');
    const noted = (
      await p.sourceClient.query<{ owner: string; identity: string }>(
        `SELECT coalesce(owner_oid::regrole::text, owner_oid::text) AS owner, identity FROM permsync.object_owners
          WHERE classid = 'pg_proc'::regclass AND objid = 'scratch61.total(mine61.salaries)'::regprocedure ORDER BY 1, 2`,
      )
    ).rows;
    const start = await lastCommitSeq();
    await p.dba(`REASSIGN OWNED BY contractor61 TO ${MALLORY}; DROP OWNED BY contractor61; DROP ROLE contractor61`);
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { noted, owner: await prodRoutineOwner('scratch61.total(mine61.salaries)'), state: await prodState() },
      { noted: expect.anything(), owner: 'contractor61', state: 'held' },
    );
  });

  it("a routine that takes a login's type, whose schema she renamed after a prod-only one's, is not given to her on prod once a DBA passes it down a chain of leavers to her", async () => {
    await p.everywhere('CREATE SCHEMA scratch62; GRANT USAGE, CREATE ON SCHEMA scratch62 TO PUBLIC');
    await p.dba('CREATE ROLE first62; CREATE ROLE contractor62');
    await p.dba(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA mine62 AUTHORIZATION ${MALLORY}`);
    await settle();
    // Mallory's type, which a colleague's routine takes (on the source alone).
    await asMallory('SET permsync.capture = off; CREATE TYPE mine62.amount AS (v numeric); GRANT USAGE ON SCHEMA mine62 TO PUBLIC');
    await p.dba(`SET ROLE first62; CREATE FUNCTION scratch62.total(mine62.amount) RETURNS int LANGUAGE sql AS 'SELECT 1'; RESET ROLE`);
    // A routine of the contractor's on prod alone, taking a type in a schema the source does not have.
    await prod.query(`CREATE SCHEMA payroll62; CREATE TYPE payroll62.amount AS (v numeric);
      CREATE FUNCTION scratch62.total(payroll62.amount) RETURNS int LANGUAGE sql AS 'SELECT 2';
      ALTER FUNCTION scratch62.total(payroll62.amount) OWNER TO contractor62`);
    await settle();
    // Mallory renames her schema after prod's: the routine, in another schema, takes payroll62.amount now, and nothing marks that name.
    await asMallory('ALTER SCHEMA mine62 RENAME TO payroll62');
    // The colleague leaves, his objects to the contractor: the capture of the DROP ROLE notes the routine as the contractor's.
    let start = await lastCommitSeq();
    await p.dba('REASSIGN OWNED BY first62 TO contractor62; DROP OWNED BY first62; DROP ROLE first62');
    await untilProdRan(start);
    await settle();
    // Later the contractor leaves too, and a DBA gives mallory what the contractor owned on the source.
    start = await lastCommitSeq();
    await p.dba(`REASSIGN OWNED BY contractor62 TO ${MALLORY}; DROP OWNED BY contractor62; DROP ROLE contractor62`);
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodRoutineOwner('scratch62.total(payroll62.amount)'), state: await prodState() },
      { owner: 'contractor62', state: 'held' },
    );
  });
  it("a routine that takes an array of a login's type, renamed by her after a prod-only routine's argument, is not given to her on prod when its owner alters it and a DBA releases and drops him", async () => {
    await p.everywhere('CREATE SCHEMA scratch63; GRANT USAGE, CREATE ON SCHEMA scratch63 TO PUBLIC');
    await p.dba('CREATE ROLE contractor63');
    await settle();
    // Mallory's type in the shared schema, whose arrays the contractor's routine takes (on the source alone).
    await asMallory('CREATE TYPE scratch63.amount AS (v numeric)');
    await p.dba(`SET ROLE contractor63; CREATE FUNCTION scratch63.total(scratch63.amount[]) RETURNS int LANGUAGE sql AS 'SELECT 1'; RESET ROLE`);
    await prod.query(`CREATE TYPE scratch63.salary AS (v numeric);
      CREATE FUNCTION scratch63.total(scratch63.salary[]) RETURNS int LANGUAGE sql AS 'SELECT 2';
      ALTER FUNCTION scratch63.total(scratch63.salary[]) OWNER TO contractor63`);
    await settle();
    // Renaming her type renames its array type; the routine depends on the array type, not on hers: nothing is marked.
    await asMallory('ALTER TYPE scratch63.amount RENAME TO salary');
    await p.dba('SET ROLE contractor63; ALTER FUNCTION scratch63.total(scratch63.salary[]) SET work_mem = 64; RESET ROLE');
    const start = await lastCommitSeq();
    await p.dba(`REASSIGN OWNED BY contractor63 TO ${MALLORY}; DROP OWNED BY contractor63; DROP ROLE contractor63`);
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodRoutineOwner('scratch63.total(scratch63.salary[])'), state: await prodState() },
      { owner: 'contractor63', state: 'held' },
    );
  });
});

describe('role scope: object_owners, a seventh attacker read', () => {
  it("a routine that takes an array of rows of a login's table, whose schema she renamed after a prod-only one's, is not given to her on prod when its owner alters it and a DBA releases and drops him", async () => {
    await p.everywhere('CREATE SCHEMA scratch71; GRANT USAGE, CREATE ON SCHEMA scratch71 TO PUBLIC');
    await p.dba('CREATE ROLE contractor71');
    await p.dba(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA mine71 AUTHORIZATION ${MALLORY}`);
    await settle();
    // Mallory's table, an array of whose rows the contractor's routine takes (on the source alone).
    await asMallory('SET permsync.capture = off; CREATE TABLE mine71.accounts (id int); GRANT USAGE ON SCHEMA mine71 TO PUBLIC');
    await p.dba(`SET ROLE contractor71; CREATE FUNCTION scratch71.total(mine71.accounts[]) RETURNS int LANGUAGE sql AS 'SELECT 1'; RESET ROLE`);
    // A routine of the contractor's on prod alone, taking rows of a table in a schema the source does not have.
    await prod.query(`CREATE SCHEMA payroll71; CREATE TABLE payroll71.accounts (id int);
      CREATE FUNCTION scratch71.total(payroll71.accounts[]) RETURNS int LANGUAGE sql AS 'SELECT 2';
      ALTER FUNCTION scratch71.total(payroll71.accounts[]) OWNER TO contractor71`);
    await settle();
    // Mallory renames her schema after prod's. The routine is four links from the schema
    // (schema -> table -> row type -> its array type -> routine); the walk stops at three: nothing marks its new name.
    await asMallory('ALTER SCHEMA mine71 RENAME TO payroll71');
    // The contractor goes on working on his routine: his ALTER notes it as his under the name mallory gave it.
    await p.dba('SET ROLE contractor71; ALTER FUNCTION scratch71.total(payroll71.accounts[]) SET work_mem = 64; RESET ROLE');
    const noted = (
      await p.sourceClient.query<{ owner: string; identity: string }>(
        `SELECT coalesce(owner_oid::regrole::text, owner_oid::text) AS owner, identity FROM permsync.object_owners
          WHERE classid = 'pg_proc'::regclass AND objid = 'scratch71.total(payroll71.accounts[])'::regprocedure ORDER BY 1, 2`,
      )
    ).rows;
    const start = await lastCommitSeq();
    await p.dba(`REASSIGN OWNED BY contractor71 TO ${MALLORY}; DROP OWNED BY contractor71; DROP ROLE contractor71`);
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { noted, owner: await prodRoutineOwner('scratch71.total(payroll71.accounts[])'), state: await prodState() },
      { noted: expect.anything(), owner: 'contractor71', state: 'held' },
    );
  });

  it("a routine that takes a login's type, made after her REPEATABLE READ snapshot and renamed by her after a prod-only routine's, is not given to her on prod when its owner alters it and a DBA releases and drops him", async () => {
    await p.everywhere('CREATE SCHEMA scratch74; GRANT USAGE, CREATE ON SCHEMA scratch74 TO PUBLIC');
    await p.dba('CREATE ROLE contractor74');
    await settle();
    // Mallory's type in the shared schema; a routine of the contractor's on prod alone, taking prod's type of another name.
    await asMallory('CREATE TYPE scratch74.amount AS (v numeric)');
    await prod.query(`CREATE TYPE scratch74.salary AS (v numeric);
      CREATE FUNCTION scratch74.total(scratch74.salary) RETURNS int LANGUAGE sql AS 'SELECT 2';
      ALTER FUNCTION scratch74.total(scratch74.salary) OWNER TO contractor74`);
    const stale = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    await stale.connect();
    try {
      // Mallory takes a snapshot, and keeps it.
      await stale.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
      // The contractor's routine on the source alone, taking her type: made after her snapshot.
      await p.dba(`SET ROLE contractor74; CREATE FUNCTION scratch74.total(scratch74.amount) RETURNS int LANGUAGE sql AS 'SELECT 1'; RESET ROLE`);
      // She renames her type after prod's. The walk of what the rename renamed reads pg_depend in her snapshot: it sees no routine.
      await stale.query('ALTER TYPE scratch74.amount RENAME TO salary');
      await stale.query('COMMIT');
    } finally {
      await stale.end();
    }
    // The contractor goes on working on his routine: his ALTER notes it as his under the name mallory gave it.
    await p.dba('SET ROLE contractor74; ALTER FUNCTION scratch74.total(scratch74.salary) SET work_mem = 64; RESET ROLE');
    const noted = (
      await p.sourceClient.query<{ owner: string; identity: string }>(
        `SELECT coalesce(owner_oid::regrole::text, owner_oid::text) AS owner, identity FROM permsync.object_owners
          WHERE classid = 'pg_proc'::regclass AND objid = 'scratch74.total(scratch74.salary)'::regprocedure ORDER BY 1, 2`,
      )
    ).rows;
    await settle();
    const start = await lastCommitSeq();
    await p.dba(`REASSIGN OWNED BY contractor74 TO ${MALLORY}; DROP OWNED BY contractor74; DROP ROLE contractor74`);
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { noted, owner: await prodRoutineOwner('scratch74.total(scratch74.salary)'), state: await prodState() },
      { noted: expect.anything(), owner: 'contractor74', state: 'held' },
    );
  });

  it("a login's routines taking a DBA's table's rows do not stall the DBA's ALTER TABLE (permsync_owners walked every object that depends on it)", async () => {
    await p.everywhere('CREATE SCHEMA app73; CREATE TABLE app73.orders (id int); GRANT USAGE ON SCHEMA app73 TO PUBLIC');
    await p.dba(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA many73 AUTHORIZATION ${MALLORY}`);
    await settle();
    // Mallory needs no privilege on the table to take its row type: 20,000 routines, 2,000 a command.
    for (let s = 0; s < 10; s++) {
      const routines = Array.from(
        { length: 2000 },
        (_, i) => `CREATE FUNCTION many73.f${s}_${i}(app73.orders) RETURNS int LANGUAGE sql AS 'SELECT 1';`,
      );
      await asMallory(`SET permsync.capture = off; ${routines.join(' ')}`);
    }
    // A DBA's migration adds a column: PostgreSQL alone takes a few milliseconds, whatever depends on the table.
    const dba = new pg.Client(p.source.url);
    await dba.connect();
    try {
      await dba.query('SET statement_timeout = 1000');
      const outcome = await dba.query('ALTER TABLE app73.orders ADD COLUMN note text').then(
        () => 'ok',
        (error: Error) => error.message,
      );
      expect(outcome).toBe('ok');
    } finally {
      await dba.end();
    }
  }, 300_000);

  it("a table a dropped role left to a login by REASSIGN OWNED, renamed by her back to a name it had while the role owned it, does not take the role's table of that name on prod", async () => {
    await p.everywhere('CREATE SCHEMA scratch72; GRANT USAGE, CREATE ON SCHEMA scratch72 TO PUBLIC');
    await p.dba('CREATE ROLE contractor72');
    await settle();
    // The contractor's table on the source was called payroll once; he renamed it (noted as his under both names).
    await p.dba('SET ROLE contractor72; CREATE TABLE scratch72.payroll (id int); ALTER TABLE scratch72.payroll RENAME TO tmp_import; RESET ROLE');
    // A table of the contractor's on prod: the source has none of its name any more.
    await prod.query('CREATE TABLE scratch72.payroll (id int); ALTER TABLE scratch72.payroll OWNER TO contractor72');
    await settle();
    // The contractor leaves; a DBA gives mallory what the contractor owned on the source.
    await p.dba(`REASSIGN OWNED BY contractor72 TO ${MALLORY}`);
    // Mallory renames it back: the contractor's old row under that name counts again.
    await asMallory('ALTER TABLE scratch72.tmp_import RENAME TO payroll');
    const start = await lastCommitSeq();
    await p.dba('DROP OWNED BY contractor72; DROP ROLE contractor72');
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodOwner('scratch72.payroll'), reads: await malloryReadsOnly('scratch72.payroll'), state: await prodState() },
      { owner: 'contractor72', reads: false, state: 'held' },
    );
  });
});

describe('role scope: object_owners, an eighth attacker read', () => {
  it("a login's REPEATABLE READ snapshot from between a DBA's REASSIGN OWNED to a contractor and his rename notes his old name last, so the release does not hand her his prod-only table of that name", async () => {
    await p.everywhere('CREATE SCHEMA scratch81; GRANT USAGE, CREATE ON SCHEMA scratch81 TO PUBLIC');
    await p.dba('CREATE ROLE first81; CREATE ROLE contractor81');
    await settle();
    // A colleague's table on the source alone; a DBA hands the colleague's work to the contractor (the colleague stays).
    await p.dba('SET ROLE first81; CREATE TABLE scratch81.payroll (id int); RESET ROLE');
    await p.dba('REASSIGN OWNED BY first81 TO contractor81');
    // A table of the contractor's on prod alone.
    await prod.query('CREATE TABLE scratch81.payroll (id int); ALTER TABLE scratch81.payroll OWNER TO contractor81');
    await settle();
    const stale = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    await stale.connect();
    try {
      // Mallory takes a snapshot while the contractor holds the table as payroll (REASSIGN noted nothing).
      await stale.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
      // The contractor renames it: his last name for it is tmp_import (noted as his).
      await p.dba('SET ROLE contractor81; ALTER TABLE scratch81.payroll RENAME TO tmp_import; RESET ROLE');
      // He leaves; a DBA gives mallory what he owned on the source.
      await p.dba(`REASSIGN OWNED BY contractor81 TO ${MALLORY}`);
      // In her old snapshot she touches the table, now hers: the version her snapshot shows (his, as payroll) is noted again, last.
      await stale.query('ALTER TABLE scratch81.tmp_import ADD COLUMN c int');
      await stale.query('COMMIT');
    } finally {
      await stale.end();
    }
    await asMallory('ALTER TABLE scratch81.tmp_import RENAME TO payroll');
    const start = await lastCommitSeq();
    await p.dba('DROP OWNED BY contractor81; DROP ROLE contractor81');
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodOwner('scratch81.payroll'), reads: await malloryReadsOnly('scratch81.payroll'), state: await prodState() },
      { owner: 'contractor81', reads: false, state: 'held' },
    );
  });
  it("the same, where the DBA passed the colleague's work on the usual way (REASSIGN OWNED, DROP OWNED, DROP ROLE) and mallory's snapshot is from before the role watcher noted it", async () => {
    await p.everywhere('CREATE SCHEMA scratch82; GRANT USAGE, CREATE ON SCHEMA scratch82 TO PUBLIC');
    await p.dba('CREATE ROLE first82; CREATE ROLE contractor82');
    await settle();
    await p.dba('SET ROLE first82; CREATE TABLE scratch82.payroll (id int); RESET ROLE');
    await prod.query('CREATE TABLE scratch82.payroll (id int); ALTER TABLE scratch82.payroll OWNER TO contractor82');
    await settle();
    const stale = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    await stale.connect();
    // (Mallory polls for the drop and wins the race with the role watcher, which looks every
    // 500 ms by default; the daemon is stopped meanwhile here so that she surely does.)
    await daemon.stop();
    try {
      await p.dba('REASSIGN OWNED BY first82 TO contractor82; DROP OWNED BY first82; DROP ROLE first82');
      await stale.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
      daemon = await p.startDaemon(config);
      await settle();
      await p.dba('SET ROLE contractor82; ALTER TABLE scratch82.payroll RENAME TO tmp_import; RESET ROLE');
      await p.dba(`REASSIGN OWNED BY contractor82 TO ${MALLORY}`);
      await stale.query('ALTER TABLE scratch82.tmp_import ADD COLUMN c int');
      await stale.query('COMMIT');
    } finally {
      await stale.end();
    }
    await asMallory('ALTER TABLE scratch82.tmp_import RENAME TO payroll');
    const start = await lastCommitSeq();
    await p.dba('DROP OWNED BY contractor82; DROP ROLE contractor82');
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodOwner('scratch82.payroll'), reads: await malloryReadsOnly('scratch82.payroll'), state: await prodState() },
      { owner: 'contractor82', reads: false, state: 'held' },
    );
  });

  it("a routine taking a login's type she renamed after a prod-only routine's argument, then moved to another schema by its owner, is not given to her on prod when a DBA releases and drops him", async () => {
    await p.everywhere('CREATE SCHEMA scratch83; CREATE SCHEMA app83; GRANT USAGE, CREATE ON SCHEMA scratch83, app83 TO PUBLIC');
    await p.dba('CREATE ROLE contractor83');
    await settle();
    // Mallory's type in the shared schema, which the contractor's routine takes (on the source alone).
    await asMallory('CREATE TYPE scratch83.amount AS (v numeric)');
    await p.dba(`SET ROLE contractor83; CREATE FUNCTION scratch83.total(scratch83.amount) RETURNS int LANGUAGE sql AS 'SELECT 1'; RESET ROLE`);
    // A routine of the contractor's on prod alone, taking prod's own type of another name.
    await prod.query(`CREATE TYPE scratch83.salary AS (v numeric);
      CREATE FUNCTION app83.total(scratch83.salary) RETURNS int LANGUAGE sql AS 'SELECT 2';
      ALTER FUNCTION app83.total(scratch83.salary) OWNER TO contractor83`);
    await settle();
    // Mallory renames her type after prod's: with an ALTER of his (SET work_mem) the new name would be no one's (the seventh read).
    await asMallory('ALTER TYPE scratch83.amount RENAME TO salary');
    // The contractor moves his routine to app83: its parts changed, so the whole new name, her type's part too, is noted as his.
    await p.dba('SET ROLE contractor83; ALTER FUNCTION scratch83.total(scratch83.salary) SET SCHEMA app83; RESET ROLE');
    const start = await lastCommitSeq();
    await p.dba(`REASSIGN OWNED BY contractor83 TO ${MALLORY}; DROP OWNED BY contractor83; DROP ROLE contractor83`);
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodRoutineOwner('app83.total(scratch83.salary)'), state: await prodState() },
      { owner: 'contractor83', state: 'held' },
    );
  });
});

describe('role scope: object_owners, a ninth attacker read', () => {
  it("a login's REPEATABLE READ snapshot whose first statement called age() does not get her view of a contractor's table noted as his last name, to be handed his prod-only table of that name", async () => {
    await p.everywhere('CREATE SCHEMA scratch91; GRANT USAGE, CREATE ON SCHEMA scratch91 TO PUBLIC');
    await p.dba('CREATE ROLE first91; CREATE ROLE contractor91');
    await settle();
    await p.dba('SET ROLE first91; CREATE TABLE scratch91.payroll (id int); RESET ROLE');
    await p.dba('REASSIGN OWNED BY first91 TO contractor91');
    await prod.query('CREATE TABLE scratch91.payroll (id int); ALTER TABLE scratch91.payroll OWNER TO contractor91');
    await settle();
    const stale = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
    await stale.connect();
    try {
      // As in the eighth read's first test, but her first statement fixes what age() measures from.
      await stale.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT age('3'::xid)`);
      await p.dba('SET ROLE contractor91; ALTER TABLE scratch91.payroll RENAME TO tmp_import; RESET ROLE');
      await p.dba(`REASSIGN OWNED BY contractor91 TO ${MALLORY}`);
      await stale.query('ALTER TABLE scratch91.tmp_import ADD COLUMN c int');
      await stale.query('COMMIT');
    } finally {
      await stale.end();
    }
    await asMallory('ALTER TABLE scratch91.tmp_import RENAME TO payroll');
    const start = await lastCommitSeq();
    await p.dba('DROP OWNED BY contractor91; DROP ROLE contractor91');
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { owner: await prodOwner('scratch91.payroll'), reads: await malloryReadsOnly('scratch91.payroll'), state: await prodState() },
      { owner: 'contractor91', reads: false, state: 'held' },
    );
  });

  for (const altered of [false, true]) {
    it(`a routine taking a type a login's role renamed after a prod-only routine's argument is not given to her on prod once a DBA has cleaned that role up to a superuser${altered ? ', and its owner altered it since,' : ''} then releases and drops its owner`, async () => {
      const n = altered ? 95 : 94;
      await p.everywhere(`CREATE SCHEMA scratch${n}; GRANT USAGE, CREATE ON SCHEMA scratch${n} TO PUBLIC`);
      await p.dba(`CREATE ROLE contractor${n}`);
      await asMallory(`CREATE ROLE m${n}; GRANT m${n} TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
      await settle();
      await asMallory(`SET ROLE m${n}; CREATE TYPE scratch${n}.amount AS (v numeric)`);
      await p.dba(
        `SET ROLE contractor${n}; CREATE FUNCTION scratch${n}.total(scratch${n}.amount) RETURNS int LANGUAGE sql AS 'SELECT 1'; RESET ROLE`,
      );
      await prod.query(`CREATE TYPE scratch${n}.salary AS (v numeric);
        CREATE FUNCTION scratch${n}.total(scratch${n}.salary) RETURNS int LANGUAGE sql AS 'SELECT 2';
        ALTER FUNCTION scratch${n}.total(scratch${n}.salary) OWNER TO contractor${n}`);
      await settle();
      // Her role renames its type after prod's routine's argument; a DBA then cleans the role up, the usual way.
      await asMallory(`SET ROLE m${n}; ALTER TYPE scratch${n}.amount RENAME TO salary`);
      await p.dba(`REASSIGN OWNED BY m${n} TO postgres; DROP OWNED BY m${n}; DROP ROLE m${n}`);
      await settle();
      // Every role that may rename the type is a superuser now: that says nothing of who did.
      if (altered) await p.dba(`SET ROLE contractor${n}; ALTER FUNCTION scratch${n}.total(scratch${n}.salary) SET work_mem = 64; RESET ROLE`);
      const start = await lastCommitSeq();
      await p.dba(`REASSIGN OWNED BY contractor${n} TO ${MALLORY}; DROP OWNED BY contractor${n}; DROP ROLE contractor${n}`);
      await untilProdRan(start);
      await settle();
      await thenExpect(
        { owner: await prodRoutineOwner(`scratch${n}.total(scratch${n}.salary)`), state: await prodState() },
        { owner: `contractor${n}`, state: 'held' },
      );
    });
  }
});

describe('role scope: object_owners, a tenth attacker read', () => {
  it("a login's commit on her schema during a DBA's REPEATABLE READ migration that gives her a table there, whose batch an operator skipped on prod, does not let the release of its former owner's DROP ROLE hand her prod's table", async () => {
    // Mallory's schema, on the source and prod, in which a colleague keeps a table.
    await p.everywhere(`CREATE SCHEMA mine101 AUTHORIZATION ${MALLORY}; GRANT USAGE, CREATE ON SCHEMA mine101 TO PUBLIC`);
    await p.dba('CREATE ROLE owner101');
    await settle();
    await p.everywhere('SET ROLE owner101; CREATE TABLE mine101.ledger (id int); RESET ROLE');
    await p.dba('CREATE TABLE mine101.source_only (id int)');
    await settle();
    // While the DBA's REPEATABLE READ migration runs, she commits a change to her schema's row:
    // the migration's snapshot shows that row replaced by a commit.
    const dba = new pg.Client(p.source.url);
    await dba.connect();
    try {
      await dba.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
      await asMallory('SET permsync.capture = off; GRANT USAGE ON SCHEMA mine101 TO PUBLIC');
      await dba.query(`ALTER TABLE mine101.ledger OWNER TO ${MALLORY}; GRANT SELECT ON mine101.source_only TO PUBLIC`);
      await dba.query('COMMIT');
    } finally {
      await dba.end();
    }
    // prod holds on the migration's batch (no source_only there); an operator skips it.
    await skipProdHold();
    await settle();
    const skipped = await prodOwner('mine101.ledger');
    const start = await lastCommitSeq();
    await p.dba('DROP ROLE owner101');
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { skipped, owner: await prodOwner('mine101.ledger'), reads: await malloryReadsOnly('mine101.ledger'), state: await prodState() },
      { skipped: 'owner101', owner: 'owner101', reads: false, state: 'held' },
    );
  });

  it("a login's routines of many arguments, owned by a role of hers she drops, do not stall a DBA's GRANT to a new role (the role watcher's look notes their owner, a batch's worth at a time)", async () => {
    await p.dba(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA many104 AUTHORIZATION ${MALLORY}`);
    await asMallory(`CREATE ROLE m104; GRANT m104 TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
    await settle();
    await asMallory('SET permsync.capture = off; GRANT USAGE, CREATE ON SCHEMA many104 TO m104');
    // 8,000 routines of 100 arguments each, made as her role, 1,000 a command.
    const args = Array.from({ length: 100 }, () => 'int').join(', ');
    for (let s = 0; s < 8; s++) {
      await asMallory(`SET permsync.capture = off; SET ROLE m104; DO $$BEGIN
          FOR i IN 1..1000 LOOP EXECUTE format('CREATE FUNCTION many104.f${s}_%s(${args}) RETURNS int LANGUAGE sql AS ''SELECT 1''', i); END LOOP;
        END$$`);
    }
    await settle();
    // She takes them back and drops the role.
    await asMallory(`SET permsync.capture = off; REASSIGN OWNED BY m104 TO ${MALLORY}; REVOKE ALL ON SCHEMA many104 FROM m104; DROP ROLE m104`);
    // A DBA hires someone meanwhile: PostgreSQL alone takes a few milliseconds.
    const dba = new pg.Client(p.source.url);
    await dba.connect();
    try {
      await dba.query('SET statement_timeout = 1000');
      const outcome = await dba.query('CREATE ROLE newhire104; GRANT SELECT ON t5 TO newhire104').then(
        () => 'ok',
        (error: Error) => error.message,
      );
      expect(outcome).toBe('ok');
    } finally {
      await dba.end();
      await settle().catch(() => {});
    }
  }, 300_000);
});

describe('role scope: object_owners, an eleventh attacker read', () => {
  it("a table a DBA gives mallory after its former owner's DROP ROLE, in a batch an operator skips on prod, is not handed to her on prod by the release of that DROP ROLE (prod ran it late)", async () => {
    await p.everywhere('CREATE SCHEMA app117; GRANT USAGE, CREATE ON SCHEMA app117 TO PUBLIC');
    await p.dba('CREATE ROLE leaver117; CREATE ROLE bob117');
    await settle();
    await p.everywhere('SET ROLE leaver117; CREATE TABLE app117.payroll (id int); RESET ROLE');
    await p.dba('CREATE TABLE app117.source_only (id int)');
    await settle();
    const start = await lastCommitSeq();
    // prod is behind (the daemon is stopped here; a hold does the same): the leaver's objects go to
    // bob, then a DBA gives the table to mallory with a grant prod cannot run.
    await daemon.stop();
    try {
      await p.dba('REASSIGN OWNED BY leaver117 TO bob117; DROP OWNED BY leaver117; DROP ROLE leaver117');
      await p.dba(`ALTER TABLE app117.payroll OWNER TO ${MALLORY}; GRANT SELECT ON app117.source_only TO PUBLIC`);
    } finally {
      daemon = await p.startDaemon(config);
    }
    await untilProdRan(start);
    // An operator skips on prod whatever holds there (the DROP ROLE, the DBA's batch): prod keeps the table from mallory.
    while ((await prodState()) !== 'ok') {
      await skipProdHold();
      await settle().catch(() => {});
    }
    expect(await prodOwner('app117.payroll')).not.toBe(MALLORY);
  });

  it("a grant a login commits on a colleague's table (she holds SELECT WITH GRANT OPTION) during a DBA's REPEATABLE READ migration that gives her the table, whose batch an operator skipped on prod, does not let the release of its former owner's DROP ROLE hand her prod's table", async () => {
    await p.everywhere('CREATE SCHEMA app112; GRANT USAGE, CREATE ON SCHEMA app112 TO PUBLIC');
    await p.dba('CREATE ROLE owner112');
    await settle();
    await p.everywhere(
      `SET ROLE owner112; CREATE TABLE app112.ledger (id int); GRANT SELECT ON app112.ledger TO ${MALLORY} WITH GRANT OPTION; RESET ROLE`,
    );
    await p.dba('CREATE TABLE app112.source_only (id int)');
    await settle();
    // While the DBA's migration runs, she commits a grant on the table: the migration's owner
    // change then updates a version its snapshot does not show.
    const dba = new pg.Client(p.source.url);
    await dba.connect();
    try {
      await dba.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
      await asMallory('SET permsync.capture = off; GRANT SELECT ON app112.ledger TO PUBLIC');
      await dba.query(`ALTER TABLE app112.ledger OWNER TO ${MALLORY}; GRANT SELECT ON app112.source_only TO PUBLIC`);
      await dba.query('COMMIT');
    } finally {
      await dba.end();
    }
    // prod holds on the migration's batch (no source_only there); an operator skips it.
    await skipProdHold();
    await settle();
    const skipped = await prodOwner('app112.ledger');
    const start = await lastCommitSeq();
    await p.dba('DROP ROLE owner112');
    await untilProdRan(start);
    await settle();
    await thenExpect(
      { skipped, owner: await prodOwner('app112.ledger'), state: await prodState() },
      { skipped: 'owner112', owner: 'owner112', state: 'held' },
    );
  });

  for (const [n, command] of [
    [113, 'ALTER TABLE app113.notes OWNER TO bob113'],
    [115, 'DROP TABLE app115.notes'],
  ] as const) {
    it(`a login's owner change of her table, committed during a DBA's REPEATABLE READ migration, does not fail the DBA's ${command.split(' ').slice(0, 2).join(' ')}`, async () => {
      await p.everywhere(`CREATE SCHEMA app${n}; GRANT USAGE, CREATE ON SCHEMA app${n} TO PUBLIC`);
      await p.dba(`CREATE ROLE bob${n}`);
      await asMallory(`CREATE ROLE m${n}; GRANT m${n} TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
      await settle();
      // Her table, then enough tables of hers to fill the catalog page its row is on.
      await asMallory(`SET permsync.capture = off; CREATE TABLE app${n}.notes (id int);
        DO $$BEGIN FOR i IN 1..200 LOOP EXECUTE format('CREATE TABLE app${n}.fill_%s (id int)', i); END LOOP; END$$`);
      const dba = new pg.Client(p.source.url);
      await dba.connect();
      try {
        await dba.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
        // She passes the table to a role of hers (her rows for it are ended), and commits.
        await asMallory(`SET permsync.capture = off; ALTER TABLE app${n}.notes OWNER TO m${n}`);
        const outcome = await dba.query(command).then(
          () => 'ok',
          (error: Error) => error.message,
        );
        await dba.query('ROLLBACK');
        expect(outcome).toBe('ok');
      } finally {
        await dba.end();
      }
    });
  }
});
