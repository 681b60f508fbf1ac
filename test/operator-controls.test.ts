import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Batch } from '../src/capture/batch.js';
import type { Config } from '../src/config/schema.js';
import { SourceStore } from '../src/source/store.js';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { runCli } from './support/cli.js';
import { inSession } from './support/servers.js';

let p: Pipeline;
let configDir: string;

const PASSWORD = 'controls-test-pw';
/** The daemon's login on the source: it holds permsync_daemon, and its sessions can be counted and limited. */
const DAEMON = 'ctl_daemon';
const OPERATOR = 'ctl_operator';
const READER = 'ctl_reader';
/** A plain login: the untrusted kind every source has. */
const MALLORY = 'mallory';

const as = <T>(login: string, work: (client: pg.Client) => Promise<T>): Promise<T> => inSession(p.source.urlFor('postgres', login, PASSWORD), work);

async function rows<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  return (await p.sourceClient.query<T>(sql, params)).rows;
}

interface Outcome {
  batch_id: string;
  execution_status: string;
  result_message: string | null;
  retry_count: number;
  finished_at: Date;
}

async function outcome(text: string, environment: string): Promise<Outcome | undefined> {
  const [row] = await rows<Outcome>(
    `SELECT b.id::text AS batch_id, x.execution_status, x.result_message, x.retry_count, x.finished_at
       FROM permsync.batches b LEFT JOIN permsync.execution_log x ON x.batch_id = b.id AND x.environment_name = $2
      WHERE b.query_text = $1`,
    [text, environment],
  );
  return row;
}

/** Waits for the outcome; one that does not come says what the environment did log meanwhile, and what waits for a retry. */
async function untilStatus(text: string, environment: string, wanted: string): Promise<void> {
  try {
    await waitFor(
      async () => (await outcome(text, environment))?.execution_status === wanted,
      15_000,
      `${environment} to record ${wanted} for ${text}`,
    );
  } catch (error) {
    const logged = await rows(
      `SELECT b.query_text, x.execution_status, x.result_message, x.finished_at FROM permsync.execution_log x
         JOIN permsync.batches b ON b.id = x.batch_id WHERE x.environment_name = $1 ORDER BY x.commit_seq DESC LIMIT 5`,
      [environment],
    );
    const queued = await rows(`SELECT environment_name, batch_id, attempts, next_attempt_at, last_error FROM permsync.retry_queue`);
    throw new Error(`${(error as Error).message}; ${environment} logged last ${JSON.stringify(logged)}; retry queue ${JSON.stringify(queued)}`);
  }
}

/** Lets a second go by, to show that something did not happen in that time. */
const aMoment = () => new Promise((r) => setTimeout(r, 1000));

/** A grant prod cannot apply (the table is not there), so prod holds on it; dev applies it, before a test may cut dev off. */
async function holdProd(table: string): Promise<string> {
  await p.dba(`SET permsync.capture = 'off'; CREATE TABLE ${table} (id int); RESET permsync.capture`);
  await p.env('dev').client.query(`CREATE TABLE ${table} (id int)`);
  const text = `GRANT SELECT ON ${table} TO app`;
  await p.dba(text);
  await untilStatus(text, 'prod', 'failed');
  await untilStatus(text, 'dev', 'success');
  return text;
}

/** Runs the CLI in-process as `user`, and captures what it prints. */
async function cli(args: string[], user: string): Promise<{ code: number; out: string; err: string }> {
  const file = join(configDir, `${user}.yaml`);
  const source = { url: p.source.urlFor('postgres', user, PASSWORD) };
  await writeFile(file, JSON.stringify({ source, environments: p.environments.map((e) => ({ name: e.name, url: e.server.url })) }));
  return runCli(...args, '--config', file);
}

beforeAll(async () => {
  configDir = await mkdtemp(join(tmpdir(), 'permsync-controls-'));
  p = await startPipeline(['dev', 'prod']);
  await p.everywhere(`CREATE ROLE app; CREATE TABLE t1 (id int); CREATE TABLE t2 (id int); CREATE TABLE t3 (id int);
                      CREATE TABLE t4 (id int)`);
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  await p.dba(`SET permsync.capture = 'off';
               CREATE ROLE ${DAEMON} LOGIN PASSWORD '${PASSWORD}' IN ROLE permsync_daemon;
               CREATE ROLE ${OPERATOR} LOGIN PASSWORD '${PASSWORD}' IN ROLE permsync_operator;
               CREATE ROLE ${READER} LOGIN PASSWORD '${PASSWORD}' IN ROLE permsync_reader;
               CREATE ROLE ${MALLORY} LOGIN PASSWORD '${PASSWORD}';
               RESET permsync.capture`);
  const config = p.config({
    // A transient failure waits ten minutes for its retry: only a retry asked for now comes sooner.
    settings: { retryDelaySeconds: 600 },
    // The test's logins are the source's own: they stay there.
    environments: [
      { rules: [{ action: 'exclude', rolePattern: '^(ctl_|mallory$)' }] },
      { rules: [{ action: 'exclude', rolePattern: '^(ctl_|mallory$)' }] },
    ],
  });
  const asDaemon: Config = { ...config, source: { ...config.source, url: p.source.urlFor('postgres', DAEMON, PASSWORD) } };
  await p.startDaemon(asDaemon);
  // Every environment starts with nothing failed or waiting: a retry here waits ten minutes.
  await p.settle();
});

afterAll(async () => {
  await p?.close();
  await rm(configDir, { recursive: true, force: true });
});

describe('notifications are wake-ups only', () => {
  it("a plain login's forged control messages neither retry a held environment nor cut a failing one's backoff, and failure notices tell it nothing", async () => {
    const failures: string[] = [];
    const listener = new pg.Client(p.source.urlFor('postgres', MALLORY, PASSWORD));
    await listener.connect();
    listener.on('notification', (n) => failures.push(n.payload ?? ''));
    await listener.query('LISTEN permsync_failure');
    try {
      const held = await holdProd('held_here');
      // prod now could apply it: a forged retry would let it go on.
      await p.env('prod').client.query('CREATE TABLE held_here (id int)');
      await p.env('dev').proxy.cut();
      const failing = 'GRANT SELECT ON t1 TO app';
      await p.dba(failing);
      await untilStatus(failing, 'dev', 'failed');
      const before = { held: await outcome(held, 'prod'), failing: await outcome(failing, 'dev') };
      const queued = async () => rows(`SELECT attempts, next_attempt_at FROM permsync.retry_queue ORDER BY id`);
      const queuedBefore = await queued();
      expect(queuedBefore).toHaveLength(1);

      const reads = vi.spyOn(SourceStore.prototype, 'readSwitches');
      try {
        await as(MALLORY, async (c) => {
          for (const payload of [
            '{"action":"retry","environment":null}',
            '{"action":"retry","environment":"prod"}',
            '{"action":"retry","environment":"dev"}',
            '{"action":"resume","environment":"prod"}',
            'retry',
            '',
          ]) {
            await c.query(`SELECT pg_notify('permsync_control', $1)`, [payload]);
          }
        });
        await waitFor(() => reads.mock.calls.length > 0, 5000, 'the daemon to read the controls');
        await Promise.all(reads.mock.results.map((r): unknown => r.value));
      } finally {
        reads.mockRestore();
      }
      await aMoment();
      expect(await outcome(held, 'prod')).toEqual(before.held);
      expect(await outcome(failing, 'dev')).toEqual(before.failing);
      expect(await queued()).toEqual(queuedBefore);

      // Someone who may: the operator's retry goes through, and dev catches up once it answers.
      await as(OPERATOR, (c) => c.query(`SELECT * FROM permsync.retry_failed('prod')`));
      await untilStatus(held, 'prod', 'success');
      await p.env('dev').proxy.open();
      await untilStatus(failing, 'dev', 'success');
      await p.settle();

      // prod's permanent failure and dev's were announced, with nothing in them.
      expect(failures.length).toBeGreaterThan(0);
      expect(new Set(failures)).toEqual(new Set(['']));
    } finally {
      await listener.end();
    }
  });

  it('a flood of wake-ups makes the daemon read the source a few times, not once each', async () => {
    const held = await holdProd('flooded');
    await p.env('prod').client.query('CREATE TABLE flooded (id int)');
    const reads = vi.spyOn(SourceStore.prototype, 'readSwitches');
    try {
      await as(MALLORY, (c) => c.query(`SELECT pg_notify('permsync_control', g::text) FROM generate_series(1, 2000) g`));
      // Sent after the flood, so read after it: it is carried out once the flood is dealt with.
      await as(OPERATOR, (c) => c.query(`SELECT * FROM permsync.retry_failed('prod')`));
      await untilStatus(held, 'prod', 'success');
      expect(reads.mock.calls.length).toBeLessThan(50);
    } finally {
      reads.mockRestore();
    }
  });
});

describe("operators' requests are stored", () => {
  it("a retry asked for while the daemon's listener is down is carried out once it is back", async () => {
    const held = await holdProd('while_down');
    await p.env('prod').client.query('CREATE TABLE while_down (id int)');
    // The listener's session ends, and no new session of the daemon's login is let in: the
    // leader lock's session and the pool's stay, so the daemon goes on leading, deaf.
    const [{ n } = { n: 0 }] = await rows<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1`, [DAEMON]);
    await p.dba(`ALTER ROLE ${DAEMON} CONNECTION LIMIT ${n - 1}`);
    try {
      expect(
        await rows(
          `SELECT pg_terminate_backend(pid, 10000) AS gone FROM pg_stat_activity
                          WHERE usename = $1 AND application_name = 'permsync-test:listen'`,
          [DAEMON],
        ),
      ).toEqual([{ gone: true }]);
      await as(OPERATOR, (c) => c.query(`SELECT * FROM permsync.retry_failed('prod')`));
    } finally {
      await p.dba(`ALTER ROLE ${DAEMON} CONNECTION LIMIT -1`);
    }
    await untilStatus(held, 'prod', 'success');
  });
});

describe('skip', () => {
  it('an operator skips the batch prod is held on, and one further on; the daemon goes on without running either, and keeps the skips', async () => {
    const held = await holdProd('never_in_prod');
    const unwanted = 'GRANT SELECT ON t2 TO app';
    const later = 'GRANT SELECT ON t3 TO app';
    await p.dba(unwanted);
    await p.dba(later);
    await untilStatus(later, 'dev', 'success');
    const heldId = (await outcome(held, 'prod'))?.batch_id as string;
    const unwantedId = (await outcome(unwanted, 'prod'))?.batch_id as string;

    const skip = (c: pg.Client, env: string | null, batch: string | number | null, reason: string | null) =>
      c.query(`SELECT environment_name, batch_id::text, was FROM permsync.skip_batch($1, $2, $3)`, [env, batch, reason]);
    // Neither a plain login nor a reader may.
    for (const login of [MALLORY, READER]) {
      await as(login, async (c) => {
        await expect(skip(c, 'prod', heldId, 'mine now')).rejects.toMatchObject({ code: '42501' });
      });
    }
    // Refused, naming the cause.
    await as(OPERATOR, async (c) => {
      await expect(skip(c, 'prod', heldId, ' ')).rejects.toMatchObject({ code: '22023', message: expect.stringContaining('a skip needs a reason') });
      await expect(skip(c, 'prod', heldId, null)).rejects.toMatchObject({ code: '22023' });
      await expect(skip(c, 'staging', heldId, 'why not')).rejects.toMatchObject({ code: '42704', message: 'no environment named "staging"' });
      await expect(skip(c, 'prod', 999_999, 'why not')).rejects.toMatchObject({ code: '42704', message: 'no committed batch 999999' });
      await expect(skip(c, 'dev', heldId, 'why not')).rejects.toMatchObject({
        code: '55000',
        message: expect.stringMatching(new RegExp(`^batch ${heldId} is finished in "dev" already: success`)),
      });
    });
    expect((await outcome(held, 'prod'))?.execution_status).toBe('failed');

    // One further on first: prod is still held, and will pass it.
    await as(OPERATOR, async (c) => {
      expect((await skip(c, 'prod', unwantedId, 'prod must not have it')).rows).toEqual([
        { environment_name: 'prod', batch_id: unwantedId, was: 'pending' },
      ]);
    });
    const skipped = await cli(['skip', '--env', 'prod', '--batch', heldId, '--reason', 'the table is not in prod'], OPERATOR);
    expect(skipped).toEqual({ code: 0, out: `skipped batch ${heldId} (commit_seq ${await commitSeq(heldId)}, failed) for prod\n`, err: '' });

    await untilStatus(later, 'prod', 'success');
    expect(await outcome(held, 'prod')).toMatchObject({
      execution_status: 'skipped',
      result_message: expect.stringMatching(/^skipped by ctl_operator: the table is not in prod; it had failed: .*"never_in_prod" does not exist$/),
    });
    expect(await outcome(unwanted, 'prod')).toMatchObject({
      execution_status: 'skipped',
      result_message: 'skipped by ctl_operator: prod must not have it',
    });
    expect(await relationPrivileges(p.env('prod').client, 't2')).not.toContain('app SELECT by postgres');
    expect(await relationPrivileges(p.env('prod').client, 't3')).toContain('app SELECT by postgres');
    expect(await rows(`SELECT state FROM permsync.v_environment_status WHERE environment = 'prod'`)).toEqual([{ state: 'ok' }]);
    expect(await rows(`SELECT count(*)::int AS n FROM permsync.retry_queue`)).toEqual([{ n: 0 }]);

    // Who skipped what, when and why: for readers too.
    expect(
      await as(
        READER,
        async (c) =>
          (
            await c.query<Record<string, string>>(
              `SELECT acted_by, action, environment_name, batch_id::text, reason FROM permsync.v_operator_actions WHERE action = 'skip'`,
            )
          ).rows,
      ),
    ).toEqual([
      { acted_by: OPERATOR, action: 'skip', environment_name: 'prod', batch_id: heldId, reason: 'the table is not in prod' },
      { acted_by: OPERATOR, action: 'skip', environment_name: 'prod', batch_id: unwantedId, reason: 'prod must not have it' },
    ]);
    await expect(p.dba(`DELETE FROM permsync.operator_actions`)).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('append-only'),
    });

    // The daemon's log write never overwrites a skip, and a second skip is refused.
    const pool = new pg.Pool({ connectionString: p.source.url });
    try {
      const store = new SourceStore(pool);
      const [batch] = await store.batchesAfter(BigInt(await commitSeq(heldId)) - 1n, 'prod', 1);
      expect(batch).toMatchObject({ id: heldId, previousStatus: 'skipped' });
      const now = new Date();
      const superseded = await store.recordExecutions([
        {
          batch: batch as Batch,
          environment: 'prod',
          appliedSql: null,
          status: 'failed',
          startedAt: now,
          finishedAt: now,
          durationMs: 1,
          resultMessage: 'a late failure',
          failureKind: 'permanent',
        },
      ]);
      expect([...superseded]).toEqual([heldId]);
    } finally {
      await pool.end();
    }
    expect((await outcome(held, 'prod'))?.execution_status).toBe('skipped');
    const again = await cli(['skip', '--env', 'prod', '--batch', heldId, '--reason', 'twice'], OPERATOR);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(new RegExp(`^permsync: batch ${heldId} is finished in "prod" already: skipped \\(skipped by ctl_operator: `));
  });
});

async function commitSeq(batchId: string): Promise<string> {
  const [row] = await rows<{ seq: string }>(`SELECT commit_seq::text AS seq FROM permsync.batches WHERE id = $1`, [batchId]);
  return row?.seq as string;
}
