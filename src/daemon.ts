import pg from 'pg';
import pgListen, { type Subscriber } from 'pg-listen';
import type { Logger } from 'pino';
import { EnvironmentApplier } from './apply/applier.js';
import { Target } from './apply/target.js';
import { planBatch, type Batch, type BatchPlan } from './capture/plan.js';
import { loadParser } from './capture/statements.js';
import { excludedRoleMatcher, type Config } from './config/schema.js';
import { SourceStore } from './source/store.js';

/** The channel the source's capture trigger notifies on commit. */
export const CAPTURE_CHANNEL = 'permsync';
const PLAN_CACHE_SIZE = 2000;

export interface Daemon {
  /** Resolves once every applier has caught up with what it could find (tests, demo). */
  readonly appliers: readonly EnvironmentApplier[];
  stop(): Promise<void>;
}

/**
 * Wires the flow: source notifications and a safety-net poll wake one applier per
 * environment; each applier reads batches from the source in commit order and carries them.
 */
export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  await loadParser();
  const source = new pg.Pool({
    connectionString: config.source.url,
    application_name: config.source.applicationName,
    connectionTimeoutMillis: config.settings.connectionTimeoutMs,
    statement_timeout: config.settings.statementTimeoutMs,
    max: 4,
  });
  source.on('error', (error) => logger.warn({ err: error }, 'idle source connection failed'));
  const store = new SourceStore(source);
  await store.assertInstalled();
  await store.registerConfiguration(config);

  const plans = new Map<string, Promise<BatchPlan>>();
  const plan = (batch: Batch): Promise<BatchPlan> => {
    let cached = plans.get(batch.id);
    if (!cached) {
      cached = planBatch(batch, () => store.siblingBatchIds(batch));
      cached.catch(() => plans.delete(batch.id));
      plans.set(batch.id, cached);
      if (plans.size > PLAN_CACHE_SIZE) plans.delete(plans.keys().next().value as string);
    }
    return cached;
  };

  const isExcludedRole = excludedRoleMatcher(config.settings.excludedRoles);
  const targets: Target[] = [];
  const appliers = config.environments
    .filter((env) => env.enabled)
    .map((environment) => {
      const target = new Target(environment, config.settings, (error) =>
        logger.warn({ environment: environment.name, err: error }, 'idle target connection failed'),
      );
      targets.push(target);
      return new EnvironmentApplier({ environment, settings: config.settings, store, target, plan, isExcludedRole, logger });
    });
  const wakeAll = () => appliers.forEach((a) => a.wake());

  // pg-listen is CommonJS with a default export: reached through the module object under ESM.
  const subscriber: Subscriber = pgListen.default(
    { connectionString: config.source.url, application_name: `${config.source.applicationName}:listen` },
    {
      retryLimit: Number.MAX_SAFE_INTEGER,
      retryTimeout: Number.MAX_SAFE_INTEGER,
      retryInterval: (attempt: number) => Math.min(500 * 2 ** attempt, 10_000),
      paranoidChecking: 10_000,
      parse: (payload: string) => payload,
    },
  );
  subscriber.notifications.on(CAPTURE_CHANNEL, wakeAll);
  // After a reconnect, notifications sent while it was down are lost: catch up from the table.
  subscriber.events.on('connected', () => {
    logger.info('listening on the source');
    wakeAll();
  });
  subscriber.events.on('reconnect', (attempt) => logger.warn({ attempt }, 'reconnecting to the source'));
  subscriber.events.on('error', (error) => logger.error({ err: error }, 'source listener failed'));
  await subscriber.connect();
  await subscriber.listenTo(CAPTURE_CHANNEL);

  for (const applier of appliers) await applier.start();
  const poll = setInterval(wakeAll, config.settings.pollIntervalMs);
  logger.info({ environments: appliers.map((a) => a.name), dryRun: config.settings.dryRun }, 'permsync daemon running');

  let stopping: Promise<void> | undefined;
  const stop = async () => {
      clearInterval(poll);
      await Promise.all(appliers.map((a) => a.stop()));
      await subscriber.close().catch(() => {});
      await Promise.all(targets.map((t) => t.close()));
      await source.end();
      logger.info('permsync daemon stopped');
  };
  return {
    appliers,
    stop: () => (stopping ??= stop()),
  };
}
