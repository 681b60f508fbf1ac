import { UNFINISHED_BY_ENVIRONMENT } from './queries.js';

/**
 * What /metrics reads from the source at each scrape. Kept apart from queries.ts, which
 * holds what the pipeline itself runs.
 */

/**
 * Per environment named in $1 (text[]): the batches it has not finished, how long the
 * oldest of them has waited since its commit, its rows in the retry queue, its open
 * role conflicts, and its state as permsync.get_sync_status() names it (held, failing,
 * paused, ...), read the same way: from the outcome of its oldest unfinished batch first,
 * then from the switches.
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
           WHERE c.environment_name = e.name AND c.resolved_at IS NULL)::int AS role_conflicts,
         CASE WHEN NOT e.enabled THEN 'disabled'
              ELSE coalesce(
                (SELECT CASE WHEN x.failure_kind = 'permanent' THEN 'held' ELSE 'failing' END
                   FROM permsync.execution_log x
                  WHERE x.batch_id = (SELECT h.id FROM permsync.batches h WHERE h.commit_seq = min(b.commit_seq))
                    AND x.environment_name = e.name AND x.execution_status = 'failed'),
                CASE WHEN e.paused THEN 'paused'
                     WHEN NOT coalesce((SELECT c.value FROM permsync.config c WHERE c.key = 'sync_enabled'), 'true')::boolean
                          THEN 'sync_disabled'
                     WHEN count(b.id) > 0 THEN 'pending'
                     ELSE 'ok' END)
         END AS state
    FROM permsync.environments e
    LEFT JOIN permsync.batches b ON ${UNFINISHED_BY_ENVIRONMENT}
   WHERE e.name = ANY ($1::text[])
   GROUP BY e.name`;
