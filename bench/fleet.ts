import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { startLocalCluster, type LocalCluster } from '../dev/embedded/cluster.js';
import { install } from '../src/install/migrate.js';
import { recordManagedRoles } from '../src/source/store.js';
import { measureBurst } from './burst.js';
import { spawnDaemon } from './daemon-process.js';
import { runDrift, type DriftResult } from './drift.js';
import { lastCommitSeq, waitApplied } from './progress.js';
import { measurePropagation } from './propagation.js';
import { BENCH_SCHEMA, BENCH_TABLES, connect, SERVER_SETTINGS, TABLES } from './servers.js';
import { distribution, now, sleep, waitUntil, type Distribution } from './stats.js';

/** Environments per target server: each is a database of its own there, roles being the server's. */
const PER_SERVER = 10;

export interface FleetFigures {
  environments: number;
  /** Source commit to applied on the last environment, at a steady rate. */
  propagation: Distribution;
  sentPerSecond: number;
  burst: { count: number; drainAfterLastCommitMs: number; slowestPerSecond: number; orderKept: boolean; problems: string[] };
  /** The daemon's peak RSS during both (MB). */
  peakRssMb: number;
  /** Sessions the daemon holds right after the burst: on the targets (all environments), and on the source. */
  targetSessions: number;
  sourceSessions: number;
  /** Role changes, each with a grant to the new role: commit of the grant to applied by the last environment. */
  roleChanges: { count: number; propagation: Distribution; createRoleRuns: number; servers: number };
  /** For the largest fleet: many roles created at once, then `permsync drift` over every environment and over one. */
  drift?: { roles: number; rolesAppliedMs: number; all: DriftResult; one: DriftResult };
}

export interface FleetOptions {
  perSecond: number;
  seconds: number;
  burst: number;
  /** Role changes, each a CREATE ROLE and a GRANT to it, four a second. */
  roleChanges: number;
  /** Roles created at once before the drift check of the largest fleet. */
  driftRoles: number;
}

/**
 * One daemon (its own process, default settings) and `sizes` environments, one size after
 * another, each with a daemon of its own: databases of embedded target servers, ten per
 * server, the grants of figures 3 and 4 on the same source, then role changes, which
 * reach each server once, with grants to the new roles, which reach each environment.
 */
export async function measureFleet(sizes: readonly number[], options: FleetOptions, dir: string): Promise<FleetFigures[]> {
  const most = Math.max(...sizes);
  const servers: LocalCluster[] = await Promise.all(
    ['source', ...Array.from({ length: Math.ceil(most / PER_SERVER) }, (_, i) => `targets${i + 1}`)].map((name) =>
      startLocalCluster({ name: `fleet-${name}`, settings: SERVER_SETTINGS }),
    ),
  );
  const [source, ...targets] = servers;
  if (!source) throw new Error('no source');
  const clients: pg.Client[] = [];
  try {
    const [admin, dba, monitor] = await Promise.all([connect(source.url), connect(source.url), connect(source.url)]);
    clients.push(admin, dba, monitor);
    await admin.query(BENCH_SCHEMA);
    await install(admin);
    const environments: { name: string; url: string; server: LocalCluster }[] = [];
    for (const [s, server] of targets.entries()) {
      const client = await connect(server.url);
      try {
        await client.query('CREATE ROLE bench_app');
        for (let d = 1; d <= PER_SERVER && environments.length < most; d++) {
          const name = `fleet${String(s * PER_SERVER + d).padStart(3, '0')}`;
          await client.query(`CREATE DATABASE ${name}`);
          environments.push({ name, url: server.urlFor(name), server });
        }
      } finally {
        await client.end();
      }
    }
    for (const env of environments) {
      const client = await connect(env.url);
      try {
        await client.query(BENCH_TABLES);
        const { rows } = await client.query<{ oid: number; name: string }>(
          `SELECT oid::int8::float8 AS oid, rolname AS name FROM pg_roles WHERE rolname = 'bench_app'`,
        );
        // bench_app was made on every server: each environment hands it over to permsync (onboarding).
        await recordManagedRoles(admin, env.name, rows, 'adopted');
      } finally {
        await client.end();
      }
    }
    const results: FleetFigures[] = [];
    for (const size of sizes) {
      const used = environments.slice(0, size);
      const names = used.map((e) => e.name);
      const daemonDir = join(dir, `fleet-${size}`);
      await mkdir(daemonDir, { recursive: true });
      const daemon = await spawnDaemon({
        dir: daemonDir,
        config: {
          source: { url: source.url, application_name: 'permsync-fleet' },
          environments: used.map((e) => ({ name: e.name, url: e.url })),
          settings: { drift_check_cron: null },
          log: { level: 'info' },
        },
      });
      try {
        const stopSampling = daemon.sampleRss();
        const propagation = await measurePropagation(dba, monitor, names, {
          perSecond: options.perSecond,
          seconds: options.seconds,
          warmupSeconds: 2,
        });
        const burst = await measureBurst(dba, monitor, new Map(used.map((e) => [e.name, { url: e.url }])), options.burst, []);
        const peakRssMb = stopSampling();
        const sessions = async (client: pg.ClientBase, pattern: string) =>
          (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1`, [pattern])).rows[0]
            ?.n ?? 0;
        let targetSessions = 0;
        for (const server of new Set(used.map((e) => e.server))) {
          const client = await connect(server.url);
          try {
            targetSessions += await sessions(client, 'permsync:%');
          } finally {
            await client.end();
          }
        }
        const roleChanges = await measureRoleChanges(dba, monitor, used, options.roleChanges, `fleet${size}`);
        const drift = size === most ? await measureDrift(dba, monitor, used, options.driftRoles, daemon.configFile, daemonDir) : undefined;
        results.push({
          environments: size,
          propagation: propagation.allEnvironments,
          sentPerSecond: propagation.sentPerSecond,
          burst: {
            count: burst.count,
            drainAfterLastCommitMs: burst.drainAfterLastCommitMs,
            slowestPerSecond: Math.min(...burst.environments.map((e) => e.perSecond)),
            orderKept: burst.order.kept,
            problems: burst.order.problems.slice(0, 5),
          },
          peakRssMb,
          targetSessions,
          sourceSessions: await sessions(monitor, 'permsync-fleet%'),
          roleChanges,
          ...(drift && { drift }),
        });
      } finally {
        await daemon.stop();
      }
    }
    return results;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await Promise.all(servers.map((s) => s.destroy()));
  }
}

/**
 * `count` role changes, four a second, each as psql -f sends a script: a CREATE ROLE, then a
 * GRANT to the new role. Each GRANT waits for the role on its server (the role check puts
 * the role's batch first), so its commit to applied by the last environment is the figure;
 * the CREATE ROLE runs are counted, to show one per server.
 */
async function measureRoleChanges(
  dba: pg.Client,
  monitor: pg.Client,
  used: { name: string; server: LocalCluster }[],
  count: number,
  prefix: string,
): Promise<FleetFigures['roleChanges']> {
  const names = used.map((e) => e.name);
  const after = await lastCommitSeq(monitor);
  const started = now();
  for (let i = 0; i < count; i++) {
    const due = started + i * 250;
    if (due > now()) await sleep(due - now());
    await dba.query(`CREATE ROLE ${prefix}_r${i}`);
    await dba.query(`GRANT SELECT ON bench.t${i % TABLES} TO ${prefix}_r${i}`);
  }
  await waitApplied(monitor, after, names, 120_000);
  const { rows } = await monitor.query<{ ms: number }>(
    `SELECT max(extract(epoch FROM x.finished_at - b.committed_at) * 1000)::float8 AS ms
       FROM permsync.batches b JOIN permsync.execution_log x ON x.batch_id = b.id
      WHERE b.commit_seq > $1 AND b.origin = 'event_trigger' AND x.environment_name = ANY ($2)
      GROUP BY b.id`,
    [after, names],
  );
  const { rows: runs } = await monitor.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
      WHERE b.commit_seq > $1 AND b.origin = 'role_watcher' AND x.applied_sql LIKE '%CREATE ROLE%' AND x.environment_name = ANY ($2)`,
    [after, names],
  );
  // Gone again, and their grants with them: a larger fleet's environments never had them.
  const roles = Array.from({ length: count }, (_, i) => `${prefix}_r${i}`).join(', ');
  const dropped = await lastCommitSeq(monitor);
  await dba.query(`DROP OWNED BY ${roles}; DROP ROLE ${roles}`);
  await waitUntil(
    async () => (await monitor.query(`SELECT FROM permsync.batches WHERE commit_seq > $1 AND origin = 'role_watcher'`, [dropped])).rowCount === 1,
    30_000,
    'the role watcher to write the drops',
  );
  await waitApplied(monitor, dropped, names, 120_000);
  return {
    count,
    propagation: distribution(rows.map((r) => r.ms)),
    createRoleRuns: runs[0]?.n ?? 0,
    servers: new Set(used.map((e) => e.server)).size,
  };
}

/**
 * `roles` roles made in one DO block (a provisioning script) and carried to every
 * environment, then `permsync drift` over every environment, and over the first alone,
 * each in a process of its own.
 */
async function measureDrift(
  dba: pg.Client,
  monitor: pg.Client,
  used: { name: string }[],
  roles: number,
  configFile: string,
  dir: string,
): Promise<NonNullable<FleetFigures['drift']>> {
  const names = used.map((e) => e.name);
  const after = await lastCommitSeq(monitor);
  const started = now();
  await dba.query(`DO $$ BEGIN FOR i IN 1..${roles} LOOP EXECUTE format('CREATE ROLE fleet_many_%s', i); END LOOP; END $$`);
  // The role watcher writes them at its next check, in one transaction: batches of at most 1 MB each.
  await waitUntil(
    async () => ((await monitor.query(`SELECT FROM permsync.batches WHERE commit_seq > $1 AND origin = 'role_watcher'`, [after])).rowCount ?? 0) > 0,
    30_000,
    'the role watcher to write the roles',
  );
  await waitApplied(monitor, after, names, 300_000);
  const rolesAppliedMs = now() - started;
  const all = await runDrift(configFile, undefined, dir, monitor);
  const one = await runDrift(configFile, names[0], dir, monitor);
  return { roles, rolesAppliedMs, all, one };
}
