import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { startLocalCluster } from '../dev/embedded/cluster.js';
import { install } from '../src/install/migrate.js';
import { spawnDaemon } from './daemon-process.js';
import { createBaselineRoles } from './roles.js';
import { BENCH_SCHEMA, connect, SERVER_SETTINGS } from './servers.js';
import { waitUntil } from './stats.js';

export interface AddedEnvironment {
  roles: number;
  /** SIGHUP to the bootstrap batch's success on the new environment (ms). */
  bootstrapMs: number;
  /** Statements the bootstrap ran there. */
  statements: number;
}

/**
 * An environment added to a running daemon: a source with `roles` roles (every fifth
 * granted SELECT on one of its tables: an ACL is kept in one row, at most 8 kB), a daemon applying to one environment, then a configuration naming
 * a second, empty one, and SIGHUP. Timed until the batch that brings the new environment
 * to the source's state has succeeded there.
 */
export async function measureAddEnvironment(roles: number, dir: string): Promise<AddedEnvironment> {
  const servers = await Promise.all(
    ['source', 'first', 'added'].map((name) => startLocalCluster({ name: `add-${name}`, settings: SERVER_SETTINGS })),
  );
  const [source, first, added] = servers;
  if (!source || !first || !added) throw new Error('no servers');
  const clients: pg.Client[] = [];
  const daemonDir = join(dir, 'add-environment');
  await mkdir(daemonDir, { recursive: true });
  try {
    const [admin, firstClient, addedClient] = await Promise.all([connect(source.url), connect(first.url), connect(added.url)]);
    clients.push(admin, firstClient, addedClient);
    await install(admin);
    await Promise.all([admin, firstClient, addedClient].map((c) => c.query(BENCH_SCHEMA)));
    await createBaselineRoles(admin, roles);
    // Already on the source before the daemon runs: what the new environment must be brought to.
    await admin.query(
      `SET permsync.capture = 'off';
       DO $$ BEGIN FOR i IN 1..${roles} BY 5 LOOP EXECUTE format('GRANT SELECT ON bench.t%s TO %I', i % 10, 'bench_r' || i); END LOOP; END $$;
       RESET permsync.capture`,
    );
    const environment = (name: string, url: string) => ({ name, url });
    const daemon = await spawnDaemon({
      dir: daemonDir,
      config: {
        source: { url: source.url, application_name: 'permsync-bench' },
        environments: [environment('first', first.url)],
        settings: { drift_check_cron: null },
        log: { level: 'info' },
      },
    });
    try {
      const config = JSON.parse(await readFile(daemon.configFile, 'utf8')) as { environments: unknown[] };
      config.environments.push(environment('added', added.url));
      await writeFile(daemon.configFile, JSON.stringify(config, null, 2));
      const sentAt = Date.now();
      process.kill(daemon.pid, 'SIGHUP');
      let outcome: { finished: number; applied_sql: string } | undefined;
      await waitUntil(
        async () => {
          const { rows } = await admin.query<{ finished: number; applied_sql: string }>(
            `SELECT extract(epoch FROM x.finished_at)::float8 * 1000 AS finished, x.applied_sql
               FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
              WHERE b.origin = 'bootstrap' AND x.environment_name = 'added' AND x.execution_status = 'success'`,
          );
          outcome = rows[0];
          return outcome !== undefined;
        },
        600_000,
        'the new environment to be brought to the source',
        200,
      );
      if (!outcome) throw new Error('no bootstrap outcome');
      return { roles, bootstrapMs: outcome.finished - sentAt, statements: outcome.applied_sql.split(';\n').length };
    } finally {
      await daemon.stop();
    }
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await Promise.all(servers.map((s) => s.destroy()));
  }
}
