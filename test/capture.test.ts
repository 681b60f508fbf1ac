import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { install, listMigrations, uninstall } from '../src/install/migrate.js';
import { CAPTURED_TAGS } from '../src/capture/statements.js';
import { MAX_GENERATED_BYTES, WITHHELD_TEXT } from '../src/capture/batch.js';
import { startServer, type TestServer } from './support/servers.js';

let server: TestServer;
let dba: pg.Client;

interface BatchRow {
  id: string;
  query_text: string;
  query_masked: boolean;
  current_user_name: string;
  current_user_is_superuser: boolean;
  search_path: string;
  tags: string[];
  commit_seq: string;
}

async function batches(): Promise<BatchRow[]> {
  const { rows } = await dba.query<BatchRow>(`
    SELECT b.id::text, b.query_text, b.query_masked, b.current_user_name, b.current_user_is_superuser,
           b.search_path, b.commit_seq::text,
           (SELECT array_agg(a.command_tag ORDER BY a.id) FROM permsync.audit_log a WHERE a.batch_id = b.id) AS tags
      FROM permsync.batches b WHERE b.origin = 'event_trigger' ORDER BY b.commit_seq`);
  return rows;
}

async function fresh(): Promise<void> {
  // replica: the audit log refuses TRUNCATE through a trigger, which only this superuser switch skips.
  await dba.query(`SET permsync.capture = 'off'; SET session_replication_role = replica;
    TRUNCATE permsync.audit_log, permsync.execution_log, permsync.retry_queue, permsync.batches;
    RESET session_replication_role; RESET permsync.capture`);
}

beforeAll(async () => {
  server = await startServer('capture');
  dba = new pg.Client(server.url);
  await dba.connect();
  await install(dba);
  await dba.query(`SET permsync.capture = 'off';
    CREATE ROLE app; CREATE ROLE owner_dba LOGIN PASSWORD 'owner-pw';
    CREATE SCHEMA sales; CREATE TABLE sales.orders (id int); CREATE TABLE sales.lines (id int);
    ALTER TABLE sales.lines OWNER TO owner_dba; GRANT USAGE ON SCHEMA sales TO owner_dba;
    RESET permsync.capture`);
});

afterAll(async () => {
  await dba?.end();
  await server?.destroy();
});

describe('install', () => {
  it('records every migration and is harmless to run again', async () => {
    const second = await install(dba);
    expect(second.applied).toEqual([]);
    const { rows } = await dba.query<{ version: number }>('SELECT version FROM permsync.schema_migrations ORDER BY 1');
    expect(rows.map((r) => r.version)).toEqual((await listMigrations()).map((m) => m.version));
  });

  it('listens for exactly the tags the statement planner predicts', async () => {
    const { rows } = await dba.query<{ tags: string[] }>(`SELECT evttags AS tags FROM pg_event_trigger WHERE evtname = 'permsync_capture'`);
    expect([...(rows[0]?.tags ?? [])].sort()).toEqual([...CAPTURED_TAGS].sort());
  });

  it('gives PUBLIC nothing in schema permsync', async () => {
    const { rows } = await dba.query<{ ok: boolean }>(`SELECT has_schema_privilege('public', 'permsync', 'USAGE') AS ok`);
    expect(rows[0]?.ok).toBe(false);
  });
});

describe('capture', () => {
  it('writes one batch per client string, with a tag per permission command', async () => {
    await fresh();
    await dba.query(`CREATE TABLE sales.tmp (a int); GRANT SELECT ON sales.orders TO app;
                     REVOKE SELECT ON sales.orders FROM app; ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO app`);
    const [batch, ...rest] = await batches();
    expect(rest).toEqual([]);
    expect(batch?.tags).toEqual(['GRANT', 'REVOKE', 'ALTER DEFAULT PRIVILEGES']);
    expect(batch).toMatchObject({ current_user_name: 'postgres', current_user_is_superuser: true, search_path: '"$user", public' });
    await dba.query('DROP TABLE sales.tmp');
  });

  it('leaves nothing behind for a rolled-back transaction', async () => {
    await fresh();
    await dba.query('BEGIN');
    await dba.query('GRANT SELECT ON sales.orders TO app');
    await dba.query('ROLLBACK');
    expect(await batches()).toEqual([]);
  });

  it('writes a batch per committed transaction when a string holds several', async () => {
    await fresh();
    await dba.query(`BEGIN; GRANT SELECT ON sales.orders TO app; COMMIT;
                     BEGIN; GRANT INSERT ON sales.orders TO app; ROLLBACK;
                     GRANT UPDATE ON sales.orders TO app`);
    const rows = await batches();
    expect(rows.map((b) => b.tags)).toEqual([['GRANT'], ['GRANT']]);
  });

  it('orders batches by commit, not by when they were written', async () => {
    await fresh();
    const other = new pg.Client(server.url);
    await other.connect();
    try {
      await dba.query('BEGIN');
      await dba.query('GRANT SELECT ON sales.orders TO app'); // written first, committed second
      await other.query('GRANT INSERT ON sales.lines TO app'); // written and committed second... first
      await dba.query('COMMIT');
    } finally {
      await other.end();
    }
    const rows = await batches();
    expect(rows.map((b) => b.query_text)).toEqual(['GRANT INSERT ON sales.lines TO app', 'GRANT SELECT ON sales.orders TO app']);
  });

  it('captures ALTER only when it changes an owner', async () => {
    await fresh();
    await dba.query('ALTER TABLE sales.orders ADD COLUMN note text');
    expect(await batches()).toEqual([]);
    await dba.query('ALTER TABLE sales.orders OWNER TO app');
    expect((await batches()).map((b) => b.tags)).toEqual([['ALTER TABLE']]);
    await dba.query('ALTER TABLE sales.orders OWNER TO postgres; ALTER TABLE sales.orders DROP COLUMN note');
  });

  it("captures a non-superuser's grant, who has no privilege on schema permsync", async () => {
    await fresh();
    const owner = new pg.Client(server.urlFor('postgres', 'owner_dba', 'owner-pw'));
    await owner.connect();
    try {
      await owner.query('SET search_path = sales, public');
      await owner.query('GRANT SELECT ON lines TO app');
    } finally {
      await owner.end();
    }
    const [batch] = await batches();
    expect(batch).toMatchObject({ current_user_name: 'owner_dba', current_user_is_superuser: false, search_path: 'sales, public' });
  });

  it('never stores a password typed in the same string', async () => {
    await fresh();
    await dba.query(`CREATE ROLE temp_login LOGIN PASSWORD 'hunter2-secret'; GRANT SELECT ON sales.orders TO temp_login;
                     -- it's a comment with a quote
                     ALTER ROLE temp_login PASSWORD E'more\\'secret'`);
    const [batch] = await batches();
    expect(batch?.query_masked).toBe(true);
    expect(batch?.query_text).not.toMatch(/hunter2|more|secret/);
    expect(batch?.query_text).toContain('GRANT SELECT ON sales.orders TO temp_login');
    await dba.query(`REVOKE ALL ON sales.orders FROM temp_login; DROP ROLE temp_login`);
  });

  it('withholds a string whose literals it cannot mask with certainty: one that changes standard_conforming_strings', async () => {
    // The server lexes the whole string with the setting it had on arrival (off); capture
    // runs after the string has changed it (on), however it does so.
    for (const change of [
      'SET standard_conforming_strings = on',
      'RESET ALL',
      `SELECT set_config('standard_conforming_' || 'strings', 'on', false)`,
    ]) {
      await fresh();
      await dba.query(`SET standard_conforming_strings = off; SET escape_string_warning = off`);
      await dba.query(`${change}; CREATE ROLE withheld LOGIN PASSWORD 'q\\' hunter2 \\'z';
                       GRANT SELECT ON sales.orders TO withheld`);
      await dba.query(`RESET standard_conforming_strings; RESET escape_string_warning`);
      const [batch] = await batches();
      expect(batch?.query_masked, change).toBe(true);
      expect(batch?.query_text, change).toBe(WITHHELD_TEXT);
      await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders FROM withheld; DROP ROLE withheld; RESET permsync.capture`);
    }
  });

  it('does not let a fault in capture pass silently: the statement fails and changes nothing', async () => {
    await fresh();
    await dba.query(`SET permsync.capture = 'off';
      ALTER TABLE permsync.audit_log ADD CONSTRAINT broken CHECK (false) NOT VALID; RESET permsync.capture`);
    try {
      await expect(dba.query('GRANT DELETE ON sales.orders TO app')).rejects.toMatchObject({ code: '23514' });
      const { rows } = await dba.query<{ ok: boolean }>(`SELECT has_table_privilege('app', 'sales.orders', 'DELETE') AS ok`);
      expect(rows[0]?.ok).toBe(false);
    } finally {
      await dba.query('ALTER TABLE permsync.audit_log DROP CONSTRAINT broken');
    }
  });

  it("cannot be fooled by a user's temporary tables standing in for the catalogs", async () => {
    await fresh();
    await dba.query(`SET permsync.capture = 'off'; CREATE ROLE mallory LOGIN PASSWORD 'mallory-pw';
      GRANT USAGE, CREATE ON SCHEMA sales TO mallory; RESET permsync.capture`);
    const mallory = new pg.Client(server.urlFor('postgres', 'mallory', 'mallory-pw'));
    await mallory.connect();
    try {
      await mallory.query(`CREATE TEMP TABLE pg_roles AS SELECT * FROM pg_catalog.pg_roles;
        INSERT INTO pg_roles (rolname, rolsuper, rolcanlogin, oid) VALUES ('backdoor', true, true, 99999);
        UPDATE pg_roles SET rolsuper = true WHERE rolname = 'mallory';
        CREATE TABLE sales.mine (id int); GRANT SELECT ON sales.mine TO app`);
    } finally {
      await mallory.end();
    }
    const { rows } = await dba.query<{ text: string }>(`SELECT query_text AS text FROM permsync.batches WHERE origin = 'role_watcher'`);
    expect(rows.map((r) => r.text).join('\n')).not.toContain('backdoor');
    const [batch] = await batches();
    expect(batch).toMatchObject({ current_user_name: 'mallory', current_user_is_superuser: false });
    await dba.query(
      `SET permsync.capture = 'off'; DROP TABLE sales.mine; REVOKE ALL ON SCHEMA sales FROM mallory; DROP ROLE mallory; RESET permsync.capture`,
    );
  });

  it('cannot be used to forge a batch outside an event trigger', async () => {
    await expect(dba.query(`SELECT permsync_capture.record_command('GRANT', 'postgres', 'public')`)).rejects.toThrow(/event trigger/);
  });

  it('cannot be reached by a user, even from inside a DDL command, to claim another identity', async () => {
    await fresh();
    await dba.query(`SET permsync.capture = 'off'; CREATE ROLE forger LOGIN PASSWORD 'forger-pw';
      CREATE SCHEMA forger AUTHORIZATION forger; RESET permsync.capture`);
    const forger = new pg.Client(server.urlFor('postgres', 'forger', 'forger-pw'));
    await forger.connect();
    try {
      await forger.query(`CREATE TABLE forger.t (a int); INSERT INTO forger.t VALUES (1);
        CREATE FUNCTION forger.claim() RETURNS int LANGUAGE sql VOLATILE
          AS $$ SELECT 0 FROM (SELECT permsync_capture.record_command('GRANT', 'postgres', 'sales')) s $$`);
      // During a rewriting ALTER TABLE the collected DDL commands can be read, which was
      // record_command's only guard: the DEFAULT calls it as the column is filled.
      await expect(forger.query(`ALTER TABLE forger.t ADD COLUMN s serial, ADD COLUMN y int DEFAULT forger.claim()`)).rejects.toMatchObject({
        code: '42501',
      });
    } finally {
      await forger.end();
    }
    expect(await batches()).toEqual([]);
    await dba.query(`SET permsync.capture = 'off'; DROP SCHEMA forger CASCADE; DROP ROLE forger; RESET permsync.capture`);
  });

  it("runs none of a user's own operators as its owner, whatever the user's search_path", async () => {
    await fresh();
    await dba.query(`SET permsync.capture = 'off'; CREATE ROLE hijacker LOGIN PASSWORD 'hijacker-pw';
      CREATE SCHEMA hijacker AUTHORIZATION hijacker; RESET permsync.capture`);
    const hijacker = new pg.Client(server.urlFor('postgres', 'hijacker', 'hijacker-pw'));
    await hijacker.connect();
    try {
      // Operators for every comparison the trigger function might make, each turning the
      // caller into a superuser when it runs as one.
      await hijacker.query(`CREATE TABLE hijacker.t (id int);
        CREATE FUNCTION hijacker.escalate(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $f$
        BEGIN
          IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
            EXECUTE 'ALTER ROLE hijacker SUPERUSER';
          END IF;
          RETURN a OPERATOR(pg_catalog.=) b;
        END $f$;
        CREATE OPERATOR hijacker.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hijacker.escalate);
        CREATE OPERATOR hijacker.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = hijacker.escalate);
        CREATE OPERATOR hijacker.~~ (LEFTARG = text, RIGHTARG = text, FUNCTION = hijacker.escalate);
        CREATE OPERATOR hijacker.!~* (LEFTARG = text, RIGHTARG = text, FUNCTION = hijacker.escalate)`);
      await hijacker.query(`SET search_path = hijacker, pg_catalog; GRANT SELECT ON hijacker.t TO app;
        ALTER TABLE hijacker.t OWNER TO hijacker`);
    } finally {
      await hijacker.end();
    }
    const { rows } = await dba.query<{ rolsuper: boolean }>(`SELECT rolsuper FROM pg_roles WHERE rolname = 'hijacker'`);
    expect(rows[0]?.rolsuper).toBe(false);
    expect((await batches()).map((b) => [b.current_user_name, b.tags])).toEqual([['hijacker', ['GRANT', 'ALTER TABLE']]]);
    await dba.query(`SET permsync.capture = 'off'; DROP SCHEMA hijacker CASCADE; DROP ROLE hijacker; RESET permsync.capture`);
  });

  it('records the identity a statement ran with: the role set with SET ROLE', async () => {
    await fresh();
    await dba.query('SET ROLE owner_dba; GRANT SELECT ON sales.lines TO app; RESET ROLE');
    const [batch] = await batches();
    expect(batch).toMatchObject({ current_user_name: 'owner_dba', current_user_is_superuser: false });
    await dba.query('REVOKE SELECT ON sales.lines FROM app');
  });
});

describe('capture that never fails the DBA and stays bounded', () => {
  it('never fails a statement over its masking, whatever standard_conforming_strings says', async () => {
    await fresh();
    // A session compiles the masking code with its own setting the first time it runs it:
    // a '\' literal there would not compile with the setting off, and the DBA's statement
    // would fail (and be logged, password and all).
    const session = new pg.Client(server.url);
    await session.connect();
    try {
      await session.query('SET standard_conforming_strings = off; SET escape_string_warning = off');
      await session.query(`CREATE ROLE scs_off LOGIN PASSWORD 'hunter2-scs-off'; GRANT SELECT ON sales.orders TO scs_off`);
    } finally {
      await session.end();
    }
    const [batch] = await batches();
    expect(batch).toMatchObject({ query_masked: true, tags: ['GRANT'] });
    expect(batch?.query_text).toContain(`PASSWORD '********'`);
    expect(batch?.query_text).not.toContain('hunter2');
    await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders FROM scs_off; DROP ROLE scs_off; RESET permsync.capture`);
  });

  it('masks every literal, though the string never says "password"', async () => {
    await fresh();
    await dba.query(`SET permsync.capture = 'off'; CREATE ROLE dynamic_login LOGIN; RESET permsync.capture`);
    const text = `DO $$ BEGIN EXECUTE 'ALTER ROLE dynamic_login PASS' || 'WORD ''hunter2-dynamic'''; END $$;
                  GRANT SELECT ON sales.orders TO dynamic_login`;
    await dba.query(text);
    const [batch] = await batches();
    expect(batch?.query_text).toBe(`DO $$********$$;
                  GRANT SELECT ON sales.orders TO dynamic_login`);
    await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders FROM dynamic_login; DROP ROLE dynamic_login; RESET permsync.capture`);
  });

  it('stores a string over 64 kB as a note of its size, not replayable', async () => {
    await fresh();
    const text = `GRANT SELECT ON sales.orders TO app; SELECT 1 /* ${'x'.repeat(100_000)} */`;
    await dba.query(text);
    const { rows } = await dba.query<{ query_text: string; not_replayable: string }>(
      `SELECT query_text, not_replayable FROM permsync.batches WHERE origin = 'event_trigger'`,
    );
    expect(rows).toEqual([
      {
        query_text: `/* permsync: text withheld: the string is ${Buffer.byteLength(text)} bytes, over the limit of 65536 */`,
        not_replayable: expect.stringMatching(
          new RegExp(`^the string is ${Buffer.byteLength(text)} bytes, over the limit of 65536 that capture stores`),
        ),
      },
    ]);
    await dba.query('REVOKE SELECT ON sales.orders FROM app');
  });

  it('writes at most 1,000 audit rows for a transaction however many commands it runs, and says so', async () => {
    await fresh();
    await dba.query(`DO $$ BEGIN FOR i IN 1..3000 LOOP EXECUTE 'GRANT SELECT ON sales.orders TO app'; END LOOP; END $$`);
    const { rows } = await dba.query<{ audit_rows: string; not_replayable: string }>(
      `SELECT (SELECT count(*) FROM permsync.audit_log a WHERE a.batch_id = b.id)::text AS audit_rows, b.not_replayable
         FROM permsync.batches b WHERE b.origin = 'event_trigger'`,
    );
    expect(rows).toEqual([
      {
        audit_rows: '1000',
        not_replayable: 'the string ran more than 1000 permission commands in one transaction; capture recorded the first 1000',
      },
    ]);
    await dba.query('REVOKE SELECT ON sales.orders FROM app');
  });

  it("reads a migration's string once, not at each of its ALTERs that change no owner", async () => {
    await fresh();
    // Each reading masks the string's literals, which costs as much as the string is long.
    const alters = (prefix: string) =>
      Array.from({ length: 200 }, (_, i) => `ALTER TABLE sales.orders ADD COLUMN ${prefix}${i} text DEFAULT 'v${i}'`).join('; ');
    const readings = async (string: string) => {
      const calls = `SELECT coalesce(pg_stat_get_xact_function_calls('permsync.masked_text'::regproc), 0) AS calls`;
      const results = (await dba.query(`SET track_functions = 'pl'; BEGIN; ${calls}; ${string}; ${calls}; ROLLBACK`)) as unknown as pg.QueryResult<{
        calls: string;
      }>[];
      const [before, after] = results.filter((r) => r.command === 'SELECT').map((r) => Number(r.rows[0]?.calls));
      return (after ?? NaN) - (before ?? NaN);
    };
    expect(await readings(alters('m'))).toBe(1);
    // With capture off too (the string says ROLLBACK: it is read for the batch that keeps its transactions in step).
    expect(await readings(`SET LOCAL permsync.capture = off; ${alters('o')}`)).toBe(1);
    // Once a GRANT has written the string's batch, its ALTERs read the stored text once.
    expect(await readings(`GRANT SELECT ON sales.orders TO app; ${alters('g')}`)).toBe(1);
    await dba.query('RESET track_functions');
    expect(await batches()).toEqual([]);
  });

  it('what it read of a string before the batch misleads nothing after it: capture off is still said, an ALTER that changes no owner still not recorded', async () => {
    await fresh();
    await dba.query(`ALTER TABLE sales.orders ADD COLUMN x1 int; GRANT SELECT ON sales.orders TO app;
                     SET permsync.capture = off; GRANT INSERT ON sales.orders TO app; RESET permsync.capture`);
    await dba.query(`SET permsync.capture = off; ALTER TABLE sales.orders ADD COLUMN x2 int; RESET permsync.capture;
                     GRANT UPDATE ON sales.orders TO app; ALTER TABLE sales.orders ADD COLUMN x3 int`);
    const { rows } = await dba.query<{ not_replayable: string | null; tags: string[] }>(
      `SELECT b.not_replayable, (SELECT array_agg(a.command_tag ORDER BY a.id) FROM permsync.audit_log a WHERE a.batch_id = b.id) AS tags
         FROM permsync.batches b WHERE b.origin = 'event_trigger' ORDER BY b.commit_seq`,
    );
    expect(rows).toEqual([
      { not_replayable: 'some of its permission commands ran with permsync.capture off', tags: ['GRANT', 'GRANT'] },
      { not_replayable: null, tags: ['GRANT'] },
    ]);
    await dba.query('REVOKE ALL ON sales.orders FROM app; ALTER TABLE sales.orders DROP COLUMN x1, DROP COLUMN x2, DROP COLUMN x3');
  });

  it('says so where a transaction past its 1,000 audit rows ran a command with capture off, as another role or with another search_path', async () => {
    const grants = Array.from({ length: 1001 }, () => 'GRANT SELECT ON sales.orders TO app').join('; ');
    const reasons = [];
    for (const past of [`SET LOCAL permsync.capture = off`, `SET LOCAL search_path = sales`, `SET LOCAL ROLE owner_dba`, '']) {
      await fresh();
      await dba.query(`BEGIN; ${grants}; ${past}; GRANT SELECT ON sales.lines TO app; COMMIT`);
      const { rows } = await dba.query<{ not_replayable: string }>(
        `SELECT b.not_replayable FROM permsync.batches b WHERE b.origin = 'event_trigger'`,
      );
      reasons.push(rows.map((r) => r.not_replayable));
    }
    const capped = 'the string ran more than 1000 permission commands in one transaction; capture recorded the first 1000';
    const otherwise = `${capped}, and past them it ran as another role, with another search_path or on a new temporary table; what it ran there cannot be told`;
    expect(reasons).toEqual([['some of its permission commands ran with permsync.capture off'], [otherwise], [otherwise], [capped]]);
    await dba.query('REVOKE ALL ON sales.orders, sales.lines FROM app');
  });

  it('records nothing with capture off, but in a string of several transactions keeps each in step', async () => {
    await fresh();
    await dba.query(`SET permsync.capture = 'off'; GRANT SELECT ON sales.orders TO app; RESET permsync.capture`);
    expect(await batches()).toEqual([]);
    await dba.query(`BEGIN; SELECT set_config('permsync' || '.capture', 'off', true); GRANT INSERT ON sales.orders TO app; COMMIT;
                     BEGIN; GRANT UPDATE ON sales.orders TO app; COMMIT`);
    const { rows } = await dba.query<{ not_replayable: string | null; tags: string[] }>(
      `SELECT b.not_replayable, (SELECT array_agg(a.command_tag) FROM permsync.audit_log a WHERE a.batch_id = b.id) AS tags
         FROM permsync.batches b WHERE b.origin = 'event_trigger' ORDER BY b.source_xid`,
    );
    expect(rows).toEqual([
      { not_replayable: expect.stringMatching(/ran with permsync.capture off/), tags: ['GRANT'] },
      { not_replayable: null, tags: ['GRANT'] },
    ]);
    await dba.query('REVOKE ALL ON sales.orders FROM app');
  });
});

describe('role changes seen by capture', () => {
  const fingerprints = async () =>
    (await dba.query<{ full: string; roles: string }>(`SELECT permsync.role_fingerprint() AS full, permsync.roles_fingerprint() AS roles`)).rows[0];

  it('a role another session created goes before the grant that names it', async () => {
    await fresh();
    const other = new pg.Client(server.url);
    await other.connect();
    try {
      // No role watcher runs here: only capture can have seen it.
      await other.query('CREATE ROLE made_elsewhere');
    } finally {
      await other.end();
    }
    await dba.query('GRANT SELECT ON sales.orders TO made_elsewhere');
    const { rows } = await dba.query<{ origin: string; query_text: string }>(`SELECT origin, query_text FROM permsync.batches ORDER BY commit_seq`);
    expect(rows.map((r) => r.origin)).toEqual(['role_watcher', 'event_trigger']);
    expect(rows[0]?.query_text).toMatch(/CREATE ROLE made_elsewhere\b/);
    await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders FROM made_elsewhere; DROP ROLE made_elsewhere;
      RESET permsync.capture; SELECT permsync.capture_role_changes()`);
  });

  /** Runs SQL in a session of its own, as a DBA in another psql would. */
  async function elsewhere(sql: string): Promise<void> {
    const other = new pg.Client(server.url);
    await other.connect();
    try {
      await other.query(sql);
    } finally {
      await other.end();
    }
  }

  /** Origins in commit order, and the role watcher's batches' text. */
  async function captured(): Promise<{ origins: string[]; roleText: string }> {
    const { rows } = await dba.query<{ origin: string; query_text: string }>(`SELECT origin, query_text FROM permsync.batches ORDER BY commit_seq`);
    return {
      origins: rows.map((r) => r.origin),
      roleText: rows
        .filter((r) => r.origin === 'role_watcher')
        .map((r) => r.query_text)
        .join('\n'),
    };
  }

  it('compares the roles only where the string names one changed since the snapshot, or its invoker', async () => {
    await fresh();
    await dba.query('SELECT permsync.capture_role_changes()');
    await elsewhere('CREATE ROLE named_nowhere');
    // The grant names app, unchanged: the new role is the role watcher's to find, later.
    await dba.query('GRANT SELECT ON sales.orders TO app');
    expect((await captured()).origins).toEqual(['event_trigger']);
    await dba.query('GRANT SELECT ON sales.lines TO named_nowhere');
    const { origins, roleText } = await captured();
    expect(origins).toEqual(['event_trigger', 'role_watcher', 'event_trigger']);
    expect(roleText).toMatch(/CREATE ROLE named_nowhere\b/);
    await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.lines FROM named_nowhere; DROP ROLE named_nowhere;
      RESET permsync.capture; SELECT permsync.capture_role_changes()`);
  });

  it("gives a row's 32-bit xmin the epoch of the session's next xid before comparing it with the snapshot", async () => {
    const epoch = 2n ** 32n;
    const cases: [xmin: bigint, horizon: string, takenIn: bigint, writtenBy: bigint | null, top: bigint, written: boolean][] = [
      // Across the wrap: an xid of the epoch before, older than the horizon.
      [epoch - 6n, `${epoch - 1n}:${epoch - 1n}:`, 1n, null, epoch + 100n, false],
      [50n, `${epoch + 40n}:${epoch + 40n}:`, 1n, null, epoch + 100n, true],
      [50n, `${epoch + 60n}:${epoch + 60n}:`, 1n, null, epoch + 100n, false],
      // In progress when the snapshot was taken.
      [50n, `${epoch + 40n}:${epoch + 60n}:${epoch + 50n}`, 1n, null, epoch + 100n, true],
      // The snapshot's own transaction: known once written_by is cleared.
      [70n, `${epoch + 60n}:${epoch + 60n}:`, epoch + 70n, null, epoch + 100n, false],
      [70n, `${epoch + 60n}:${epoch + 60n}:`, epoch + 70n, epoch + 70n, epoch + 100n, true],
      // Frozen.
      [2n, `${epoch + 60n}:${epoch + 60n}:`, 1n, null, epoch + 100n, false],
    ];
    for (const [xmin, horizon, takenIn, writtenBy, top, written] of cases) {
      const { rows } = await dba.query<{ written: boolean }>(
        'SELECT permsync.written_since($1::text::xid, $2::pg_snapshot, $3::text::xid8, $4::text::xid8, $5::bigint) AS written',
        [xmin.toString(), horizon, takenIn.toString(), writtenBy?.toString() ?? null, top.toString()],
      );
      expect(rows[0]?.written, `${xmin} against ${horizon}`).toBe(written);
    }
  });

  it('a role another session renamed, or created under a name the text spells its own way, goes first', async () => {
    const cases: [setup: string, grant: string, change: RegExp][] = [
      ['CREATE ROLE to_rename', 'GRANT SELECT ON sales.orders TO renamed_now', /ALTER ROLE to_rename RENAME TO renamed_now/],
      ['', 'GRANT SELECT ON sales.orders TO "Mixed Case", "we--ird", after_quote', /CREATE ROLE after_quote\b/],
      // A quote or comment mark inside a comment opens nothing.
      ['', `/* " */ GRANT SELECT ON sales.orders TO in_comments -- "\n, after_line /* /* */ " */ `, /CREATE ROLE after_line\b/],
      ['', `GRANT SELECT ON sales.orders TO ${'x'.repeat(70)}`, new RegExp(`CREATE ROLE ${'x'.repeat(63)}\\b`)],
    ];
    for (const [setup, grant, change] of cases) {
      if (setup) await dba.query(`SET permsync.capture = 'off'; ${setup}; RESET permsync.capture; SELECT permsync.capture_role_changes()`);
      await fresh();
      await dba.query('SELECT permsync.capture_role_changes()');
      await elsewhere(
        setup
          ? 'ALTER ROLE to_rename RENAME TO renamed_now'
          : grant.includes('Mixed')
            ? `CREATE ROLE "Mixed Case"; CREATE ROLE "we--ird"; CREATE ROLE after_quote`
            : grant.includes('in_comments')
              ? 'CREATE ROLE in_comments; CREATE ROLE after_line'
              : `CREATE ROLE ${'x'.repeat(63)}`,
      );
      await dba.query(grant);
      const { origins, roleText } = await captured();
      expect(origins, grant).toEqual(['role_watcher', 'event_trigger']);
      expect(roleText, grant).toMatch(change);
    }
    await dba.query(`SET permsync.capture = 'off';
      REVOKE ALL ON sales.orders FROM renamed_now, "Mixed Case", "we--ird", after_quote, in_comments, after_line, ${'x'.repeat(63)};
      DROP ROLE renamed_now, "Mixed Case", "we--ird", after_quote, in_comments, after_line, ${'x'.repeat(63)};
      RESET permsync.capture; SELECT permsync.capture_role_changes()`);
  });

  it('a membership another session gave the invoker goes before what it runs, so do roles a DO block names', async () => {
    await dba.query(`SET permsync.capture = 'off'; CREATE ROLE lines_keeper; ALTER TABLE sales.orders OWNER TO lines_keeper;
      RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    try {
      await fresh();
      await dba.query('SELECT permsync.capture_role_changes()');
      // owner_dba may grant on orders only as a member of its owner, granted a moment ago.
      await elsewhere('GRANT lines_keeper TO owner_dba');
      await dba.query('SET ROLE owner_dba; GRANT SELECT ON sales.orders TO app; RESET ROLE');
      let seen = await captured();
      expect(seen.origins).toEqual(['role_watcher', 'event_trigger']);
      expect(seen.roleText).toMatch(/GRANT lines_keeper TO owner_dba/);

      // The same, where the string changes role after its first command.
      await elsewhere('REVOKE lines_keeper FROM owner_dba');
      await dba.query('SELECT permsync.capture_role_changes()');
      await fresh();
      await elsewhere('GRANT lines_keeper TO owner_dba');
      await dba.query('GRANT SELECT ON sales.lines TO app; SET ROLE owner_dba; GRANT SELECT ON sales.orders TO app; RESET ROLE');
      seen = await captured();
      expect(seen.origins).toEqual(['role_watcher', 'event_trigger']);
      expect(seen.roleText).toMatch(/GRANT lines_keeper TO owner_dba/);

      await fresh();
      await dba.query('SELECT permsync.capture_role_changes()');
      await elsewhere('CREATE ROLE built_name');
      await dba.query(`DO $do$ BEGIN EXECUTE format('GRANT SELECT ON sales.orders TO %I', 'built' || '_name'); END $do$`);
      seen = await captured();
      expect(seen.origins).toEqual(['role_watcher', 'event_trigger']);
      expect(seen.roleText).toMatch(/CREATE ROLE built_name\b/);
      await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders FROM built_name; DROP ROLE built_name; RESET permsync.capture`);
    } finally {
      await dba.query(`SET permsync.capture = 'off'; RESET ROLE; ALTER TABLE sales.orders OWNER TO CURRENT_USER;
        REVOKE ALL ON sales.orders, sales.lines FROM app; DROP ROLE lines_keeper;
        RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    }
  });

  it('a role written in a subtransaction goes first: a snapshot lists no subtransaction as running', async () => {
    const holder = new pg.Client(server.url);
    await holder.connect();
    try {
      // Another session's role, made in a savepoint and committed after the watcher's snapshot,
      // whose horizon (taken after a later transaction committed, so that its xmax is past the
      // savepoint's xid) lists only the top xid as running.
      await dba.query('SELECT permsync.capture_role_changes()');
      await fresh();
      await holder.query('BEGIN; SAVEPOINT s; CREATE ROLE saved_elsewhere');
      await elsewhere('CREATE ROLE horizon_mover');
      await elsewhere('SELECT permsync.capture_role_changes()');
      await holder.query('COMMIT');
      await dba.query('GRANT SELECT ON sales.orders TO saved_elsewhere');
      let seen = await captured();
      expect(seen.origins).toEqual(['role_watcher', 'role_watcher', 'event_trigger']);
      expect(seen.roleText).toMatch(/CREATE ROLE saved_elsewhere\b/);

      // The DBA's own, made in a savepoint (psql's ON_ERROR_ROLLBACK wraps each statement in one).
      await dba.query('SELECT permsync.capture_role_changes()');
      await fresh();
      await dba.query('BEGIN; SAVEPOINT s; CREATE ROLE saved_here; RELEASE s');
      await elsewhere('CREATE ROLE horizon_mover_too');
      await elsewhere('SELECT permsync.capture_role_changes()');
      await dba.query('SAVEPOINT s; GRANT SELECT ON sales.orders TO saved_here; RELEASE s');
      await dba.query('COMMIT');
      seen = await captured();
      expect(seen.origins).toEqual(['role_watcher', 'role_watcher', 'event_trigger']);
      expect(seen.roleText).toMatch(/CREATE ROLE saved_here\b/);

      // A role the snapshot's own transaction renamed in the savepoint it was taken in.
      await dba.query('SELECT permsync.capture_role_changes()');
      await fresh();
      await dba.query('BEGIN; SAVEPOINT s; CREATE ROLE named_first');
      await elsewhere('CREATE ROLE horizon_mover_last');
      await dba.query('GRANT SELECT ON sales.orders TO named_first');
      await dba.query('ALTER ROLE named_first RENAME TO named_then');
      await dba.query('GRANT SELECT ON sales.lines TO named_then');
      await dba.query('COMMIT');
      seen = await captured();
      expect(seen.origins).toEqual(['role_watcher', 'event_trigger', 'role_watcher', 'event_trigger']);
      expect(seen.roleText).toMatch(/ALTER ROLE named_first RENAME TO named_then/);
    } finally {
      await holder.end();
      // Which of them exist depends on where a failure stopped: each is dropped with what it holds.
      await dba.query(`ROLLBACK; SET permsync.capture = 'off';
        DO $do$ DECLARE r name; BEGIN
          FOR r IN SELECT rolname FROM pg_roles
                    WHERE rolname IN ('saved_elsewhere', 'saved_here', 'named_first', 'named_then',
                                    'horizon_mover', 'horizon_mover_too', 'horizon_mover_last') LOOP
            EXECUTE format('DROP OWNED BY %I; DROP ROLE %I', r, r);
          END LOOP;
        END $do$;
        RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    }
  });

  /** Whether the newest client string's batch had its role check read the catalogs whole. */
  async function comparedWhole(): Promise<boolean | undefined> {
    const { rows } = await dba.query<{ compared: boolean }>(
      `SELECT roles_compared AS compared FROM permsync.batches WHERE origin = 'event_trigger' ORDER BY id DESC LIMIT 1`,
    );
    return rows[0]?.compared;
  }

  it('the watcher moves the horizon past a transaction left open, and the check vouches for what it saw again', async () => {
    const holder = new pg.Client(server.url);
    await holder.connect();
    try {
      await holder.query('BEGIN; SELECT pg_current_xact_id()');
      await elsewhere('CREATE ROLE after_open');
      await elsewhere('SELECT permsync.capture_role_changes()');
      await elsewhere('SELECT permsync.capture_role_changes()');
      // The role's transaction began after the open one: the snapshot cannot vouch for it.
      await dba.query('GRANT SELECT ON sales.orders TO after_open');
      expect(await comparedWhole()).toBe(true);
      await holder.query('COMMIT');
      await elsewhere('SELECT permsync.capture_role_changes()');
      await dba.query('GRANT SELECT ON sales.lines TO after_open');
      expect(await comparedWhole()).toBe(false);
      // Outside READ COMMITTED the transaction's snapshot gives no xid above what it writes.
      await dba.query('BEGIN ISOLATION LEVEL REPEATABLE READ; GRANT SELECT ON sales.lines TO after_open; COMMIT');
      expect(await comparedWhole()).toBe(true);
    } finally {
      await holder.end();
      await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders, sales.lines FROM after_open; DROP ROLE after_open;
        RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    }
  });

  interface Ordered {
    id: string;
    origin: string;
    query_text: string;
    precedes: string | null;
    converge_reason: string | null;
  }

  /** Every batch since fresh(), in commit order. */
  async function inCommitOrder(): Promise<Ordered[]> {
    const { rows } = await dba.query<Ordered>(
      `SELECT id::text, origin, query_text, precedes::text, converge_reason FROM permsync.batches ORDER BY commit_seq`,
    );
    return rows;
  }

  it('a role created between two permission commands of a string goes before the string, however it commits', async () => {
    const grants = (role: string, table: string) =>
      `GRANT SELECT ON sales.${table} TO app; CREATE ROLE ${role}; GRANT SELECT ON sales.${table} TO ${role}`;
    const cases = [
      { strings: [grants('mid_plain', 'orders')], roles: ['mid_plain'] },
      // Its batch numbered when written: the role change takes that number.
      { strings: [`BEGIN; SET CONSTRAINTS ALL IMMEDIATE; ${grants('mid_immediate', 'orders')}; COMMIT`], roles: ['mid_immediate'] },
      { strings: [`BEGIN ISOLATION LEVEL SERIALIZABLE; ${grants('mid_serializable', 'orders')}; COMMIT`], roles: ['mid_serializable'] },
      // Two strings of one transaction: each role change goes before its own string only.
      { strings: ['BEGIN', grants('mid_first', 'orders'), grants('mid_second', 'lines'), 'COMMIT'], roles: ['mid_first', 'mid_second'] },
    ];
    for (const { strings, roles } of cases) {
      await fresh();
      for (const sql of strings) await dba.query(sql);
      const rows = await inCommitOrder();
      expect(
        rows.map((r) => r.origin),
        strings.join('\n'),
      ).toEqual(roles.flatMap(() => ['role_watcher', 'event_trigger']));
      for (const [i, role] of roles.entries()) {
        const [change, string] = [rows[2 * i], rows[2 * i + 1]];
        expect(change?.query_text).toMatch(new RegExp(`^CREATE ROLE ${role};$`));
        expect(string?.query_text).toContain(`CREATE ROLE ${role};`);
        expect(change?.precedes).toBe(string?.id);
        expect(string?.converge_reason).toBeNull();
      }
      await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders, sales.lines FROM ${roles.join(', ')};
        DROP ROLE ${roles.join(', ')}; RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    }
  });

  it('a string that renames or drops a role between its permission commands is marked to be converged', async () => {
    await dba.query(`SET permsync.capture = 'off'; CREATE ROLE mid_old; RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    const strings: [sql: string, change: string][] = [
      [
        'GRANT SELECT ON sales.orders TO mid_old; ALTER ROLE mid_old RENAME TO mid_new; GRANT SELECT ON sales.lines TO mid_new',
        'ALTER ROLE mid_old RENAME TO mid_new;',
      ],
      ['REVOKE ALL ON sales.orders, sales.lines FROM mid_new; DROP ROLE mid_new; GRANT SELECT ON sales.lines TO app', 'DROP ROLE IF EXISTS mid_new;'],
    ];
    for (const [sql, change] of strings) {
      await fresh();
      await dba.query(sql);
      const rows = await inCommitOrder();
      expect(
        rows.map((r) => r.origin),
        sql,
      ).toEqual(['role_watcher', 'event_trigger']);
      expect(rows[0]?.query_text).toBe(change);
      expect(rows[1]?.converge_reason).toMatch(/^a role was renamed or dropped between its permission commands/);
    }
  });

  it('a string that changes no role compares the roles at most once, and not where the snapshot holds what it names', async () => {
    await dba.query(`SET track_functions = 'pl'`);
    // Calls counted in the string's own transaction: read before and after, in it.
    const checks = async (sql: string): Promise<number> => {
      const count = `SELECT coalesce((SELECT calls FROM pg_stat_xact_user_functions
                                       WHERE schemaname = 'permsync' AND funcname = 'role_snapshot_matches'), 0)::int AS n`;
      const results = (await dba.query(`BEGIN; ${count}; ${sql}; ${count}; COMMIT`)) as unknown as pg.QueryResult<{ n: number }>[];
      const [before = NaN, after = NaN] = results.filter((r) => r.command === 'SELECT').map((r) => r.rows[0]?.n ?? NaN);
      return after - before;
    };
    try {
      await fresh();
      await dba.query('SELECT permsync.capture_role_changes()'); // nothing left for the first check to capture
      expect(await checks('GRANT SELECT ON sales.orders TO app')).toBe(0);
      expect(await checks(Array.from({ length: 20 }, (_, i) => `GRANT SELECT ON sales.${i % 2 ? 'orders' : 'lines'} TO app`).join('; '))).toBe(0);
      // A DO block's statements name roles its text does not: compared whole, once.
      expect(await checks(`DO $do$ BEGIN FOR i IN 1..5 LOOP EXECUTE 'GRANT SELECT ON sales.orders TO app'; END LOOP; END $do$`)).toBe(1);
      // A role change in the string: compared again at the next command, and only then.
      const once = await checks('GRANT SELECT ON sales.orders TO app; CREATE ROLE mid_counted; GRANT SELECT ON sales.orders TO mid_counted');
      expect(once).toBeGreaterThan(1);
      await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders FROM mid_counted; DROP ROLE mid_counted;
        RESET permsync.capture; SELECT permsync.capture_role_changes()`);
      const repeated = await checks(
        'GRANT SELECT ON sales.orders TO app; CREATE ROLE mid_counted; ' +
          Array.from({ length: 20 }, () => 'GRANT SELECT ON sales.orders TO mid_counted').join('; '),
      );
      expect(repeated).toBe(once);
      await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders FROM mid_counted; DROP ROLE mid_counted;
        RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    } finally {
      await dba.query('RESET track_functions');
    }
  });

  /**
   * Separate client strings of one transaction: each GRANT compares the roles with the
   * snapshot the previous one took, and the second ALTER leaves the row's xmin as it was.
   */
  async function writeRoleTwiceInOneTransaction(): Promise<void> {
    await fresh();
    for (const sql of [
      'BEGIN',
      'CREATE ROLE twice',
      `ALTER ROLE twice SET work_mem = '1MB'`,
      'GRANT SELECT ON sales.orders TO twice',
      'ALTER ROLE twice CREATEDB',
      `ALTER ROLE twice SET work_mem = '2MB'`,
      'GRANT SELECT ON sales.lines TO twice',
      `ALTER ROLE twice SET work_mem = '3MB'`,
      'COMMIT',
    ]) {
      await dba.query(sql);
    }
    const watched = await dba.query<{ batch: string | null }>('SELECT permsync.capture_role_changes()::text AS batch');
    const { rows } = await dba.query<{ origin: string; query_text: string }>(`SELECT origin, query_text FROM permsync.batches ORDER BY commit_seq`);
    expect(rows.map((r) => r.origin)).toEqual(['role_watcher', 'event_trigger', 'role_watcher', 'event_trigger', 'role_watcher']);
    expect(rows[0]?.query_text).toMatch(/CREATE ROLE twice\b/);
    expect(rows[2]?.query_text).toMatch(/ALTER ROLE twice .*CREATEDB/);
    expect(rows[2]?.query_text).toMatch(/ALTER ROLE twice SET work_mem (=|TO) '2MB'/);
    // The last change, after the last GRANT: only the role watcher, after COMMIT, sees it.
    expect(rows[4]?.query_text).toMatch(/ALTER ROLE twice SET work_mem (=|TO) '3MB'/);
    expect(watched.rows[0]?.batch).not.toBeNull();
  }

  const dropTwice = `SET permsync.capture = 'off'; REVOKE ALL ON sales.orders, sales.lines FROM twice; DROP ROLE twice;
    RESET permsync.capture; SELECT permsync.capture_role_changes()`;

  it('a role written again in the transaction that took the snapshot is captured again', async () => {
    await writeRoleTwiceInOneTransaction();
    // Committed and unchanged since, the rows' places need no more comparing: the next
    // check of the watcher's (one that finds nothing new) stops doing it.
    expect((await dba.query('SELECT permsync.capture_role_changes() AS batch')).rows[0]).toEqual({ batch: null });
    const settled = await dba.query<{ same: boolean; placesForgotten: boolean }>(
      `SELECT fingerprint = permsync.role_fingerprint() AND roles_fingerprint = permsync.roles_fingerprint() AS same,
              written_by IS NULL AND rows_written IS NULL AND roles_rows_written IS NULL AS "placesForgotten"
         FROM permsync.role_snapshot`,
    );
    expect(settled.rows[0]).toEqual({ same: true, placesForgotten: true });
    await dba.query(dropTwice);
  });

  it('a role committed while the watcher reads the role state still goes before a grant that names it', async () => {
    await fresh();
    // The watcher is held after it has read the state (role_state wrapped to wait on an
    // advisory lock), while another session commits CREATE ROLE: the fingerprints it stores
    // must not count that role as captured.
    await dba.query(`SET permsync.capture = 'off';
      ALTER FUNCTION permsync.role_state() RENAME TO role_state_unheld;
      CREATE FUNCTION permsync.role_state() RETURNS jsonb LANGUAGE plpgsql AS $fn$
        DECLARE state jsonb := permsync.role_state_unheld();
        BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN state; END $fn$;
      ALTER ROLE app CONNECTION LIMIT 7; RESET permsync.capture`);
    const holder = new pg.Client(server.url);
    const watcher = new pg.Client(server.url);
    const creator = new pg.Client(server.url);
    await Promise.all([holder.connect(), watcher.connect(), creator.connect()]);
    try {
      await holder.query('SELECT pg_advisory_lock(4242)');
      // Begun before the watcher's transaction, so its row is older than the watcher's own.
      await creator.query('BEGIN; CREATE ROLE late_role');
      const watching = watcher.query('SELECT permsync.capture_role_changes()');
      await vi.waitFor(
        async () => {
          const { rows } = await dba.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted`);
          if (rows.length === 0) throw new Error('the watcher is not held yet');
        },
        { timeout: 10_000, interval: 20 },
      );
      await creator.query('COMMIT');
      await holder.query('SELECT pg_advisory_unlock(4242)');
      await watching;
      await dba.query('GRANT SELECT ON sales.orders TO late_role');
      const { rows } = await dba.query<{ origin: string }>(`SELECT origin FROM permsync.batches WHERE query_text ~ 'late_role' ORDER BY commit_seq`);
      expect(rows.map((r) => r.origin)).toEqual(['role_watcher', 'event_trigger']);
    } finally {
      await Promise.all([holder.end(), watcher.end(), creator.end()]);
      await dba.query(`SET permsync.capture = 'off'; DROP FUNCTION permsync.role_state();
        ALTER FUNCTION permsync.role_state_unheld() RENAME TO role_state;
        REVOKE ALL ON sales.orders FROM late_role; DROP ROLE IF EXISTS late_role; ALTER ROLE app CONNECTION LIMIT -1;
        RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    }
  });

  it("the same where the functions may not read pg_authid (a managed service's admin owns them)", async () => {
    const owned = ['permsync.roles_fingerprint()', 'permsync.role_fingerprint()', 'permsync.rows_written_since(xid, boolean)'];
    const ownAll = (owner: string) => owned.map((f) => `ALTER FUNCTION ${f} OWNER TO ${owner}`).join('; ');
    await dba.query(`SET permsync.capture = 'off'; CREATE ROLE no_authid;
      GRANT USAGE ON SCHEMA permsync TO no_authid; GRANT SELECT ON permsync.config, permsync.role_snapshot TO no_authid;
      ${ownAll('no_authid')}; RESET permsync.capture`);
    try {
      await writeRoleTwiceInOneTransaction();
      await dba.query(dropTwice);
    } finally {
      await dba.query(`SET permsync.capture = 'off'; ${ownAll('CURRENT_USER')}; DROP OWNED BY no_authid; DROP ROLE no_authid;
        RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    }
  });

  it("a login's own long search_path holds up no role check: a value over 8 kB is not carried", async () => {
    await fresh();
    await dba.query(`SET permsync.capture = 'off'; CREATE ROLE long_path LOGIN PASSWORD 'long-path-pw'; RESET permsync.capture`);
    const login = new pg.Client(server.urlFor('postgres', 'long_path', 'long-path-pw'));
    await login.connect();
    try {
      // Any login may store any text as its own setting; 100,000 schemas take about 700 kB.
      await login.query(`SELECT set_config('search_path', (SELECT string_agg('s' || i, ', ') FROM generate_series(1, 100000) i), false);
                         ALTER ROLE long_path SET search_path FROM CURRENT`);
    } finally {
      await login.end();
    }
    const listed = Array.from({ length: 1000 }, (_, i) => `s${i}`);
    await dba.query(`SET permsync.capture = 'off'; ALTER ROLE app SET search_path = ${listed.join(', ')}; RESET permsync.capture`);
    // The role check before this GRANT writes the settings out: splitting the long value
    // element by element would take it more than half an hour.
    await dba.query(`SET statement_timeout = '30s'`);
    try {
      await dba.query('CREATE ROLE after_long_path; GRANT SELECT ON sales.orders TO after_long_path');
    } finally {
      await dba.query('RESET statement_timeout');
    }
    const { rows } = await dba.query<{ q: string }>(`SELECT query_text AS q FROM permsync.batches WHERE origin = 'role_watcher'`);
    const text = rows.map((r) => r.q).join('\n');
    expect(text).toMatch(/ALTER ROLE long_path SET search_path TO DEFAULT \/\* permsync: value withheld: \d+ bytes, over the limit of 8192 \*\//);
    expect(text).toContain(`ALTER ROLE app SET search_path TO ${listed.map((s) => `'${s}'`).join(', ')}`);
    await dba.query(`SET permsync.capture = 'off'; REVOKE ALL ON sales.orders FROM after_long_path; DROP ROLE after_long_path, long_path;
      ALTER ROLE app RESET search_path; RESET permsync.capture; SELECT permsync.capture_role_changes()`);
  });

  it('fingerprints move with every kind of role change, not with time or VACUUM FREEZE', async () => {
    const before = await fingerprints();
    // New transaction ids, then frozen catalog rows: xmin stays as it was.
    for (let i = 0; i < 5; i++) await dba.query('SELECT pg_current_xact_id()');
    await dba.query('VACUUM (FREEZE) pg_authid, pg_auth_members, pg_db_role_setting, pg_shdescription');
    expect(await fingerprints()).toEqual(before);

    const after = async (sql: string) => {
      const was = await fingerprints();
      await dba.query(`SET permsync.capture = 'off'; ${sql}; RESET permsync.capture`);
      return { was, now: await fingerprints() };
    };
    // What a permission statement can depend on: capture's cheaper check sees it.
    for (const sql of [
      'ALTER ROLE app CONNECTION LIMIT 5',
      'GRANT app TO owner_dba',
      'REVOKE app FROM owner_dba',
      'ALTER ROLE app RENAME TO app2',
      'ALTER ROLE app2 RENAME TO app',
      'ALTER ROLE app CONNECTION LIMIT -1',
    ]) {
      const { was, now } = await after(sql);
      expect(now?.roles, sql).not.toEqual(was?.roles);
      expect(now?.full, sql).not.toEqual(was?.full);
    }
    // The rest only the role watcher's full check needs to see.
    for (const sql of [
      `COMMENT ON ROLE app IS 'readers'`,
      `ALTER ROLE app SET work_mem = '8MB'`,
      'GRANT CONNECT ON DATABASE postgres TO app',
      'REVOKE CONNECT ON DATABASE postgres FROM app',
      'ALTER ROLE app RESET work_mem',
      'COMMENT ON ROLE app IS NULL',
    ]) {
      const { was, now } = await after(sql);
      expect(now?.roles, sql).toEqual(was?.roles);
      expect(now?.full, sql).not.toEqual(was?.full);
    }
    await dba.query('SELECT permsync.capture_role_changes()');
  });

  it('a transaction rewriting rows written just before and just after its xid still moves them', async () => {
    const other = new pg.Client(server.url);
    await other.connect();
    try {
      const xid = async (client: pg.Client, sql: string) => (await client.query<{ x: string }>(sql)).rows[0]?.x as string;
      await dba.query(`SET permsync.capture = 'off'; CREATE ROLE early; RESET permsync.capture`);
      const n = BigInt(await xid(dba, `SELECT xmin::text AS x FROM pg_authid WHERE rolname = 'early'`));
      // Rows written by n and n + 2, then both rewritten by n + 1: a sum of xmins stays the same.
      await other.query('BEGIN');
      expect(BigInt(await xid(other, 'SELECT pg_current_xact_id()::text AS x'))).toBe(n + 1n);
      await dba.query(`SET permsync.capture = 'off'; ALTER ROLE app CONNECTION LIMIT 7; RESET permsync.capture`);
      expect(BigInt(await xid(dba, `SELECT xmin::text AS x FROM pg_authid WHERE rolname = 'app'`))).toBe(n + 2n);
      // The watcher twice: the second check, in a transaction that has written nothing, forgets the places.
      await dba.query('SELECT permsync.capture_role_changes()');
      await dba.query('SELECT permsync.capture_role_changes()');
      await other.query(`SET permsync.capture = 'off'; ALTER ROLE app CREATEDB; ALTER ROLE early CREATEDB; COMMIT`);
      const { rows } = await dba.query<{ batch: string | null }>('SELECT permsync.capture_role_changes()::text AS batch');
      const { rows: text } = await dba.query<{ q: string }>(`SELECT query_text AS q FROM permsync.batches WHERE id = $1`, [rows[0]?.batch]);
      expect(text[0]?.q).toMatch(/ALTER ROLE app .*CREATEDB/);
      expect(text[0]?.q).toMatch(/ALTER ROLE early .*CREATEDB/);
    } finally {
      await other.query('ROLLBACK').catch(() => {});
      await other.end();
      await dba.query(`SET permsync.capture = 'off'; ALTER ROLE app NOCREATEDB CONNECTION LIMIT -1; DROP ROLE early; RESET permsync.capture`);
      await dba.query('SELECT permsync.capture_role_changes()');
    }
  });
});

describe('uninstall', () => {
  it('removes every object, the event trigger included', async () => {
    await uninstall(dba);
    const { rows } = await dba.query<{ n: string }>(`
      SELECT (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'permsync%')
           + (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'permsync%') AS n`);
    expect(rows[0]?.n).toBe('0');
    await dba.query('GRANT SELECT ON sales.orders TO app'); // no trigger left to fail
    await install(dba);
  });
});

describe("the role watcher's batches", () => {
  it("keep a DBA's drop and the creation of the role its objects went to together, however much a login's roles take around them", async () => {
    // Names of control characters print six bytes each: 1,000 roles of a CREATEROLE login's,
    // dropped and made again, take over 1 MB, and 100 renames more, in the same look.
    const names = (prefix: string, count: number) => `SELECT '${prefix}' || i || repeat(chr(1), 55) AS name FROM generate_series(1, ${count}) i`;
    const each = (query: string, sql: string) => `DO $$ DECLARE r record; BEGIN FOR r IN ${query} LOOP EXECUTE ${sql}; END LOOP; END $$`;
    const uncaptured = (sql: string) =>
      dba.query(`SET permsync.capture = 'off'; ${sql}; RESET permsync.capture; SELECT permsync.capture_role_changes()`);
    await uncaptured(`CREATE ROLE leaver_apart; CREATE ROLE mallory_apart CREATEROLE; SET ROLE mallory_apart;
      ${each(names('cre_', 1000), `format('CREATE ROLE %I', r.name)`)};
      ${each(names('ctl_', 100), `format('CREATE ROLE %I', r.name)`)}; RESET ROLE`);
    await fresh();
    try {
      await uncaptured(`SET ROLE mallory_apart;
        ${each(names('cre_', 1000), `format('DROP ROLE %I; CREATE ROLE %I', r.name, r.name)`)};
        ${each(names('ctl_', 100), `format('ALTER ROLE %I RENAME TO %I', r.name, replace(r.name, 'ctl_', 'ren_'))`)}; RESET ROLE;
        CREATE ROLE heir_apart; DROP ROLE leaver_apart; ALTER ROLE heir_apart RENAME TO leaver_apart`);
      const { rows } = await dba.query<{ bytes: number; kinds: string[] | null }>(
        `SELECT octet_length(b.statements::text) AS bytes,
                (SELECT array_agg(s ->> 'kind' ORDER BY o) FROM jsonb_array_elements(b.statements) WITH ORDINALITY AS t(s, o)
                  WHERE s ->> 'role' = 'leaver_apart') AS kinds
           FROM permsync.batches b WHERE b.origin = 'role_watcher' ORDER BY b.commit_seq`,
      );
      expect(rows.length).toBeGreaterThan(2);
      for (const row of rows) expect(row.bytes).toBeLessThanOrEqual(MAX_GENERATED_BYTES);
      expect(rows.flatMap((r) => (r.kinds ? [r.kinds] : []))).toEqual([['DROP ROLE', 'CREATE ROLE']]);
    } finally {
      await uncaptured(`${each(names('cre_', 1000), `format('DROP ROLE %I', r.name)`)};
        ${each(names('ren_', 100), `format('DROP ROLE %I', r.name)`)}; DROP ROLE leaver_apart, mallory_apart`);
      await fresh();
    }
  });
});
