import { BatchPlanCache } from '../apply/batch-plan-cache.js';
import { planBatch, type Batch, type BatchPlan } from '../capture/batch.js';
import type { Config } from '../config/schema.js';
import { MASKED_PASSWORD } from '../redact.js';
import type { SourceStore } from '../source/store.js';

/**
 * What of each batch this daemon carries, planned once for every environment; with
 * settings.sync_passwords off, without the statements that set a password.
 */
export function batchPlans(config: Config, store: SourceStore): (batch: Batch) => Promise<BatchPlan> {
  const plans = new BatchPlanCache((batch) => {
    const planned = planBatch(
      batch,
      () => store.siblingBatchIds(batch),
      () => store.recordedCommands(batch.id),
    );
    return config.settings.syncPasswords ? planned : planned.then(withoutVerifiers);
  });
  return (batch) => plans.get(batch);
}

/**
 * The plan without the statements that set a password (from a verifier the source
 * captured): this daemon's settings.sync_passwords is off. They are logged as skipped.
 */
function withoutVerifiers(plan: BatchPlan): BatchPlan {
  if (!plan.batch.statements) return plan;
  const sets = (s: BatchPlan['replay'][number]) =>
    s.kind === 'ALTER ROLE' && [' WITH PASSWORD NULL', ` WITH PASSWORD ${MASKED_PASSWORD}`].some((end) => s.sourceText.endsWith(end));
  const dropped = plan.replay.filter(sets);
  if (dropped.length === 0) return plan;
  return {
    ...plan,
    replay: plan.replay.filter((s) => !sets(s)),
    skipped: [
      ...plan.skipped,
      ...dropped.map((s) => ({
        ordinal: s.ordinal,
        tag: s.kind,
        sourceText: s.sourceText,
        reason: 'a password, and settings.sync_passwords is off',
      })),
    ],
  };
}
