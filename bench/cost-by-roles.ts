import type pg from 'pg';
import { startLocalCluster } from '../dev/embedded/cluster.js';
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
 * A DBA's durable GRANT/REVOKE as the role count of the cluster grows: a source with
 * permsync (capture only, no daemon: what the count changes is the DBA's path; no role
 * watcher shares the cores, which flatters the larger counts a little) and a
 * plain server, both given the same roles, measured side by side at each count. The
 * roles are the source's baseline (as install takes the roles it finds): the figure is
 * about commands with many roles around, not about carrying their creation.
 */
export async function measureCostByRoleCount(counts: readonly number[], options: CostOptions): Promise<CostAtRoles[]> {
  const [source, plain] = await Promise.all(
    ['source', 'plain'].map((name) => startLocalCluster({ name: `roles-${name}`, settings: SERVER_SETTINGS })),
  );
  if (!source || !plain) throw new Error('no servers');
  const clients: pg.Client[] = [];
  try {
    const [admin, dba, plainAdmin, plainDba] = await Promise.all([connect(source.url), connect(source.url), connect(plain.url), connect(plain.url)]);
    clients.push(admin, dba, plainAdmin, plainDba);
    await install(admin);
    await Promise.all([admin.query(BENCH_SCHEMA), plainAdmin.query(BENCH_SCHEMA)]);
    await Promise.all([dba.query('SET synchronous_commit = on'), plainDba.query('SET synchronous_commit = on')]);
    const results: CostAtRoles[] = [];
    let made = 0;
    for (const count of counts) {
      if (count > made) {
        await Promise.all([addRoles(admin, count, made + 1), addRoles(plainAdmin, count, made + 1)]);
        // The source's snapshot takes them as its baseline, as install does.
        await admin.query('SELECT permsync.take_role_baseline()');
        // A watcher check after that commit, as the daemon's would be: from then on the DBA's
        // role check compares the fingerprints only (see permsync.capture_role_changes).
        await admin.query('SELECT permsync.capture_role_changes()');
        // Their cleanup and the disk writes behind them do not fall into the measurement.
        for (const client of [admin, plainAdmin]) {
          await client.query('VACUUM ANALYZE pg_authid, pg_auth_members');
          await client.query('CHECKPOINT');
        }
        made = count;
      }
      const cost = await measureStatementLatency(
        [
          { name: 'permsync', client: dba },
          { name: 'plain', client: plainDba },
        ],
        options,
      );
      results.push({ roles: count, permsync: get(cost, 'permsync'), plain: get(cost, 'plain') });
    }
    return results;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await Promise.all([source.destroy(), plain.destroy()]);
  }
}

/** Roles bench_r<from> .. bench_r<count>, ten thousand per transaction (one takes a lock per role). */
async function addRoles(client: pg.ClientBase, count: number, from: number): Promise<void> {
  for (let start = from; start <= count; start += 10_000) await createRoles(client, Math.min(count, start + 9_999), start);
}
