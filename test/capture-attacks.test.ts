import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/daemon.js';
import { withTimeout } from '../src/deadline.js';
import { startLocalCluster, type LocalCluster } from '../dev/embedded/cluster.js';
import { install } from '../src/install/migrate.js';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

/**
 * An attacker's review of capture, locks and the daemon's role: each test is an attack by an
 * untrusted source login (mallory, a plain LOGIN; a CREATEROLE login; a holder of
 * permsync_daemon) and asserts what must hold instead. Tests share one pipeline; none
 * leaves prod held.
 */
const PW = 'mallory-pw';
/** What a DBA's statement may take at most here; what waits on mallory waits until she lets go. */
const PATIENCE_MS = 15_000;

let p: Pipeline;
let daemon: Daemon;
let prod: pg.Client;

async function session(url: string, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  client.on('error', () => {});
  await client.connect();
  return client;
}

const mallory = (applicationName: string) => session(p.source.urlFor('postgres', 'mallory', PW), applicationName);
const dba = (applicationName: string) => session(p.source.url, applicationName);

/** Ends every session of that application_name (a DBA stuck behind mallory, mallory herself). */
async function endSessions(applicationName: string): Promise<void> {
  await p.sourceClient.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
}

async function asMallory(sql: string): Promise<unknown> {
  const client = await mallory('attack2:mallory-once');
  try {
    await client.query(sql);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await client.end();
  }
}

async function ownerOn(client: pg.Client, relation: string): Promise<string | undefined> {
  const { rows } = await client.query<{ owner: string }>('SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = to_regclass($1)', [
    relation,
  ]);
  return rows[0]?.owner;
}

beforeAll(async () => {
  p = await startPipeline(['prod']);
  prod = p.env('prod').client;
  await p.everywhere('CREATE ROLE app; CREATE TABLE orders (id int)');
  await p.adopt();
  daemon = await p.startDaemon(p.config());
  // Created on the source, so prod's copies are permsync's: mallory's statements run there as her.
  await p.dba(`CREATE ROLE mallory LOGIN PASSWORD '${PW}'; CREATE ROLE app_rw; GRANT app_rw TO mallory`);
  await waitFor(
    async () =>
      (await prod.query(`SELECT 1 FROM pg_auth_members WHERE member = to_regrole('mallory') AND roleid = to_regrole('app_rw')`)).rowCount === 1,
    PATIENCE_MS,
    'mallory and her membership on prod',
  );
  await p.everywhere(
    `CREATE SCHEMA ms AUTHORIZATION mallory; CREATE TABLE ms.a (); CREATE TABLE ms.b (); ALTER TABLE ms.a OWNER TO mallory; ALTER TABLE ms.b OWNER TO mallory; GRANT CREATE ON SCHEMA ms TO app_rw`,
  );
  // A table of prod's own that mallory owns there; the source has no such table.
  await prod.query('CREATE TABLE public.ledger (); ALTER TABLE public.ledger OWNER TO mallory; GRANT CREATE ON SCHEMA public TO app_rw');
  await p.settle(PATIENCE_MS);
});

afterAll(async () => {
  await daemon?.stop();
  await p?.close();
});

describe('replay: what the source did not run never reaches a target', () => {
  it('a GRANT the source rolled back is not replayed, though an earlier transaction of the string ran one in a DO block', async () => {
    // The DO block's transaction commits and writes a batch; the string's only text-level
    // GRANT then fails with its transaction. The daemon pairs batches and the string's
    // transactions by position and finds one of each.
    const error = await asMallory('DO $$BEGIN GRANT SELECT ON ms.a TO PUBLIC; END$$; COMMIT; GRANT SELECT ON ms.b TO PUBLIC; SELECT 1/0');
    expect(error).toMatchObject({ code: '22012' });
    expect(await relationPrivileges(p.sourceClient, 'ms.b')).toEqual([]);
    await p.settle(PATIENCE_MS);
    expect(await relationPrivileges(prod, 'ms.b')).toEqual([]);
  });

  it('ALTER ... IF EXISTS that changed nothing on the source is not replayed because a DO block changed an owner of that name', async () => {
    // On the source `ledger` resolves to nothing: the ALTER is a no-op. The DO block's owner
    // change of ms.ledger stands in for it (same tag, same name).
    const error = await asMallory(`ALTER TABLE IF EXISTS ledger OWNER TO app_rw;
      DO $$BEGIN CREATE TABLE ms.ledger (); ALTER TABLE ms.ledger OWNER TO app_rw; END$$`);
    expect(error).toBeUndefined();
    await p.settle(PATIENCE_MS);
    expect(await ownerOn(prod, 'public.ledger')).toBe('mallory');
  });

  it("a plain login cannot hold prod: a permanent failure of her own batch does not stop a DBA's change behind it", async () => {
    // A large object only the source has: any login may create one and grant on it.
    expect(await asMallory(`SELECT lo_create(424242); GRANT SELECT ON LARGE OBJECT 424242 TO PUBLIC`)).toBeUndefined();
    await p.dba('GRANT SELECT ON orders TO app');
    try {
      await waitFor(
        async () => (await relationPrivileges(prod, 'orders')).includes('app SELECT by postgres'),
        PATIENCE_MS,
        "the DBA's GRANT on prod",
      );
    } finally {
      // Lets later tests run on a prod that is not held.
      await p.sourceClient.query(`
        SELECT permsync.skip_batch('prod', x.batch_id, 'attack review: mallory''s large object')
          FROM permsync.execution_log x WHERE x.environment_name = 'prod' AND x.execution_status = 'failed'`);
      await p.settle(PATIENCE_MS);
    }
  });
});

describe("bounded capture: a CREATEROLE login cannot make a DBA's role change unreplayable", () => {
  it("a plain login's own 20 MB role setting is not copied into the role snapshot at every role check", async () => {
    // ALTER ROLE ... SET FROM CURRENT stores whatever set_config() took. The value is not
    // carried (over 8 kB), but role_state() reads and stores all of it: each role check of
    // the watcher, and each DBA string that changes a role before a GRANT, pays for it
    // (about 3.4 s for 50 MB here), under the snapshot's lock.
    expect(
      await asMallory(`SELECT set_config('search_path', repeat('a', 20000000), false); ALTER ROLE mallory SET search_path FROM CURRENT`),
    ).toBeUndefined();
    try {
      await p.dba('CREATE ROLE app3; GRANT SELECT ON orders TO app3');
      const { rows } = await p.sourceClient.query<{ bytes: number }>('SELECT octet_length(state::text) AS bytes FROM permsync.role_snapshot');
      expect(rows[0]?.bytes).toBeLessThan(1_000_000);
    } finally {
      await p.dba('ALTER ROLE mallory RESET search_path');
    }
  });
});

describe("locks: nothing a plain login holds is on a DBA's commit path", () => {
  /** Runs `sql` as a DBA; fails after PATIENCE_MS if it waits on mallory. */
  async function dbaCommits(sql: string): Promise<void> {
    const client = await dba('attack2:dba');
    try {
      await withTimeout(client.query(sql), PATIENCE_MS, `"${sql}" waited on mallory's transaction`);
    } finally {
      await endSessions('attack2:dba');
      await client.end().catch(() => {});
    }
  }

  /** Runs mallory's `statements` in a transaction she leaves open, then `dbaSql` as a DBA. */
  async function whileMalloryHolds(statements: string[], dbaSql: string): Promise<void> {
    const held = await mallory('attack2:mallory');
    try {
      await held.query('BEGIN');
      for (const statement of statements) await held.query(statement);
      await dbaCommits(dbaSql);
    } finally {
      await endSessions('attack2:mallory');
      await held.end().catch(() => {});
    }
  }

  it('SET CONSTRAINTS ALL IMMEDIATE after a captured command does not make mallory hold the commit-order lock', async () => {
    await whileMalloryHolds(
      ['ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC', 'SET CONSTRAINTS ALL IMMEDIATE'],
      'GRANT INSERT ON orders TO app',
    );
  });

  it('a savepoint before it does not hide mallory as the holder of the commit-order lock', async () => {
    // Locked in a subtransaction, the row's xmax is the savepoint's xid, which
    // pg_stat_activity.backend_xid (her top-level xid) never shows. The same happens without
    // a savepoint of hers when she gets the row only after waiting: take_lock then locks it
    // inside a PL/pgSQL block with EXCEPTION, a subtransaction.
    await whileMalloryHolds(
      ['SAVEPOINT s', 'ALTER DEFAULT PRIVILEGES GRANT TRUNCATE ON TABLES TO PUBLIC', 'SET CONSTRAINTS ALL IMMEDIATE'],
      'GRANT DELETE ON orders TO app',
    );
  });

  it("a savepoint before a password change of her own does not hide mallory as the holder of the role snapshot's lock", async () => {
    await whileMalloryHolds(
      ['SAVEPOINT s', `ALTER ROLE mallory PASSWORD '${PW}'`, 'ALTER DEFAULT PRIVILEGES GRANT REFERENCES ON TABLES TO PUBLIC'],
      'CREATE ROLE newcomer3; GRANT SELECT ON orders TO newcomer3',
    );
  });

  it("a deferred trigger of her own that runs after capture's does not make mallory hold the commit-order lock", async () => {
    const held = await mallory('attack2:mallory');
    try {
      await held.query(`CREATE TEMP TABLE slow (id int);
        CREATE FUNCTION pg_temp.nap() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_sleep(3600); RETURN NULL; END$$;
        CREATE CONSTRAINT TRIGGER nap AFTER INSERT ON slow DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.nap()`);
      // Her COMMIT runs capture's deferred trigger, then hers, which sleeps.
      void held.query('BEGIN; ALTER DEFAULT PRIVILEGES GRANT UPDATE ON TABLES TO PUBLIC; INSERT INTO slow VALUES (1); COMMIT').catch(() => {});
      await waitFor(
        async () =>
          (await p.sourceClient.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'attack2:mallory' AND wait_event = 'PgSleep'`))
            .rowCount === 1,
        PATIENCE_MS,
        "mallory's COMMIT to sleep",
      );
      await dbaCommits('GRANT UPDATE ON orders TO app');
    } finally {
      await endSessions('attack2:mallory');
      await held.end().catch(() => {});
    }
  });

  it('a session she opens after the DBA has looked at pg_stat_activity is not hidden as the holder of the commit-order lock', async () => {
    // PostgreSQL keeps what a transaction first read of pg_stat_activity until it ends.
    const client = await dba('attack2:dba');
    try {
      await client.query('BEGIN');
      await client.query('SELECT count(*) FROM pg_stat_activity');
      await client.query('GRANT TRIGGER ON orders TO app');
      const held = await mallory('attack2:mallory');
      try {
        await held.query('BEGIN');
        await held.query('ALTER DEFAULT PRIVILEGES GRANT TRIGGER ON TABLES TO PUBLIC');
        await held.query('SET CONSTRAINTS ALL IMMEDIATE');
        await withTimeout(client.query('COMMIT'), PATIENCE_MS, "the DBA's COMMIT waited on mallory's transaction");
      } finally {
        await endSessions('attack2:mallory');
        await held.end().catch(() => {});
      }
    } finally {
      await endSessions('attack2:dba');
      await client.end().catch(() => {});
    }
  });

  it("a password change of her own before a captured command does not make mallory hold the role snapshot's lock", async () => {
    // Any login may change its own password: the roles no longer match the snapshot, and
    // her captured command takes the snapshot's lock until her transaction ends.
    await whileMalloryHolds(
      [`ALTER ROLE mallory PASSWORD '${PW}'`, 'ALTER DEFAULT PRIVILEGES GRANT DELETE ON TABLES TO PUBLIC'],
      'CREATE ROLE newcomer; GRANT SELECT ON orders TO newcomer',
    );
  });

  it("a holder of permsync_daemon cannot lock a table a DBA's capture reads (permsync.config, ACCESS EXCLUSIVE)", async () => {
    await p.dba(`CREATE ROLE daemon_thief LOGIN PASSWORD '${PW}' IN ROLE permsync_daemon`);
    const held = await session(p.source.urlFor('postgres', 'daemon_thief', PW), 'attack2:daemon_thief');
    try {
      await held.query('BEGIN');
      // The daemon's role may update only the column it mirrors its settings into: no LOCK TABLE.
      await expect(held.query('LOCK TABLE permsync.config IN ACCESS EXCLUSIVE MODE')).rejects.toMatchObject({ code: '42501' });
      await held.query('ROLLBACK');
      // A role change before a GRANT: capture compares the full fingerprint, which reads permsync.config.
      await dbaCommits('CREATE ROLE newcomer2; GRANT SELECT ON orders TO newcomer2');
    } finally {
      await endSessions('attack2:daemon_thief');
      await held.end().catch(() => {});
    }
  });
});

describe('servers of their own', () => {
  /** A source with permsync installed, `app`, `orders` and mallory; its superuser session. */
  async function source(
    name: string,
    options: { major?: 14 | 17; settings?: Record<string, string> },
  ): Promise<{ cluster: LocalCluster; client: pg.Client }> {
    const cluster = await startLocalCluster({ name, ...options });
    const client = new pg.Client(cluster.url);
    await client.connect();
    await install(client);
    await client.query(
      `SET permsync.capture = off; CREATE ROLE app; CREATE TABLE orders (id int); CREATE ROLE mallory LOGIN PASSWORD '${PW}'; RESET permsync.capture`,
    );
    return { cluster, client };
  }

  it("a plain login that fills the NOTIFY queue does not make a DBA's GRANT fail", async () => {
    // 64 pages (512 kB) stand for the default 8 GB: the same attack, written faster.
    const { cluster, client } = await source('attack2-notify', { settings: { max_notify_queue_pages: '64' } });
    const sink = new pg.Client(cluster.urlFor('postgres', 'mallory', PW));
    const flood = new pg.Client(cluster.urlFor('postgres', 'mallory', PW));
    try {
      await sink.connect();
      await flood.connect();
      // A listener that never reads: its transaction stays open, and the queue's tail with it.
      await sink.query('LISTEN sink; BEGIN; SELECT 1');
      const full = await flood.query(`SELECT pg_notify('sink', repeat('x', 7000) || i) FROM generate_series(1, 200) i`).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(full).toMatchObject({ message: 'too many notifications in the NOTIFY queue' });
      const error = await client.query('GRANT SELECT ON orders TO app').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeUndefined();
      expect(await relationPrivileges(client, 'orders')).toContain('app SELECT by postgres');
    } finally {
      await sink.end().catch(() => {});
      await flood.end().catch(() => {});
      await client.end();
      await cluster.destroy();
    }
  });

  it('on PostgreSQL 14, a password after `1a$b$` (a number, then an identifier holding $) is never stored', async () => {
    const { cluster, client } = await source('attack2-pg14', { major: 14 });
    try {
      // PostgreSQL 14 reads `1a$b$` as 1 followed by the identifier a$b$ (an alias); the mask
      // opens a dollar quote at $b$ and closes it inside the password literal.
      await client.query(`SELECT 1a$b$; ALTER ROLE app PASSWORD 'pw$b$Hunter2-secret'; GRANT SELECT ON orders TO app`);
      // Which reading held cannot be told from the text: it is withheld, the DBA's statement ran.
      // The newest batch is the DBA's string's (install's own come before it).
      const { rows } = await client.query<{ query_text: string }>(`SELECT query_text FROM permsync.batches ORDER BY id DESC LIMIT 1`);
      expect(rows.map((r) => r.query_text)).toEqual([expect.stringMatching(/^\/\* permsync: text withheld/)]);
      expect((await client.query(`SELECT 1 FROM permsync.batches WHERE query_text LIKE '%Hunter2%'`)).rows).toEqual([]);
    } finally {
      await client.end();
      await cluster.destroy();
    }
  });
});
