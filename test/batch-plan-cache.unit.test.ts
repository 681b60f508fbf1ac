import { describe, expect, it } from 'vitest';
import { BatchPlanCache } from '../src/apply/batch-plan-cache.js';
import { loadParser } from '../src/capture/statements.js';
import { planBatch, type Batch } from '../src/capture/batch.js';

/** A client string of GRANTs of about `bytes` bytes (capture's limits: 64 kB, 1,000 commands), as a non-DBA may send as often as it likes. */
function batch(id: number, bytes: number): Batch {
  const grants: string[] = [];
  for (let n = 0; grants.join('; ').length < bytes; n++) grants.push(`GRANT SELECT ON ${'t'.repeat(60)}${n} TO app`);
  return {
    id: String(id),
    commitSeq: String(id),
    origin: 'event_trigger',
    sessionUser: 'u',
    sessionUserIsSuperuser: false,
    currentUser: 'u',
    currentUserIsSuperuser: false,
    searchPath: 'public',
    backendPid: 1,
    statementStartedAt: new Date(0),
    committedAt: new Date(0),
    queryText: grants.join('; '),
    queryMasked: false,
    targetEnvironment: null,
    commandTags: grants.map(() => 'GRANT'),
    commandObjects: grants.map(() => null),
    identities: 1,
    statements: null,
    previousStatus: null,
  };
}

describe('the plan cache', () => {
  it('keeps no more text than its limit, however large and many the batches, and plans an evicted batch again', async () => {
    await loadParser();
    let planned = 0;
    const cache = new BatchPlanCache(
      (b) => {
        planned++;
        return planBatch(b, () => Promise.resolve([b.id]));
      },
      { entries: 1000, chars: 1024 * 1024 },
    );
    const batches = Array.from({ length: 40 }, (_, i) => batch(i, 60_000));
    let most = 0;
    for (const b of batches) {
      const plan = await cache.get(b);
      expect(plan.replay.length).toBeGreaterThan(500);
      most = Math.max(most, cache.size.chars);
    }
    expect(most).toBeLessThanOrEqual(1024 * 1024);
    expect(cache.size.entries).toBeLessThan(40);
    // The newest is kept, the oldest gone: asked again, it is planned again.
    await cache.get(batches[39] as Batch);
    expect(planned).toBe(40);
    await cache.get(batches[0] as Batch);
    expect(planned).toBe(41);
    // 2.5 s here alone; parsing 40 batches of 60,000 characters took over 10 s on a busy machine.
  }, 60_000);
});
