import cron from 'node-cron';
import type { EnvironmentApplier } from '../apply/applier.js';

/** Retries come due on a one-second tick rather than one timer per failure. */
export function startRetryTick(appliers: readonly EnvironmentApplier[]): { stop(): Promise<void> } {
  const tick = cron.schedule('* * * * * *', () => appliers.forEach((a) => a.retryIfDue()), { name: 'permsync-retries' });
  return {
    async stop() {
      await tick.destroy();
    },
  };
}
