import pg from 'pg';
import { startLocalCluster, type LocalCluster } from '../dev/embedded/cluster.js';
import { install } from '../src/install/migrate.js';
import { recordManagedRoles } from '../src/source/store.js';
import { syncTriggerSql } from './sync-trigger.js';
import { ONE_ROW_SQL } from './one-row-trigger.js';
import { WAL_MESSAGE_ORDERED_SQL, WAL_MESSAGE_SQL } from './wal-message-trigger.js';

export const ENVIRONMENTS = ['dev', 'test', 'preprod', 'prod'] as const;
export const TABLES = 10;

/** Objects every server has: the statements the measurements send name them. */
export const BENCH_SCHEMA = `
  CREATE ROLE bench_app;
  CREATE SCHEMA bench;
  ${Array.from({ length: TABLES }, (_, i) => `CREATE TABLE bench.t${i} (id int);`).join('\n  ')}`;

/** The same objects in another database of a server: roles are the cluster's. */
export const BENCH_TABLES = BENCH_SCHEMA.replace('CREATE ROLE bench_app;', '');

/**
 * An event trigger on GRANT and REVOKE that does nothing: the least any capture by event
 * trigger costs the DBA (firing it, collecting the command, calling a PL/pgSQL function).
 */
const EMPTY_EVENT_TRIGGER = `
  CREATE FUNCTION bench.nothing() RETURNS event_trigger LANGUAGE plpgsql AS $fn$ BEGIN END $fn$;
  CREATE EVENT TRIGGER bench_nothing ON ddl_command_end WHEN TAG IN ('GRANT', 'REVOKE')
      EXECUTE FUNCTION bench.nothing();`;

/**
 * Every server of a run: four sources that differ only in what they do on a GRANT
 * (permsync's capture, nothing, the synchronous dblink design, a WAL-message design on
 * wal_level = logical), and four targets. All are the same embedded PostgreSQL build with
 * the same settings, but for the WAL level.
 */
export interface BenchServers {
  /** permsync installed: the daemon's source. */
  source: LocalCluster;
  /** No capture at all: the baseline a DBA compares with. */
  plain: LocalCluster;
  /** A database of the plain server with an event trigger that does nothing (EMPTY_EVENT_TRIGGER). */
  emptyTriggerUrl: string;
  /** A database of the plain server whose event trigger keeps one row per statement in commit order (ONE_ROW_SQL). */
  oneRowUrl: string;
  /** The synchronous design (bench/sync-trigger.ts). */
  sync: LocalCluster;
  /** A database of the synchronous design's server with permsync installed and no daemon: capture alone, without the work a daemon on the same cores brings. */
  captureOnlyUrl: string;
  /** Databases of a wal_level = logical server: no capture (what the WAL level alone costs), the WAL-message design (bench/wal-message-trigger.ts) alone, and after permsync's role check. */
  walPlainUrl: string;
  walMessageUrl: string;
  walMessageOrderedUrl: string;
  targets: Map<string, LocalCluster>;
  target(name: string): LocalCluster;
  destroy(): Promise<void>;
}

/**
 * fsync on, as on any real server, but commits do not wait for the disk unless a session
 * asks (synchronous_commit): measurements of CPU and round trips are not drowned by this
 * machine's disk, and the DBA-cost measurement can also show a durable commit's latency.
 */
export const SERVER_SETTINGS = { fsync: 'on', synchronous_commit: 'off' };

export async function startBenchServers(): Promise<BenchServers> {
  const names = ['source', 'plain', 'sync', 'wal', ...ENVIRONMENTS];
  const clusters = await Promise.all(
    names.map((name) =>
      startLocalCluster({
        name: `bench-${name}`,
        settings: name === 'wal' ? { ...SERVER_SETTINGS, wal_level: 'logical' } : SERVER_SETTINGS,
      }),
    ),
  );
  const [source, plain, sync, wal, ...targets] = clusters as [LocalCluster, LocalCluster, LocalCluster, LocalCluster, ...LocalCluster[]];
  const servers: BenchServers = {
    source,
    plain,
    emptyTriggerUrl: plain.urlFor('bench_empty_trigger'),
    oneRowUrl: plain.urlFor('bench_one_row'),
    sync,
    captureOnlyUrl: sync.urlFor('bench_capture_only'),
    walPlainUrl: wal.urlFor('bench_wal_plain'),
    walMessageUrl: wal.urlFor('bench_wal_message'),
    walMessageOrderedUrl: wal.urlFor('bench_wal_message_ordered'),
    targets: new Map(ENVIRONMENTS.map((name, i) => [name, targets[i] as LocalCluster])),
    target(name) {
      const found = servers.targets.get(name);
      if (!found) throw new Error(`no target ${name}`);
      return found;
    },
    destroy: async () => {
      await Promise.all(clusters.map((c) => c.destroy()));
    },
  };
  try {
    await Promise.all(clusters.map((c) => withClient(c.url, (client) => client.query(BENCH_SCHEMA))));
    await withClient(source.url, (client) => install(client));
    // bench_app was created on every server: each target hands its own over to permsync (onboarding).
    await withClient(source.url, async (client) => {
      for (const [i, target] of targets.entries()) {
        const { rows } = await withClient(target.url, (t) =>
          t.query<{ oid: number; name: string }>(`SELECT oid::int8::float8 AS oid, rolname AS name FROM pg_roles WHERE rolname = 'bench_app'`),
        );
        await recordManagedRoles(client, ENVIRONMENTS[i] as string, rows, 'adopted');
      }
    });
    // Roles are the cluster's: this database needs only the tables, and the trigger.
    await withClient(plain.url, (client) => client.query('CREATE DATABASE bench_empty_trigger'));
    await withClient(servers.emptyTriggerUrl, (client) => client.query(`${BENCH_TABLES} ${EMPTY_EVENT_TRIGGER}`));
    await withClient(plain.url, (client) => client.query('CREATE DATABASE bench_one_row'));
    await withClient(servers.oneRowUrl, (client) => client.query(`${BENCH_TABLES} ${ONE_ROW_SQL}`));
    await withClient(wal.url, async (client) => {
      await client.query('CREATE DATABASE bench_wal_plain');
      await client.query('CREATE DATABASE bench_wal_message');
      await client.query('CREATE DATABASE bench_wal_message_ordered');
    });
    await withClient(servers.walPlainUrl, (client) => client.query(BENCH_TABLES));
    await withClient(servers.walMessageUrl, (client) => client.query(`${BENCH_TABLES} ${WAL_MESSAGE_SQL}`));
    await withClient(servers.walMessageOrderedUrl, async (client) => {
      await client.query(BENCH_TABLES);
      await install(client);
      await client.query(WAL_MESSAGE_ORDERED_SQL);
    });
    await assertRoleCheckPasses(servers.walMessageOrderedUrl);
    await withClient(sync.url, (client) => client.query('CREATE DATABASE bench_capture_only'));
    await withClient(servers.captureOnlyUrl, async (client) => {
      await client.query(BENCH_TABLES);
      await install(client);
    });
    await assertRoleCheckPasses(servers.captureOnlyUrl);
    await withClient(sync.url, (client) => client.query(syncTriggerSql(targets.map((t, i) => ({ name: ENVIRONMENTS[i] as string, port: t.port })))));
  } catch (error) {
    await servers.destroy();
    throw error;
  }
  return servers;
}

/**
 * The role check must take its common path, as on the daemon's source where the watcher
 * has seen the snapshot's own writes committed: a first check in a session that has
 * written nothing forgets them (no daemon runs on these databases to do it). Then the
 * roles the measured statements name are the snapshot's, and the catalogs are not read whole.
 */
async function assertRoleCheckPasses(url: string): Promise<void> {
  await withClient(url, async (client) => {
    await client.query('SELECT permsync.capture_role_changes()');
    const { rows } = await client.query<{ ok: boolean }>(
      `SELECT permsync.role_snapshot_matches(true) AND written_by IS NULL
              AND permsync.roles_in_snapshot(permsync.identifiers($1), current_user) AS ok
         FROM permsync.role_snapshot`,
      [alternating(0)],
    );
    if (!rows[0]?.ok) throw new Error(`bench setup: permsync's role check in ${new URL(url).pathname.slice(1)} would not take its common path`);
  });
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(url);
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client(url);
  // A measurement that stops a server expects its sessions there to die.
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The i-th of a stream of strictly alternating GRANTs and REVOKEs (the DBA-cost measurements). */
export function alternating(i: number): string {
  const table = `bench.t${Math.floor(i / 2) % TABLES}`;
  return i % 2 === 0 ? `GRANT SELECT ON ${table} TO bench_app` : `REVOKE SELECT ON ${table} FROM bench_app`;
}

/** The i-th of a stream of grants and revokes whose final state depends on their order. */
export function churn(i: number): string {
  const table = `bench.t${i % TABLES}`;
  const privilege = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'][i % 4];
  return i % 3 === 2 ? `REVOKE ${privilege} ON ${table} FROM bench_app` : `GRANT ${privilege} ON ${table} TO bench_app`;
}

/** The bench tables' ACLs: equal on source and target when every change arrived in order. */
export async function benchAcls(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ acl: string }>(
    `SELECT string_agg(relname || '=' || coalesce(relacl::text, ''), ' ' ORDER BY relname) AS acl
       FROM pg_class WHERE relnamespace = 'bench'::regnamespace AND relkind = 'r'`,
  );
  return rows[0]?.acl ?? '';
}
