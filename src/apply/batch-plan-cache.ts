import type { Batch, BatchPlan } from '../capture/batch.js';

export interface BatchPlanCacheLimits {
  /** Plans kept at most. */
  entries: number;
  /** Characters of text the kept plans hold at most (their batches' text and statements). */
  chars: number;
}

/** What the daemon keeps: a backlog's plans, but never more than a few MB of them on its 128 MB heap. */
const BATCH_PLAN_CACHE_LIMITS: BatchPlanCacheLimits = { entries: 2000, chars: 8 * 1024 * 1024 };

/**
 * The plans of the batches being carried, shared by every environment, so that each batch
 * is planned once. Bounded by count and by the text the plans hold: a plan repeats its
 * batch's text several times over (statements, their SQL, what the log shows), and a run
 * of large batches must not grow the daemon's heap without limit. The oldest go first;
 * one evicted is planned again if an environment still needs it.
 */
export class BatchPlanCache {
  private readonly plans = new Map<string, { plan: Promise<BatchPlan>; chars: number }>();
  private chars = 0;

  constructor(
    private readonly make: (batch: Batch) => Promise<BatchPlan>,
    private readonly limits: BatchPlanCacheLimits = BATCH_PLAN_CACHE_LIMITS,
  ) {}

  get(batch: Batch): Promise<BatchPlan> {
    const kept = this.plans.get(batch.id);
    if (kept) return kept.plan;
    const entry = { plan: this.make(batch), chars: 0 };
    this.plans.set(batch.id, entry);
    entry.plan.then(
      (plan) => {
        if (this.plans.get(batch.id) !== entry) return;
        entry.chars = textOf(plan);
        this.chars += entry.chars;
        this.evict();
      },
      () => {
        if (this.plans.get(batch.id) === entry) this.plans.delete(batch.id);
      },
    );
    this.evict();
    return entry.plan;
  }

  /** What the kept plans hold: for tests and metrics. */
  get size(): { entries: number; chars: number } {
    return { entries: this.plans.size, chars: this.chars };
  }

  private evict(): void {
    for (const [id, entry] of this.plans) {
      if (this.plans.size <= this.limits.entries && this.chars <= this.limits.chars) return;
      this.plans.delete(id);
      this.chars -= entry.chars;
    }
  }
}

function textOf(plan: BatchPlan): number {
  let chars = plan.batch.queryText?.length ?? 0;
  for (const s of plan.replay) chars += s.sourceText.length + s.sql.length + (s.display?.length ?? 0);
  for (const s of plan.skipped) chars += s.sourceText.length + s.reason.length;
  return chars;
}
