import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { startLocalCluster, type PostgresMajor } from '../dev/embedded/cluster.js';
import { install } from '../src/install/migrate.js';
import { spawnDaemon } from './daemon-process.js';
import { lastCommitSeq, waitApplied } from './progress.js';
import { createRoles } from './roles.js';
import { connect, SERVER_SETTINGS } from './servers.js';
import { now } from './stats.js';

export interface BulkRoleFigures {
  major: PostgresMajor;
  roles: number;
  /** The DBA's GRANT sent as soon as the DO block has committed, naming the last role it made (ms). */
  grantMs: number;
  /** The DO block's commit to the commit of the last batch carrying its roles (ms). */
  carriedMs: number;
  /** How many batches carried them. */
  batches: number;
  /** The DO block's commit to the target having applied the roles and the GRANT (ms). */
  appliedMs: number;
  /** The daemon's role watcher checks that failed meanwhile (a statement timeout, say). */
  watcherFailures: number;
}

/**
 * A provisioning script on a source of the given major, with the daemon running (its own
 * process, default settings) and one target: `roles` roles created in one DO block, then at
 * once a DBA's GRANT naming the last of them. Whichever comes first, the role watcher or the
 * GRANT's own role check, compares the role catalogs with the snapshot and writes the roles.
 */
export async function measureBulkRoles(major: PostgresMajor, roles: number, dir: string): Promise<BulkRoleFigures> {
  const [source, target] = await Promise.all(
    ['source', 'target'].map((name) => startLocalCluster({ name: `bulk-${name}-${major}`, major, settings: SERVER_SETTINGS })),
  );
  if (!source || !target) throw new Error('no servers');
  const clients: pg.Client[] = [];
  const daemonDir = join(dir, `bulk-${major}`);
  await mkdir(daemonDir, { recursive: true });
  try {
    const [dba, monitor, targetClient] = await Promise.all([connect(source.url), connect(source.url), connect(target.url)]);
    clients.push(dba, monitor, targetClient);
    await install(dba);
    await Promise.all([dba.query('CREATE TABLE bulk_t (id int)'), targetClient.query('CREATE TABLE bulk_t (id int)')]);
    const daemon = await spawnDaemon({
      dir: daemonDir,
      config: {
        source: { url: source.url, application_name: 'permsync-bench' },
        environments: [{ name: 'target', url: target.url }],
        settings: { drift_check_cron: null },
        log: { level: 'info' },
      },
    });
    try {
      const mark = await lastCommitSeq(monitor);
      await createRoles(dba, roles);
      const createdAt = Date.now();
      const started = now();
      await dba.query(`GRANT SELECT ON bulk_t TO bench_r${roles}`);
      const grantMs = now() - started;
      await waitApplied(monitor, mark, ['target'], 600_000);
      const { rows } = await monitor.query<{ carried: number; applied: number; batches: number }>(
        `SELECT extract(epoch FROM max(b.committed_at) FILTER (WHERE b.origin = 'role_watcher'))::float8 * 1000 AS carried,
                (SELECT extract(epoch FROM max(l.finished_at))::float8 * 1000 FROM permsync.execution_log l WHERE l.commit_seq > $1) AS applied,
                count(*) FILTER (WHERE b.origin = 'role_watcher')::int AS batches
           FROM permsync.batches b WHERE b.commit_seq > $1`,
        [mark],
      );
      const figures = rows[0];
      if (!figures) throw new Error('no batches');
      const log = await readFile(daemon.logFile, 'utf8');
      return {
        major,
        roles,
        grantMs,
        carriedMs: figures.carried - createdAt,
        batches: figures.batches,
        appliedMs: figures.applied - createdAt,
        watcherFailures: log.split('\n').filter((line) => line.includes('role watcher check failed')).length,
      };
    } finally {
      await daemon.stop();
    }
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await Promise.all([source.destroy(), target.destroy()]);
  }
}
