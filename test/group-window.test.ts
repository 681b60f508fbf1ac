import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { permissionSnapshot } from './support/catalog.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

let p: Pipeline;

/** Generous, so that the grouping it causes stands out from what a busy machine does anyway. */
const WINDOW_MS = 300;
const ROLES = ['app', 'reader', 'auditor'];
const TABLES = ['sales.orders', 'sales.refunds', 'sales.invoices'];
const FIXTURES = `
  ${ROLES.map((r) => `CREATE ROLE ${r};`).join(' ')}
  CREATE SCHEMA sales; ${TABLES.map((t) => `CREATE TABLE ${t} (id int);`).join(' ')}`;

/** Thirty distinct GRANTs and REVOKEs; the REVOKEs undo GRANTs made earlier in the burst. */
const BURST = ROLES.flatMap((role) =>
  TABLES.flatMap((table) => [
    `GRANT SELECT, INSERT ON ${table} TO ${role}`,
    `GRANT UPDATE ON ${table} TO ${role}`,
    `REVOKE INSERT ON ${table} FROM ${role}`,
  ]),
).concat([
  // A statement may end in a comment: in a group's one string it must not swallow what follows.
  'GRANT DELETE ON sales.orders TO app -- the nightly purge runs as app',
  'REVOKE UPDATE ON sales.orders FROM app',
  'GRANT USAGE ON SCHEMA sales TO reader',
]);

interface Execution {
  commit_seq: string;
  environment_name: string | null;
  execution_status: string | null;
  result_message: string | null;
  latency_ms: number | null;
}

/** Each batch committed after `after`, with its execution in each environment (null: none yet). */
async function executions(after: string): Promise<Execution[]> {
  const { rows } = await p.sourceClient.query<Execution>(
    `SELECT b.commit_seq::text, x.environment_name, x.execution_status, x.result_message,
            extract(epoch FROM x.finished_at - b.committed_at)::float8 * 1000 AS latency_ms
       FROM permsync.batches b LEFT JOIN permsync.execution_log x ON x.batch_id = b.id
      WHERE b.commit_seq > $1 ORDER BY b.commit_seq, x.environment_name`,
    [after],
  );
  return rows;
}

async function lastCommitSeq(): Promise<string> {
  const { rows } = await p.sourceClient.query<{ seq: string }>('SELECT coalesce(max(commit_seq), 0)::text AS seq FROM permsync.batches');
  return rows[0]?.seq ?? '0';
}

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod']);
  await p.everywhere(FIXTURES);
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  await p.startDaemon(p.config({ settings: { groupWindowMs: WINDOW_MS } }));
  // Connections to the targets open and the role watcher's first batch carried: a cold start
  // would make a backlog of the burst by itself.
  await p.dba('GRANT USAGE ON SCHEMA sales TO app');
  await p.settle();
});

afterAll(async () => {
  await p?.close();
});

describe('the group window', () => {
  it('carries a burst of single-statement transactions in a few target transactions, each batch logged on its own', async () => {
    const after = await lastCommitSeq();
    const sendStart = performance.now();
    for (const text of BURST) await p.dba(text); // each its own transaction, back to back
    const sendMs = performance.now() - sendStart;
    await p.settle();

    const expected = await permissionSnapshot(p.sourceClient);
    for (const env of p.environments) {
      expect({ env: env.name, lines: await permissionSnapshot(env.client) }).toEqual({ env: env.name, lines: expected });
    }

    const rows = await executions(after);
    for (const env of p.environments) {
      const mine = rows.filter((r) => r.environment_name === env.name);
      expect(mine.map((r) => r.execution_status)).toEqual(BURST.map(() => 'success'));
      const commented = mine[BURST.findIndex((text) => text.includes('--'))];
      expect(commented?.result_message, env.name).toMatch(/applied in one transaction with the other batches/);
      // A grouped batch names its group by commit_seq range; a batch carried alone names none.
      const groups = new Set<string>();
      let alone = 0;
      for (const r of mine) {
        const range = /applied in one transaction with the other batches of commit_seq (\d+\.\.\d+)/.exec(r.result_message ?? '')?.[1];
        if (range) groups.add(range);
        else alone++;
      }
      const transactions = groups.size + alone;
      expect(transactions, env.name).toBeLessThan(BURST.length);
      // Drains start at least a window apart: one at once for the first batch, then one per
      // window while the burst lasts, and one after it. Without the window, a burst as fast
      // as this goes in a transaction for every batch or two.
      expect(transactions, `${env.name}: ${transactions} transactions for a ${Math.round(sendMs)} ms burst`).toBeLessThanOrEqual(
        2 + Math.ceil(sendMs / WINDOW_MS),
      );
    }
  });

  it('does not hold back the first change after a quiet spell', async () => {
    await new Promise((r) => setTimeout(r, WINDOW_MS + 200));
    const after = await lastCommitSeq();
    await p.dba('GRANT TRUNCATE ON sales.refunds TO auditor');
    await p.settle();
    const rows = await executions(after);
    expect(rows.map((r) => r.execution_status)).toEqual(['success', 'success']);
    // Applied well before the window would have let a waiting drain start.
    for (const r of rows) expect(r.latency_ms, r.environment_name ?? '').toBeLessThan(WINDOW_MS);
  });
});
