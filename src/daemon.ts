import type pg from 'pg';
import cron from 'node-cron';
import type { Logger } from 'pino';
import { EnvironmentApplier } from './apply/applier.js';
import { roleScope } from './config/rules.js';
import { Target } from './target/target.js';
import { planBatch, type Batch, type BatchPlan } from './capture/batch.js';
import { BatchFeed } from './apply/feed.js';
import { BatchPlanCache } from './apply/batch-plan-cache.js';
import { openSourcePool } from './source/pool.js';
import { DriftCheckProcess } from './drift/check-process.js';
import { loadParser } from './capture/statements.js';
import type { Config } from './config/schema.js';
import { startHttpServer, type HttpServer } from './http/server.js';
import { DaemonMetrics } from './metrics.js';
import { END_WITHIN_MS, endPool, settlesWithin, trackSessions } from './pg-close.js';
import { LeaderLock } from './source/leader-lock.js';
import { SourceListener, type ListenerStatus } from './source/listener.js';
import { SourceProbe } from './source/probe.js';
import { CLEANUP_OLD_LOGS, CONTROL_CHANNEL } from './source/queries.js';
import { SourceStore } from './source/store.js';
import { RoleWatcher } from './watch/role-watcher.js';

/** The channel the source's capture trigger notifies on commit. */
export const CAPTURE_CHANNEL = 'permsync';
/** How often a standby daemon claims the leader lease, and the leader renews it. */
const LEADER_INTERVAL_MS = 1000;
/** How long a claim holds the lease: a leader cut off from the source stops applying after half of it, a standby takes over after all of it. */
const LEADER_LEASE_MS = 10_000;
/** How long /readyz gives the source's last answer again before asking anew. */
const READINESS_REUSE_MS = 1000;
/** How often the listening session must answer (within connection_timeout_ms), or be replaced. */
const LISTENER_HEARTBEAT_MS = 5000;
/** Reads of the operators' switches and requests start at least this far apart, however many wake-ups come. */
const CONTROL_READ_SPACING_MS = 250;
/** At a stop, how long the batch in flight has to finish and be logged before it is abandoned. */
const STOP_GRACE_MS = 2000;


export interface Daemon {
  /** Whether this daemon holds the leader lock and applies (others stand by). */
  isLeader(): boolean;
  /** Where /healthz, /readyz and /metrics answer (the bound port, when configured as 0). */
  readonly http: { host: string; port: number };
  /**
   * Takes a new configuration (SIGHUP): environments added or removed, rules changed.
   * The applying side restarts from the batch table, so no work is lost; source.url
   * and the source's application_name need a restart.
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
  let runtime: Runtime | undefined;
  const metrics = new DaemonMetrics({
    source,
    logger,
    environments: () => current.environments.filter((e) => e.enabled).map((e) => e.name),
    leader: () => lock.holder,
    listener: () => runtime?.listener,
  });
  const lock: LeaderLock = new LeaderLock({
    connectionString: config.source.url,
    applicationName: config.source.applicationName,
    connectionTimeoutMs: config.settings.connectionTimeoutMs,
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
      current = { ...next, source: current.source };
      await lock.whileLeading(async () => {
        await runtime?.stop();
        runtime = undefined;
        runtime = await startRuntime(current, logger, source, store, metrics);
      }).catch(async (error) => {
        // Not applying while holding the lease would stall every standby too: let go of it.
        logger.error({ err: error }, 'could not start applying with the new configuration; releasing the leader lease');
        await lock.release();
        throw error;
      });
      logger.info({ environments: current.environments.map((e) => e.name) }, 'configuration reloaded');
    },
    // Bounded whatever is down: the batch in flight gets STOP_GRACE_MS, sessions that do not end are cut.
    stop: () =>
      (stopping ??= (async () => {
        await Promise.all([http.close(), probe.close(), lock.stop()]);
        await endPool(source);
        logger.info('permsync daemon stopped');
      })()),
  };
}

interface Runtime {
  /** The source listener's state (readiness, metrics). */
  readonly listener: ListenerStatus;
  stop(): Promise<void>;
}

/**
 * The applying side, wired as the flow goes: source notifications and a safety-net poll
 * wake one applier per environment; each applier reads batches from the source in commit
 * order and carries them; the role watcher turns role changes into batches.
 */
async function startRuntime(
  config: Config,
  logger: Logger,
  source: pg.Pool,
  store: SourceStore,
  metrics: DaemonMetrics,
): Promise<Runtime> {
  await store.registerConfiguration(config);
  const sourceSuperuser = await store.bootstrapSuperuser();
  const passwords = await store.passwordTracking();
  if (!config.settings.syncPasswords) {
    if (passwords.tracked) logger.warn('the source captures password verifiers, but settings.sync_passwords is false: they are not carried');
    else logger.info('password verifiers are not carried: settings.sync_passwords is false');
  } else if (!passwords.captured) {
    logger.warn('settings.sync_passwords is on but the source does not capture password verifiers: they are not carried. ' +
      'An admin turns capture on with SELECT permsync.enable_password_sync()');
  } else if (!passwords.tracked) {
    logger.warn('settings.sync_passwords is on but the role that installed permsync cannot read pg_authid: password verifiers are not carried');
  }

  let switches = await store.readSwitches();
  // The retry counters as last acted on: a fresh applier re-attempts what it waits on anyway.
  const retriesSeen = new Map(switches.retryRequests);

  const plans = new BatchPlanCache((batch) => {
    const planned = planBatch(batch, () => store.siblingBatchIds(batch), () => store.recordedCommands(batch.id));
    return config.settings.syncPasswords ? planned : planned.then(withoutVerifiers);
  });
  const plan = (batch: Batch): Promise<BatchPlan> => plans.get(batch);

  const feed = new BatchFeed((after, limit) => store.newBatchesAfter(after, limit));
  const roles = roleScope(config);
  const targets: Target[] = [];
  const appliers = config.environments
    .filter((env) => env.enabled)
    .map((environment) => {
      const target = new Target(environment, config.settings, (error) =>
        logger.warn({ environment: environment.name, err: error }, 'idle target connection failed'),
      );
      targets.push(target);
      return new EnvironmentApplier({
        environment, settings: config.settings, switches: () => switches, store, feed, target, plan, roles, sourceSuperuser,
        metrics, logger,
      });
    });
  const wakeAll = () => appliers.forEach((a) => a.wake());

  // What operators asked for is read from the source, never taken from a notification
  // (anyone may send one): at start, on every control wake-up, after a reconnect and at
  // every poll. However many wake-ups come, one read runs and at most one more waits, a
  // quarter of a second at least after it.
  const controls = coalesced(async () => {
    try {
      switches = await store.readSwitches();
      for (const applier of appliers) {
        const asked = switches.retryRequests.get(applier.name) ?? 0n;
        if (asked > (retriesSeen.get(applier.name) ?? 0n)) {
          retriesSeen.set(applier.name, asked);
          logger.info({ environment: applier.name }, 'an operator asked for a retry or a skip');
          applier.retryNow();
        }
      }
    } catch (error) {
      logger.warn({ err: error }, 'could not read the operators\' switches and requests; keeping the last ones');
    }
    wakeAll();
  }, CONTROL_READ_SPACING_MS);

  const listener = new SourceListener({
    connectionString: config.source.url,
    applicationName: `${config.source.applicationName}:listen`,
    timeoutMs: config.settings.connectionTimeoutMs,
    heartbeatMs: LISTENER_HEARTBEAT_MS,
    channels: [CAPTURE_CHANNEL, CONTROL_CHANNEL],
    logger,
    onNotification: (channel) => {
      // Operators' functions act within a second: the state is in the source's tables; the
      // notification, payload or not, only says to look now.
      if (channel === CONTROL_CHANNEL) controls.request();
      // A batch committed after disable_sync() must not slip through before the switch is
      // read: while a read of the controls runs or waits, its end wakes the appliers instead.
      else if (!controls.busy) wakeAll();
    },
    // What was notified while the listener was not listening is lost: catch up from the tables.
    onListening: () => controls.request(),
  });
  // The batch in flight may finish and be logged. Past the grace it is abandoned: its target
  // session is cut (the target rolls back what it had not committed), and the in-flight
  // mark has the next run apply it again. A role check still running (alsoStopping) is cut
  // with the source pool.
  const closeAll = async (alsoStopping?: Promise<void>) => {
    const stopped = Promise.all([alsoStopping, ...appliers.map((a) => a.stop())]);
    await settlesWithin(stopped, STOP_GRACE_MS);
    await Promise.all([...targets.map((t) => t.close()), listener.stop()]);
    await settlesWithin(stopped, END_WITHIN_MS);
  };
  try {
    await listener.start();
    for (const applier of appliers) await applier.start();
  } catch (error) {
    // Half started is not started: nothing of it may go on applying.
    await closeAll();
    throw error;
  }
  const poll = setInterval(() => controls.request(), config.settings.pollIntervalMs);
  // Retries come due on a one-second tick rather than one timer per failure.
  const retries = cron.schedule('* * * * * *', () => appliers.forEach((a) => a.retryIfDue()), { name: 'permsync-retries' });
  const watcher = new RoleWatcher(
    source,
    config.settings.roleWatchIntervalMs,
    logger,
    (ms, batchId) => metrics.roleCheck(ms, batchId !== null),
    () => metrics.roleCheckFailed(),
  );
  watcher.start();
  const driftProcess = new DriftCheckProcess();
  const driftCheck = config.settings.driftCheckCron
    ? cron.schedule(
        config.settings.driftCheckCron,
        async () => {
          try {
            const results = await driftProcess.run(config);
            if (results) metrics.driftChecked(results);
          } catch (error) {
            logger.error({ err: error }, 'drift check could not read or write the source');
          }
        },
        { name: 'permsync-drift-check', noOverlap: true },
      )
    : undefined;
  const cleanup = config.settings.cleanupCron
    ? cron.schedule(
        config.settings.cleanupCron,
        async () => {
          try {
            const { rows } = await source.query(CLEANUP_OLD_LOGS);
            logger.info({ deleted: rows }, 'old logs cleaned up');
          } catch (error) {
            logger.error({ err: error }, 'cleanup_old_logs failed');
          }
        },
        { name: 'permsync-cleanup', noOverlap: true },
      )
    : undefined;
  logger.info({ environments: appliers.map((a) => a.name), dryRun: config.settings.dryRun }, 'permsync daemon running');

  return {
    get listener() {
      return listener.status;
    },
    async stop() {
      clearInterval(poll);
      controls.stop();
      await retries.destroy();
      await driftCheck?.destroy();
      driftProcess.stop();
      await cleanup?.destroy();
      await closeAll(watcher.stop());
    },
  };
}

/**
 * Runs `task` when asked, never twice at once, and runs start at least `spacingMs` apart:
 * asks that come meanwhile are folded into one more run. Any login may send the wake-ups
 * that ask, as fast as it likes. `busy` while a run is under way or waiting.
 */
function coalesced(task: () => Promise<void>, spacingMs: number): { request(): void; stop(): void; readonly busy: boolean } {
  let running = false;
  let again = false;
  let lastStart = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  const run = (): void => {
    timer = undefined;
    running = true;
    lastStart = performance.now();
    void task().finally(() => {
      running = false;
      if (again) {
        again = false;
        request();
      }
    });
  };
  const request = (): void => {
    if (running) again = true;
    else if (timer === undefined) {
      const wait = lastStart + spacingMs - performance.now();
      if (wait > 0) timer = setTimeout(run, wait);
      else run();
    }
  };
  return {
    request,
    stop: () => clearTimeout(timer),
    get busy() {
      return running || timer !== undefined;
    },
  };
}

/**
 * The plan without the statements that set a password (from a verifier the source
 * captured): this daemon's settings.sync_passwords is off. They are logged as skipped.
 */
function withoutVerifiers(plan: BatchPlan): BatchPlan {
  if (!plan.batch.statements) return plan;
  const sets = (s: BatchPlan['replay'][number]) => s.kind === 'ALTER ROLE' && / WITH PASSWORD (NULL|'\*{8}')$/.test(s.sourceText);
  const dropped = plan.replay.filter(sets);
  if (dropped.length === 0) return plan;
  return {
    ...plan,
    replay: plan.replay.filter((s) => !sets(s)),
    skipped: [...plan.skipped, ...dropped.map((s) => ({
      ordinal: s.ordinal, tag: s.kind, sourceText: s.sourceText, reason: 'a password, and settings.sync_passwords is off',
    }))],
  };
}
