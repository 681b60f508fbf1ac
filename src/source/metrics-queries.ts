import { UNFINISHED_BY_ENVIRONMENT } from './queries.js';

/**
 * What /metrics reads from the source at each scrape. Kept apart from queries.ts, which
 * holds what the pipeline itself runs.
 */

/**
 * Per environment named in $1 (text[]): the batches it has not finished, how long the
 * oldest of them has waited since its commit, its rows in the retry queue, and its open
 * role conflicts.
 *
 * "Unfinished" is the daemon's own rule (UNFINISHED_BY_ENVIRONMENT). The view
 * v_batch_outcomes cannot be read here: the daemon may connect as a login holding only
 * permsync_daemon, which has SELECT on the tables, not on the views. commit_seq follows
 * commit order and committed_at is stamped in that order, so the oldest committed_at is
 * the head of the environment's queue.
 */
export const ENVIRONMENT_BACKLOG = `
  SELECT e.name AS environment,
         count(b.id)::int AS pending_batches,
         coalesce(extract(epoch FROM now() - min(b.committed_at)), 0)::float8 AS lag_seconds,
         (SELECT count(*) FROM permsync.retry_queue r WHERE r.environment_name = e.name)::int AS retries,
         (SELECT count(*) FROM permsync.role_conflicts c
           WHERE c.environment_name = e.name AND c.resolved_at IS NULL)::int AS role_conflicts
    FROM permsync.environments e
    LEFT JOIN permsync.batches b ON ${UNFINISHED_BY_ENVIRONMENT}
   WHERE e.name = ANY ($1::text[])
   GROUP BY e.name`;
