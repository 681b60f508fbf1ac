import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { checkEnvironments } from './check.js';
import { recordCheck, summarize } from './history.js';
import { withPooledSession } from '../pg-sessions.js';

export interface DriftCheckResult {
  environment: string;
  checkedAt: Date;
  /** null when the environment could not be compared. */
  differences: number | null;
  summary: Record<string, unknown>;
}

/**
 * The daemon's scheduled check (settings.drift_check_cron): compares every enabled
 * environment with the source and records each result in permsync.drift_checks, where
 * v_drift_status shows when each last matched. Returns the results, for the daemon's metrics.
 * Throws only when the source itself cannot be read or written.
 */
export async function runDriftCheck(deps: { config: Config; source: pg.Pool; logger: Logger }): Promise<DriftCheckResult[]> {
  const { config, source, logger } = deps;
  return withPooledSession(source, async (client) => {
    const environments = config.environments.filter((e) => e.enabled);
    const results = await checkEnvironments(config, client, environments, { dropExtraRoles: false });
    const out: DriftCheckResult[] = [];
    for (const result of results) {
      await recordCheck(client, result.environment, result.report, result.error);
      const { differences, summary } = summarize(result.report, result.error);
      const log = logger.child({ environment: result.environment });
      if (result.error !== undefined) log.error({ err: result.error }, 'drift check could not compare the environment');
      else if (differences)
        log.warn({ differences, summary, hints: result.hints }, 'environment differs from the source: `permsync drift` shows how');
      else if (result.report?.verifiersCompared === false)
        log.warn({ notes: result.report.notes }, 'environment matches the source, password verifiers aside (not compared): see the notes');
      else log.info('environment matches the source');
      out.push({ environment: result.environment, checkedAt: new Date(), differences, summary });
    }
    return out;
  });
}
