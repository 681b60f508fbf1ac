import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/daemon.js';
import { SourceStore } from '../src/source/store.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

/**
 * What an environment marks in flight (permsync.environments.in_flight_through) is what
 * may have reached the target without its outcome logged. Batches under the mark are
 * re-applied with that said, and an "already so" error from one of them is no failure.
 * The mark must therefore cover exactly what was sent.
 */
let p: Pipeline;
let daemon: Daemon | undefined;

async function outcome(seq: string) {
  const { rows } = await p.sourceClient.query<{ execution_status: string; error_code: string | null; result_message: string | null }>(
    `SELECT execution_status, error_code, result_message FROM permsync.execution_log WHERE commit_seq = $1 AND environment_name = 'prod'`,
    [seq],
  );
  return rows[0];
}

async function lastSeqs(count: number): Promise<string[]> {
  const { rows } = await p.sourceClient.query<{ seq: string }>(
    `SELECT commit_seq::text AS seq FROM permsync.batches ORDER BY commit_seq DESC LIMIT $1`,
    [count],
  );
  return rows.map((r) => r.seq).reverse();
}

/** Tables the source has and prod does not (yet). */
async function sourceOnly(...tables: string[]): Promise<void> {
  await p.sourceClient.query(`SET permsync.capture = 'off'; ${tables.map((t) => `CREATE TABLE ${t} (id int)`).join('; ')}; RESET permsync.capture`);
}

/** A daemon carries what the role watcher finds, and stops. */
async function carryRoles(): Promise<void> {
  const first = await p.startDaemon();
  await p.settleRoles();
  await first.stop();
}

beforeAll(async () => {
  p = await startPipeline(['prod']);
  await p.everywhere('CREATE ROLE other; CREATE TABLE t (id int)');
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  // prod starts from what is committed when a daemon first sees it: one sees it now, and
  // carries the role the role watcher finds, so that each test starts with nothing pending.
  await carryRoles();
});

afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

afterAll(async () => {
  await p?.close();
});

describe('the in-flight mark', () => {
  it('after a group the target refused, covers only the batches tried one by one', async () => {
    await sourceOnly('ta', 'tb');
    // A backlog of two: carried as a group, which prod refuses; then one by one: the first holds.
    await p.dba('GRANT SELECT ON ta TO other');
    await p.dba('GRANT SELECT ON tb TO other');
    const [first, second] = (await lastSeqs(2)) as [string, string];
    daemon = await p.startDaemon();
    await waitFor(async () => (await outcome(first))?.execution_status === 'failed', 15_000, 'the first batch to hold');
    const { rows } = await p.sourceClient.query<{ through: string }>(
      `SELECT in_flight_through::text AS through FROM permsync.environments WHERE name = 'prod'`,
    );
    expect(rows[0]?.through).toBe(first);

    // The DBA fixes the first batch's cause on prod and restarts the daemon. The second
    // never reached prod: it must fail there (tb is missing), not pass as "already applied".
    await p.env('prod').client.query('CREATE TABLE ta (id int)');
    await daemon.stop();
    daemon = await p.startDaemon();
    await waitFor(async () => (await outcome(second)) !== undefined, 15_000, 'the second batch to get an outcome');
    expect(await outcome(first)).toMatchObject({ execution_status: 'success' });
    expect(await outcome(second)).toMatchObject({ execution_status: 'failed', error_code: '42P01' });

    await p.env('prod').client.query('CREATE TABLE tb (id int)');
    await p.sourceClient.query(`SELECT permsync.retry_failed('prod')`);
    await waitFor(async () => (await outcome(second))?.execution_status === 'success', 15_000, 'the second batch to apply');
  });

  it('after a group the target refused with a transient error (a timeout), too', async () => {
    await p.everywhere('CREATE TABLE u1 (id int); CREATE TABLE u2 (id int)');
    await p.sourceClient.query(`SET permsync.capture = 'off'; CREATE TABLE u3 (id int); RESET permsync.capture`);
    const config = p.config({ settings: { statementTimeoutMs: 1000 } });
    await p.dba('GRANT SELECT ON u1 TO other');
    await p.dba('GRANT SELECT ON u2 TO other');
    await p.dba('GRANT SELECT ON u3 TO other'); // prod has no u3: this must fail there
    const [first, , third] = (await lastSeqs(3)) as [string, string, string];
    // Another session on prod changes u1: the group's GRANT on it waits, then times out (57014).
    const blocker = new pg.Client(p.env('prod').server.url);
    await blocker.connect();
    try {
      await blocker.query('BEGIN; ALTER TABLE u1 ADD COLUMN z int');
      daemon = await p.startDaemon(config);
      await waitFor(async () => (await outcome(first))?.error_code === '57014', 20_000, 'the first batch to time out');
      const { rows } = await p.sourceClient.query<{ through: string }>(
        `SELECT in_flight_through::text AS through FROM permsync.environments WHERE name = 'prod'`,
      );
      expect(rows[0]?.through).toBe(first);
      await daemon.stop();
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    daemon = await p.startDaemon(config);
    await waitFor(async () => (await outcome(third)) !== undefined, 20_000, 'the third batch to get an outcome');
    expect(await outcome(third)).toMatchObject({ execution_status: 'failed', error_code: '42P01' });
    await p.env('prod').client.query('CREATE TABLE u3 (id int)');
    await p.sourceClient.query(`SELECT permsync.retry_failed('prod')`);
    await waitFor(async () => (await outcome(third))?.execution_status === 'success', 15_000, 'the third batch to apply');
  });

  it('a batch that waited for a retry and then settled otherwise (dry run) leaves no retry behind', async () => {
    daemon = await p.startDaemon();
    await p.env('prod').proxy.cut();
    await p.dba('GRANT INSERT ON t TO other');
    const [seq] = (await lastSeqs(1)) as [string];
    const retries = async () =>
      (
        await p.sourceClient.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM permsync.retry_queue r JOIN permsync.batches b ON b.id = r.batch_id WHERE b.commit_seq = $1`,
          [seq],
        )
      ).rows[0]?.n;
    await waitFor(async () => (await retries()) === 1, 15_000, 'prod to fail and queue a retry');
    // A daemon reads the switches before it applies anything: one started after dry run
    // is on cannot retry for real in the moment before a running one reads it.
    await daemon.stop();
    await p.sourceClient.query('SELECT permsync.enable_dry_run()');
    try {
      daemon = await p.startDaemon();
      await p.env('prod').proxy.open();
      await waitFor(async () => (await outcome(seq))?.execution_status === 'dry_run', 15_000, 'the retry, in dry run');
      expect(await retries()).toBe(0);
    } finally {
      await p.sourceClient.query('SELECT permsync.disable_dry_run()');
    }
  });

  it('after the source failed while logging a group that applied, makes its batches re-applications', async () => {
    // Backlog: a GRANT to app, REVOKEs, the role watcher's DROP ROLE app, a GRANT to other.
    await p.everywhere('CREATE ROLE app; CREATE TABLE t2 (id int); CREATE TABLE t3 (id int)');
    await p.adopt(['app']);
    await carryRoles();
    await p.dba('GRANT SELECT ON t TO app');
    await p.dba('REVOKE SELECT ON t FROM app; REVOKE SELECT ON t2, t3 FROM app');
    await p.sourceClient.query(`SET permsync.capture = 'off'; DROP ROLE app; RESET permsync.capture`);
    await p.sourceClient.query('SELECT permsync.capture_role_changes()'); // the watcher's DROP ROLE batch
    await p.dba('GRANT SELECT ON t2 TO other');
    const seqs = await lastSeqs(4);

    // The next write of execution_log fails once, as a source restart would.
    await p.sourceClient.query(`
      SET permsync.capture = 'off';
      CREATE SEQUENCE public.blip;
      CREATE FUNCTION public.blip() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('public.blip') = 1 THEN RAISE EXCEPTION 'source blip' USING ERRCODE = '57P01'; END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER blip BEFORE INSERT ON permsync.execution_log FOR EACH STATEMENT EXECUTE FUNCTION public.blip();
      RESET permsync.capture`);
    try {
      daemon = await p.startDaemon();
      await p.settle();
    } finally {
      await p.sourceClient.query(`SET permsync.capture = 'off'; DROP TRIGGER blip ON permsync.execution_log; RESET permsync.capture`);
    }
    // The whole backlog applied on prod the first time (app is gone there): none of it is a failure.
    const { rows } = await p.env('prod').client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'app'`);
    expect(rows[0]?.n).toBe(0);
    for (const seq of seqs) expect((await outcome(seq))?.execution_status, `commit_seq ${seq}`).not.toBe('failed');
    expect((await outcome(seqs[0] as string))?.result_message).toMatch(/re-applied/);
  });
});

describe('marks of several environments', () => {
  it('asked for at the same moment are written in one commit, each as asked', async () => {
    const names = ['mark_a', 'mark_b', 'mark_c'];
    await p.sourceClient.query(`INSERT INTO permsync.environments (name) SELECT unnest($1::text[])`, [names]);
    const pool = new pg.Pool({ connectionString: p.source.url, max: 4 });
    try {
      const store = new SourceStore(pool);
      // Asked for in the same moment: one write, one commit.
      await Promise.all(names.map((name, i) => store.markInFlight(name, String(100 + i))));
      const read = async () =>
        (
          await p.sourceClient.query<{ name: string; through: string; xmin: string }>(
            `SELECT name, in_flight_through::text AS through, xmin::text FROM permsync.environments WHERE name = ANY ($1) ORDER BY name`,
            [names],
          )
        ).rows;
      const first = await read();
      expect(first.map((r) => [r.name, r.through])).toEqual([
        ['mark_a', '100'],
        ['mark_b', '101'],
        ['mark_c', '102'],
      ]);
      expect(new Set(first.map((r) => r.xmin)).size).toBe(1);
      // A mark never goes back, and one asked for after a write has its own.
      await Promise.all([store.markInFlight('mark_a', '99'), store.markInFlight('mark_b', '200')]);
      await store.markInFlight('mark_c', '300');
      const second = await read();
      expect(second.map((r) => [r.name, r.through])).toEqual([
        ['mark_a', '100'],
        ['mark_b', '200'],
        ['mark_c', '300'],
      ]);
      expect(second[1]?.xmin).not.toBe(second[2]?.xmin);
      // A row another session holds (a transaction left open after pausing that environment)
      // holds that environment's mark alone.
      const holder = new pg.Client(p.source.url);
      await holder.connect();
      try {
        await holder.query(`BEGIN; SELECT permsync.pause_environment('mark_b')`);
        let heldDone = false;
        const held = store.markInFlight('mark_b', '400').then(() => (heldDone = true));
        const others = Promise.all([store.markInFlight('mark_a', '400'), store.markInFlight('mark_c', '400')]);
        const late = new Promise((resolve) => setTimeout(() => resolve('waited'), 5_000));
        expect(await Promise.race([others.then(() => 'marked'), late])).toBe('marked');
        expect(heldDone).toBe(false);
        await holder.query('ROLLBACK');
        await held;
        expect((await read()).map((r) => [r.name, r.through])).toEqual([
          ['mark_a', '400'],
          ['mark_b', '400'],
          ['mark_c', '400'],
        ]);
      } finally {
        await holder.end();
      }
    } finally {
      await pool.end();
      await p.sourceClient.query(`DELETE FROM permsync.environments WHERE name = ANY ($1)`, [names]);
    }
  });
});
