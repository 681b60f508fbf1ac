import type pg from 'pg';
import type { LocalCluster } from '../dev/embedded/cluster.js';
import { cpuPerStatement, cpuSnapshot, type CpuGroup } from './cpu.js';
import { lastCommitSeq, waitApplied } from './progress.js';
import { benchAcls, churn, connect } from './servers.js';

interface EnvironmentThroughput {
  environment: string;
  /** From the first statement sent to this environment's last execution (s). */
  seconds: number;
  perSecond: number;
}

interface OrderCheck {
  /** Every environment logged every batch once, successfully, in commit order, and its ACLs equal the source's. */
  kept: boolean;
  problems: string[];
}

export interface BurstResult {
  count: number;
  /** How long the one client took to commit them all (s), and its rate. */
  sendSeconds: number;
  sentPerSecond: number;
  environments: EnvironmentThroughput[];
  /** From the last commit until every environment had applied everything (ms). */
  drainAfterLastCommitMs: number;
  order: OrderCheck;
  /** CPU microseconds per statement, by who spent them, from the first statement to applied everywhere. */
  cpuPerStatement: Map<string, number>;
}

/** Commits `count` statements, each its own transaction, as fast as one session can. */
async function send(dba: pg.Client, count: number): Promise<{ startedAt: number; sentAt: number }> {
  const startedAt = Date.now();
  for (let i = 0; i < count; i++) await dba.query(churn(i));
  return { startedAt, sentAt: Date.now() };
}

/** Each environment's last execution_log.finished_at after `after`, in ms since the epoch. */
async function lastFinished(monitor: pg.Client, after: string, environments: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await monitor.query<{ environment_name: string; last: number }>(
    `SELECT environment_name, extract(epoch FROM max(finished_at))::float8 * 1000 AS last
       FROM permsync.execution_log WHERE commit_seq > $1 AND environment_name = ANY ($2) GROUP BY 1`,
    [after, environments],
  );
  return new Map(rows.map((r) => [r.environment_name, r.last]));
}

/**
 * Burst throughput: `count` statements as fast as one client sends them, then the time
 * until every environment has applied them all. Throughput per environment counts from the
 * first statement sent, so it cannot exceed the sender's own rate.
 */
export async function measureBurst(
  dba: pg.Client,
  monitor: pg.Client,
  targets: Map<string, { url: string }>,
  count: number,
  cpuGroups: CpuGroup[],
): Promise<BurstResult> {
  const environments = [...targets.keys()];
  const after = await lastCommitSeq(monitor);
  const cpuBefore = cpuSnapshot();
  const { startedAt, sentAt } = await send(dba, count);
  await waitApplied(monitor, after, environments, 180_000);
  const cpu = cpuPerStatement(cpuBefore, cpuSnapshot(), cpuGroups, count);
  const last = await lastFinished(monitor, after, environments);
  const throughput = environments.map((environment) => {
    const seconds = ((last.get(environment) ?? Number.NaN) - startedAt) / 1000;
    return { environment, seconds, perSecond: count / seconds };
  });
  return {
    count,
    sendSeconds: (sentAt - startedAt) / 1000,
    sentPerSecond: count / ((sentAt - startedAt) / 1000),
    environments: throughput,
    drainAfterLastCommitMs: Math.max(...last.values()) - sentAt,
    order: await checkOrder(monitor, after, count, targets),
    cpuPerStatement: cpu,
  };
}

export interface CatchUpResult {
  count: number;
  environment: string;
  /** How long the environment was down (s): while the statements were committed. */
  downSeconds: number;
  /** From the server being back up to the environment having applied everything (s). */
  convergeSeconds: number;
  /** Of which: until the first batch applied again (the applier's retry backoff, then a connection). */
  untilFirstAppliedSeconds: number;
  /** The backlog applied after that, per second. */
  backlogPerSecond: number;
  order: OrderCheck;
}

/**
 * Catch-up: one environment's server is stopped while `count` statements commit, then
 * started again; the time until that environment has caught up.
 */
export async function measureCatchUp(
  dba: pg.Client,
  monitor: pg.Client,
  targets: Map<string, LocalCluster>,
  environment: string,
  count: number,
): Promise<CatchUpResult> {
  const server = targets.get(environment);
  if (!server) throw new Error(`no target ${environment}`);
  const after = await lastCommitSeq(monitor);
  const downAt = Date.now();
  await server.stop();
  await send(dba, count);
  await server.start();
  const upAt = Date.now();
  await waitApplied(monitor, after, [...targets.keys()], 180_000);
  const { rows } = await monitor.query<{ first: number; last: number }>(
    `SELECT extract(epoch FROM min(finished_at))::float8 * 1000 AS first, extract(epoch FROM max(finished_at))::float8 * 1000 AS last
       FROM permsync.execution_log
      WHERE commit_seq > $1 AND environment_name = $2 AND execution_status = 'success'`,
    [after, environment],
  );
  const { first, last } = rows[0] as { first: number; last: number };
  return {
    count,
    environment,
    downSeconds: (upAt - downAt) / 1000,
    convergeSeconds: (last - upAt) / 1000,
    untilFirstAppliedSeconds: (first - upAt) / 1000,
    backlogPerSecond: count / ((last - first) / 1000),
    order: await checkOrder(monitor, after, count, targets),
  };
}

/**
 * Order, from the execution log: per environment, rows in the order they were written
 * (id) have strictly rising commit_seq, all succeeded, one per batch. And the outcome: the
 * statements' final state depends on their order, so each target's ACLs must equal the source's.
 */
async function checkOrder(monitor: pg.Client, after: string, count: number, targets: Map<string, { url: string }>): Promise<OrderCheck> {
  const { rows } = await monitor.query<{ environment_name: string; n: number; out_of_order: number; not_success: number }>(
    `SELECT environment_name, count(*)::int AS n,
            count(*) FILTER (WHERE previous >= commit_seq)::int AS out_of_order,
            count(*) FILTER (WHERE execution_status <> 'success')::int AS not_success
       FROM (SELECT environment_name, commit_seq, execution_status,
                    lag(commit_seq) OVER (PARTITION BY environment_name ORDER BY id) AS previous
               FROM permsync.execution_log WHERE commit_seq > $1) s
      GROUP BY 1`,
    [after],
  );
  const problems: string[] = [];
  const expected = await benchAcls(monitor);
  for (const [environment, server] of targets) {
    const row = rows.find((r) => r.environment_name === environment);
    if (!row || row.n !== count) problems.push(`${environment}: ${row?.n ?? 0} executions logged for ${count} batches`);
    if (row?.out_of_order) problems.push(`${environment}: ${row.out_of_order} executions logged out of commit order`);
    if (row?.not_success) problems.push(`${environment}: ${row.not_success} executions did not succeed`);
    const client = await connect(server.url);
    try {
      if ((await benchAcls(client)) !== expected) problems.push(`${environment}: ACLs differ from the source's`);
    } finally {
      await client.end();
    }
  }
  return { kept: problems.length === 0, problems };
}
