import pg from 'pg';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import type { LocalCluster } from '../dev/embedded/cluster.js';
import { permissionSnapshot } from './support/catalog.js';
import { spawnPermsync, type TestProcess } from './support/child.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { TcpProxy } from './support/proxy.js';

/** Far more than a clean stop takes; a daemon that keeps retrying a dead server runs past it for as long as it is let. */
const STOP_BOUND_MS = 10_000;
const TABLES = Array.from({ length: 10 }, (_, i) => `t${i}`);

let p: Pipeline;
/** The spawned daemons reach the source through it, to be cut off from it without stopping it. */
let sourceProxy: TcpProxy;
let configFile: string;
let logLines: string[] = [];
/** Where the next churn() starts. */
let seq = 0;
const children: TestProcess[] = [];

function cluster(name: string): LocalCluster {
  const server = name === 'source' ? p.source : p.env(name).server;
  if (!server.cluster) throw new Error(`no embedded server ${name}`);
  return server.cluster;
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client(url);
  client.on('error', () => {}); // a test that stops its server expects the session to die
  await client.connect();
  return client;
}

/** The daemon as operators run it: `permsync run`, a process of its own. */
function spawnDaemon(): { child: TestProcess; port: () => number | undefined } {
  let port: number | undefined;
  const child = spawnPermsync(['run', '--config', configFile], (text) => {
    logLines.push(`[daemon ${child.pid}] ${text}`);
    port ??= Number(/"port":(\d+),"msg":"http server listening"/.exec(text)?.[1]) || undefined;
  });
  children.push(child);
  return { child, port: () => port };
}

/** What /readyz says (status, and the daemon's role), or undefined before the daemon answers. */
async function readiness(port: number | undefined): Promise<{ status: string; role: string } | undefined> {
  if (port === undefined) return undefined;
  return fetch(`http://127.0.0.1:${port}/readyz`).then(
    async (r) => (await r.json()) as { status: string; role: string },
    () => undefined,
  );
}

async function readyz(port: number | undefined): Promise<string | undefined> {
  return (await readiness(port))?.status;
}

/** A daemon that leads and applies, with a session open to each environment. */
async function runningDaemon(): Promise<{ child: TestProcess; port: () => number | undefined }> {
  const daemon = spawnDaemon();
  // Leading, not standing by: a lease the previous test's daemon held may take a claim or two to free.
  await daemon.child.until(
    async () => {
      const answer = await readiness(daemon.port());
      return answer?.status === 'ready' && answer.role === 'leader';
    },
    15_000,
    'the daemon to be ready as the leader',
  );
  await churn(1);
  await p.settle();
  return daemon;
}

/** Sends `signal` and waits for the process to end; its exit code, or why it did not end in time. */
async function stopWith(child: TestProcess, signal: NodeJS.Signals): Promise<number | null | string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>(
    (resolve) => (timer = setTimeout(() => resolve(`still running ${STOP_BOUND_MS} ms after ${signal}`), STOP_BOUND_MS)),
  );
  const outcome = await Promise.race([child.stop(signal).then((exit) => exit.code), late]);
  clearTimeout(timer);
  if (typeof outcome === 'string') child.kill('SIGKILL');
  return outcome;
}

/** `count` grants and revokes whose final state depends on their order. */
async function churn(count: number): Promise<void> {
  const offset = seq;
  seq += count;
  for (let i = offset; i < offset + count; i++) {
    const table = TABLES[i % TABLES.length];
    const privilege = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'][i % 4];
    await p.sourceClient.query(i % 3 === 2 ? `REVOKE ${privilege} ON ${table} FROM app` : `GRANT ${privilege} ON ${table} TO app`);
  }
}

async function pendingFor(environment: string): Promise<number> {
  const { rows } = await p.sourceClient.query<{ pending: number }>(
    `SELECT count(*)::int AS pending FROM permsync.batches b
      WHERE b.commit_seq > (SELECT start_after_seq FROM permsync.environments WHERE name = $1)
        AND NOT EXISTS (SELECT 1 FROM permsync.execution_log x
                         WHERE x.batch_id = b.id AND x.environment_name = $1 AND x.execution_status = 'success')`,
    [environment],
  );
  return rows[0]?.pending ?? NaN;
}

/** Every environment holds the source's permissions, every batch has one outcome per environment, in commit order. */
async function expectConverged(): Promise<void> {
  await p.settle(60_000);
  const expected = await permissionSnapshot(p.sourceClient);
  for (const env of p.environments) {
    expect({ env: env.name, lines: await permissionSnapshot(env.client) }).toEqual({ env: env.name, lines: expected });
  }
  const { rows } = await p.sourceClient.query<{ missing: string; unordered: string }>(`
    SELECT (SELECT count(*) FROM permsync.batches b CROSS JOIN permsync.environments e
             WHERE b.commit_seq > e.start_after_seq AND e.enabled
               AND NOT EXISTS (SELECT 1 FROM permsync.execution_log x WHERE x.batch_id = b.id AND x.environment_name = e.name))::text AS missing,
           (SELECT count(*) FROM (
              SELECT commit_seq < lag(commit_seq) OVER (PARTITION BY environment_name ORDER BY finished_at, id) AS back
                FROM permsync.execution_log WHERE execution_status = 'success') o WHERE back)::text AS unordered`);
  expect(rows[0]).toEqual({ missing: '0', unordered: '0' });
}

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod'], { embedded: true });
  await p.everywhere(`CREATE ROLE app; ${TABLES.map((t) => `CREATE TABLE ${t} (id int)`).join('; ')}`);
  await p.adopt();
  sourceProxy = await TcpProxy.start(p.source.url);
  const config = p.config();
  configFile = join(await mkdtemp(join(tmpdir(), 'permsync-shutdown-')), 'permsync.yaml');
  // The default statement timeout (30 s): a stop must not wait for a hung target to time out.
  await writeFile(
    configFile,
    `source:\n  url: ${sourceProxy.rewrite(config.source.url)}\n  application_name: permsync-test\n` +
      `environments:\n${config.environments.map((e) => `  - name: ${e.name}\n    url: ${e.url}\n`).join('')}` +
      `settings:\n  retry_delay_seconds: 0.2\n  connection_timeout_ms: 2000\n  poll_interval_ms: 500\n` +
      `http:\n  port: 0\nlog:\n  level: info\n`,
  );
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await p?.close();
  await sourceProxy?.cut();
  if (configFile) await rm(dirname(configFile), { recursive: true, force: true });
});

beforeEach(() => {
  logLines = [];
  onTestFailed(() => console.log(`daemon log of the failed test:\n${logLines.join('')}`));
});

describe('SIGTERM and SIGINT end the daemon within seconds, exit code 0', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('with the source down (%s)', async (signal) => {
    const { child, port } = await runningDaemon();
    await cluster('source').stop();
    try {
      await waitFor(async () => (await readyz(port())) === 'not_ready', 15_000, 'the daemon to see the source gone');
      expect(await stopWith(child, signal)).toBe(0);
    } finally {
      await cluster('source').start();
      p.sourceClient = await connect(p.source.url);
    }
  });

  it('while it starts, held up by the source: a lock it waits for (SIGTERM)', async () => {
    const locker = await connect(p.source.url);
    // Its start registers the configuration, which waits for this lock.
    await locker.query('BEGIN; LOCK TABLE permsync.environments IN SHARE MODE');
    try {
      const { child } = spawnDaemon();
      await child.until(() => Promise.resolve(logLines.some((l) => l.includes('holding the leader lease'))), 15_000, 'the daemon to lead');
      expect(await stopWith(child, 'SIGTERM')).toBe(0);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
  });

  it('with the source silent: its network drops everything, new connections included (SIGTERM)', async () => {
    const { child, port } = await runningDaemon();
    sourceProxy.hangNew(true);
    sourceProxy.blackHoleAll();
    try {
      await waitFor(async () => (await readyz(port())) === 'not_ready', 15_000, 'the daemon to see the source silent');
      expect(await stopWith(child, 'SIGTERM')).toBe(0);
    } finally {
      // Cutting the silent connections ends their sessions on the source.
      await sourceProxy.cut();
      sourceProxy.hangNew(false);
      await sourceProxy.open();
    }
  });

  it('with a target hung mid-transaction (SIGTERM); the batch it abandoned is carried by the next run', async () => {
    const { child } = await runningDaemon();
    cluster('prod').signal('SIGSTOP');
    try {
      await churn(20);
      // dev carried everything: prod's applier is waiting on the hung server meanwhile.
      await waitFor(async () => (await pendingFor('dev')) === 0, 15_000, 'dev to carry the changes');
      expect(await stopWith(child, 'SIGTERM')).toBe(0);
    } finally {
      cluster('prod').signal('SIGCONT');
    }
    const daemon = await p.startDaemon(p.config(), logLines);
    await expectConverged();
    await daemon.stop();
  });

  it('with the source down and a target hung (SIGINT)', async () => {
    const { child, port } = await runningDaemon();
    cluster('prod').signal('SIGSTOP');
    try {
      await churn(5);
      await waitFor(async () => (await pendingFor('dev')) === 0, 15_000, 'dev to carry the changes');
      await cluster('source').stop();
      await waitFor(async () => (await readyz(port())) === 'not_ready', 15_000, 'the daemon to see the source gone');
      expect(await stopWith(child, 'SIGINT')).toBe(0);
    } finally {
      cluster('prod').signal('SIGCONT');
      await cluster('source').start();
      p.sourceClient = await connect(p.source.url);
    }
    const daemon = await p.startDaemon(p.config(), logLines);
    await expectConverged();
    await daemon.stop();
  });

  it('mid-burst (SIGTERM): the next run carries every batch, once and in order', async () => {
    const { child } = await runningDaemon();
    const applied = async () => (await p.sourceClient.query<{ n: number }>('SELECT count(*)::int AS n FROM permsync.execution_log')).rows[0]?.n ?? 0;
    const before = await applied();
    const burst = churn(300);
    await waitFor(async () => (await applied()) > before, 15_000, 'the first batches of the burst applied');
    expect(await stopWith(child, 'SIGTERM')).toBe(0);
    await burst;
    const daemon = await p.startDaemon(p.config(), logLines);
    await expectConverged();
    await daemon.stop();
  });
});

describe('readiness while the daemon starts', () => {
  it('is not ready until its first claim of the leader lease is answered: it may be about to lead', async () => {
    await p.sourceClient.query(`INSERT INTO permsync.leader (group_name) VALUES ('default') ON CONFLICT DO NOTHING`);
    const blocker = await connect(p.source.url);
    // The claim waits for this row lock, as for a slow source.
    await blocker.query(`BEGIN; SELECT FROM permsync.leader WHERE group_name = 'default' FOR UPDATE`);
    try {
      const { child, port } = spawnDaemon();
      let answer: Awaited<ReturnType<typeof readiness>>;
      await child.until(async () => (answer = await readiness(port())) !== undefined, 15_000, 'the daemon to answer /readyz');
      expect(answer).toEqual({ status: 'not_ready', role: 'standby', reason: 'starting: claiming the leader lease' });
      await blocker.query('ROLLBACK');
      await child.until(async () => (await readiness(port()))?.role === 'leader', 15_000, 'the daemon to lead');
      expect(await stopWith(child, 'SIGTERM')).toBe(0);
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      await blocker.end();
    }
  });
});
