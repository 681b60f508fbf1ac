import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { SourceStore } from '../src/source/store.js';
import { Target } from '../src/target/target.js';
import type { Daemon } from '../src/daemon.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { runAs } from './support/servers.js';

/**
 * Attackers' reads of the owner watcher (capture_owner_changes, owner_watcher batches):
 * mallory is a login with CREATEROLE on the source; payroll is a role she has no
 * privileges of. Each test failed on the commit before its fix (the attack worked).
 */
let p: Pipeline;
let daemon: Daemon;
let prod: pg.Client;

const MALLORY = 'mallory';
const PW = 'mallory-pw';

/** Runs `sql` as mallory on the source of `on` (the pipeline of the first describe, unless said). */
const asMallory = (sql: string, on: Pipeline = p) => runAs(on.source.urlFor('postgres', MALLORY, PW), sql);

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

async function prodTable(table: string): Promise<{ owner: string; acl: string | null } | undefined> {
  const { rows } = await prod.query<{ owner: string; acl: string | null }>(
    `SELECT relowner::regrole::text AS owner, relacl::text AS acl FROM pg_class WHERE oid = $1::regclass`,
    [table],
  );
  return rows[0];
}

/** The owner the source's ledger last noted for a relation. */
async function ledgerOwner(table: string): Promise<string | undefined> {
  const { rows } = await p.sourceClient.query<{ owner: string }>(
    `SELECT o.owner_oid::regrole::text AS owner FROM permsync.object_owners o
      WHERE o.classid = 'pg_class'::regclass AND o.objid = $1::regclass ORDER BY o.noted DESC LIMIT 1`,
    [table],
  );
  return rows[0]?.owner;
}

/** Every owner the source's ledger noted for a relation, in order ('dropped' for a role gone since, '-' for no one). */
async function ledgerOwners(table: string): Promise<string[]> {
  const { rows } = await p.sourceClient.query<{ owner: string }>(
    `SELECT CASE WHEN o.owner_oid = 0 THEN '-' ELSE coalesce(r.rolname::text, 'dropped') END AS owner
       FROM permsync.object_owners o LEFT JOIN pg_roles r ON r.oid = o.owner_oid
      WHERE o.classid = 'pg_class'::regclass AND o.objid = $1::regclass ORDER BY o.noted`,
    [table],
  );
  return rows.map((r) => r.owner);
}

async function prodState(): Promise<string | undefined> {
  const { rows } = await p.sourceClient.query<{ state: string }>(`SELECT state FROM permsync.v_environment_status WHERE environment = 'prod'`);
  return rows[0]?.state;
}

/**
 * Two sessions of mallory's: `mover` for a transaction she times, `spy` to watch the
 * daemon's sessions on the ledger (permsync.object_owners): each with the modes it holds
 * there, but for the owner look's, which also locks permsync.locks.
 */
async function ledgerSpy(): Promise<{
  mover: pg.Client;
  ledgerSessions: () => Promise<{ pid: number; modes: string[] }[]>;
  end: () => Promise<void>;
}> {
  const spy = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
  const mover = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
  await spy.connect();
  await mover.connect();
  const mine = [
    await spy.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'),
    await mover.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'),
  ].map((r) => r.rows[0]?.pid);
  const { rows: relations } = await p.sourceClient.query<{ ledger: number; locks: number }>(
    `SELECT 'permsync.object_owners'::regclass::oid::int AS ledger, 'permsync.locks'::regclass::oid::int AS locks`,
  );
  const ledgerSessions = async () =>
    (
      await spy.query<{ pid: number; modes: string[] }>(
        `SELECT l.pid, array_agg(l.mode::text) AS modes FROM pg_locks l
          WHERE l.locktype = 'relation' AND l.relation = $2 AND l.granted AND l.pid <> ALL ($1::int[])
            AND NOT EXISTS (SELECT FROM pg_locks k WHERE k.pid = l.pid AND k.locktype = 'relation' AND k.relation = $3)
          GROUP BY l.pid`,
        [mine, relations[0]?.ledger, relations[0]?.locks],
      )
    ).rows;
  const end = async () => {
    await mover.query('ROLLBACK').catch(() => {});
    await spy.end();
    await mover.end();
  };
  return { mover, ledgerSessions, end };
}

async function ownerWatcherRows(on: Pipeline = p): Promise<{ identity: string; reassigned_from: string | null; current_user_name: string }[]> {
  return (
    await on.sourceClient.query<{ identity: string; reassigned_from: string | null; current_user_name: string }>(
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
  it("a DBA's REASSIGN OWNED TO postgres does not converge the grants of prod's postgres table that mallory's schema swap names", async () => {
    // Two schemas of mallory's: in ms a colleague (legacy) keeps a table she may read; in
    // vault the DBA keeps a table of postgres's that only payroll may read.
    await p.everywhere(`
      GRANT CREATE ON DATABASE postgres TO ${MALLORY};
      CREATE SCHEMA ms2 AUTHORIZATION ${MALLORY}; CREATE SCHEMA vault AUTHORIZATION ${MALLORY};
      GRANT USAGE, CREATE ON SCHEMA ms2 TO legacy;
      CREATE TABLE ms2.accounts (id int); ALTER TABLE ms2.accounts OWNER TO legacy;
      GRANT SELECT ON ms2.accounts TO ${MALLORY};
      CREATE TABLE vault.accounts (id int, secret text);
      REVOKE ALL ON vault.accounts FROM PUBLIC; GRANT SELECT ON vault.accounts TO payroll`);
    await p.settle();
    const before = await prodTable('vault.accounts');
    expect(before?.owner).toBe('postgres');
    expect(before?.acl).toContain('payroll=r/postgres');
    expect(before?.acl).not.toContain(MALLORY);

    // On the source mallory swaps her two schemas' names (schema renames are never carried).
    await asMallory(`ALTER SCHEMA ms2 RENAME TO swap; ALTER SCHEMA vault RENAME TO ms2; ALTER SCHEMA swap RENAME TO vault`);
    // The DBA retires legacy; the source's legacy table, now printed vault.accounts, is postgres's.
    await p.dba('REASSIGN OWNED BY legacy TO postgres');
    await waitFor(async () => (await ledgerOwner('vault.accounts')) !== 'legacy', 20_000, 'the owner watcher');
    await p.settle();

    // prod's vault.accounts (postgres's) keeps its grants: payroll keeps SELECT, mallory gets none.
    const after = await prodTable('vault.accounts');
    expect(after?.owner).toBe('postgres');
    expect(after?.acl).toContain('payroll=r/postgres');
    expect(after?.acl).not.toContain(MALLORY);
  });

  it("a DBA's REASSIGN OWNED BY a departing login TO postgres does not converge her made-up grants onto prod's own table of that name", async () => {
    // eve, an ordinary login, may create in schema app everywhere; prod has a table of
    // postgres's there (its own, or one the source dropped) that only payroll may read.
    await p.dba(`CREATE ROLE eve LOGIN PASSWORD 'eve-pw'`);
    await p.settleRoles();
    await p.everywhere(`CREATE SCHEMA app; GRANT USAGE, CREATE ON SCHEMA app TO eve`);
    await prod.query(`CREATE TABLE app.audit_trail (id int, detail text);
                      REVOKE ALL ON app.audit_trail FROM PUBLIC; GRANT SELECT ON app.audit_trail TO payroll`);
    // On the source eve makes her own app.audit_trail, readable by everyone.
    const eve = new pg.Client(p.source.urlFor('postgres', 'eve', 'eve-pw'));
    await eve.connect();
    try {
      await eve.query(`CREATE TABLE app.audit_trail (id int); GRANT SELECT ON app.audit_trail TO PUBLIC; GRANT ALL ON app.audit_trail TO ${MALLORY}`);
    } finally {
      await eve.end();
    }
    await p.settle();
    expect((await prodTable('app.audit_trail'))?.acl).toBe('{postgres=arwdDxtm/postgres,payroll=r/postgres}');

    // eve leaves: the DBA gives what she owns to postgres, as one does before DROP ROLE.
    await p.dba('REASSIGN OWNED BY eve TO postgres');
    await waitFor(async () => (await ownerWatcherRows()).some((r) => r.identity === 'app.audit_trail'), 20_000, 'the owner watcher');
    await p.settle();

    // prod's own app.audit_trail keeps its grants.
    const after = await prodTable('app.audit_trail');
    expect(after?.owner).toBe('postgres');
    expect(after?.acl).toBe('{postgres=arwdDxtm/postgres,payroll=r/postgres}');
  });
  it("the ledger rows of a login's functions that went with her session's temporary type cost the owner look once, not at every look", async () => {
    await p.everywhere(`CREATE SCHEMA tmpfn; GRANT USAGE, CREATE ON SCHEMA tmpfn TO ${MALLORY}`);
    await asMallory(`CREATE TEMP TABLE tt (x int);
                     DO $$BEGIN FOR i IN 1..20 LOOP
                       EXECUTE format('CREATE FUNCTION tmpfn.f%s(pg_temp.tt) RETURNS int LANGUAGE sql AS ''SELECT 1''', i);
                     END LOOP; END$$`);
    // Her session has ended: PostgreSQL dropped the functions with its temporary objects, and no event trigger fired.
    const left = async () =>
      Number(
        (
          await p.sourceClient.query<{ n: string }>(
            `SELECT count(*) AS n FROM permsync.object_owners o
              WHERE o.classid = 'pg_proc'::regclass AND NOT EXISTS (SELECT FROM pg_proc f WHERE f.oid = o.objid)`,
          )
        ).rows[0]?.n,
      );
    await waitFor(async () => (await left()) === 0, 20_000, 'the owner look to forget them');
  });
  it("a login's REASSIGN OWNED back and forth between two roles of hers adds no ledger row once each has one", async () => {
    await asMallory(`CREATE ROLE flip_a NOLOGIN; CREATE ROLE flip_b NOLOGIN; GRANT flip_a, flip_b TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
    await p.settleRoles();
    await p.everywhere(`CREATE SCHEMA flip; GRANT USAGE, CREATE ON SCHEMA flip TO ${MALLORY}, flip_a, flip_b`);
    await asMallory('CREATE TABLE flip.t (id int); ALTER TABLE flip.t OWNER TO flip_a');
    await prod.query('CREATE TABLE flip.t (id int); ALTER TABLE flip.t OWNER TO flip_a');
    const flips = 6;
    for (let i = 0; i < flips; i++) {
      const [from, to] = i % 2 === 0 ? ['flip_a', 'flip_b'] : ['flip_b', 'flip_a'];
      await asMallory(`REASSIGN OWNED BY ${from} TO ${to}`);
      await p.dba('SELECT permsync.capture_owner_changes(NULL)');
      await waitFor(async () => (await ledgerOwner('flip.t')) === to, 20_000, 'the owner look');
    }
    // Each owner's last row under that name (seven rows, one a look, before).
    expect(await ledgerOwners('flip.t')).toEqual(['flip_b', 'flip_a']);
    await p.settle();
    expect(await prodOwner('flip.t')).toBe('flip_a');
  });

  it('a look waits for no other: while another leader looks, the role watcher looks next time, and writes the change once', async () => {
    await p.dba('CREATE ROLE lk_from; CREATE ROLE lk_to');
    await p.settleRoles();
    await p.everywhere('CREATE TABLE public.lk_table (id int); ALTER TABLE public.lk_table OWNER TO lk_from');
    await p.settle();
    const rows = async () =>
      (await ownerWatcherRows()).filter(
        (r) => r.identity === 'public.lk_table' && r.reassigned_from === 'lk_from' && r.current_user_name === 'lk_to',
      );
    // Another leader's look, held open.
    const other = new pg.Client(p.source.url);
    await other.connect();
    try {
      await other.query(`BEGIN; SELECT FROM permsync.locks WHERE name = 'owner_look' FOR UPDATE`);
      await p.dba('REASSIGN OWNED BY lk_from TO lk_to');
      const started = Date.now();
      const look = await p.sourceClient.query<{ batch: string | null; counted: string | null }>('SELECT * FROM permsync.capture_owner_changes(NULL)');
      expect(Date.now() - started).toBeLessThan(2000);
      expect(look.rows[0]).toEqual({ batch: null, counted: null });
      expect(await rows()).toHaveLength(0);
    } finally {
      await other.query('COMMIT');
      await other.end();
    }
    await waitFor(async () => (await rows()).length > 0, 20_000, 'the owner watcher');
    await p.settle();
    expect(await rows()).toHaveLength(1);
    expect((await prodTable('public.lk_table'))?.owner).toBe('lk_to');
  });
  it("a DBA's REASSIGN OWNED TO mallory does not give her prod's own tables of the former owner whose names her schema renames flip to while prod reads the source", async () => {
    const n = 12;
    await p.dba(`CREATE ROLE colleague NOLOGIN; GRANT CREATE ON DATABASE postgres TO ${MALLORY}`);
    await p.settleRoles();
    for (let i = 0; i < n; i++) {
      // Her schema holds a table of colleague's, everywhere; prod alone has a table of colleague's in vault<i>.
      await p.everywhere(`CREATE SCHEMA fl${i} AUTHORIZATION ${MALLORY}; GRANT USAGE, CREATE ON SCHEMA fl${i} TO colleague;
                          CREATE TABLE fl${i}.ledger (id int); ALTER TABLE fl${i}.ledger OWNER TO colleague`);
      await prod.query(
        `CREATE SCHEMA vault_fl${i}; CREATE TABLE vault_fl${i}.ledger (id int, secret text); ALTER TABLE vault_fl${i}.ledger OWNER TO colleague`,
      );
    }
    await p.settle();
    await p.dba(`SELECT permsync.pause_environment('prod')`);
    await p.dba(`REASSIGN OWNED BY colleague TO ${MALLORY}`);
    await waitFor(async () => (await ownerWatcherRows()).filter((r) => r.reassigned_from === 'colleague').length === n, 20_000, 'the owner watcher');
    const batch = (await p.sourceClient.query<{ id: string }>(`SELECT max(id)::text AS id FROM permsync.batches WHERE origin = 'owner_watcher'`))
      .rows[0]?.id;
    // She flips each schema's name between fl<i> and vault_fl<i> while prod reads the source's catalog.
    let stop = false;
    const flippers = Array.from({ length: n }, async (_, i) => {
      const c = new pg.Client(p.source.urlFor('postgres', MALLORY, PW));
      await c.connect();
      try {
        while (!stop) {
          await c.query(`ALTER SCHEMA fl${i} RENAME TO vault_fl${i}`);
          await c.query(`ALTER SCHEMA vault_fl${i} RENAME TO fl${i}`);
        }
      } finally {
        await c.end();
      }
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await p.dba(`SELECT permsync.resume_environment('prod')`);
      await waitFor(
        async () =>
          ((
            await p.sourceClient.query(
              `SELECT FROM permsync.execution_log WHERE batch_id = $1 AND environment_name = 'prod' AND execution_status <> 'failed'`,
              [batch],
            )
          ).rowCount ?? 0) > 0,
        30_000,
        'prod to carry the owner_watcher batch',
      );
    } finally {
      stop = true;
      await Promise.all(flippers);
    }
    await p.settle(30_000);
    const { rows } = await prod.query<{ name: string; owner: string }>(
      `SELECT c.oid::regclass::text AS name, c.relowner::regrole::text AS owner FROM pg_class c
        WHERE c.relname = 'ledger' AND c.relnamespace::regnamespace::text LIKE 'vault\\_fl%' ORDER BY 1`,
    );
    // prod's own vault tables (colleague's, which the source never had) stay colleague's.
    expect(rows).toHaveLength(n);
    expect(rows.filter((r) => r.owner !== 'colleague')).toEqual([]);
  }, 120_000);

  it("a login's REASSIGN OWNED BY her heir role, committed while prod's release of her dropped role reads the source, does not hold prod at the heir's DROP ROLE", async () => {
    await p.dba(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}`);
    await asMallory(`CREATE ROLE r1a; CREATE ROLE r1b; CREATE ROLE r1c; CREATE ROLE r1j; CREATE ROLE r1k;
      GRANT r1a, r1b, r1c, r1j, r1k TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
    await p.settleRoles();
    await p.everywhere(`CREATE SCHEMA m1 AUTHORIZATION ${MALLORY}; GRANT USAGE, CREATE ON SCHEMA m1 TO r1a, r1b, r1c, r1j, r1k;
                        CREATE TABLE m1.x (id int); ALTER TABLE m1.x OWNER TO r1a`);
    await p.settle();
    // 5,000 routines of another role of hers, on the source alone: once that role is
    // dropped, the role watcher's look takes them first (pg_proc sorts before pg_class).
    await asMallory(`SET permsync.capture = off; SET ROLE r1j; DO $$BEGIN
        FOR i IN 1..5000 LOOP EXECUTE format('CREATE FUNCTION m1.j_%s() RETURNS int LANGUAGE sql AS ''SELECT 1''', i); END LOOP;
      END$$`);
    await p.settle();
    const { mover, ledgerSessions, end } = await ledgerSpy();
    try {
      await asMallory(`REASSIGN OWNED BY r1a TO r1b; REASSIGN OWNED BY r1j TO r1k; DROP OWNED BY r1a; DROP OWNED BY r1j;
                       DROP ROLE r1a; DROP ROLE r1j`);
      // r1b gives the table on to r1c, committed when a session reads the ledger and nothing
      // else of permsync's: prod's release reading whose the table is on the source.
      await mover.query('BEGIN; REASSIGN OWNED BY r1b TO r1c');
      const deadline = Date.now() + 10_000;
      let seen = false;
      while (!seen && Date.now() < deadline) {
        seen = (await ledgerSessions()).some((r) => r.modes.includes('AccessShareLock') && !r.modes.includes('RowExclusiveLock'));
      }
      await mover.query('COMMIT');
      expect(seen).toBe(true);
    } finally {
      await end();
    }
    await p.settle(30_000);
    await waitFor(async () => (await ledgerOwners('m1.x')).at(-1) === 'r1c', 20_000, 'the look to note r1c');
    await p.settle(30_000);
    await asMallory('DROP OWNED BY r1b; DROP ROLE r1b');
    await p.settleRoles();
    await p.settle(30_000);
    expect({ owner: await prodOwner('m1.x'), state: await prodState() }).toEqual({ owner: 'r1c', state: 'ok' });
  }, 180_000);

  it("two REASSIGN OWNED of hers, one while prod's release notes the source's owners and one after its second read, do not hold prod at the DROP ROLE of the role prod was given", async () => {
    await asMallory(`CREATE ROLE ha; CREATE ROLE hb; CREATE ROLE hc; CREATE ROLE hd;
      GRANT ha, hb, hc, hd TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
    await p.settleRoles();
    // Her table and 1,500 routines of 100 arguments, all of ha's, everywhere (she made them; replay carried them).
    const args = Array.from({ length: 100 }, () => 'int').join(', ');
    await p.everywhere(`CREATE SCHEMA m2 AUTHORIZATION ${MALLORY}; GRANT USAGE, CREATE ON SCHEMA m2 TO ha, hb, hc, hd;
      CREATE TABLE m2.x (id int); ALTER TABLE m2.x OWNER TO ha;
      DO $$BEGIN FOR i IN 1..1500 LOOP
        EXECUTE format('CREATE FUNCTION m2.f_%s(${args}) RETURNS int LANGUAGE sql AS ''SELECT 1''', i);
        EXECUTE format('ALTER FUNCTION m2.f_%s(${args}) OWNER TO ha', i);
      END LOOP; END$$`);
    await p.settle();
    expect(await prodOwner('m2.x')).toBe('ha');

    const { mover, ledgerSessions, end } = await ledgerSpy();
    const timeline: string[] = [];
    try {
      const t0 = Date.now();
      const at = (what: string) => timeline.push(`${Date.now() - t0} ms: ${what}`);
      await asMallory(`REASSIGN OWNED BY ha TO hc; DROP OWNED BY ha; DROP ROLE ha`);
      at('ha dropped');
      // hc gives all on to hb, committed while prod's release notes the owners (it writes the ledger).
      await mover.query('BEGIN; REASSIGN OWNED BY hc TO hb');
      at('hc->hb made, not committed');
      let noter: number | undefined;
      let deadline = Date.now() + 30_000;
      while (noter === undefined && Date.now() < deadline) {
        noter = (await ledgerSessions()).find((r) => r.modes.includes('RowExclusiveLock'))?.pid;
      }
      at(`noter ${noter} seen`);
      // Its statement takes its snapshot once planned: commit in the middle of its ~0.4 s.
      await new Promise((r) => setTimeout(r, 60));
      await mover.query('COMMIT');
      at(`hc->hb committed`);
      // Then its second read (the ledger read, without writing), and its end: hb gives all on to hd.
      let readAgain = false;
      deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        const held = (await ledgerSessions()).find((r) => r.pid === noter);
        if (held && !held.modes.includes('RowExclusiveLock')) readAgain = true;
        if (readAgain) break;
      }
      at(`second read seen: ${readAgain}`);
      await mover.query('REASSIGN OWNED BY hb TO hd');
      at('hb->hd committed');
    } finally {
      await end();
    }
    await p.settle(60_000);
    timeline.push(`prod m2.x: ${await prodOwner('m2.x')}; ledger m2.x: ${(await ledgerOwners('m2.x')).join(',')}`);
    // Her later DROP ROLE of hb, which owns nothing on the source.
    await asMallory('DROP OWNED BY hb; DROP ROLE hb');
    await p.settleRoles().catch(() => {});
    await p.settle(60_000).catch(() => {});
    const failure = (
      await p.sourceClient.query<{ msg: string | null }>(
        `SELECT left(result_message, 300) AS msg FROM permsync.execution_log WHERE environment_name = 'prod' AND execution_status = 'failed' ORDER BY id DESC LIMIT 1`,
      )
    ).rows[0]?.msg;
    timeline.push(`ledger m2.x: ${(await ledgerOwners('m2.x')).join(',')}; last prod failure: ${failure}`);
    expect({ owner: await prodOwner('m2.x'), state: await prodState() }, timeline.join('\n')).toEqual({ owner: 'hd', state: 'ok' });
  }, 240_000);

  it("a login's schema renamed away and back around a DBA's REASSIGN OWNED and DROP ROLE of a role with a table in it does not hold prod at that DROP ROLE", async () => {
    await p.dba('CREATE ROLE leaver_mq NOLOGIN; CREATE ROLE heir_mq NOLOGIN');
    await p.settleRoles();
    // Her schema holds a table of a DBA's role, everywhere.
    await p.everywhere(`GRANT CREATE ON DATABASE postgres TO ${MALLORY}; CREATE SCHEMA mq AUTHORIZATION ${MALLORY};
      GRANT USAGE, CREATE ON SCHEMA mq TO leaver_mq, heir_mq;
      CREATE TABLE mq.ledger (id int); ALTER TABLE mq.ledger OWNER TO leaver_mq`);
    await p.settle();
    // prod is behind (paused) while she renames her schema away, the DBA retires the
    // role, the owner look notes the table under the name she chose, and she renames it back.
    await p.dba(`SELECT permsync.pause_environment('prod')`);
    try {
      await asMallory('ALTER SCHEMA mq RENAME TO mq2');
      await p.dba('REASSIGN OWNED BY leaver_mq TO heir_mq; DROP OWNED BY leaver_mq; DROP ROLE leaver_mq');
      await waitFor(async () => (await ledgerOwners('mq2.ledger')).at(-1) === '-', 30_000, 'the look to note the table under her name');
      await asMallory('ALTER SCHEMA mq2 RENAME TO mq');
    } finally {
      await p.dba(`SELECT permsync.resume_environment('prod')`);
    }
    await p.settle(60_000).catch(() => {});
    expect({ owner: await prodOwner('mq.ledger'), state: await prodState() }, (await ledgerOwners('mq.ledger')).join(',')).toEqual({
      owner: 'heir_mq',
      state: 'ok',
    });
  }, 180_000);
});

describe("owner changes taken ahead of a DBA's batch a target refused, run as the new owner right after REASSIGN OWNED", () => {
  /** prod's owner and ACL of a table (a routine, named with its argument types; a schema, as `schema:name`), and the source's. */
  const acls = async (object: string) => {
    const sql = object.startsWith('schema:')
      ? `SELECT nspowner::regrole || ' ' || coalesce(nspacl::text, '') AS acl FROM pg_namespace WHERE nspname = substr($1, 8)`
      : object.includes('(')
        ? `SELECT proowner::regrole || ' ' || coalesce(proacl::text, '') AS acl FROM pg_proc WHERE oid = $1::regprocedure`
        : `SELECT relowner::regrole || ' ' || coalesce(relacl::text, '') AS acl FROM pg_class WHERE oid = $1::regclass`;
    const read = async (c: pg.Client) => (await c.query<{ acl: string }>(sql, [object])).rows[0]?.acl;
    return { prod: await read(prod), source: await read(p.sourceClient) };
  };
  /** Runs `work` while prod lags (paused: a backlog, a hold, an outage), then lets it go on. */
  const whileProdLags = async (work: () => Promise<void>) => {
    await p.dba(`SELECT permsync.pause_environment('prod')`);
    try {
      await work();
    } finally {
      await p.dba(`SELECT permsync.resume_environment('prod')`);
    }
  };
  /** Each table's (or routine's) owner and ACL on prod are the source's, which `granted` matches. */
  const expectProdAsSource = async (tables: string[], granted: RegExp) => {
    for (const table of tables) {
      const { prod: there, source } = await acls(table);
      expect(source).toMatch(granted);
      expect({ table, acl: there }).toEqual({ table, acl: source });
    }
  };
  const ownerWatcherBatches = async () =>
    Number((await p.sourceClient.query<{ n: string }>(`SELECT count(*) AS n FROM permsync.batches WHERE origin = 'owner_watcher'`)).rows[0]?.n);
  /** Makes `roles` on the source and waits for prod to have them, then `schema` on every server. */
  const rolesThenSchema = async (roles: string, schema: string) => {
    await p.dba(roles);
    await p.settleRoles();
    await p.everywhere(schema);
    await p.settle();
  };
  /** Runs `work` while prod lags, then the owner look, and waits for prod to catch up. */
  const lagThenLook = async (work: () => Promise<void>) => {
    await whileProdLags(async () => {
      const before = await ownerWatcherBatches();
      await work();
      await p.dba('SELECT permsync.capture_owner_changes(NULL)');
      await waitFor(async () => (await ownerWatcherBatches()) > before, 20_000, 'the owner watcher');
    });
    await p.settle();
  };

  beforeAll(async () => {
    await p.dba('CREATE ROLE of_app_v1 NOLOGIN; CREATE ROLE of_reader NOLOGIN');
    // She may make schemas (a developer's login): some tests shadow names with hers.
    await p.dba(`DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO ${MALLORY}', current_database()); END $$`);
    await p.settleRoles();
    await p.everywhere(`CREATE SCHEMA of_s; GRANT USAGE, CREATE ON SCHEMA of_s TO ${MALLORY}, of_app_v1`);
    // A table of prod's own there; on the source, mallory's: any grant she makes on it, prod refuses (42501).
    await prod.query('CREATE TABLE of_s.mine (id int)');
    await asMallory('CREATE TABLE of_s.mine (id int)');
    await p.settle();
  });

  it("a login's refused batch does not take the owner change a DBA makes after it ahead of the DBA's command run before it as the former owner", async () => {
    await p.everywhere('CREATE TABLE of_s.books (id int); ALTER TABLE of_s.books OWNER TO of_app_v1');
    await p.settle();
    // prod lags (a backlog, a hold, an outage) while her refused grant, the DBA's grant as
    // of_app_v1 and the DBA's REASSIGN OWNED of of_app_v1's objects to her commit, in that order.
    await whileProdLags(async () => {
      await asMallory('GRANT SELECT ON of_s.mine TO PUBLIC');
      await p.dba('SET ROLE of_app_v1; GRANT SELECT ON of_s.books TO of_reader; RESET ROLE');
      const before = await ownerWatcherBatches();
      await p.dba(`REASSIGN OWNED BY of_app_v1 TO ${MALLORY}`);
      await waitFor(async () => (await ownerWatcherBatches()) > before, 20_000, 'the owner watcher');
    });
    await p.settle();
    const { prod: there, source } = await acls('of_s.books');
    expect(source).toMatch(/of_reader=r\//);
    expect(there).toBe(source);
  });

  it("a DBA's grant as the new owner gets the owner change ahead of a login's batch in between, but not one a DBA's batch in between needs as it is", async () => {
    await rolesThenSchema(
      'CREATE ROLE ow_a NOLOGIN; CREATE ROLE ow_f2 NOLOGIN; CREATE ROLE ow_v2 NOLOGIN',
      `GRANT USAGE, CREATE ON SCHEMA of_s TO ow_a, ow_f2, ow_v2;
      CREATE TABLE of_s.oa (id int); ALTER TABLE of_s.oa OWNER TO ow_a; CREATE TABLE of_s.of2 (id int); ALTER TABLE of_s.of2 OWNER TO ow_f2`,
    );
    await whileProdLags(async () => {
      await p.dba('REASSIGN OWNED BY ow_a TO ow_v2');
      await p.dba('SET ROLE ow_v2; GRANT SELECT ON of_s.oa TO of_reader; RESET ROLE');
      // A login's batch (prod refuses it), then a DBA's grant as ow_f2 while it still owns
      // of_s.of2, then its REASSIGN OWNED: one owner look may find both changes.
      await asMallory('GRANT SELECT ON of_s.mine TO PUBLIC');
      await p.dba('SET ROLE ow_f2; GRANT SELECT ON of_s.of2 TO of_reader; RESET ROLE');
      await p.dba('REASSIGN OWNED BY ow_f2 TO ow_v2');
      await waitFor(async () => (await ownerWatcherRows()).some((r) => r.identity === 'of_s.of2'), 20_000, 'the owner watcher');
    });
    await p.settle();
    await expectProdAsSource(['of_s.oa', 'of_s.of2'], /^ow_v2 .*of_reader=r\/ow_v2/);
  });

  it("a login's batch in between, as a role she then drops, does not keep a DBA's grant as the new owner from prod", async () => {
    await p.dba('CREATE ROLE a3_v1 NOLOGIN; CREATE ROLE a3_v2 NOLOGIN');
    await asMallory(`CREATE ROLE a3_tmp NOLOGIN; GRANT a3_tmp TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
    await p.settleRoles();
    await p.everywhere('CREATE SCHEMA a3; GRANT USAGE ON SCHEMA a3 TO a3_v2; CREATE TABLE a3.books (id int); ALTER TABLE a3.books OWNER TO a3_v1');
    await p.settle();
    await whileProdLags(async () => {
      const before = await ownerWatcherBatches();
      await p.dba('REASSIGN OWNED BY a3_v1 TO a3_v2');
      await p.dba('SET ROLE a3_v2; GRANT SELECT ON a3.books TO of_reader; RESET ROLE');
      await asMallory('SET ROLE a3_tmp; ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC');
      await waitFor(async () => (await ownerWatcherBatches()) > before, 20_000, 'the owner watcher');
      await asMallory('RESET ROLE; DROP OWNED BY a3_tmp; DROP ROLE a3_tmp');
    });
    await p.settle();
    const { prod: there, source } = await acls('a3.books');
    expect(source).toMatch(/of_reader=r\/a3_v2/);
    expect(there).toBe(source);
  });

  it("a role of hers granted to the DBA's author afterwards does not take her move ahead of the DBA's next grant, which needs it as it was", async () => {
    await p.dba('CREATE ROLE b3_v1 NOLOGIN; CREATE ROLE b3_v2 NOLOGIN; CREATE ROLE b3_auditor NOLOGIN');
    // Her roles; the DBA's app role may use her table (she has ADMIN on her roles).
    await asMallory(`CREATE ROLE b3_mf NOLOGIN; CREATE ROLE b3_mr NOLOGIN;
      GRANT b3_mf, b3_mr TO ${MALLORY} WITH INHERIT TRUE, SET TRUE; GRANT b3_mf TO b3_v2`);
    await p.settleRoles();
    await p.everywhere(`CREATE SCHEMA b3; GRANT USAGE ON SCHEMA b3 TO b3_v2, ${MALLORY};
      CREATE TABLE b3.books (id int); ALTER TABLE b3.books OWNER TO b3_v1; CREATE TABLE b3.mt (id int); ALTER TABLE b3.mt OWNER TO b3_mf`);
    await p.settle();
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY b3_v1 TO b3_v2');
      await p.dba('SET ROLE b3_v2; GRANT SELECT ON b3.books TO of_reader; RESET ROLE');
      // As b3_v2, through its membership in b3_mf on b3.mt.
      await p.dba('SET ROLE b3_v2; GRANT SELECT ON ALL TABLES IN SCHEMA b3 TO b3_auditor; RESET ROLE');
      await asMallory('REASSIGN OWNED BY b3_mf TO b3_mr; GRANT b3_mr TO b3_v2');
    });
    await expectProdAsSource(['b3.books', 'b3.mt'], /b3_auditor=r\//);
  });

  it("a move of hers does not go ahead of a DBA's batch in between that needs it as it was, once she takes her role back from that batch's role", async () => {
    await p.dba(`CREATE ROLE c4_v1 NOLOGIN; CREATE ROLE c4_v2 NOLOGIN; CREATE ROLE c4_q NOLOGIN; CREATE ROLE c4_shared NOLOGIN;
      GRANT c4_shared TO c4_v2, ${MALLORY}`);
    // Her role, which the DBA's role c4_q is a member of (she has ADMIN on it).
    await asMallory(`CREATE ROLE c4_mf NOLOGIN; GRANT c4_mf TO ${MALLORY} WITH INHERIT TRUE, SET TRUE; GRANT c4_mf TO c4_q`);
    await p.settleRoles();
    await p.everywhere(`CREATE SCHEMA c4; GRANT USAGE ON SCHEMA c4 TO c4_v2, c4_q, ${MALLORY};
      CREATE TABLE c4.books (id int); ALTER TABLE c4.books OWNER TO c4_v1; CREATE TABLE c4.mt (id int); ALTER TABLE c4.mt OWNER TO c4_mf`);
    await p.settle();
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY c4_v1 TO c4_v2');
      await p.dba('SET ROLE c4_v2; GRANT SELECT ON c4.books TO of_reader; RESET ROLE');
      // As c4_q, through its membership in her role, the owner of c4.mt.
      await p.dba('SET ROLE c4_q; GRANT SELECT ON c4.mt TO of_reader; RESET ROLE');
      // Her table to a role the DBA's author c4_v2 holds, and her role taken back from c4_q.
      await asMallory('REASSIGN OWNED BY c4_mf TO c4_shared; REVOKE c4_mf FROM c4_q');
    });
    await expectProdAsSource(['c4.books', 'c4.mt'], /of_reader=r\//);
  });

  it("a table of hers made after a DBA's grant, earlier on the path its unqualified name was read on, does not hide the table it named", async () => {
    await rolesThenSchema(
      `CREATE ROLE e4_v1 NOLOGIN; CREATE ROLE e4_v2 NOLOGIN`,
      'CREATE TABLE public.e4_books (id int); ALTER TABLE public.e4_books OWNER TO e4_v1',
    );
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY e4_v1 TO e4_v2');
      // Read on "$user", public: e4_v2 has no schema, so public.e4_books.
      await p.dba('SET ROLE e4_v2; GRANT SELECT ON e4_books TO of_reader; RESET ROLE');
      await asMallory('CREATE SCHEMA e4_v2; CREATE TABLE e4_v2.e4_books (id int)');
    });
    await expectProdAsSource(['public.e4_books'], /of_reader=r\/e4_v2/);
  });

  it("a table of hers made after a DBA's batch in between, earlier on the path its unqualified name was read on, does not take away that batch's guard", async () => {
    await p.dba('CREATE ROLE k4_v1 NOLOGIN; CREATE ROLE k4_v2 NOLOGIN; CREATE ROLE k4_f2 NOLOGIN; CREATE ROLE k4_aud NOLOGIN');
    await p.settleRoles();
    await p.everywhere(`CREATE SCHEMA k4; GRANT USAGE ON SCHEMA k4 TO k4_v2, k4_f2;
      CREATE TABLE k4.oa (id int); ALTER TABLE k4.oa OWNER TO k4_v1; CREATE TABLE k4.kf2 (id int); ALTER TABLE k4.kf2 OWNER TO k4_f2`);
    await p.dba('SET ROLE k4_f2; GRANT SELECT ON k4.kf2 TO k4_v2; RESET ROLE');
    await p.settle();
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY k4_v1 TO k4_v2');
      // Warns on k4.kf2, where k4_v2 has SELECT without the grant option.
      await p.dba('SET ROLE k4_v2; GRANT SELECT ON ALL TABLES IN SCHEMA k4 TO of_reader; RESET ROLE');
      // k4_f2 has no USAGE on of_s: PostgreSQL reads kf2 as k4.kf2.
      await p.dba('SET search_path = of_s, k4; SET ROLE k4_f2; GRANT SELECT ON kf2 TO k4_aud; RESET ROLE; RESET search_path');
      await p.dba('REASSIGN OWNED BY k4_f2 TO k4_v2');
      await asMallory('CREATE TABLE of_s.kf2 (id int)');
    });
    await expectProdAsSource(['k4.oa'], /of_reader=r\/k4_v2/);
    await expectProdAsSource(['k4.kf2'], /k4_aud=r\/k4_v2/);
  });

  it("a move of hers named by a DBA's ON ALL TABLES grant does not go ahead of a DBA's batch in between that needs it as it was, once she takes her role back", async () => {
    await p.dba(`CREATE ROLE g4_v1 NOLOGIN; CREATE ROLE g4_v2 NOLOGIN; CREATE ROLE g4_q NOLOGIN; CREATE ROLE g4_shared NOLOGIN;
      CREATE ROLE g4_aud NOLOGIN; GRANT g4_shared TO g4_v2, ${MALLORY}`);
    await asMallory(`CREATE ROLE g4_mf NOLOGIN; GRANT g4_mf TO ${MALLORY} WITH INHERIT TRUE, SET TRUE; GRANT g4_mf TO g4_q`);
    await p.settleRoles();
    await p.everywhere(`CREATE SCHEMA g4; GRANT USAGE ON SCHEMA g4 TO g4_v2, g4_q, ${MALLORY};
      CREATE TABLE g4.books (id int); ALTER TABLE g4.books OWNER TO g4_v1; CREATE TABLE g4.mt (id int); ALTER TABLE g4.mt OWNER TO g4_mf`);
    // Her table readable by all: the DBA's ON ALL TABLES grant as g4_v2 only warns on it.
    await asMallory('GRANT SELECT ON g4.mt TO PUBLIC');
    await p.settle();
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY g4_v1 TO g4_v2');
      await p.dba('SET ROLE g4_v2; GRANT SELECT ON ALL TABLES IN SCHEMA g4 TO of_reader; RESET ROLE');
      await p.dba('SET ROLE g4_q; GRANT SELECT ON g4.mt TO g4_aud; RESET ROLE');
      await asMallory('REASSIGN OWNED BY g4_mf TO g4_shared; REVOKE g4_mf FROM g4_q');
    });
    await expectProdAsSource(['g4.books'], /of_reader=r\/g4_v2/);
    await expectProdAsSource(['g4.mt'], /g4_aud=r\/g4_shared/);
  });

  it("a type of hers made after a DBA's grant, earlier on the path its argument type was read on, does not hide the function it named", async () => {
    await rolesThenSchema(
      'CREATE ROLE h4_v1 NOLOGIN; CREATE ROLE h4_v2 NOLOGIN',
      `CREATE TYPE public.h4_status AS ENUM ('a');
      CREATE FUNCTION public.h4_f(h4_status) RETURNS int LANGUAGE sql AS 'SELECT 1';
      REVOKE EXECUTE ON FUNCTION public.h4_f(h4_status) FROM PUBLIC; ALTER FUNCTION public.h4_f(h4_status) OWNER TO h4_v1`,
    );
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY h4_v1 TO h4_v2');
      // Read on "$user", public: h4_v2 has no schema, so public.h4_status.
      await p.dba('SET ROLE h4_v2; GRANT EXECUTE ON FUNCTION h4_f(h4_status) TO of_reader; RESET ROLE');
      await asMallory(`CREATE SCHEMA h4_v2; CREATE TYPE h4_v2.h4_status AS ENUM ('x')`);
    });
    await expectProdAsSource(['public.h4_f(public.h4_status)'], /of_reader=X\/h4_v2/);
  });

  it("a type of hers made after a DBA's batch in between, earlier on the path its argument type was read on, does not take away that batch's guard", async () => {
    await p.dba('CREATE ROLE t4_v1 NOLOGIN; CREATE ROLE t4_v2 NOLOGIN; CREATE ROLE t4_f2 NOLOGIN; CREATE ROLE t4_aud NOLOGIN');
    await p.settleRoles();
    await p.everywhere(`CREATE SCHEMA t4; GRANT USAGE ON SCHEMA t4 TO t4_v2, t4_f2; CREATE TYPE t4.t_st AS ENUM ('a');
      CREATE TABLE t4.oa (id int); ALTER TABLE t4.oa OWNER TO t4_v1;
      CREATE FUNCTION t4.tf(t4.t_st) RETURNS int LANGUAGE sql AS 'SELECT 1';
      REVOKE EXECUTE ON FUNCTION t4.tf(t4.t_st) FROM PUBLIC; ALTER FUNCTION t4.tf(t4.t_st) OWNER TO t4_f2`);
    await p.dba('SET ROLE t4_f2; GRANT EXECUTE ON FUNCTION t4.tf(t4.t_st) TO t4_v2; RESET ROLE');
    await p.settle();
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY t4_v1 TO t4_v2');
      // Warns on t4.tf, where t4_v2 has EXECUTE without the grant option.
      await p.dba('SET ROLE t4_v2; GRANT SELECT ON t4.oa TO of_reader; GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA t4 TO of_reader; RESET ROLE');
      // Read on "$user", t4: t4_f2 has no schema of its name, so t4.t_st.
      await p.dba('SET search_path = "$user", t4; SET ROLE t4_f2; GRANT EXECUTE ON FUNCTION tf(t_st) TO t4_aud; RESET ROLE; RESET search_path');
      await p.dba('REASSIGN OWNED BY t4_f2 TO t4_v2');
      await asMallory(`CREATE SCHEMA t4_f2; CREATE TYPE t4_f2.t_st AS ENUM ('x')`);
    });
    await expectProdAsSource(['t4.oa'], /of_reader=r\/t4_v2/);
    await expectProdAsSource(['t4.tf(t4.t_st)'], /t4_aud=X\/t4_v2/);
  });

  it("her role named like a superuser of prod's own, in a batch in between naming the DBA's table along its path, does not keep the owner change from going ahead", async () => {
    await prod.query('CREATE ROLE s4_prodsu SUPERUSER NOLOGIN');
    await p.dba('CREATE ROLE s4_v1 NOLOGIN; CREATE ROLE s4_v2 NOLOGIN');
    await p.settleRoles();
    await p.everywhere('CREATE SCHEMA s4; GRANT USAGE ON SCHEMA s4 TO s4_v2; CREATE TABLE s4.books (id int); ALTER TABLE s4.books OWNER TO s4_v1');
    await asMallory('CREATE SCHEMA m4; CREATE TABLE m4.books (id int)');
    await p.settle();
    await lagThenLook(async () => {
      await asMallory(
        `CREATE ROLE s4_prodsu NOLOGIN; GRANT s4_prodsu TO ${MALLORY}; GRANT USAGE ON SCHEMA m4 TO s4_prodsu; GRANT SELECT ON m4.books TO s4_prodsu`,
      );
      await p.dba('REASSIGN OWNED BY s4_v1 TO s4_v2');
      await p.dba('SET ROLE s4_v2; GRANT SELECT ON s4.books TO of_reader; RESET ROLE');
      // PostgreSQL reads books as m4.books (and only warns); on prod, s4_prodsu is prod's own superuser.
      await asMallory('SET ROLE s4_prodsu; SET search_path = m4, s4; GRANT SELECT ON books TO PUBLIC');
    });
    await expectProdAsSource(['s4.books'], /of_reader=r\/s4_v2/);
  });

  it("a DBA's grant as the new owner on a table of a schema the former owner owned gets the schema's owner change ahead too (USAGE through ownership)", async () => {
    await rolesThenSchema(
      'CREATE ROLE x1_v1 NOLOGIN; CREATE ROLE x1_v2 NOLOGIN',
      'CREATE SCHEMA x1 AUTHORIZATION x1_v1; CREATE TABLE x1.books (id int); ALTER TABLE x1.books OWNER TO x1_v1',
    );
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY x1_v1 TO x1_v2');
      await p.dba('SET ROLE x1_v2; GRANT SELECT ON x1.books TO of_reader; RESET ROLE');
    });
    await expectProdAsSource(['x1.books'], /of_reader=r\/x1_v2/);
    await expectProdAsSource(['schema:x1'], /^x1_v2 /);
  });

  it("a DBA's grant as the new owner on a serial column's sequence gets its table's owner change ahead", async () => {
    await rolesThenSchema(
      'CREATE ROLE x2_v1 NOLOGIN; CREATE ROLE x2_v2 NOLOGIN',
      'CREATE SCHEMA x2; GRANT USAGE ON SCHEMA x2 TO x2_v2; CREATE TABLE x2.t (id serial); ALTER TABLE x2.t OWNER TO x2_v1',
    );
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY x2_v1 TO x2_v2');
      await p.dba('SET ROLE x2_v2; GRANT USAGE ON SEQUENCE x2.t_id_seq TO of_reader; RESET ROLE');
    });
    await expectProdAsSource(['x2.t_id_seq'], /of_reader=U\/x2_v2/);
  });

  it("a DBA's batch in between that grants on a serial column's sequence as the former owner keeps the table's owner change from going ahead of it", async () => {
    await rolesThenSchema(
      'CREATE ROLE x3_v1 NOLOGIN; CREATE ROLE x3_v2 NOLOGIN; CREATE ROLE x3_f2 NOLOGIN; CREATE ROLE x3_aud NOLOGIN',
      `CREATE SCHEMA x3; GRANT USAGE ON SCHEMA x3 TO x3_v2, x3_f2;
      CREATE TABLE x3.oa (id int); ALTER TABLE x3.oa OWNER TO x3_v1; CREATE TABLE x3.t (id serial); ALTER TABLE x3.t OWNER TO x3_f2;
      GRANT SELECT ON x3.t TO x3_v2`,
    );
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY x3_v1 TO x3_v2');
      // Only warns on x3.t, where x3_v2 has SELECT without the grant option.
      await p.dba('SET ROLE x3_v2; GRANT SELECT ON ALL TABLES IN SCHEMA x3 TO x3_aud; RESET ROLE');
      await p.dba('SET ROLE x3_f2; GRANT USAGE ON SEQUENCE x3.t_id_seq TO x3_aud; RESET ROLE');
      await p.dba('REASSIGN OWNED BY x3_f2 TO x3_v2');
    });
    await expectProdAsSource(['x3.oa'], /x3_aud=r\/x3_v2/);
    await expectProdAsSource(['x3.t'], /^x3_v2 /);
    await expectProdAsSource(['x3.t_id_seq'], /x3_aud=U\/x3_v2/);
  });

  it("a DBA's batch in between that needs USAGE on a schema through owning it keeps the schema's owner change from going ahead of it", async () => {
    await rolesThenSchema(
      'CREATE ROLE x4_v1 NOLOGIN; CREATE ROLE x4_v2 NOLOGIN; CREATE ROLE x4_f2 NOLOGIN; CREATE ROLE x4_aud NOLOGIN',
      `CREATE SCHEMA x4; GRANT USAGE ON SCHEMA x4 TO x4_v2; CREATE TABLE x4.oa (id int); ALTER TABLE x4.oa OWNER TO x4_v1;
      CREATE SCHEMA x4f AUTHORIZATION x4_f2; GRANT CREATE ON SCHEMA x4f TO x4_v2; CREATE TABLE x4f.t (id int); ALTER TABLE x4f.t OWNER TO x4_f2`,
    );
    await lagThenLook(async () => {
      await p.dba('REASSIGN OWNED BY x4_v1 TO x4_v2');
      // The second grant only warns: x4_v2 has CREATE on x4f, not USAGE.
      await p.dba('SET ROLE x4_v2; GRANT SELECT ON x4.oa TO x4_aud; GRANT USAGE ON SCHEMA x4f TO x4_aud; RESET ROLE');
      await p.dba('SET ROLE x4_f2; GRANT SELECT ON x4f.t TO x4_aud; RESET ROLE');
      await p.dba('REASSIGN OWNED BY x4_f2 TO x4_v2');
    });
    await expectProdAsSource(['x4.oa'], /x4_aud=r\/x4_v2/);
    await expectProdAsSource(['schema:x4f'], /^x4_v2 /);
    await expectProdAsSource(['x4f.t'], /x4_aud=r\/x4_v2/);
  });

  it("a login's refused batches do not each make prod read the catalogs for owner changes to her", async () => {
    await asMallory(`CREATE ROLE of_m1 NOLOGIN; GRANT of_m1 TO ${MALLORY} WITH INHERIT TRUE, SET TRUE`);
    await p.settleRoles();
    await p.dba('GRANT USAGE, CREATE ON SCHEMA of_s TO of_m1');
    await asMallory('CREATE TABLE of_s.toy (id int); ALTER TABLE of_s.toy OWNER TO of_m1');
    await p.everywhere('CREATE TABLE of_s.dbt (id int)');
    await p.settle();
    await p.dba(`SELECT permsync.pause_environment('prod')`);
    const refused = 5;
    const moves = 10;
    let catalogs: MockInstance<Target['catalog']> | undefined;
    try {
      for (let i = 0; i < refused; i++) await asMallory('GRANT SELECT ON of_s.mine TO PUBLIC');
      // As many owner_watcher batches that hand her a table.
      for (let i = 0; i < moves; i++) {
        const before = await ownerWatcherBatches();
        await asMallory(`REASSIGN OWNED BY of_m1 TO ${MALLORY}`);
        await p.dba('SELECT permsync.capture_owner_changes(NULL)');
        await waitFor(async () => (await ownerWatcherBatches()) > before, 20_000, 'the owner watcher');
        await asMallory('ALTER TABLE of_s.toy OWNER TO of_m1');
      }
      await p.dba('GRANT SELECT ON of_s.dbt TO of_reader');
    } finally {
      catalogs = vi.spyOn(Target.prototype, 'catalog');
      await p.dba(`SELECT permsync.resume_environment('prod')`);
    }
    try {
      await waitFor(
        async () =>
          ((await prod.query(`SELECT FROM pg_class WHERE oid = 'of_s.dbt'::regclass AND relacl::text LIKE '%of_reader=r/%'`)).rowCount ?? 0) === 1,
        120_000,
        "the DBA's grant to reach prod",
      );
      // About one read of prod's catalog for each owner_watcher batch (each converges); not one for each of those per refused batch.
      expect(catalogs.mock.calls.length).toBeLessThanOrEqual(moves + refused);
    } finally {
      catalogs.mockRestore();
    }
    await p.settle();
  }, 180_000);

  it('one owner look a second at most, begun after each ask, shared by those who ask meanwhile', async () => {
    // Each batch of a DBA's that a target refuses (42501) asks for the owner look
    // (EnvironmentApplier.ownersFirst), which reads the whole ledger: as many as a script has.
    const pool = new pg.Pool({ connectionString: p.source.url, max: 4 });
    try {
      const store = new SourceStore(pool);
      const spy = vi.spyOn(pool, 'query');
      const looks = () => spy.mock.calls.filter(([sql]) => String(sql).includes('capture_owner_changes')).length;
      const burst = () => Array.from({ length: 40 }, () => store.lookForOwnerChanges());
      await Promise.all(burst());
      expect(looks()).toBe(1);
      // Asked once that look is over: another, of its own, as are the asks that come while it waits its turn.
      const next = store.lookForOwnerChanges();
      const meanwhile = burst();
      await Promise.all([next, ...meanwhile]);
      expect(looks()).toBe(2);
    } finally {
      await pool.end();
    }
  });
});

describe("a login renamed to a superuser's former name, in a transaction whose snapshot is older than the rename", () => {
  /**
   * A login of mallory's (she made it, so she may rename it), in a REPEATABLE READ
   * transaction begun while `superuser` existed; a DBA drops that superuser, she renames
   * the login to its name, and `work` runs in the old snapshot, where the name is a superuser's.
   */
  async function asRenamedLogin(login: string, superuser: string, work: (client: pg.Client) => Promise<void>): Promise<void> {
    const client = new pg.Client(p.source.urlFor('postgres', login, `${login}-pw`));
    await client.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
      await p.dba(`DROP ROLE ${superuser}`);
      await asMallory(`ALTER ROLE ${login} RENAME TO ${superuser}`);
      await work(client);
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    await p.dba('CREATE ROLE fs_dba1 SUPERUSER NOLOGIN; CREATE ROLE fs_dba2 SUPERUSER NOLOGIN; CREATE ROLE fs_dba3 SUPERUSER NOLOGIN');
    await asMallory(`CREATE ROLE fs_login LOGIN PASSWORD 'fs_login-pw'; CREATE ROLE fs_op LOGIN PASSWORD 'fs_op-pw';
                     CREATE ROLE fs_dm LOGIN PASSWORD 'fs_dm-pw'`);
    await p.dba('GRANT permsync_operator TO fs_op; GRANT permsync_daemon TO fs_dm');
    await p.everywhere('CREATE SCHEMA fs; GRANT USAGE ON SCHEMA fs TO PUBLIC; CREATE TABLE fs.vault (secret text)');
    await p.dba('ALTER TABLE fs.vault OWNER TO fs_login');
    await p.settleRoles();
    await p.settle();
  });

  it("her captured batches are not taken for a DBA's (which a target's refusal lets take owner changes ahead)", async () => {
    const oid = (await p.sourceClient.query<{ oid: number }>(`SELECT 'fs_login'::regrole::oid::int AS oid`)).rows[0]?.oid;
    await asRenamedLogin('fs_login', 'fs_dba1', (c) => c.query('GRANT SELECT ON fs.vault TO PUBLIC').then(() => undefined));
    const { rows } = await p.sourceClient.query(
      `SELECT session_user_is_superuser, current_user_oid::int AS oid FROM permsync.batches WHERE query_text LIKE 'GRANT SELECT ON fs.vault%'`,
    );
    expect(rows).toEqual([{ session_user_is_superuser: false, oid }]);
  });

  it("an operator's manual_sync does not run as the sync user on the targets", async () => {
    await asRenamedLogin('fs_op', 'fs_dba2', (c) =>
      c.query(`SELECT permsync.manual_sync('GRANT SELECT ON fs.vault TO fs_dba2')`).then(() => undefined),
    );
    const { rows } = await p.sourceClient.query(
      `SELECT current_user_is_superuser, current_user_oid::int AS oid FROM permsync.batches WHERE origin = 'manual' AND query_text LIKE '%fs.vault%'`,
    );
    const oid = (await p.sourceClient.query<{ oid: number }>(`SELECT 'fs_dba2'::regrole::oid::int AS oid`)).rows[0]?.oid;
    expect(rows).toEqual([{ current_user_is_superuser: false, oid }]);
    await p.settle();
    const acl = (await prod.query<{ acl: string | null }>(`SELECT relacl::text AS acl FROM pg_class WHERE oid = 'fs.vault'::regclass`)).rows[0]?.acl;
    expect(acl ?? '').not.toMatch(/fs_dba2=/);
  });

  it("a holder of permsync_daemon does not turn an admin's switch", async () => {
    const turned = await asRenamedLogin('fs_dm', 'fs_dba3', (c) =>
      c.query(`UPDATE permsync.config SET value = 'true', updated_at = now() WHERE key = 'dry_run'`).then(() => undefined),
    ).then(
      () => 'turned',
      (error: Error) => error.message,
    );
    expect(turned).toMatch(/"dry_run" is an admin's switch/);
    const { rows } = await p.sourceClient.query(`SELECT value FROM permsync.config WHERE key = 'dry_run'`);
    expect(rows).toEqual([{ value: 'false' }]);
  });
});

describe('owner watcher on a PostgreSQL 15 source', () => {
  // The owner of an empty table turns it into a view, same oid and name, with CREATE RULE
  // "_RETURN" (16 took tables' ON SELECT rules away); no event trigger of permsync's fires.
  let p15: Pipeline;
  let daemon15: Daemon;
  let prod15: pg.Client;

  beforeAll(async () => {
    p15 = await startPipeline(['prod'], { major: 15 });
    prod15 = p15.env('prod').client;
    daemon15 = await p15.startDaemon();
    await p15.dba(`CREATE ROLE ${MALLORY} LOGIN CREATEROLE PASSWORD '${PW}'; CREATE ROLE colleague NOLOGIN; CREATE ROLE payroll NOLOGIN`);
    await p15.settleRoles();
  }, 120_000);

  afterAll(async () => {
    await daemon15?.stop();
    await p15?.close();
  });

  it("a DBA's REASSIGN OWNED TO mallory does not give her prod's own view of the former owner when she turns the source's table of that name into a view", async () => {
    await p15.everywhere(`CREATE SCHEMA rk; GRANT USAGE, CREATE ON SCHEMA rk TO colleague; GRANT USAGE ON SCHEMA rk TO ${MALLORY}`);
    // On the source rk.ledger is an (empty) table of colleague's.
    await p15.sourceClient.query(`SET permsync.capture = 'off'; CREATE TABLE rk.ledger (who text, amount numeric);
                                ALTER TABLE rk.ledger OWNER TO colleague; RESET permsync.capture`);
    // prod's own rk.ledger, made by its migrations, is a view of colleague's over its salaries (postgres's).
    await prod15.query(`CREATE TABLE rk.salaries (who text, amount numeric); REVOKE ALL ON rk.salaries FROM PUBLIC;
                      GRANT SELECT ON rk.salaries TO colleague;
                      CREATE VIEW rk.ledger AS SELECT who, amount FROM rk.salaries; ALTER VIEW rk.ledger OWNER TO colleague;
                      REVOKE ALL ON rk.ledger FROM PUBLIC; GRANT SELECT ON rk.ledger TO payroll`);
    await p15.settle();

    // prod is not applying yet (a backlog, a hold, an outage).
    await p15.dba(`SELECT permsync.pause_environment('prod')`);
    await p15.dba(`REASSIGN OWNED BY colleague TO ${MALLORY}`);
    await waitFor(
      async () => (await ownerWatcherRows(p15)).some((r) => r.identity === 'rk.ledger' && r.reassigned_from === 'colleague'),
      20_000,
      'the owner watcher',
    );
    // Her table now: she turns it into a view, keeping its oid and name.
    await asMallory(`CREATE RULE "_RETURN" AS ON SELECT TO rk.ledger DO INSTEAD SELECT NULL::text AS who, NULL::numeric AS amount`, p15);
    expect(
      (await p15.sourceClient.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE oid = 'rk.ledger'::regclass`)).rows[0]?.relkind,
    ).toBe('v');
    await p15.dba(`SELECT permsync.resume_environment('prod')`);
    await p15.settle(30_000);

    // The source gave her a table rk.ledger, which prod does not have: prod's own view of
    // colleague's stays colleague's (REASSIGN OWNED there would have taken no view).
    const { rows } = await prod15.query<{ kind: string; owner: string }>(
      `SELECT c.relkind::text AS kind, c.relowner::regrole::text AS owner FROM pg_class c WHERE c.oid = 'rk.ledger'::regclass`,
    );
    expect(rows).toEqual([{ kind: 'v', owner: 'colleague' }]);
  }, 120_000);
});
