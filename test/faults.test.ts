import pg from 'pg';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import type { LocalCluster } from '../dev/embedded/cluster.js';
import { classifyError } from '../src/errors.js';
import { openSourcePool } from '../src/source/pool.js';
import { FAILURE_CHANNEL } from '../src/source/queries.js';
import { permissionSnapshot } from './support/catalog.js';
import { spawnPermsync, type TestProcess } from './support/child.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

let p: Pipeline;
let configFile: string;
/** The in-process daemons' log for the running test, shown if it fails. */
let logLines: string[] = [];
const children: TestProcess[] = [];

const TABLES = Array.from({ length: 10 }, (_, i) => `t${i}`);

/** Stops and starts a server, and gives the test fresh sessions to it. */
async function restart(name: string, between?: () => Promise<void>): Promise<void> {
  const server = cluster(name);
  const env = p.environments.find((e) => e.name === name);
  await server.stop();
  await between?.();
  await server.start();
  if (env) {
    env.client = await connect(env.server.url);
  } else {
    p.sourceClient = await connect(p.source.url);
  }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client(url);
  client.on('error', () => {}); // a test that stops its server expects the session to die
  await client.connect();
  return client;
}

function cluster(name: string): LocalCluster {
  const server = name === 'source' ? p.source : p.environments.find((e) => e.name === name)?.server;
  if (!server?.cluster) throw new Error(`no embedded server ${name}`);
  return server.cluster;
}

/** A stream of grants and revokes whose final state depends on their order. */
async function churn(count: number, offset = 0): Promise<void> {
  for (let i = offset; i < offset + count; i++) {
    const table = TABLES[i % TABLES.length];
    const privilege = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'][i % 4];
    await p.sourceClient.query(i % 3 === 2 ? `REVOKE ${privilege} ON ${table} FROM app` : `GRANT ${privilege} ON ${table} TO app`);
  }
}

async function expectConverged(): Promise<void> {
  await p.settle(60_000);
  const expected = await permissionSnapshot(p.sourceClient);
  for (const env of p.environments) {
    expect({ env: env.name, lines: await permissionSnapshot(env.client) }).toEqual({ env: env.name, lines: expected });
  }
  // Every batch has exactly one outcome per environment, applied in commit order.
  const { rows } = await p.sourceClient.query<{ missing: string; unordered: string }>(`
    SELECT (SELECT count(*) FROM permsync.batches b CROSS JOIN permsync.environments e
             WHERE b.commit_seq > e.start_after_seq AND e.enabled
               AND NOT EXISTS (SELECT 1 FROM permsync.execution_log x WHERE x.batch_id = b.id AND x.environment_name = e.name))::text AS missing,
           (SELECT count(*) FROM (
              SELECT commit_seq < lag(commit_seq) OVER (PARTITION BY environment_name ORDER BY finished_at, id) AS back
                FROM permsync.execution_log WHERE execution_status = 'success') o WHERE back)::text AS unordered`);
  expect(rows[0]).toEqual({ missing: '0', unordered: '0' });
}

async function pendingFor(environment: string): Promise<number> {
  const { rows } = await p.sourceClient.query<{ pending: string }>(
    `SELECT count(*)::text AS pending FROM permsync.batches b
      WHERE b.commit_seq > (SELECT start_after_seq FROM permsync.environments WHERE name = $1)
        AND NOT EXISTS (SELECT 1 FROM permsync.execution_log x
                         WHERE x.batch_id = b.id AND x.environment_name = $1 AND x.execution_status = 'success')`,
    [environment],
  );
  return Number(rows[0]?.pending);
}

async function lastExecutionId(): Promise<string> {
  const { rows } = await p.sourceClient.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text AS id FROM permsync.execution_log`);
  return rows[0]?.id ?? '0';
}

/** The daemon as operators run it: a separate process, `permsync run`. */
function spawnDaemon(): TestProcess {
  const child = spawnPermsync(['run', '--config', configFile], (text) => logLines.push(`[daemon ${child.pid}] ${text}`));
  children.push(child);
  return child;
}

/** The lease session of the daemon leading now: one whose session lives and whose lease runs. */
async function leaderPid(): Promise<number | undefined> {
  const { rows } = await p.sourceClient.query<{ pid: number }>(
    `SELECT a.pid FROM permsync.leader l JOIN pg_stat_activity a ON a.pid = l.pid AND a.backend_start = l.backend_start
      WHERE l.expires_at > clock_timestamp() AND a.application_name = 'permsync-test:lock'`,
  );
  return rows[0]?.pid;
}

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod'], { embedded: true });
  await p.everywhere(`CREATE ROLE app; ${TABLES.map((t) => `CREATE TABLE ${t} (id int)`).join('; ')}`);
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  const config = p.config();
  const dir = await mkdtemp(join(tmpdir(), 'permsync-faults-'));
  configFile = join(dir, 'permsync.yaml');
  await writeFile(
    configFile,
    `source:\n  url: ${config.source.url}\n  application_name: permsync-test\n` +
      `environments:\n${config.environments.map((e) => `  - name: ${e.name}\n    url: ${e.url}\n`).join('')}` +
      `settings:\n  retry_delay_seconds: 0.2\n  connection_timeout_ms: 2000\n  statement_timeout_ms: 3000\n  poll_interval_ms: 500\n` +
      `http:\n  port: 0\nlog:\n  level: info\n`,
  );
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await p?.close();
  if (configFile) await rm(dirname(configFile), { recursive: true, force: true });
});

beforeEach(() => {
  logLines = [];
  onTestFailed(() => console.log(`daemon log of the failed test:\n${logLines.join('')}`));
});

describe('faults', () => {
  it('a session the server ends between two queries fails its next query, transiently, and nothing else', async () => {
    // What a server restart does to a session the daemon holds between two statements. pg
    // throws such an error from the socket's handler unless something listens (vitest
    // reports that as an uncaught exception, failing the run).
    const pool = openSourcePool(p.config(), { applicationName: 'permsync-test:held', max: 1 });
    const session = await pool.connect();
    try {
      const {
        rows: [held],
      } = await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await p.sourceClient.query('SELECT pg_terminate_backend($1)', [held?.pid]);
      await new Promise((r) => setTimeout(r, 200)); // the FATAL message arrives with no query waiting
      const failure = await session.query('SELECT 1').then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(classifyError(failure)).toMatchObject({ kind: 'transient' });
      session.release(failure as Error);
      // The pool drops it and opens a new one.
      expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });

  it('a target stopped and restarted while changes flow catches up in order', async () => {
    const daemon = await p.startDaemon(p.config(), logLines);
    await churn(30);
    await restart('prod', () => churn(30, 30));
    await churn(30, 60);
    await expectConverged();
    await daemon.stop();
  });

  it('a hung target (its processes stopped) is cut off by timeouts; the others do not wait', async () => {
    const daemon = await p.startDaemon(p.config({ settings: { statementTimeoutMs: 1000, connectionTimeoutMs: 1000 } }), logLines);
    await p.settle();
    const before = await lastExecutionId();
    cluster('prod').signal('SIGSTOP');
    try {
      await churn(20, 100);
      // dev carries everything while prod is still frozen...
      await waitFor(async () => (await pendingFor('dev')) === 0, 10_000, 'dev to carry everything while prod hangs');
      // ...and prod's attempt is cut off by the client-side timeout, recorded as transient.
      await waitFor(
        async () => {
          const { rows } = await p.sourceClient.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM permsync.execution_log
            WHERE environment_name = 'prod' AND id > $1 AND failure_kind = 'transient' AND result_message ~* 'timeout'`,
            [before],
          );
          return rows[0]?.n !== '0';
        },
        15_000,
        'prod to time out',
      );
    } finally {
      cluster('prod').signal('SIGCONT');
    }
    await expectConverged();
    await daemon.stop();
  });

  it('the source restarting: the daemon reconnects and catches up from the batch table', async () => {
    const daemon = await p.startDaemon(p.config(), logLines);
    await churn(10, 200);
    await restart('source');
    await churn(20, 210);
    await expectConverged();
    await daemon.stop();
  });

  it('a failure is announced on the permsync_failure channel', async () => {
    const listener = new pg.Client(p.source.url);
    await listener.connect();
    const notices: string[] = [];
    listener.on('notification', (n) => n.channel === FAILURE_CHANNEL && notices.push(n.payload ?? ''));
    await listener.query(`LISTEN ${FAILURE_CHANNEL}`);
    // A table prod lacks: the grant on it fails there, permanently.
    await p.sourceClient.query(`SET permsync.capture = 'off'; CREATE TABLE only_here (id int); RESET permsync.capture`);
    await p.environments[0]!.client.query('CREATE TABLE only_here (id int)');
    const daemon = await p.startDaemon(p.config({ environments: [{}, { onPermanentFailure: 'continue' }] }), logLines);
    await p.sourceClient.query('GRANT SELECT ON only_here TO app');
    await waitFor(() => notices.length > 0, 10_000, 'a failure notice');
    // Anyone may listen: the notice only says to look at v_failed_syncs.
    expect(notices).toEqual(['']);
    expect((await p.sourceClient.query(`SELECT environment_name, error_code, retry_state FROM permsync.v_failed_syncs`)).rows).toEqual([
      { environment_name: 'prod', error_code: '42P01', retry_state: 'passed' },
    ]);
    await listener.end();
    await daemon.stop();
    // Bring prod level by hand, as a DBA would, for the tests that follow.
    await p.environments[1]!.client.query('CREATE TABLE only_here (id int); GRANT SELECT ON only_here TO app');
  });

  it('a batch applied but not logged before a crash is re-applied at restart, harmlessly, and logged as such', async () => {
    let daemon = await p.startDaemon(p.config(), logLines);
    await p.dba('GRANT TRUNCATE ON t3 TO app');
    await p.dba('REVOKE TRUNCATE ON t3 FROM app');
    await p.settle();
    await daemon.stop();
    // What a crash between the target's commit and the log write leaves behind.
    const { rows } = await p.sourceClient.query<{ seq: string }>(
      `DELETE FROM permsync.execution_log x USING permsync.batches b
        WHERE b.id = x.batch_id AND x.environment_name = 'prod' AND b.query_text LIKE '% TRUNCATE ON t3 %'
        RETURNING b.commit_seq::text AS seq`,
    );
    const through = rows
      .map((r) => BigInt(r.seq))
      .reduce((a, b) => (a > b ? a : b))
      .toString();
    await p.sourceClient.query(`UPDATE permsync.environments SET in_flight_through = $1 WHERE name = 'prod'`, [through]);
    daemon = await p.startDaemon(p.config(), logLines);
    await expectConverged();
    const { rows: logged } = await p.sourceClient.query<{ execution_status: string; result_message: string }>(
      `SELECT x.execution_status, x.result_message FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE x.environment_name = 'prod' AND b.query_text LIKE '% TRUNCATE ON t3 %' ORDER BY b.commit_seq`,
    );
    expect(logged).toEqual([
      { execution_status: 'success', result_message: expect.stringContaining('re-applied after an interrupted run') },
      { execution_status: 'success', result_message: expect.stringContaining('re-applied after an interrupted run') },
    ]);
    await daemon.stop();
  });

  it('the daemon killed (SIGKILL) mid-stream: after a restart every batch reaches every environment', async () => {
    const first = spawnDaemon();
    await first.until(async () => (await leaderPid()) !== undefined, 15_000, 'the daemon to start');
    const applied = async () => Number((await p.sourceClient.query<{ n: string }>('SELECT count(*) AS n FROM permsync.execution_log')).rows[0]?.n);
    const before = await applied();
    const stream = churn(300, 300);
    // Killed once it has applied some of the stream, while the rest is still being sent.
    await waitFor(async () => (await applied()) > before, 15_000, 'the first batches of the stream applied');
    first.kill('SIGKILL');
    await stream;
    await churn(20, 600); // committed after the kill, whatever the stream's timing
    await waitFor(async () => (await leaderPid()) === undefined, 15_000, "the killed daemon's lease session to go");
    const {
      rows: [left],
    } = await p.sourceClient.query<{ n: string }>(
      `SELECT count(*) AS n FROM permsync.batches b CROSS JOIN permsync.environments e
        WHERE b.commit_seq > e.start_after_seq AND e.enabled
          AND NOT EXISTS (SELECT 1 FROM permsync.execution_log x WHERE x.batch_id = b.id AND x.environment_name = e.name)`,
    );
    expect(Number(left?.n)).toBeGreaterThanOrEqual(20 * p.environments.length); // work left for the restarted daemon
    const second = spawnDaemon();
    await second.until(async () => (await leaderPid()) !== undefined, 15_000, 'the restarted daemon to lead');
    await expectConverged();
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });

  it('two daemons: one applies; kill it and the other takes over within seconds', async () => {
    const a = spawnDaemon();
    await a.until(async () => (await leaderPid()) !== undefined, 15_000, 'a leader');
    const b = spawnDaemon();
    // Both connect for the lock; one holds it, the other stands by.
    await b.until(
      async () => {
        const { rows } = await p.sourceClient.query<{ n: string }>(
          `SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name = 'permsync-test:lock'`,
        );
        return rows[0]?.n === '2';
      },
      15_000,
      'the second daemon to stand by',
    );
    const leader = await leaderPid();
    await churn(20, 500);
    await p.settle();
    a.kill('SIGKILL');
    await churn(20, 520);
    await expectConverged(); // b carried the rest
    expect(await leaderPid()).not.toBe(leader);
    await b.stop('SIGTERM');
  });
});
