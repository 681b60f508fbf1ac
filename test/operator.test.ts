import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { Settings } from '../src/config/schema.js';
import type { Daemon } from '../src/daemon.js';
import { RESUME_POINT } from '../src/source/queries.js';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { runCli } from './support/cli.js';
import { inSession } from './support/servers.js';

let p: Pipeline;
let daemon: Daemon | undefined;
let configDir: string;

const PASSWORD = 'operator-test-pw';
/** A login role for each permsync role, and one with none. */
const LOGINS = {
  admin: 'op_admin',
  operator: 'op_operator',
  reader: 'op_reader',
  daemon: 'op_daemon',
  nobody: 'op_nobody',
} as const;

const dba = (sql: string) => p.dba(sql);

const as = <T>(login: string, work: (client: pg.Client) => Promise<T>): Promise<T> => inSession(p.source.urlFor('postgres', login, PASSWORD), work);

async function rows<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  return (await p.sourceClient.query<T>(sql, params)).rows;
}

const env = (name: string) => p.env(name);

/**
 * The daemon connects as a login holding permsync_daemon only: the grants must suffice.
 * The rule keeps the memberships in permsync_* roles granted below on the source, where
 * those roles exist.
 */
async function startDaemon(settings: Partial<Settings> = {}): Promise<void> {
  const rules = [{ action: 'exclude' as const, rolePattern: '^permsync_' }];
  const config = p.config({ settings, environments: [{ rules }, { rules }] });
  daemon = await p.startDaemon({ ...config, source: { ...config.source, url: p.source.urlFor('postgres', LOGINS.daemon, PASSWORD) } });
}

async function stopDaemon(): Promise<void> {
  await daemon?.stop();
  daemon = undefined;
}

/** Waits until the role watcher has seen every role change and every batch is carried. */
const quiesce = () => p.settleRoles();

async function batchId(queryText: string): Promise<string> {
  const [row] = await rows<{ id: string }>('SELECT id::text FROM permsync.batches WHERE query_text = $1', [queryText]);
  if (!row) throw new Error(`no batch for ${queryText}`);
  return row.id;
}

async function execution(queryText: string, environment: string) {
  const [row] = await rows<{ execution_status: string; failure_kind: string | null; error_code: string | null }>(
    `SELECT x.execution_status, x.failure_kind, x.error_code
       FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
      WHERE b.query_text = $1 AND x.environment_name = $2`,
    [queryText, environment],
  );
  return row;
}

async function status(environment: string) {
  const [row] = await rows<Record<string, unknown>>('SELECT * FROM permsync.v_environment_status WHERE environment = $1', [environment]);
  return row;
}

/** Runs the CLI in-process, as `user` (default: the superuser), and captures what it prints. */
async function cli(args: string[], user?: string): Promise<{ code: number; out: string; err: string }> {
  const file = join(configDir, `${user ?? 'postgres'}.yaml`);
  const source = { url: user ? p.source.urlFor('postgres', user, PASSWORD) : p.source.url };
  // JSON is YAML.
  await writeFile(file, JSON.stringify({ source, environments: p.environments.map((e) => ({ name: e.name, url: e.server.url })) }));
  return runCli(...args, '--config', file);
}

/** Collects the payloads of notifications on a channel of the source. */
async function listen(channel: string): Promise<{ payloads: string[]; close: () => Promise<void> }> {
  const client = new pg.Client(p.source.url);
  await client.connect();
  const payloads: string[] = [];
  client.on('notification', (n) => {
    if (n.channel === channel) payloads.push(n.payload ?? '');
  });
  await client.query(`LISTEN ${channel}`);
  return { payloads, close: () => client.end() };
}

beforeAll(async () => {
  configDir = await mkdtemp(join(tmpdir(), 'permsync-operator-'));
  p = await startPipeline(['dev', 'prod']);
  await p.everywhere(`CREATE ROLE app; CREATE SCHEMA sales; CREATE TABLE sales.orders (id int); CREATE TABLE sales.refunds (id int)`);
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  for (const [role, login] of Object.entries(LOGINS)) {
    await dba(`CREATE ROLE ${login} LOGIN PASSWORD '${PASSWORD}'`);
    if (role !== 'nobody') await dba(`GRANT permsync_${role} TO ${login}`);
  }
  await startDaemon();
  await quiesce();
});

afterAll(async () => {
  await p?.close();
  await rm(configDir, { recursive: true, force: true });
});

// A test that stops the daemon, or runs it otherwise, leaves the next one to start it again.
beforeEach(async () => {
  if (!daemon) await startDaemon();
});

describe('install', () => {
  it('creates the four roles without login, and PUBLIC may execute no function in schema permsync', async () => {
    expect(await rows(`SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'permsync\\_%' ORDER BY 1`)).toEqual([
      { rolname: 'permsync_admin', rolcanlogin: false },
      { rolname: 'permsync_daemon', rolcanlogin: false },
      { rolname: 'permsync_operator', rolcanlogin: false },
      { rolname: 'permsync_reader', rolcanlogin: false },
    ]);
    expect(
      await rows(`SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
                        WHERE p.pronamespace = 'permsync'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')`),
    ).toEqual([]);
  });
});

describe('status views, through a daemon connected as permsync_daemon', () => {
  const transient = 'GRANT SELECT ON sales.refunds TO app';
  let holds = 0;

  /**
   * A grant on a table of the source and dev that prod lacks (failing), and one after it on a
   * table every server has (waiting): dev applies both, prod fails the first for good and
   * holds the second behind it.
   */
  async function holdProd(): Promise<{ table: string; failing: string; waiting: string }> {
    const table = `held_${++holds}`;
    await p.everywhere(`CREATE TABLE sales.${table}_ok (id int)`);
    await dba(`SET permsync.capture = 'off'; CREATE TABLE sales.${table} (id int); RESET permsync.capture`);
    await env('dev').client.query(`CREATE TABLE sales.${table} (id int)`);
    const failing = `GRANT SELECT ON sales.${table} TO app`;
    const waiting = `GRANT UPDATE ON sales.${table}_ok TO app`;
    await dba(failing);
    await dba(waiting);
    await waitFor(async () => (await execution(waiting, 'dev'))?.execution_status === 'success', 10_000, 'dev to apply');
    await waitFor(async () => (await execution(failing, 'prod'))?.failure_kind === 'permanent', 10_000, 'prod to fail');
    return { table, failing, waiting };
  }

  /** Ends the hold holdProd() began: prod gets the table, tries again and carries what waited. */
  async function releaseProd(table: string): Promise<void> {
    await env('prod').client.query(`CREATE TABLE sales.${table} (id int)`);
    await dba(`SELECT permsync.retry_failed('prod')`);
    await p.settle();
  }

  it('show an environment that cannot be reached as failing, with its retry scheduled', async () => {
    await env('prod').proxy.cut();
    await dba(transient);
    await waitFor(async () => (await execution(transient, 'prod'))?.execution_status === 'failed', 10_000, 'prod to fail');
    expect(await status('prod')).toMatchObject({ state: 'failing', pending_batches: '1', blocking_error_code: 'ECONNREFUSED' });
    const [failed] = await rows('SELECT * FROM permsync.v_failed_syncs WHERE environment_name = $1', ['prod']);
    expect(failed).toMatchObject({ query_text: transient, failure_kind: 'transient', retry_state: 'retrying', error_code: 'ECONNREFUSED' });
    expect(failed?.next_attempt_at).toBeInstanceOf(Date);
    const result = await cli(['status']);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/prod: failing on batch \d+, retrying: SQLSTATE ECONNREFUSED/);

    await env('prod').proxy.open();
    await p.settle();
    expect(await status('prod')).toMatchObject({ state: 'ok', pending_batches: '0' });
    expect(await rows('SELECT * FROM permsync.v_failed_syncs')).toEqual([]);
  });

  it("show a held environment, what it waits on, and each batch's outcome everywhere", async () => {
    const { table, failing, waiting } = await holdProd();
    const failingId = await batchId(failing);
    const waitingId = await batchId(waiting);

    expect(await status('dev')).toMatchObject({ state: 'ok', pending_batches: '0', failed_count: '0', last_success_at: expect.any(Date) });
    const prod = await status('prod');
    expect(prod).toMatchObject({
      state: 'held',
      pending_batches: '2',
      oldest_pending_batch_id: failingId,
      blocking_error_code: '42P01',
      blocking_error: expect.stringContaining(`relation "sales.${table}" does not exist`),
      failed_count: '1',
    });
    expect(prod?.oldest_pending_age_seconds).toBeGreaterThan(0);

    const recent = await rows(
      'SELECT batch_id::text, outcomes, unfinished_count, command_tags FROM permsync.v_recent_batches WHERE batch_id IN ($1, $2) ORDER BY batch_id::bigint',
      [failingId, waitingId],
    );
    expect(recent).toEqual([
      { batch_id: failingId, outcomes: { dev: 'success', prod: 'failed' }, unfinished_count: '1', command_tags: ['GRANT'] },
      { batch_id: waitingId, outcomes: { dev: 'success', prod: 'pending' }, unfinished_count: '1', command_tags: ['GRANT'] },
    ]);
    expect(await rows('SELECT command_tag, object_type, query_text, outcomes FROM permsync.v_audit_trail WHERE batch_id = $1', [failingId])).toEqual([
      { command_tag: 'GRANT', object_type: 'TABLE', query_text: failing, outcomes: { dev: 'success', prod: 'failed' } },
    ]);
    expect(
      await rows(
        `SELECT environment_name, environment_label, query_text, execution_status, error_code, failure_kind
                         FROM permsync.v_execution_details WHERE batch_id = $1 ORDER BY 1`,
        [failingId],
      ),
    ).toEqual([
      { environment_name: 'dev', environment_label: null, query_text: failing, execution_status: 'success', error_code: null, failure_kind: null },
      {
        environment_name: 'prod',
        environment_label: null,
        query_text: failing,
        execution_status: 'failed',
        error_code: '42P01',
        failure_kind: 'permanent',
      },
    ]);
    expect(await rows('SELECT batch_id::text, retry_state, error_code FROM permsync.v_failed_syncs')).toEqual([
      { batch_id: failingId, retry_state: 'held', error_code: '42P01' },
    ]);
    // The daily summary adds up to the execution log.
    expect(
      await rows(`SELECT environment_name, executions, success_count, failed_count, skipped_count
                         FROM permsync.v_sync_daily_summary WHERE day = current_date ORDER BY 1`),
    ).toEqual(
      await rows(`SELECT environment_name, count(*) AS executions,
                         count(*) FILTER (WHERE execution_status = 'success') AS success_count,
                         count(*) FILTER (WHERE execution_status = 'failed') AS failed_count,
                         count(*) FILTER (WHERE execution_status = 'skipped') AS skipped_count
                    FROM permsync.execution_log WHERE finished_at::date = current_date GROUP BY 1 ORDER BY 1`),
    );
    await releaseProd(table);
  });

  it('`permsync status` exits 1 and says why; --json carries the same', async () => {
    const { table, failing } = await holdProd();
    const text = await cli(['status']);
    expect(text.code).toBe(1);
    expect(text.out).toMatch(/^sync enabled, dry run off\nENVIRONMENT +STATE +WAITING/);
    expect(text.out).toMatch(/\ndev +ok +0 +- /);
    expect(text.out).toMatch(/\nprod +held +2 /);
    expect(text.out).toContain(`prod: held on batch ${await batchId(failing)}: SQLSTATE 42P01: `);

    const json = await cli(['status', '--json']);
    expect(json.code).toBe(1);
    const parsed = JSON.parse(json.out) as {
      ok: boolean;
      environments: { environment: string; state: string; pending_batches: number; problem: string | null }[];
    };
    expect(parsed.ok).toBe(false);
    expect(parsed.environments.map((e) => [e.environment, e.state, e.pending_batches, e.problem !== null])).toEqual([
      ['dev', 'ok', 0, false],
      ['prod', 'held', 2, true],
    ]);
    await releaseProd(table);
  });

  it('`permsync retry` lists what waits on a failure, and the running daemon re-attempts it; once fixed, status is clean', async () => {
    const { table, failing } = await holdProd();
    await env('prod').client.query(`CREATE TABLE sales.${table} (id int)`);
    const control = await listen('permsync_control');
    try {
      const result = await cli(['retry', '--env', 'prod'], LOGINS.operator);
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toMatch(
        new RegExp(
          `^retry requested for prod; failed batches to re-attempt:\nENVIRONMENT +BATCH +KIND +ERROR\nprod +${await batchId(failing)} +permanent +SQLSTATE 42P01: `,
        ),
      );
      await waitFor(() => control.payloads.length > 0, 5000, 'the control notification');
      // A bare wake-up: who asked for what is in the operator actions, for those who may read them.
      expect(control.payloads).toEqual(['']);
    } finally {
      await control.close();
    }
    await waitFor(async () => (await execution(failing, 'prod'))?.execution_status === 'success', 10_000, 'prod to apply');
    expect(await rows(`SELECT acted_by, action, environment_name FROM permsync.v_operator_actions LIMIT 1`)).toEqual([
      { acted_by: LOGINS.operator, action: 'retry', environment_name: 'prod' },
    ]);
    await p.settle();
    expect(await cli(['status'])).toMatchObject({ code: 0 });
    expect(JSON.parse((await cli(['status', '--json'], LOGINS.reader)).out)).toMatchObject({ ok: true });
    expect(await relationPrivileges(env('prod').client, `sales.${table}_ok`)).toContain('app UPDATE by postgres');
  });
});

describe('control functions', () => {
  it('switch sync and dry run, record who did, and wake the daemon', async () => {
    const control = await listen('permsync_control');
    try {
      await as(LOGINS.admin, async (c) => {
        await c.query('SELECT permsync.disable_sync()');
        expect((await c.query('SELECT sync_enabled, state FROM permsync.v_environment_status')).rows).toEqual([
          { sync_enabled: false, state: 'sync_disabled' },
          { sync_enabled: false, state: 'sync_disabled' },
        ]);
        await c.query('SELECT permsync.enable_sync()');
        await c.query('SELECT permsync.enable_dry_run()');
        expect((await c.query(`SELECT value FROM permsync.config WHERE key = 'dry_run'`)).rows).toEqual([{ value: 'true' }]);
        await c.query('SELECT permsync.disable_dry_run()');
      });
      expect(await rows(`SELECT key, value FROM permsync.config WHERE key IN ('sync_enabled', 'dry_run') ORDER BY 1`)).toEqual([
        { key: 'dry_run', value: 'false' },
        { key: 'sync_enabled', value: 'true' },
      ]);
      await waitFor(() => control.payloads.length === 4, 5000, 'four control notifications');
      expect(control.payloads).toEqual(['', '', '', '']);
      expect(await rows(`SELECT acted_by, action, environment_name FROM permsync.v_operator_actions LIMIT 4`)).toEqual(
        ['disable_dry_run', 'enable_dry_run', 'enable_sync', 'disable_sync'].map((action) => ({
          acted_by: LOGINS.admin,
          action,
          environment_name: null,
        })),
      );
    } finally {
      await control.close();
    }
  });

  it('pause and resume an environment, naming it when it does not exist', async () => {
    const control = await listen('permsync_control');
    try {
      await as(LOGINS.operator, async (c) => {
        await c.query(`SELECT permsync.pause_environment('prod')`);
        expect((await c.query(`SELECT paused FROM permsync.environments WHERE name = 'prod'`)).rows).toEqual([{ paused: true }]);
        expect((await c.query(`SELECT state FROM permsync.v_environment_status WHERE environment = 'prod'`)).rows).toEqual([{ state: 'paused' }]);
        await c.query(`SELECT permsync.resume_environment('prod')`);
        await expect(c.query(`SELECT permsync.pause_environment('staging')`)).rejects.toMatchObject({
          code: '42704',
          message: 'no environment named "staging"',
          hint: 'known environments: dev, prod',
        });
      });
      expect(await rows(`SELECT paused FROM permsync.environments ORDER BY name`)).toEqual([{ paused: false }, { paused: false }]);
      await waitFor(() => control.payloads.length === 2, 5000, 'two control notifications');
      expect(await rows(`SELECT acted_by, action, environment_name FROM permsync.v_operator_actions LIMIT 2`)).toEqual([
        { acted_by: LOGINS.operator, action: 'resume', environment_name: 'prod' },
        { acted_by: LOGINS.operator, action: 'pause', environment_name: 'prod' },
      ]);
    } finally {
      await control.close();
    }
  });

  it("manual_sync queues a batch read as in the caller's session, carried to the one environment named", async () => {
    // The batch runs on the target as the operator: it may grant only what it could grant there.
    await dba(`GRANT USAGE ON SCHEMA sales TO ${LOGINS.operator}; GRANT DELETE ON sales.orders TO ${LOGINS.operator} WITH GRANT OPTION`);
    await p.settle();
    const capture = await listen('permsync');
    const sql = 'GRANT DELETE ON orders TO app';
    try {
      const id = await as(LOGINS.operator, async (c) => {
        await c.query('SET search_path = sales, public');
        return (await c.query<{ id: string }>(`SELECT permsync.manual_sync($1, 'dev')::text AS id`, [sql])).rows[0]?.id;
      });
      expect(
        await rows(
          'SELECT origin, target_environment, query_text, current_user_name, session_user_name, search_path FROM permsync.batches WHERE id = $1',
          [id],
        ),
      ).toEqual([
        {
          origin: 'manual',
          target_environment: 'dev',
          query_text: sql,
          current_user_name: LOGINS.operator,
          session_user_name: LOGINS.operator,
          search_path: 'sales, public',
        },
      ]);
      await waitFor(() => capture.payloads.includes(id ?? ''), 5000, 'the capture notification');
      await p.settle();
      expect(await relationPrivileges(env('dev').client, 'sales.orders')).toContain(`app DELETE by ${LOGINS.operator}`);
      expect(await relationPrivileges(env('prod').client, 'sales.orders')).not.toContain(`app DELETE by ${LOGINS.operator}`);
      expect(await execution(sql, 'prod')).toBeUndefined();
    } finally {
      await capture.close();
    }
  });

  it('manual_sync refuses an unknown environment, empty or oversized SQL and literals it cannot mask, and masks every literal', async () => {
    await expect(dba(`SELECT permsync.manual_sync('GRANT SELECT ON sales.orders TO app', 'staging')`)).rejects.toMatchObject({ code: '42704' });
    await expect(dba(`SELECT permsync.manual_sync('  ')`)).rejects.toMatchObject({ code: '22023' });
    await expect(
      rows(`SELECT permsync.manual_sync($1)`, [`GRANT SELECT ON sales.orders TO app; ${'-- pad\n'.repeat(10_000)}`]),
    ).rejects.toMatchObject({ code: '54000' });
    // Read with standard_conforming_strings off, this literal ends elsewhere: no mask of it can be trusted.
    await expect(rows(`SELECT permsync.manual_sync($1)`, [`COMMENT ON ROLE app IS 'q\\' hunter2 \\'z'`])).rejects.toMatchObject({ code: '22023' });
    await dba('BEGIN');
    try {
      const [row] = await rows<{ id: string }>(`SELECT permsync.manual_sync($1)::text AS id`, [
        `ALTER ROLE app PASSWORD 'hunter2'; CREATE USER MAPPING FOR app SERVER s OPTIONS (secret 'hunter3')`,
      ]);
      expect(await rows('SELECT query_text, query_masked FROM permsync.batches WHERE id = $1', [row?.id])).toEqual([
        { query_text: `ALTER ROLE app PASSWORD '********'; CREATE USER MAPPING FOR app SERVER s OPTIONS (secret '********')`, query_masked: true },
      ]);
    } finally {
      await dba('ROLLBACK');
    }
  });

  it('get_sync_status counts over the hours asked', async () => {
    const [day] = await rows<{ n: string }>(`SELECT sum(success_count)::text AS n FROM permsync.get_sync_status(24)`);
    expect(Number(day?.n)).toBeGreaterThan(0);
    await dba(`UPDATE permsync.execution_log SET finished_at = finished_at - interval '2 hours'`);
    try {
      expect(await rows(`SELECT sum(success_count)::text AS n FROM permsync.get_sync_status(1)`)).toEqual([{ n: '0' }]);
      expect(await rows(`SELECT sum(success_count)::text AS n FROM permsync.get_sync_status(3)`)).toEqual([day]);
    } finally {
      await dba(`UPDATE permsync.execution_log SET finished_at = finished_at + interval '2 hours'`);
    }
  });
});

describe('roles', () => {
  /** What each login attempts; each runs in a transaction that is rolled back. */
  const OPERATIONS: Record<string, string> = {
    'read the views': `SELECT FROM permsync.v_environment_status, permsync.v_recent_batches, permsync.v_execution_details,
                              permsync.v_failed_syncs, permsync.v_audit_trail, permsync.v_sync_daily_summary,
                              permsync.v_batch_outcomes LIMIT 1`,
    get_sync_status: 'SELECT * FROM permsync.get_sync_status(1)',
    'read the tables': `SELECT FROM permsync.execution_log, permsync.audit_log, permsync.retry_queue, permsync.environments,
                               permsync.config, permsync.sync_rules, permsync.schema_migrations LIMIT 1`,
    'read batches without statements': 'SELECT id, query_text FROM permsync.batches',
    'read batch statements (verifiers)': 'SELECT statements FROM permsync.batches',
    'read the role snapshot': 'SELECT state FROM permsync.role_snapshot',
    manual_sync: `SELECT permsync.manual_sync('GRANT SELECT ON sales.orders TO app', 'dev')`,
    retry_failed: 'SELECT * FROM permsync.retry_failed()',
    skip_batch: `SELECT * FROM permsync.skip_batch('dev', 0, 'no such batch')`,
    'read the operator actions': 'SELECT FROM permsync.v_operator_actions LIMIT 1',
    pause_environment: `SELECT permsync.pause_environment('dev')`,
    disable_sync: 'SELECT permsync.disable_sync()',
    enable_dry_run: 'SELECT permsync.enable_dry_run()',
    'turn verifier capture on': 'SELECT permsync.enable_password_sync()',
    'turn verifier capture on in the table': `UPDATE permsync.config SET value = 'true' WHERE key = 'sync_passwords'`,
    'insert the verifier switch': `INSERT INTO permsync.config (key, value) VALUES ('sync_passwords', 'true')
                                   ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
    'resume through the config table': `UPDATE permsync.config SET value = 'true' WHERE key = 'sync_enabled'`,
    cleanup_old_logs: 'SELECT * FROM permsync.cleanup_old_logs()',
    'a helper function': `SELECT permsync.notify_control('retry', NULL)`,
    'insert a batch': `INSERT INTO permsync.batches (query_text) VALUES ('GRANT SELECT ON sales.orders TO app')`,
    'write the execution log': 'UPDATE permsync.execution_log SET retry_count = retry_count WHERE false',
    'write config': 'UPDATE permsync.config SET value = value WHERE false',
    'unpause through the table': 'UPDATE permsync.environments SET paused = false WHERE false',
    'delete audit records': 'DELETE FROM permsync.audit_log WHERE false',
  };
  const READER = ['read the views', 'get_sync_status', 'read the operator actions'];
  const OPERATOR = [
    ...READER,
    'read the tables',
    'read batches without statements',
    'manual_sync',
    'retry_failed',
    'skip_batch',
    'pause_environment',
  ];
  const ALLOWED: Record<keyof typeof LOGINS, string[]> = {
    reader: READER,
    operator: OPERATOR,
    admin: [...OPERATOR, 'disable_sync', 'enable_dry_run', 'turn verifier capture on', 'cleanup_old_logs'],
    daemon: [
      'read the tables',
      'read batches without statements',
      'read batch statements (verifiers)',
      'write the execution log',
      'write config',
      'cleanup_old_logs',
    ],
    nobody: [],
  };

  for (const [role, login] of Object.entries(LOGINS) as [keyof typeof LOGINS, string][]) {
    it(`${role === 'nobody' ? 'an ordinary login' : `permsync_${role}`} may do exactly what it should`, async () => {
      const outcomes = await as(login, async (c) => {
        const result: Record<string, string> = {};
        for (const [name, sql] of Object.entries(OPERATIONS)) {
          await c.query('BEGIN');
          // Past the privilege checks is allowed, even if the call then fails on its arguments (skip_batch's).
          result[name] = await c.query(sql).then(
            () => 'allowed',
            (error: { code?: string }) => (error.code === '42501' ? 'refused 42501' : 'allowed'),
          );
          await c.query('ROLLBACK');
        }
        return result;
      });
      const expected = Object.fromEntries(Object.keys(OPERATIONS).map((name) => [name, ALLOWED[role].includes(name) ? 'allowed' : 'refused 42501']));
      expect(outcomes).toEqual(expected);
    });
  }
});

describe('password verifiers', () => {
  const verifier = async (client: pg.Client) =>
    (await client.query<{ v: string }>(`SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'app'`)).rows[0]?.v;
  const capturedVerifiers = async () =>
    (await rows<{ n: number }>(`SELECT count(*)::int AS n FROM permsync.batches WHERE statements::text LIKE '%SCRAM-SHA-256$%'`))[0]?.n;

  it('a daemon that wants them cannot make the source capture them; an admin turns capture on', async () => {
    await stopDaemon();
    await startDaemon({ syncPasswords: true });
    expect(await rows(`SELECT value FROM permsync.config WHERE key = 'sync_passwords'`)).toEqual([{ value: 'false' }]);
    await as(LOGINS.daemon, async (c) => {
      await expect(c.query(`UPDATE permsync.config SET value = 'true' WHERE key = 'sync_passwords'`)).rejects.toMatchObject({
        code: '42501',
        message: 'permsync.config: "sync_passwords" is an admin\'s switch; UPDATE refused',
      });
      expect((await c.query(`SELECT permsync.role_state() ->> 'passwords' AS captured`)).rows).toEqual([{ captured: 'false' }]);
    });
    await dba(`ALTER ROLE app PASSWORD 'not-captured'`);
    await quiesce();
    expect(await capturedVerifiers()).toBe(0);

    await as(LOGINS.admin, (c) => c.query('SELECT permsync.enable_password_sync()'));
    await quiesce();
    // Turning capture on brings the verifiers the source holds then over, in one batch.
    expect(await capturedVerifiers()).toBe(1);
    await dba(`ALTER ROLE app PASSWORD 'captured'`);
    await quiesce();
    expect(await capturedVerifiers()).toBe(2);
    expect(await verifier(env('dev').client)).toBe(await verifier(p.sourceClient));

    // A daemon that does not want them leaves out what the source captures.
    const before = await verifier(env('dev').client);
    await stopDaemon();
    await startDaemon();
    await dba(`ALTER ROLE app PASSWORD 'captured, not carried'`);
    await quiesce();
    expect(await capturedVerifiers()).toBe(3);
    expect(await verifier(env('dev').client)).toBe(before);
    expect(
      await rows(`SELECT x.execution_status, x.result_message FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
                        WHERE x.environment_name = 'dev' AND b.origin = 'role_watcher' ORDER BY b.commit_seq DESC LIMIT 1`),
    ).toEqual([
      {
        execution_status: 'skipped',
        result_message: 'statement 1 (ALTER ROLE) skipped: a password, and settings.sync_passwords is off',
      },
    ]);
    await as(LOGINS.admin, (c) => c.query('SELECT permsync.disable_password_sync()'));
    await quiesce();
  });
});

describe('audit log', () => {
  it('refuses UPDATE, DELETE and TRUNCATE, even to its owner', async () => {
    await dba('GRANT REFERENCES ON sales.orders TO app');
    const [count] = await rows<{ n: string }>('SELECT count(*)::text AS n FROM permsync.audit_log');
    expect(Number(count?.n)).toBeGreaterThan(0);
    for (const sql of ['UPDATE permsync.audit_log SET command_tag = command_tag', 'DELETE FROM permsync.audit_log', 'TRUNCATE permsync.audit_log']) {
      await expect(dba(sql)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('append-only') });
    }
    expect(await rows('SELECT count(*)::text AS n FROM permsync.audit_log')).toEqual([count]);
  });

  it('refuses DELETE to a role that holds the privilege and sets the retention flag itself', async () => {
    // Not captured: these grants are on the source's own schema, which targets do not have.
    await dba(`SET permsync.capture = 'off'; CREATE ROLE op_sneaky LOGIN PASSWORD '${PASSWORD}';
               GRANT USAGE ON SCHEMA permsync TO op_sneaky; GRANT SELECT, DELETE ON permsync.audit_log TO op_sneaky;
               RESET permsync.capture`);
    try {
      await as('op_sneaky', async (c) => {
        await c.query(`SET permsync.retention = 'on'`);
        await expect(c.query('DELETE FROM permsync.audit_log')).rejects.toMatchObject({
          code: '42501',
          message: expect.stringContaining('append-only'),
        });
      });
    } finally {
      await dba(`SET permsync.capture = 'off'; REVOKE ALL ON permsync.audit_log FROM op_sneaky;
                 REVOKE USAGE ON SCHEMA permsync FROM op_sneaky; DROP ROLE op_sneaky; RESET permsync.capture`);
    }
  });
});

describe('CLI', () => {
  it('has help for each operator command', async () => {
    for (const command of ['status', 'manual-sync', 'retry', 'skip', 'cleanup', 'pause', 'resume']) {
      const result = await cli([command, '--help']);
      expect(result.code).toBe(0);
      expect(result.out).toContain(`Usage: permsync ${command}`);
    }
    expect((await cli(['status', '--help'])).out).toContain('Exit status: 0 all well, 1 an environment is held');
  });

  it('pauses, resumes and queues a manual sync, and says when an environment does not exist', async () => {
    expect(await cli(['pause', 'prod'], LOGINS.operator)).toEqual({
      code: 0,
      out: 'paused prod: changes wait until `permsync resume prod`\n',
      err: '',
    });
    expect((await cli(['status'])).out).toMatch(/\nprod +paused /);
    expect(await cli(['resume', 'prod'], LOGINS.operator)).toEqual({ code: 0, out: 'resumed prod\n', err: '' });

    // As a superuser: a manual sync runs on the target as whoever queued it.
    const queued = await cli(['manual-sync', 'GRANT INSERT ON sales.refunds TO app', '--env', 'dev', '--json']);
    expect(queued.code).toBe(0);
    expect(JSON.parse(queued.out)).toEqual({ batch_id: await batchId('GRANT INSERT ON sales.refunds TO app'), environment: 'dev' });
    await p.settle();
    expect(await relationPrivileges(env('dev').client, 'sales.refunds')).toContain('app INSERT by postgres');

    const unknown = await cli(['pause', 'staging'], LOGINS.operator);
    expect(unknown).toMatchObject({ code: 2, out: '' });
    expect(unknown.err).toBe('permsync: no environment named "staging" (SQLSTATE 42704)\n  hint: known environments: dev, prod\n');
  });

  it('exits 2 with the SQLSTATE when the configured user lacks the role a command needs', async () => {
    const refused = await cli(['pause', 'prod'], LOGINS.reader);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/^permsync: permission denied for function pause_environment \(SQLSTATE 42501\)\n  hint: the source user needs/);
    expect((await cli(['status'], LOGINS.nobody)).err).toContain('(SQLSTATE 42501)');
    expect(await cli(['status', '--max-lag', 'soon'])).toMatchObject({ code: 2 });
  });

  it('status reports an environment lagging behind when no daemon carries its batches', async () => {
    await stopDaemon();
    await cli(['manual-sync', 'GRANT TRIGGER ON sales.refunds TO app']);
    await new Promise((r) => setTimeout(r, 1100));
    const lagging = await cli(['status', '--max-lag', '1']);
    expect(lagging.code).toBe(1);
    expect(lagging.out).toMatch(/dev: lagging: 1 batch\(es\) waiting, the oldest \(batch \d+\) for \d+s \(is the daemon running\?\)/);
    expect(await cli(['status', '--max-lag', '3600'])).toMatchObject({ code: 0 });
    await startDaemon();
    await p.settle();
  });
});

describe('cleanup_old_logs', () => {
  it('deletes what retention lets go, never what an enabled environment still needs, and keeps the resume points', async () => {
    await stopDaemon();
    await dba(`INSERT INTO permsync.environments (name, enabled) VALUES ('retired', false)`);
    // Old batches, each with one audit record; their ages are set after commit_seq is assigned.
    const make = async (text: string, days: number, outcomes: Record<string, string>) => {
      await dba(`INSERT INTO permsync.batches (query_text) VALUES ('${text}')`);
      const id = await batchId(text);
      await dba(`UPDATE permsync.batches SET committed_at = now() - interval '${days} days' WHERE id = ${id};
                 INSERT INTO permsync.audit_log (batch_id, command_tag) VALUES (${id}, 'GRANT')`);
      for (const [environment, status] of Object.entries(outcomes)) {
        await dba(`INSERT INTO permsync.execution_log (batch_id, environment_name, commit_seq, execution_status, started_at, finished_at, duration_ms)
                   SELECT id, '${environment}', commit_seq, '${status}', committed_at, committed_at, 1 FROM permsync.batches WHERE id = ${id}`);
      }
      return id;
    };
    // `retired` has carried none of them, but a disabled environment keeps no batch alive.
    const done = await make('-- old, finished by the enabled environments', 400, { dev: 'success', prod: 'success' });
    const needed = await make('-- old, prod has yet to carry it', 400, { dev: 'success' });
    const recent = await make('-- 40 days, finished by the enabled environments', 40, { dev: 'success', prod: 'success' });
    const retention = await rows<{ key: string; value: string }>(
      `SELECT key, value FROM permsync.config WHERE key IN ('log_retention_days', 'audit_retention_days')`,
    );
    onTestFinished(async () => {
      // What this test made is not the next one's: the retired environment, the retention, the batch prod has yet to carry.
      for (const { key, value } of retention) await dba(`UPDATE permsync.config SET value = '${value}' WHERE key = '${key}'`);
      await dba(`DELETE FROM permsync.environments WHERE name = 'retired'`);
      await dba(`SELECT permsync.skip_batch('prod', ${needed}, 'made by the cleanup test')`);
    });
    await dba(`UPDATE permsync.config SET value = '30' WHERE key = 'log_retention_days';
               UPDATE permsync.config SET value = '60' WHERE key = 'audit_retention_days'`);
    const resumePoints = async () => Promise.all(['dev', 'prod'].map(async (e) => (await rows(RESUME_POINT, [e]))[0]));
    const before = await resumePoints();

    const result = await cli(['cleanup', '--json'], LOGINS.admin);
    expect(result.code).toBe(0);
    // Execution rows older than 30 days where the environment has finished everything up
    // to them: both of `done`, dev's of `needed` and of `recent`. Prod's of `recent` stays,
    // since prod has yet to carry `needed` before it.
    expect(JSON.parse(result.out)).toEqual({ execution_log_deleted: 4, audit_log_deleted: 1, batches_deleted: 1 });
    expect(await resumePoints()).toEqual(before);
    expect(
      await rows(`SELECT b.id::text, (SELECT count(*) FROM permsync.audit_log a WHERE a.batch_id = b.id)::int AS audit,
                              (SELECT array_agg(x.environment_name ORDER BY 1) FROM permsync.execution_log x WHERE x.batch_id = b.id) AS executions
                         FROM permsync.batches b WHERE b.id IN (${done}, ${needed}, ${recent}) ORDER BY b.id`),
    ).toEqual([
      { id: needed, audit: 1, executions: null },
      { id: recent, audit: 1, executions: ['prod'] },
    ]);
  });

  it('forgets the owners noted for objects gone without an event trigger, and keeps those of objects that are there', async () => {
    await dba(`CREATE ROLE keeper_role; CREATE ROLE leaver_role;
               CREATE TABLE kept_by_keeper (id int); ALTER TABLE kept_by_keeper OWNER TO keeper_role;
               CREATE TABLE handed_back (id int); ALTER TABLE handed_back OWNER TO leaver_role;
               REASSIGN OWNED BY leaver_role TO postgres`);
    // As on 15 and earlier, a function of a temporary type's, dropped with its session: no event trigger fires.
    await dba(
      `INSERT INTO permsync.object_owners (classid, objid, owner_oid, identity, own, parts, names, named)
       VALUES ('pg_proc'::regclass, 4000000000, 'keeper_role'::regrole, 'pg_proc public.gone()', 'gone', '{2200}', '{public}', true)`,
    );
    await dba('SELECT * FROM permsync.cleanup_old_logs()');
    expect(
      await rows(`SELECT owner_oid::regrole::text AS owner, identity FROM permsync.object_owners
                   WHERE owner_oid IN ('keeper_role'::regrole, 'leaver_role'::regrole) ORDER BY identity`),
    ).toEqual([
      { owner: 'leaver_role', identity: 'pg_class public.handed_back' },
      { owner: 'keeper_role', identity: 'pg_class public.kept_by_keeper' },
    ]);
  });
});
