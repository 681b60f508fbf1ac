import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { startLocalCluster, type LocalCluster } from '../dev/embedded/cluster.js';
import { install } from '../src/install/migrate.js';
import { recordManagedRoles } from '../src/source/store.js';
import { measureBurst } from './burst.js';
import { spawnDaemon } from './daemon-process.js';
import { measurePropagation } from './propagation.js';
import { BENCH_SCHEMA, BENCH_TABLES, connect, SERVER_SETTINGS } from './servers.js';
import type { Distribution } from './stats.js';

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
}

export interface FleetOptions {
  perSecond: number;
  seconds: number;
  burst: number;
}

/**
 * One daemon (its own process, default settings) and `sizes` environments, one size after
 * another, each with a daemon of its own: databases of embedded target servers, ten per
 * server, the grants of figures 3 and 4 on the same source. Object grants only: roles are
 * per server, and environments that share one do not yet share its roles (issue 17).
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
