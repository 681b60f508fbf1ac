import type pg from 'pg';
import { lastCommitSeq, waitApplied } from './progress.js';
import { alternating } from './servers.js';
import { distribution, now, sleep, type Distribution } from './stats.js';

export interface PropagationResult {
  /** Source commit to applied on the last of the environments, per batch (ms). */
  allEnvironments: Distribution;
  /** The rate actually sent (statements/s). */
  sentPerSecond: number;
}

/**
 * Statements at a steady rate, one every 1000/rate ms on a fixed schedule (a late send
 * does not shift the ones after it). Latency is batches.committed_at (set at commit on the
 * source) to execution_log.finished_at (the daemon's clock right after the target's COMMIT
 * returned): same machine, same clock.
 */
export async function measurePropagation(
  dba: pg.Client,
  monitor: pg.Client,
  environments: readonly string[],
  options: { perSecond: number; seconds: number; warmupSeconds: number },
): Promise<PropagationResult> {
  const interval = 1000 / options.perSecond;
  const send = async (count: number) => {
    const started = now();
    for (let i = 0; i < count; i++) {
      const due = started + i * interval;
      if (due > now()) await sleep(due - now());
      await dba.query(alternating(i));
    }
    return count / ((now() - started) / 1000);
  };
  // Untimed first: a daemon that has just started compiles its code paths on the first batches.
  const warm = await lastCommitSeq(monitor);
  await send(options.perSecond * options.warmupSeconds);
  await waitApplied(monitor, warm, environments, 60_000);
  const after = await lastCommitSeq(monitor);
  const sentPerSecond = await send(options.perSecond * options.seconds);
  await waitApplied(monitor, after, environments, 60_000);
  const { rows } = await monitor.query<{ ms: number }>(
    `SELECT max(extract(epoch FROM x.finished_at - b.committed_at) * 1000)::float8 AS ms
       FROM permsync.batches b JOIN permsync.execution_log x ON x.batch_id = b.id
      WHERE b.commit_seq > $1 AND x.environment_name = ANY ($2)
      GROUP BY b.id`,
    [after, environments],
  );
  return { allEnvironments: distribution(rows.map((r) => r.ms)), sentPerSecond };
}
