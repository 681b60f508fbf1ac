import http from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { Daemon } from '../src/daemon.js';
import { startHttpServer, type HttpServer, type Readiness } from '../src/http/server.js';
import { DaemonMetrics, type DaemonMetricsOptions } from '../src/metrics.js';
import { ENVIRONMENT_BACKLOG } from '../src/source/metrics-queries.js';
import { RoleWatcher } from '../src/watch/role-watcher.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { Exposition } from './support/prometheus.js';
import { TcpProxy } from './support/proxy.js';

const ENVIRONMENTS = ['dev', 'prod'];
const silent = pino({ level: 'silent' });

let p: Pipeline;
/** The source, as the daemon's own pool reaches it. */
let source: pg.Pool;
let servers: HttpServer[] = [];
let daemons: Daemon[] = [];
// eslint-disable-next-line @typescript-eslint/unbound-method -- pg's own query, put back after a test wraps it
const query = pg.Client.prototype.query;

beforeAll(async () => {
  p = await startPipeline(ENVIRONMENTS);
  await p.everywhere(`
    CREATE ROLE app; CREATE ROLE reader;
    CREATE SCHEMA sales; CREATE TABLE sales.orders (id int); CREATE TABLE sales.refunds (id int)`);
  await p.adopt();
  source = new pg.Pool({ connectionString: p.source.url, max: 2 });
  // A first daemon registers the environments, which the tests that run none need, and
  // carries the roles the role watcher finds.
  const first = await p.startDaemon();
  await p.settleRoles();
  await first.stop();
});

/**
 * Several tests run no daemon and leave batches pending, or fail them by hand: each test
 * starts with every batch finished everywhere, what an earlier one left skipped, as an
 * operator would.
 */
beforeEach(async () => {
  const { rows } = await p.sourceClient.query<{ environment: string; batch: string }>(
    `SELECT e.name AS environment, b.id::text AS batch
       FROM permsync.environments e
       JOIN permsync.batches b ON b.commit_seq > e.start_after_seq AND b.origin <> 'reconcile'
                              AND (b.target_environment IS NULL OR b.target_environment = e.name)
       LEFT JOIN permsync.execution_log x ON x.batch_id = b.id AND x.environment_name = e.name
      WHERE x.id IS NULL OR x.execution_status = 'failed'
      ORDER BY b.commit_seq`,
  );
  for (const { environment, batch } of rows) {
    await p.sourceClient.query(`SELECT permsync.skip_batch($1, $2, 'a test starts with nothing pending')`, [environment, batch]);
  }
});

afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(daemons.map((d) => d.stop()));
  servers = [];
  daemons = [];
});

afterAll(async () => {
  await source?.end();
  await p?.close();
});

function newMetrics(overrides: Partial<DaemonMetricsOptions> = {}): DaemonMetrics {
  return new DaemonMetrics({ source, group: 'default', environments: () => ENVIRONMENTS, logger: silent, ...overrides });
}

async function serve(metrics: DaemonMetrics, readiness: () => Promise<Readiness>, readinessTimeoutMs?: number): Promise<HttpServer> {
  const server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    registry: metrics.registry,
    readiness,
    logger: silent,
    ...(readinessTimeoutMs !== undefined && { readinessTimeoutMs }),
  });
  servers.push(server);
  return server;
}

const url = (server: { port: number }, path: string) => `http://127.0.0.1:${server.port}${path}`;
const readyAs = (role: Readiness['role']) => (): Promise<Readiness> => Promise.resolve({ ready: true, role });

async function scrape(server: { port: number }): Promise<Exposition> {
  const res = await fetch(url(server, '/metrics'));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return new Exposition(await res.text());
}

async function startDaemon(): Promise<Daemon> {
  const daemon = await p.startDaemon();
  daemons.push(daemon);
  return daemon;
}

async function outcome(queryText: string, environment: string): Promise<string | undefined> {
  const { rows } = await p.sourceClient.query<{ execution_status: string }>(
    `SELECT x.execution_status FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
      WHERE b.query_text = $1 AND x.environment_name = $2`,
    [queryText, environment],
  );
  return rows[0]?.execution_status;
}

async function count(sql: string): Promise<number> {
  const { rows } = await p.sourceClient.query<{ n: number }>(`SELECT (${sql})::int AS n`);
  return rows[0]?.n ?? NaN;
}

/** Waits until the leader registered the environments, captured every role change and carried every batch. */
async function quiesce(): Promise<void> {
  await waitFor(async () => (await count('SELECT count(*) FROM permsync.environments')) === ENVIRONMENTS.length, 10_000, 'registration');
  await waitFor(
    async () => (await count('SELECT count(*) FROM permsync.role_snapshot WHERE fingerprint = permsync.role_fingerprint()')) === 1,
    10_000,
    'the role watcher to catch up',
  );
  await p.settle();
}

describe('the HTTP surface', () => {
  it('answers /healthz on the port it bound, 404 elsewhere, 405 to other methods than GET and HEAD', async () => {
    const server = await serve(newMetrics(), readyAs('leader'));
    expect(server.port).toBeGreaterThan(0);
    const health = await fetch(url(server, '/healthz?from=docker'));
    expect(health.status).toBe(200);
    expect(health.headers.get('content-type')).toBe('application/json');
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await fetch(url(server, '/healthz'), { method: 'HEAD' })).status).toBe(200);
    for (const path of ['/', '/health', '/metrics/x', '/readyz/']) {
      const res = await fetch(url(server, path));
      expect(res.status, path).toBe(404);
      expect(await res.json()).toEqual({ status: 'not_found' });
    }
    const post = await fetch(url(server, '/healthz'), { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('answers /readyz 200 with the role when ready, 503 with the reason otherwise', async () => {
    let state: Readiness = { ready: true, role: 'leader' };
    const server = await serve(newMetrics(), () => Promise.resolve(state));
    const readyz = async (s = server) => {
      const res = await fetch(url(s, '/readyz'));
      return { status: res.status, body: await res.json() };
    };
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', role: 'leader' } });
    state = { ready: true, role: 'standby' };
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', role: 'standby' } });
    state = { ready: false, role: 'leader', reason: 'not listening on the source: reconnecting' };
    expect(await readyz()).toEqual({
      status: 503,
      body: { status: 'not_ready', role: 'leader', reason: 'not listening on the source: reconnecting' },
    });

    const failing = await serve(newMetrics(), () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432')));
    expect(await readyz(failing)).toEqual({ status: 503, body: { status: 'not_ready', reason: 'connect ECONNREFUSED 127.0.0.1:5432' } });

    const hanging = await serve(newMetrics(), () => new Promise<Readiness>(() => {}), 200);
    const started = Date.now();
    expect(await readyz(hanging)).toEqual({ status: 503, body: { status: 'not_ready', reason: 'readiness check took over 200 ms' } });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('serves a registry of its own, with the standard Node and process metrics', async () => {
    const [a, b] = [newMetrics(), newMetrics()]; // two daemons in one process do not collide
    a.setLeader(true);
    const [scrapeA, scrapeB] = [await scrape(await serve(a, readyAs('leader'))), await scrape(await serve(b, readyAs('standby')))];
    expect(scrapeA.value('permsync_leader', { group: 'default' })).toBe(1);
    expect(scrapeB.value('permsync_leader', { group: 'default' })).toBe(0);
    expect(scrapeA.types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(scrapeA.types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(scrapeA.types.get('process_resident_memory_bytes')).toBe('gauge');
  });

  it('closes at once: stops accepting, ends idle and in-flight keep-alive connections', async () => {
    const server = await serve(newMetrics(), () => new Promise((resolve) => setTimeout(() => resolve({ ready: true, role: 'leader' }), 300)));
    const agent = new http.Agent({ keepAlive: true });
    const get = (path: string) =>
      new Promise<{ status: number | undefined; connection: string | undefined }>((resolve, reject) => {
        http
          .get(url(server, path), { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection }));
          })
          .on('error', reject);
      });
    expect(await get('/healthz')).toEqual({ status: 200, connection: 'keep-alive' }); // leaves an idle socket
    const inFlight = get('/readyz');
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await server.close();
    // Not the 5 s keep-alive timeout: the in-flight response is sent, then its connection ends.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(await inFlight).toEqual({ status: 200, connection: 'close' });
    await expect(fetch(url(server, '/healthz'))).rejects.toThrow();
    agent.destroy();
  });
});

describe('metrics of a daemon at work', () => {
  it('count what it read and recorded, and show the backlog the source holds', async () => {
    // The daemon's own /metrics: what it counts is what it did, which is what the source
    // holds past what it held before the daemon started.
    const {
      rows: [start],
    } = await p.sourceClient.query<{ execution: string; seq: string }>(
      `SELECT (SELECT coalesce(max(id), 0) FROM permsync.execution_log)::text AS execution,
              (SELECT coalesce(max(commit_seq), 0) FROM permsync.batches)::text AS seq`,
    );
    const daemon = await startDaemon();
    await waitFor(() => daemon.isLeader(), 10_000, 'the daemon to lead');
    const server = daemon.http;
    await quiesce();
    const before = await scrape(server);
    const executions = (m: Exposition, environment: string, status: string) => m.value('permsync_executions_total', { environment, status }) ?? 0;

    await p.dba('GRANT SELECT ON sales.orders TO app');
    await p.settle();
    await expect.poll(async () => executions(await scrape(server), 'prod', 'success')).toBe(executions(before, 'prod', 'success') + 1);
    const carried = await scrape(server);
    // Both environments read the batch: it is counted once.
    expect(carried.value('permsync_batches_captured_total', { origin: 'event_trigger' })).toBe(
      (before.value('permsync_batches_captured_total', { origin: 'event_trigger' }) ?? 0) + 1,
    );
    for (const environment of ENVIRONMENTS) {
      expect(executions(carried, environment, 'success')).toBe(executions(before, environment, 'success') + 1);
      const observed = (m: Exposition) => m.value('permsync_apply_duration_seconds_count', { environment }) ?? 0;
      expect(observed(carried)).toBe(observed(before) + 1);
      expect(carried.value('permsync_apply_duration_seconds_bucket', { environment, le: '30' })).toBe(observed(carried));
      expect(carried.value('permsync_environment_pending_batches', { environment })).toBe(0);
      expect(carried.value('permsync_environment_lag_seconds', { environment })).toBe(0);
    }
    expect(carried.types.get('permsync_apply_duration_seconds')).toBe('histogram');
    expect(carried.value('permsync_retry_queue_depth')).toBe(0);
    expect(carried.value('permsync_leader', { group: 'default' })).toBe(1);
    expect(carried.value('permsync_metrics_collect_errors_total')).toBe(0);

    // prod goes down: dev carries the next batch, prod fails it and waits to retry.
    await p.env('prod').proxy.cut();
    const text = 'GRANT SELECT ON sales.refunds TO reader';
    await p.dba(text);
    await waitFor(
      async () =>
        (await outcome(text, 'dev')) === 'success' &&
        (await outcome(text, 'prod')) === 'failed' &&
        (await count('SELECT count(*) FROM permsync.retry_queue')) === 1,
      10_000,
      'prod to fail and queue a retry',
    );
    const failing = await scrape(server);
    expect(failing.value('permsync_environment_pending_batches', { environment: 'prod' })).toBe(1);
    expect(failing.value('permsync_environment_pending_batches', { environment: 'dev' })).toBe(0);
    expect(failing.value('permsync_environment_lag_seconds', { environment: 'prod' })).toBeGreaterThan(0);
    expect(failing.value('permsync_environment_lag_seconds', { environment: 'prod' })).toBeLessThan(60);
    expect(failing.value('permsync_environment_lag_seconds', { environment: 'dev' })).toBe(0);
    expect(failing.value('permsync_retry_queue_depth')).toBe(1);
    expect(executions(failing, 'prod', 'failed')).toBeGreaterThanOrEqual(1);

    await p.env('prod').proxy.open();
    await p.settle();
    await expect.poll(async () => (await scrape(server)).value('permsync_retry_queue_depth')).toBe(0);
    const recovered = await scrape(server);
    expect(recovered.value('permsync_environment_pending_batches', { environment: 'prod' })).toBe(0);

    // Every outcome the source holds is counted, each attempt of a retried batch included...
    const { rows } = await p.sourceClient.query<{ environment_name: string; execution_status: string; n: number; retries: number }>(
      `SELECT environment_name, execution_status, count(*)::int AS n, sum(retry_count)::int AS retries
         FROM permsync.execution_log WHERE id > $1 GROUP BY 1, 2`,
      [start?.execution],
    );
    for (const environment of ENVIRONMENTS) {
      const of = (status: string) => rows.find((r) => r.environment_name === environment && r.execution_status === status);
      // A batch tried n + 1 times failed the first n (it would not have been tried again otherwise).
      const earlierAttempts = rows.filter((r) => r.environment_name === environment).reduce((sum, r) => sum + r.retries, 0);
      expect(executions(recovered, environment, 'success')).toBe(of('success')?.n ?? 0);
      expect(executions(recovered, environment, 'skipped')).toBe(of('skipped')?.n ?? 0);
      expect(executions(recovered, environment, 'failed')).toBe((of('failed')?.n ?? 0) + earlierAttempts);
    }
    // ... and every batch, by origin, once.
    const { rows: origins } = await p.sourceClient.query<{ origin: string; n: number }>(
      `SELECT origin, count(*)::int AS n FROM permsync.batches WHERE commit_seq > $1 GROUP BY origin`,
      [start?.seq],
    );
    expect(origins.length).toBeGreaterThan(0);
    for (const origin of ['event_trigger', 'role_watcher', 'manual', 'reconcile']) {
      expect(recovered.value('permsync_batches_captured_total', { origin }), origin).toBe(origins.find((o) => o.origin === origin)?.n ?? 0);
    }
  });

  it('count role watcher checks, changed or not, with their duration', async () => {
    const metrics = newMetrics();
    // The daemon's own watcher, fed to the metrics through its onCheck hook; checked by hand here.
    const watcher = new RoleWatcher(source, 60_000, silent, (durationMs, batchId) => metrics.roleCheck(durationMs, batchId !== null));
    await p.dba('CREATE ROLE metrics_probe');
    await watcher.check();
    await watcher.check();
    const m = await scrape(await serve(metrics, readyAs('leader')));
    expect(m.value('permsync_role_watcher_checks_total', { result: 'changed' })).toBe(1);
    expect(m.value('permsync_role_watcher_checks_total', { result: 'unchanged' })).toBe(1);
    expect(m.types.get('permsync_role_watcher_check_duration_seconds')).toBe('histogram');
    expect(m.value('permsync_role_watcher_check_duration_seconds_count')).toBe(2);
    expect(m.value('permsync_role_watcher_check_duration_seconds_sum')).toBeGreaterThan(0);
  });
});

describe('leader and standby', () => {
  it('each report their role; one that cannot reach the source is not ready', async () => {
    const leader = await startDaemon();
    await waitFor(() => leader.isLeader(), 10_000, 'the first daemon to lead');
    // The standby reaches the source through a proxy, to be cut off from it.
    const sourceProxy = await TcpProxy.start(p.source.url);
    const config = p.config();
    const standby = await p.startDaemon({ ...config, source: { ...config.source, url: sourceProxy.rewrite(p.source.url) } });
    daemons.push(standby);
    const readyz = async (daemon: Daemon) => {
      const res = await fetch(url(daemon.http, '/readyz'));
      return { status: res.status, body: await res.json() };
    };
    const listening = { state: 'connected', since: expect.any(String), lastHeartbeat: expect.any(String) };
    await expect.poll(() => readyz(leader)).toEqual({ status: 200, body: { status: 'ready', role: 'leader', listener: listening } });
    // The standby names the leader: its lease session, as the source's pg_stat_activity shows it.
    const {
      rows: [lease],
    } = await p.sourceClient.query<{ pid: number; since: Date }>('SELECT pid, since FROM permsync.leader');
    const named = {
      pid: lease?.pid,
      user: 'postgres',
      applicationName: 'permsync-test:lock',
      clientAddr: '127.0.0.1',
      since: lease?.since.toISOString(),
    };
    await expect.poll(() => readyz(standby)).toEqual({ status: 200, body: { status: 'ready', role: 'standby', leader: named } });
    expect((await scrape(leader.http)).value('permsync_leader', { group: 'default' })).toBe(1);
    expect((await scrape(standby.http)).value('permsync_leader', { group: 'default' })).toBe(0);
    const labels = { pid: String(named.pid), user: named.user, application_name: named.applicationName, client_addr: named.clientAddr };
    for (const daemon of [leader, standby]) {
      const m = await scrape(daemon.http);
      expect(m.labelSets('permsync_leader_since_timestamp_seconds')).toEqual([labels]);
      expect(m.value('permsync_leader_since_timestamp_seconds', labels)).toBe((lease?.since.getTime() ?? 0) / 1000);
    }

    await sourceProxy.cut();
    // The last answer from the source is given again for up to a second.
    await expect
      .poll(() => readyz(standby))
      .toEqual({
        status: 503,
        body: { status: 'not_ready', role: 'standby', reason: expect.stringContaining('source unreachable') },
      });
    await p.settle(); // what the leader carried is behind the next test
  });
});

describe('readiness under a flood of probes', () => {
  it("asks the source on one session of its own, about once a second at most, never on the daemon's pool", async () => {
    const daemon = await startDaemon();
    await waitFor(() => daemon.isLeader(), 10_000, 'the daemon to lead');
    const readyz = async () => (await fetch(url(daemon.http, '/readyz'))).status;
    await expect.poll(readyz).toBe(200);
    // The daemon's sessions besides its pool (lease, listener, readiness), and the readiness one.
    const sessions = async (pattern: string) => count(`SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '${pattern}'`);
    const before = { own: await sessions('permsync-test:%'), probe: await sessions('permsync-test:ready') };
    const most = { ...before };
    // Every readiness question any session of this process sends, by the session's application_name.
    const asked: string[] = [];
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      if (args[0] === 'SELECT 1')
        asked.push((this as unknown as { connectionParameters: { application_name?: string } }).connectionParameters.application_name ?? '');
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof pg.Client.prototype.query;
    let flooding = true;
    const sampling = (async () => {
      while (flooding) {
        most.own = Math.max(most.own, await sessions('permsync-test:%'));
        most.probe = Math.max(most.probe, await sessions('permsync-test:ready'));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const started = performance.now();
    let statuses: number[];
    try {
      statuses = await Promise.all(Array.from({ length: 200 }, readyz));
    } finally {
      flooding = false;
      await sampling;
      pg.Client.prototype.query = query;
    }
    const seconds = Math.ceil((performance.now() - started) / 1000);
    expect(statuses).toEqual(Array(200).fill(200));
    expect(asked.filter((name) => name !== 'permsync-test:ready')).toEqual([]);
    expect(asked.length).toBeLessThanOrEqual(seconds + 1);
    expect(before.probe).toBe(1);
    expect(most).toEqual(before);
  });
});

describe('collecting from the source', () => {
  it('a source that fails: /metrics still answers with the last values, and counts the error', async () => {
    const proxy = await TcpProxy.start(p.source.url);
    const viaProxy = new pg.Pool({ connectionString: proxy.rewrite(p.source.url), connectionTimeoutMillis: 5000 });
    viaProxy.on('error', () => {});
    const server = await serve(newMetrics({ source: viaProxy }), readyAs('leader'));
    await p.dba('GRANT INSERT ON sales.orders TO app'); // no daemon runs: pending everywhere
    const up = await scrape(server);
    expect(up.value('permsync_environment_pending_batches', { environment: 'dev' })).toBe(1);
    expect(up.value('permsync_metrics_collect_errors_total')).toBe(0);

    await proxy.cut();
    const down = await scrape(server);
    expect(down.labelSets('permsync_environment_lag_seconds')).toEqual(up.labelSets('permsync_environment_lag_seconds'));
    expect(down.value('permsync_environment_pending_batches', { environment: 'dev' })).toBe(1);
    expect(down.value('permsync_metrics_collect_errors_total')).toBe(1);
    await viaProxy.end();
  });

  it('a source that hangs: each scrape gives up in time, and the query is not started twice', async () => {
    const sockets: Socket[] = [];
    const hung = createServer((socket) => sockets.push(socket)); // accepts, never answers
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const pool = new pg.Pool({
      connectionString: `postgres://postgres@127.0.0.1:${(hung.address() as AddressInfo).port}/postgres`,
      connectionTimeoutMillis: 20_000,
    });
    pool.on('error', () => {});
    const server = await serve(newMetrics({ source: pool, collectTimeoutMs: 300 }), readyAs('leader'));
    for (const scrapes of [1, 2]) {
      const started = Date.now();
      const m = await scrape(server);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(m.value('permsync_metrics_collect_errors_total')).toBe(scrapes);
      expect(m.labelSets('permsync_environment_pending_batches')).toEqual([]);
    }
    expect(sockets).toHaveLength(1);
    sockets.forEach((s) => s.destroy());
    await new Promise((resolve) => hung.close(resolve));
    await pool.end();
  });

  it("counts as unfinished what v_batch_outcomes does, with only permsync_daemon's grants", async () => {
    // No daemon runs: realistic rows are written by hand, each case of the "finished" rule once.
    const manual = async (sql: string, env: string | null) =>
      (await p.sourceClient.query<{ id: string }>('SELECT permsync.manual_sync($1, $2)::text AS id', [sql, env])).rows[0]?.id;
    const everywhere = await manual('GRANT SELECT ON sales.orders TO reader', null);
    const prodOnly = await manual('GRANT SELECT ON sales.refunds TO app', 'prod');
    await manual('GRANT UPDATE ON sales.orders TO reader', null);
    const record = (batch: string | undefined, environment: string, status: string, kind: string | null) =>
      p.sourceClient.query(
        `INSERT INTO permsync.execution_log (batch_id, environment_name, commit_seq, execution_status, failure_kind,
                                             started_at, finished_at, duration_ms)
         SELECT id, $2, commit_seq, $3, $4, now(), now(), 1 FROM permsync.batches WHERE id = $1`,
        [batch, environment, status, kind],
      );
    await p.sourceClient.query("UPDATE permsync.environments SET on_permanent_failure = 'hold' WHERE name = 'dev'");
    await p.sourceClient.query("UPDATE permsync.environments SET on_permanent_failure = 'continue' WHERE name = 'prod'");
    onTestFinished(() => p.sourceClient.query("UPDATE permsync.environments SET on_permanent_failure = 'hold'").then(() => undefined));
    await record(everywhere, 'dev', 'failed', 'permanent'); // held: unfinished
    await record(everywhere, 'prod', 'failed', 'permanent'); // passed: finished
    await record(prodOnly, 'prod', 'failed', 'transient'); // unfinished, and not dev's at all

    const backlog = async (client: pg.Pool | pg.Client = p.sourceClient) =>
      Object.fromEntries(
        (await client.query<{ environment: string; pending_batches: number; lag_seconds: number }>(ENVIRONMENT_BACKLOG, [ENVIRONMENTS])).rows.map(
          (r) => [r.environment, { pending: r.pending_batches, lag: r.lag_seconds }],
        ),
      );
    const fromView = async () =>
      Object.fromEntries(
        (
          await p.sourceClient.query<{ environment_name: string; pending: number; lag: number }>(
            `SELECT environment_name, count(*) FILTER (WHERE NOT finished)::int AS pending,
                  coalesce(extract(epoch FROM now() - min(committed_at) FILTER (WHERE NOT finished)), 0)::float8 AS lag
             FROM permsync.v_batch_outcomes GROUP BY environment_name`,
          )
        ).rows.map((r) => [r.environment_name, { pending: r.pending, lag: r.lag }]),
      );
    const agree = async (expected: Record<string, number>) => {
      const [ours, view] = [await backlog(), await fromView()];
      for (const environment of ENVIRONMENTS) {
        expect(ours[environment]?.pending, environment).toBe(expected[environment]);
        expect(ours[environment]?.pending, environment).toBe(view[environment]?.pending ?? 0);
        expect(ours[environment]?.lag).toBeCloseTo(view[environment]?.lag ?? 0, 0);
      }
    };
    await agree({ dev: 2, prod: 2 });
    // Batches at or before start_after_seq are behind the environment.
    await p.sourceClient.query(
      'UPDATE permsync.environments SET start_after_seq = (SELECT commit_seq FROM permsync.batches WHERE id = $1) WHERE name = $2',
      [everywhere, 'dev'],
    );
    await agree({ dev: 1, prod: 2 });

    const password = 'metrics-test-pw';
    await p.sourceClient.query(`CREATE ROLE metrics_daemon LOGIN PASSWORD '${password}' IN ROLE permsync_daemon`);
    const asDaemon = new pg.Pool({ connectionString: p.source.urlFor('postgres', 'metrics_daemon', password) });
    try {
      const [ours, theirs] = [await backlog(asDaemon), await backlog()];
      for (const environment of ENVIRONMENTS) expect(ours[environment]?.pending).toBe(theirs[environment]?.pending);
      // Why the query restates the view rather than reads it.
      await expect(asDaemon.query('SELECT 1 FROM permsync.v_batch_outcomes')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await asDaemon.end();
      // Created and dropped between two role checks: no role change for the next test to find.
      await p.sourceClient.query('DROP ROLE metrics_daemon');
    }
  });
});
