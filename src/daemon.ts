import type { Logger } from 'pino';
import { loadParser } from './capture/statements.js';
import { daemonGroup, type Config } from './config/schema.js';
import { startRuntime, type Runtime } from './daemon/runtime.js';
import { startHttpServer, type HttpServer } from './http/server.js';
import { DaemonMetrics } from './metrics.js';
import { endPool, trackSessions } from './pg-close.js';
import { LeaderLock } from './source/leader-lock.js';
import { openSourcePool } from './source/pool.js';
import { SourceProbe } from './source/probe.js';
import { SourceStore } from './source/store.js';

/** How often a standby daemon claims the leader lease, and the leader renews it. */
const LEADER_INTERVAL_MS = 1000;
/** How long a claim holds the lease: a leader cut off from the source stops applying after half of it, a standby takes over after all of it. */
const LEADER_LEASE_MS = 10_000;
/** How long /readyz gives the source's last answer again before asking anew. */
const READINESS_REUSE_MS = 1000;

export interface Daemon {
  /** Whether this daemon holds the leader lock and applies (others stand by). */
  isLeader(): boolean;
  /** Where /healthz, /readyz and /metrics answer (the bound port, when configured as 0). */
  readonly http: { host: string; port: number };
  /**
   * Takes a new configuration (SIGHUP): environments added or removed, rules changed.
   * The applying side restarts from the batch table, so no work is lost; source.url,
   * the source's application_name and the group need a restart.
   */
  reload(config: Config): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the daemon: it applies while it holds the source's leader lock (one daemon at a
 * time per source), and stands by otherwise.
 */
export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  await loadParser();
  const source = trackSessions(openSourcePool(config, { applicationName: config.source.applicationName, max: 4 }));
  source.on('error', (error) => logger.warn({ err: error }, 'idle source connection failed'));
  const store = new SourceStore(source);
  try {
    await store.assertInstalled();
  } catch (error) {
    await endPool(source);
    throw error;
  }

  let current = config;
  // The lease this daemon claims: it changes only at a restart.
  const group = daemonGroup(config);
  let runtime: Runtime | undefined;
  const metrics = new DaemonMetrics({
    source,
    group,
    logger,
    environments: () => current.environments.filter((e) => e.enabled).map((e) => e.name),
    leader: () => lock.holder,
    listener: () => runtime?.listener,
  });
  const lock: LeaderLock = new LeaderLock({
    connectionString: config.source.url,
    applicationName: config.source.applicationName,
    connectionTimeoutMs: config.settings.connectionTimeoutMs,
    group,
    intervalMs: LEADER_INTERVAL_MS,
    leaseMs: LEADER_LEASE_MS,
    logger,
    onAcquired: async () => {
      metrics.setLeader(true);
      runtime = await startRuntime(current, logger, source, store, metrics);
    },
    onLost: async () => {
      metrics.setLeader(false);
      await runtime?.stop();
      runtime = undefined;
    },
  });
  const probe = new SourceProbe({
    connectionString: config.source.url,
    applicationName: `${config.source.applicationName}:ready`,
    connectionTimeoutMs: config.settings.connectionTimeoutMs,
    reuseMs: READINESS_REUSE_MS,
  });
  // The HTTP settings, like the source's, take effect at a restart.
  let http: HttpServer;
  try {
    http = await startHttpServer({
      ...config.http,
      registry: metrics.registry,
      logger,
      readiness: async () => {
        const role = lock.isLeader ? 'leader' : 'standby';
        const unreachable = await probe.check();
        if (unreachable) return { ready: false, role, reason: `source unreachable: ${unreachable}` };
        if (role === 'standby') {
          // Ready as a standby only once a claim has said so: until then it may be about to lead.
          if (!lock.claimed) return { ready: false, role, reason: 'starting: claiming the leader lease' };
          if (lock.failure) return { ready: false, role, reason: `cannot claim the leader lease: ${lock.failure}` };
          return lock.holder ? { ready: true, role, leader: lock.holder } : { ready: true, role };
        }
        if (!runtime) return { ready: false, role, reason: 'starting to apply' };
        const listener = runtime.listener;
        if (listener.state === 'connected') return { ready: true, role, listener };
        const why = listener.failure ? ` (${listener.failure})` : '';
        return { ready: false, role, reason: `not listening on the source: reconnecting since ${listener.since.toISOString()}${why}`, listener };
      },
    });
  } catch (error) {
    await endPool(source);
    throw error;
  }
  await lock.start();

  let stopping: Promise<void> | undefined;
  return {
    isLeader: () => lock.isLeader,
    http: { host: http.host, port: http.port },
    async reload(next) {
      if (next.source.url !== current.source.url || next.source.applicationName !== current.source.applicationName) {
        logger.warn('source settings changed: they take effect at the next restart');
      }
      // Registering under another group than the lease's would let two groups apply to one environment.
      if (daemonGroup(next) !== group) logger.warn('the daemon group changed: it takes effect at the next restart');
      current = { ...next, source: current.source, group };
      await lock
        .whileLeading(async () => {
          await runtime?.stop();
          runtime = undefined;
          // An environment the new configuration adds is reconciled first, then follows.
          runtime = await startRuntime(current, logger, source, store, metrics, { bootstrapNew: true });
        })
        .catch(async (error) => {
          // Not applying while holding the lease would stall every standby too: let go of it.
          logger.error({ err: error }, 'could not start applying with the new configuration; releasing the leader lease');
          await lock.release();
          throw error;
        });
      logger.info({ environments: current.environments.map((e) => e.name) }, 'configuration reloaded');
    },
    // Bounded whatever is down: the batch in flight gets STOP_GRACE_MS (daemon/runtime.ts), sessions that do not end are cut.
    stop: () =>
      (stopping ??= (async () => {
        await Promise.all([http.close(), probe.close(), lock.stop()]);
        await endPool(source);
        logger.info('permsync daemon stopped');
      })()),
  };
}
