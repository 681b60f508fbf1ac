import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '../src/deadline.js';
import { install, listMigrations } from '../src/install/migrate.js';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

const PASSWORD = 'locks-test-pw';
/** Every advisory lock key permsync has used: any login may take any of them. */
const ADVISORY_KEYS = ['permsync.commit_seq', 'permsync.role_snapshot', 'permsync.daemon', 'permsync.install'];
/**
 * Far longer than what is waited for takes here; what waits on another login's lock
 * would wait forever, and fails at this instead of hanging the suite.
 */
const PATIENCE_MS = 15_000;

let p: Pipeline;
/** A plain login, no right but to connect, holding every advisory key. */
let mallory: pg.Client;
/** A login holding permsync_operator (USAGE on schema permsync, SELECT on its tables). */
let operator: pg.Client;

async function login(user: string, applicationName = user): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: p.source.urlFor('postgres', user, PASSWORD), application_name: applicationName });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** A superuser session, as a DBA or an install has; ended by the test's own session if it is stuck. */
async function superuser(applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: p.source.url, application_name: applicationName });
  client.on('error', () => {});
  await client.connect();
  return client;
}

async function end(client: pg.Client, applicationName: string): Promise<void> {
  await p.sourceClient.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
  await client.end().catch(() => {});
}

/** Runs `sql` in a transaction rolled back after it: a lock it takes is not kept. */
async function attempt(client: pg.Client, sql: string): Promise<unknown> {
  await client.query('BEGIN');
  try {
    await client.query(sql);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await client.query('ROLLBACK');
  }
}

/** As attempt, inside a transaction already open: only the savepoint is rolled back. */
async function inSavepoint(client: pg.Client, sql: string): Promise<unknown> {
  await client.query('SAVEPOINT attempt');
  try {
    await client.query(sql);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await client.query('ROLLBACK TO SAVEPOINT attempt');
  }
}

beforeAll(async () => {
  p = await startPipeline(['prod']);
  await p.everywhere('CREATE ROLE app; CREATE TABLE orders (id int)');
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  await p.dba(`CREATE ROLE mallory LOGIN PASSWORD '${PASSWORD}';
    CREATE ROLE locks_operator LOGIN PASSWORD '${PASSWORD}' IN ROLE permsync_operator;
    CREATE ROLE locks_daemon LOGIN PASSWORD '${PASSWORD}' IN ROLE permsync_daemon`);
  mallory = await login('mallory');
  for (const key of ADVISORY_KEYS) await mallory.query('SELECT pg_advisory_lock(hashtext($1))', [key]);
  // PREPARE takes a statement's table locks without checking privileges: with USAGE on the
  // schema, ROW EXCLUSIVE on every permsync table, kept until the transaction ends.
  operator = await login('locks_operator');
  const { rows: tables } = await p.sourceClient.query<{ name: string }>(
    `SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname = 'permsync'`,
  );
  await operator.query('BEGIN');
  for (const [i, { name }] of tables.entries()) await operator.query(`PREPARE hold_${i} AS DELETE FROM ${name}`);
});

afterAll(async () => {
  await mallory?.end();
  await operator?.query('ROLLBACK').catch(() => {});
  await operator?.end();
  await p?.close();
});

describe('locks another login holds', () => {
  it("a DBA's GRANT commits, and a role created before it is captured first", async () => {
    const dba = await superuser('locks-test:dba');
    try {
      const run = (sql: string) => withTimeout(dba.query(sql), PATIENCE_MS, `${sql}: waited on another login's lock`);
      await run('GRANT SELECT ON orders TO app');
      await run('CREATE ROLE newcomer');
      await run('GRANT SELECT ON orders TO newcomer');
      // Serialisable DBAs too: the commit-order lock is a row lock, never a write they could conflict with.
      await run('BEGIN ISOLATION LEVEL SERIALIZABLE; GRANT UPDATE ON orders TO app; COMMIT');
    } finally {
      await end(dba, 'locks-test:dba');
    }
    const { rows } = await p.sourceClient.query<{ origin: string; query_text: string }>(
      `SELECT origin, query_text FROM permsync.batches WHERE commit_seq IS NOT NULL ORDER BY commit_seq`,
    );
    const texts = rows.map((r) => r.query_text);
    const newcomer = texts.findIndex((t) => /CREATE ROLE newcomer/.test(t));
    expect(newcomer).toBeGreaterThanOrEqual(0);
    expect(rows[newcomer]?.origin).toBe('role_watcher');
    expect(texts.slice(newcomer + 1)).toEqual([
      'GRANT SELECT ON orders TO newcomer',
      'BEGIN ISOLATION LEVEL SERIALIZABLE; GRANT UPDATE ON orders TO app; COMMIT',
    ]);
    expect(texts.indexOf('GRANT SELECT ON orders TO app')).toBeLessThan(newcomer);
  });

  it('a fresh daemon leads, as permsync_daemon, and carries changes to the target', async () => {
    // permsync's roles are the target's own business: the logins made members of them here stay on the source.
    const rules = [{ action: 'exclude' as const, rolePattern: '^permsync_' }];
    const config = p.config({ environments: [{ rules }] });
    const daemon = await p.startDaemon({ ...config, source: { ...config.source, url: p.source.urlFor('postgres', 'locks_daemon', PASSWORD) } });
    try {
      await waitFor(() => daemon.isLeader(), PATIENCE_MS, 'the daemon to lead');
      await p.dba('GRANT INSERT ON orders TO app');
      await p.settle(PATIENCE_MS);
      expect(await relationPrivileges(p.env('prod').client, 'orders')).toContain('app INSERT by postgres');
    } finally {
      await daemon.stop();
    }
  });

  it('install runs to the end', async () => {
    const client = await superuser('locks-test:install');
    try {
      const result = await withTimeout(install(client), PATIENCE_MS, "install waited on another login's lock");
      expect(result.applied).toEqual([]);
    } finally {
      await end(client, 'locks-test:install');
    }
  });

  it('no other login may take the locks permsync now takes', async () => {
    const daemon = await login('locks_daemon');
    try {
      for (const client of [mallory, operator, daemon]) {
        // The operator's transaction holds its PREPAREd statements: a savepoint keeps it.
        const inOwnTransaction = client === operator;
        for (const sql of [
          'SELECT FROM permsync.locks FOR UPDATE',
          'SELECT FROM permsync.locks FOR KEY SHARE',
          'LOCK TABLE permsync.locks IN EXCLUSIVE MODE',
          'SELECT FROM permsync.leader FOR UPDATE',
          'LOCK TABLE permsync.leader IN EXCLUSIVE MODE',
        ]) {
          const error = inOwnTransaction ? await inSavepoint(client, sql) : await attempt(client, sql);
          expect({ sql, user: client.user, error }).toMatchObject({ sql, user: client.user, error: { code: '42501' } });
        }
      }
      for (const client of [mallory, operator]) {
        const sql = 'SELECT permsync.claim_leadership(10000)';
        const error = client === operator ? await inSavepoint(client, sql) : await attempt(client, sql);
        expect({ user: client.user, error }).toMatchObject({ user: client.user, error: { code: '42501' } });
      }
    } finally {
      await daemon.end();
    }
  });
});

describe('install', () => {
  it('waiting for another install, says which session holds it', async () => {
    const other = await superuser('other-install');
    const waiting: string[] = [];
    try {
      await other.query(`BEGIN; SELECT FROM permsync.locks WHERE name = 'install' FOR UPDATE`);
      const {
        rows: [held],
      } = await other.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const client = await superuser('locks-test:second-install');
      try {
        const second = install(client, { onWait: (holder) => waiting.push(holder) });
        second.catch(() => {}); // awaited below, unless the test fails first
        await waitFor(() => waiting.length > 0, PATIENCE_MS, 'the second install to say it waits');
        expect(waiting[0]).toMatch(new RegExp(`pid ${held?.pid}, user postgres \\(other-install\\) from 127\\.0\\.0\\.1, in its transaction since `));
        await other.query('COMMIT');
        expect((await withTimeout(second, PATIENCE_MS, 'the second install to finish')).applied).toEqual([]);
      } finally {
        await end(client, 'locks-test:second-install');
      }
    } finally {
      await end(other, 'other-install');
    }
  });

  it('two installs at once on a new database apply each migration once', async () => {
    await p.sourceClient.query('CREATE DATABASE twice');
    const [a, b] = [new pg.Client(p.source.urlFor('twice')), new pg.Client(p.source.urlFor('twice'))];
    await Promise.all([a.connect(), b.connect()]);
    try {
      const results = await Promise.all([install(a), install(b)]);
      const applied = results.flatMap((r) => r.applied.map((m) => m.version)).sort((x, y) => x - y);
      expect(applied).toEqual((await listMigrations()).map((m) => m.version));
      const { rows } = await a.query<{ n: string }>('SELECT count(*)::text AS n FROM permsync.role_snapshot');
      expect(rows[0]?.n).toBe('1');
    } finally {
      await Promise.all([a.end(), b.end()]);
      await p.sourceClient.query('DROP DATABASE twice WITH (FORCE)');
    }
  });
});
