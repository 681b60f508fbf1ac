import type pg from 'pg';
import { waitUntil } from './stats.js';

/** The newest commit_seq on the source: measurements count their batches from here. */
export async function lastCommitSeq(source: pg.ClientBase): Promise<string> {
  const { rows } = await source.query<{ seq: string }>('SELECT coalesce(max(commit_seq), 0)::text AS seq FROM permsync.batches');
  return rows[0]?.seq ?? '0';
}

/**
 * Waits until each named environment has logged a successful (or skipped) execution of
 * every batch committed after `afterSeq` so far. Polls every 100 ms: the figures come from
 * execution_log's timestamps, not from when this notices, and polling faster loads the source.
 */
export async function waitApplied(source: pg.ClientBase, afterSeq: string, environments: readonly string[], timeoutMs: number): Promise<void> {
  await waitUntil(
    async () => {
      const { rows } = await source.query<{ done: boolean }>(
        `SELECT (SELECT count(*) FROM permsync.batches WHERE commit_seq > $1) * cardinality($2::text[])
              = (SELECT count(*) FROM permsync.execution_log
                  WHERE commit_seq > $1 AND environment_name = ANY ($2) AND execution_status IN ('success', 'skipped')) AS done`,
        [afterSeq, environments],
      );
      return rows[0]?.done === true;
    },
    timeoutMs,
    `${environments.join(', ')} to apply every batch after commit_seq ${afterSeq}`,
    100,
  );
}
