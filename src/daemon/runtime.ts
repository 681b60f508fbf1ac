import type pg from 'pg';
import type { Logger } from 'pino';
import { EnvironmentApplier } from '../apply/applier.js';
import { BatchFeed } from '../apply/feed.js';
import { SharedServers } from '../apply/shared-servers.js';
import { roleScope } from '../config/rules.js';
import type { Config } from '../config/schema.js';
import type { DaemonMetrics } from '../metrics.js';
import { END_WITHIN_MS, settlesWithin } from '../pg-close.js';
import type { ListenerStatus } from '../source/listener.js';
import type { RegisterOptions, SourceStore } from '../source/store.js';
import { Target } from '../target/target.js';
import { RoleWatcher } from '../watch/role-watcher.js';
import { batchPlans } from './batch-plans.js';
import { OperatorControls } from './controls.js';
import { listenToSource } from './listen.js';
import { logPasswordCarrying } from './passwords.js';
import { startPoll } from './poll.js';
import { startRetryTick } from './retry-tick.js';
import { scheduleCleanup, scheduleDriftCheck } from './schedules.js';

/** At a stop, how long the batch in flight has to finish and be logged before it is abandoned. */
const STOP_GRACE_MS = 2000;

export interface Runtime {
  /** The source listener's state (readiness, metrics). */
  readonly listener: ListenerStatus;
  stop(): Promise<void>;
}

/**
 * The applying side, wired as the flow goes: source notifications and a safety-net poll
 * wake one applier per environment; each applier reads batches from the source in commit
 * order and carries them; the role watcher turns role changes into batches.
 */
export async function startRuntime(
  config: Config,
  logger: Logger,
  source: pg.Pool,
  store: SourceStore,
  metrics: DaemonMetrics,
  registration: RegisterOptions = {},
): Promise<Runtime> {
  const { refused } = await store.registerConfiguration(config, registration);
  for (const { environment, reason } of refused)
    logger.error({ environment }, `environment "${environment}" is not applied by this daemon: ${reason}`);
  const applied = config.environments.filter((env) => env.enabled && !refused.some((r) => r.environment === env.name));
  const sourceSuperuser = await store.bootstrapSuperuser();
  await logPasswordCarrying(config, store, logger);
  const controls = new OperatorControls(store, logger, await store.readSwitches());

  const plan = batchPlans(config, store);
  const feed = new BatchFeed((after, limit) => store.newBatchesAfter(after, limit));
  const roles = roleScope(config);
  const servers = new SharedServers(store);
  const targets: Target[] = [];
  const appliers = applied.map((environment) => {
    const target = new Target(environment, config.settings, (error) =>
      logger.warn({ environment: environment.name, err: error }, 'idle target connection failed'),
    );
    targets.push(target);
    return new EnvironmentApplier({
      environment,
      settings: config.settings,
      switches: () => controls.switches,
      store,
      feed,
      target,
      plan,
      roles,
      sourceSuperuser,
      servers,
      metrics,
      logger,
    });
  });
  controls.govern(appliers, feed);

  const listener = listenToSource(config, logger, controls);
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
  const poll = startPoll(config.settings.pollIntervalMs, controls);
  const retries = startRetryTick(appliers);
  const watcher = new RoleWatcher(
    source,
    config.settings.roleWatchIntervalMs,
    logger,
    (ms, batchId) => metrics.roleCheck(ms, batchId !== null),
    () => metrics.roleCheckFailed(),
  );
  watcher.start();
  const driftCheck = scheduleDriftCheck(config, metrics, logger);
  const cleanup = scheduleCleanup(config, source, logger);
  logger.info({ environments: appliers.map((a) => a.name), dryRun: config.settings.dryRun }, 'permsync daemon running');

  return {
    get listener() {
      return listener.status;
    },
    async stop() {
      poll.stop();
      controls.stop();
      await retries.stop();
      await driftCheck.stop();
      await cleanup.stop();
      await closeAll(watcher.stop());
    },
  };
}
