import type pg from 'pg';
import { distribution, now, sleep, type Distribution } from './stats.js';

/** Creates roles bench_r<from> .. bench_r<count> in one statement. */
export async function createRoles(client: pg.ClientBase, count: number, from = 1): Promise<void> {
  await client.query(`DO $$ BEGIN
      FOR i IN ${from}..${count} LOOP EXECUTE format('CREATE ROLE %I', 'bench_r' || i); END LOOP;
    END $$`);
}

/**
 * The same on permsync's source, taken as its new baseline in the same transaction, as
 * install does with the roles it finds: the measurements are about the watcher with many
 * roles, not about carrying ten thousand CREATE ROLEs.
 */
export async function createBaselineRoles(source: pg.ClientBase, count: number): Promise<void> {
  await source.query('BEGIN');
  try {
    await createRoles(source, count);
    await source.query('DELETE FROM permsync.role_snapshot');
    await source.query('SELECT permsync.capture_role_changes()');
    await source.query('COMMIT');
  } catch (error) {
    await source.query('ROLLBACK');
    throw error;
  }
}

/** Cost of one watcher check when nothing changed (the daemon runs it every role_watch_interval_ms). */
export async function measureCheck(monitor: pg.Client, count: number): Promise<Distribution> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = now();
    await monitor.query('SELECT permsync.capture_role_changes()');
    samples.push(now() - started);
  }
  return distribution(samples);
}

/**
 * Commit of a role change (CREATE ROLE, then DROP ROLE, alternately) to the commit of the
 * watcher's batch for it, at the daemon's own pace: each change comes at a random moment
 * of the watcher's interval, so the figures cover the whole wait. `samples` is even, so the
 * role is gone again at the end.
 */
export async function measureDetection(dba: pg.Client, monitor: pg.Client, samples: number, intervalMs: number): Promise<Distribution> {
  const detection: number[] = [];
  for (let i = 0; i < samples; i++) {
    await sleep(Math.random() * intervalMs);
    const {
      rows: [newest],
    } = await monitor.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM permsync.batches');
    await dba.query(i % 2 === 0 ? 'CREATE ROLE bench_watched' : 'DROP ROLE bench_watched');
    const committedAt = Date.now();
    const deadline = committedAt + 10_000;
    for (;;) {
      const {
        rows: [batch],
      } = await monitor.query<{ committed: number }>(
        `SELECT extract(epoch FROM committed_at)::float8 * 1000 AS committed FROM permsync.batches
          WHERE id > $1 AND origin = 'role_watcher' AND commit_seq IS NOT NULL ORDER BY id LIMIT 1`,
        [newest?.id],
      );
      if (batch) {
        detection.push(batch.committed - committedAt);
        break;
      }
      if (Date.now() > deadline) throw new Error('the role watcher did not capture a role change within 10 s');
      await sleep(5);
    }
  }
  return distribution(detection);
}
