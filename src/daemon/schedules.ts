import type pg from 'pg';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { DriftCheckProcess } from '../drift/check-process.js';
import type { DaemonMetrics } from '../metrics.js';
import { CLEANUP_OLD_LOGS } from '../source/queries.js';

/** A cron job of the daemon's settings; stop() ends it, and what it has running. */
export interface Schedule {
  stop(): Promise<void>;
}

/** The drift check on settings.drift_check_cron, each in a process of its own, never two at once. */
export function scheduleDriftCheck(config: Config, metrics: DaemonMetrics, logger: Logger): Schedule {
  const checks = new DriftCheckProcess();
  const task = scheduled(config.settings.driftCheckCron, 'permsync-drift-check', async () => {
    try {
      const results = await checks.run(config);
      if (results) metrics.driftChecked(results);
    } catch (error) {
      logger.error({ err: error }, 'drift check could not read or write the source');
    }
  });
  return {
    async stop() {
      await task?.destroy();
      checks.stop();
    },
  };
}

/** permsync.cleanup_old_logs() on settings.cleanup_cron, never two at once. */
export function scheduleCleanup(config: Config, source: pg.Pool, logger: Logger): Schedule {
  const task = scheduled(config.settings.cleanupCron, 'permsync-cleanup', async () => {
    try {
      const { rows } = await source.query(CLEANUP_OLD_LOGS);
      logger.info({ deleted: rows }, 'old logs cleaned up');
    } catch (error) {
      logger.error({ err: error }, 'cleanup_old_logs failed');
    }
  });
  return {
    async stop() {
      await task?.destroy();
    },
  };
}

/** The job on `expression` (none without one), never two runs at once. */
function scheduled(expression: string | null, name: string, job: () => Promise<void>): ScheduledTask | undefined {
  return expression ? cron.schedule(expression, job, { name, noOverlap: true }) : undefined;
}
