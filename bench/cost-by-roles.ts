import type pg from 'pg';
import { startLocalCluster, type LocalCluster } from '../dev/embedded/cluster.js';
import { install } from '../src/install/migrate.js';
import { measureStatementLatency, type CostOptions } from './dba-cost.js';
import { get } from './rows.js';
import { createRoles } from './roles.js';
import { BENCH_SCHEMA, connect, SERVER_SETTINGS } from './servers.js';
import type { Distribution } from './stats.js';

export interface CostAtRoles {
  /** Roles the bench made in the cluster (besides the few it has anyway). */
  roles: number;
  permsync: Distribution;
  plain: Distribution;
}

/**
 * A DBA's durable GRANT/REVOKE as the role count of the cluster grows: for each count a
 * source with permsync (capture only, no daemon: what the count changes is the DBA's path;
 * no role watcher shares the cores, which flatters the larger counts a little) and a
 * plain server, both given that many roles. All of them are measured in one interleaved
 * run, round by round, so that what else the machine does falls on every count alike
 * rather than on whichever came last. The roles are the source's baseline (as install
 * takes the roles it finds): the figure is about commands with many roles around, not
 * about carrying their creation.
 */
export async function measureCostByRoleCount(counts: readonly number[], options: CostOptions): Promise<CostAtRoles[]> {
  const clusters: LocalCluster[] = [];
  const clients: pg.Client[] = [];
  try {
    const sides = await Promise.all(
      counts.map(async (count) => {
        const [source, plain] = await Promise.all(
          ['source', 'plain'].map((name) => startLocalCluster({ name: `roles-${count}-${name}`, settings: SERVER_SETTINGS })),
        );
        if (!source || !plain) throw new Error('no servers');
        clusters.push(source, plain);
        const [admin, dba, plainAdmin, plainDba] = await Promise.all([
          connect(source.url),
          connect(source.url),
          connect(plain.url),
          connect(plain.url),
        ]);
        clients.push(admin, dba, plainAdmin, plainDba);
        return { count, admin, dba, plainAdmin, plainDba };
      }),
    );
    // One count at a time: making 100,000 roles takes both cores.
    for (const { count, admin, dba, plainAdmin, plainDba } of sides) {
      await install(admin);
      await Promise.all([admin.query(BENCH_SCHEMA), plainAdmin.query(BENCH_SCHEMA)]);
      await Promise.all([dba.query('SET synchronous_commit = on'), plainDba.query('SET synchronous_commit = on')]);
      await Promise.all([addRoles(admin, count), addRoles(plainAdmin, count)]);
      // The source's snapshot takes them as its baseline, as install does.
      await admin.query('SELECT permsync.take_role_baseline()');
      // A watcher check after that commit, as the daemon's would be: from then on the
      // snapshot's own transaction counts as committed (see permsync.roles_in_snapshot).
      await admin.query('SELECT permsync.capture_role_changes()');
      // Their cleanup and the disk writes behind them do not fall into the measurement.
      for (const client of [admin, plainAdmin]) {
        await client.query('VACUUM ANALYZE pg_authid, pg_auth_members');
        await client.query('CHECKPOINT');
      }
    }
    const cost = await measureStatementLatency(
      sides.flatMap(({ count, dba, plainDba }) => [
        { name: `permsync ${count}`, client: dba },
        { name: `plain ${count}`, client: plainDba },
      ]),
      options,
    );
    return counts.map((count) => ({ roles: count, permsync: get(cost, `permsync ${count}`), plain: get(cost, `plain ${count}`) }));
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await Promise.all(clusters.map((c) => c.destroy()));
  }
}

/** Roles bench_r1 .. bench_r<count>, ten thousand per transaction (one takes a lock per role). */
async function addRoles(client: pg.ClientBase, count: number): Promise<void> {
  for (let start = 1; start <= count; start += 10_000) await createRoles(client, Math.min(count, start + 9_999), start);
}
