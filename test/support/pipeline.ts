import pg from 'pg';
import { Writable } from 'node:stream';
import { defaultSettings, type Config, type EnvironmentConfig, type Settings } from '../../src/config/schema.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { install } from '../../src/install/migrate.js';
import { adoptRoles } from '../../src/drift/adopt.js';
import { reconcile, type ReconcileResult } from '../../src/drift/reconcile.js';
import { createLogger } from '../../src/log.js';
import type { PostgresMajor } from '../../dev/embedded/cluster.js';
import { startServer, type ServerOptions, type TestServer } from './servers.js';
import { TcpProxy } from './proxy.js';
import { waitFor } from './wait.js';

export { waitFor };

interface Environment {
  name: string;
  server: TestServer;
  /** Every connection the daemon makes to this environment goes through the proxy. */
  proxy: TcpProxy;
  /** The test's own session (a test that restarts the server replaces it). */
  client: pg.Client;
}

export interface Pipeline {
  source: TestServer;
  /** The DBA's session on the source (a test that restarts the source replaces it). */
  sourceClient: pg.Client;
  environments: Environment[];
  /** A DBA's command on the source, as psql sends it. */
  dba(sql: string): Promise<void>;
  env(name: string): Environment;
  /** Runs the same SQL on the source and every environment (schema set-up is not permsync's job). */
  everywhere(sql: string): Promise<void>;
  /**
   * Hands the roles each environment shares with the source over to permsync (onboarding):
   * roles created with everywhere() are each environment's own until then.
   */
  adopt(roles?: string[]): Promise<void>;
  config(overrides?: { settings?: Partial<Settings>; environments?: Partial<EnvironmentConfig>[] }): Config;
  /** Starts a daemon; `logSink` receives its log lines (at debug level) when given. */
  startDaemon(config?: Config, logSink?: string[]): Promise<Daemon>;
  /** Waits until every environment has a final outcome for every batch committed so far. */
  settle(timeoutMs?: number): Promise<void>;
  /** Waits until a running daemon's role watcher has seen the source's roles, then settles. */
  settleRoles(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Short delays so that tests run fast. */
/** `permsync reconcile --apply` of the pipeline's first environment (no extra role dropped), as the CLI runs it. */
export function reconcileFirst(p: Pipeline): Promise<ReconcileResult> {
  const config = p.config();
  return reconcile(config, config.environments[0] as EnvironmentConfig, p.sourceClient, { apply: true, dropExtraRoles: false });
}

export const testSettings: Settings = {
  ...defaultSettings(),
  retryDelaySeconds: 0.2,
  connectionTimeoutMs: 2000,
  statementTimeoutMs: 5000,
  // Notifications alone must carry every change: a poll this long would show a stall as a timeout.
  pollIntervalMs: 60_000,
  roleWatchIntervalMs: 100,
  // Scheduled jobs firing at a quarter past would make tests depend on the clock; the
  // tests that need them run them directly.
  driftCheckCron: null,
  cleanupCron: null,
};

/** A log sink for tests: the tests assert on catalogs, not on log lines. */
const discard = new Writable({ write: (_chunk, _enc, done) => done() });

export interface PipelineOptions extends ServerOptions {
  /** Each target's PostgreSQL major, in the order of the names (else `major`, the source's). */
  targetMajors?: PostgresMajor[];
}

export async function startPipeline(targetNames: string[], options: PipelineOptions = {}): Promise<Pipeline> {
  const { targetMajors, ...sourceOptions } = options;
  const [source, ...targets] = await Promise.all([
    startServer('source', sourceOptions),
    ...targetNames.map((name, i) => startServer(name, { ...sourceOptions, ...(targetMajors?.[i] !== undefined && { major: targetMajors[i] }) })),
  ]);
  if (!source) throw new Error('no source server');
  const sourceClient = new pg.Client(source.url);
  // A test that stops a server expects its sessions to die; the next query says so.
  sourceClient.on('error', () => {});
  await sourceClient.connect();
  await install(sourceClient);
  const environments: Environment[] = [];
  for (const [i, server] of targets.entries()) {
    const client = new pg.Client(server.url);
    client.on('error', () => {});
    await client.connect();
    environments.push({ name: targetNames[i] as string, server, proxy: await TcpProxy.start(server.url), client });
  }
  const daemons: Daemon[] = [];

  const pipeline: Pipeline = {
    source,
    sourceClient,
    environments,
    async dba(sql) {
      await pipeline.sourceClient.query(sql);
    },
    env(name) {
      const found = environments.find((e) => e.name === name);
      if (!found) throw new Error(`no environment ${name}`);
      return found;
    },
    async everywhere(sql) {
      await pipeline.sourceClient.query(`SET permsync.capture = 'off'; ${sql}; RESET permsync.capture`);
      await Promise.all(environments.map((e) => e.client.query(sql)));
    },
    async adopt(roles) {
      const config = pipeline.config();
      for (const environment of config.environments) await adoptRoles(config, environment, pipeline.sourceClient, roles);
    },
    config(overrides = {}) {
      return {
        source: { url: source.url, applicationName: 'permsync-test' },
        environments: environments.map((e, i) => ({
          name: e.name,
          url: e.proxy.rewrite(e.server.url),
          priority: (i + 1) * 10,
          enabled: true,
          rules: [],
          onPermanentFailure: 'hold' as const,
          ...overrides.environments?.[i],
        })),
        settings: { ...testSettings, ...overrides.settings },
        http: { port: 0, host: '127.0.0.1' },
        log: { level: 'warn' },
      };
    },
    async startDaemon(config = pipeline.config(), logSink) {
      // PERMSYNC_TEST_LOG=debug shows the daemon's log on stderr when a test needs explaining.
      const level = logSink ? 'debug' : (process.env.PERMSYNC_TEST_LOG ?? config.log.level);
      const sink = logSink
        ? new Writable({ write: (chunk, _enc, done) => (logSink.push(String(chunk)), done()) })
        : process.env.PERMSYNC_TEST_LOG
          ? process.stderr
          : discard;
      const daemon = await startDaemon(config, createLogger(level, sink));
      daemons.push(daemon);
      return daemon;
    },
    async settle(timeoutMs = 15_000) {
      await waitFor(
        async () => {
          const { rows } = await pipeline.sourceClient.query<{ pending: string }>(
            `SELECT count(*) AS pending
             FROM permsync.batches b CROSS JOIN permsync.environments e
            WHERE b.commit_seq > e.start_after_seq AND e.enabled
              AND (b.target_environment IS NULL OR b.target_environment = e.name)
              AND NOT EXISTS (SELECT 1 FROM permsync.execution_log x
                               WHERE x.batch_id = b.id AND x.environment_name = e.name
                                 AND (x.execution_status <> 'failed' OR x.failure_kind = 'permanent'))`,
          );
          return rows[0]?.pending === '0';
        },
        timeoutMs,
        'every environment to carry every batch',
      );
    },
    async settleRoles(timeoutMs?: number) {
      await waitFor(
        async () => {
          const { rows } = await pipeline.sourceClient.query<{ same: boolean }>('SELECT permsync.role_snapshot_matches(false) AS same');
          return rows[0]?.same === true;
        },
        10_000,
        'the role watcher to see the change',
      );
      await pipeline.settle(timeoutMs);
    },
    async close() {
      await Promise.all(daemons.map((d) => d.stop()));
      await pipeline.sourceClient.end().catch(() => {});
      for (const e of environments) {
        await e.client.end().catch(() => {});
        await e.proxy.cut();
      }
      await Promise.all([source, ...targets].map((s) => s.destroy()));
    },
  };
  return pipeline;
}
