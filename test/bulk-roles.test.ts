import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { MAX_GENERATED_BYTES } from '../src/capture/batch.js';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

// A provisioning script that makes ten thousand roles in one DO block: the role watcher
// carries them all, and the DBA's next GRANT, naming the last, follows them.
// (How long the watcher and that GRANT take is the bench's: npm run bench, figure 9.)
const TENANTS = 10_000;

describe.each([14, 18] as PostgresMajor[])('PostgreSQL %i', (major) => {
  let p: Pipeline;

  beforeAll(async () => {
    p = await startPipeline(['prod'], { major });
    await p.everywhere('CREATE TABLE orders (id int)');
    await p.startDaemon();
  });

  afterAll(async () => {
    await p?.close();
  });

  it('ten thousand roles created at once reach the target, before the GRANT that names the last', async () => {
    await p.dba(`DO $$ BEGIN FOR i IN 1..${TENANTS} LOOP EXECUTE format('CREATE ROLE %I', 'tenant_' || i); END LOOP; END $$`);
    await p.dba(`GRANT SELECT ON orders TO tenant_${TENANTS}`);
    await p.settle(60_000);

    const prod = p.env('prod').client;
    const { rows } = await prod.query<{ count: number }>(`SELECT count(*)::int AS count FROM pg_roles WHERE rolname LIKE 'tenant\\_%'`);
    expect(rows[0]?.count).toBe(TENANTS);
    expect(await relationPrivileges(prod, 'orders')).toContain(`tenant_${TENANTS} SELECT by postgres`);
  });

  it('role changes that take more than the daemon reads of one batch go in several, in order, and all reach the target', async () => {
    // 300 roles with 4 kB comments: 1.2 MB of statements, skipped whole when they were one batch.
    await p.dba(`DO $$ BEGIN FOR i IN 1..300 LOOP
                   EXECUTE format('CREATE ROLE %I', 'commented_' || i);
                   EXECUTE format('COMMENT ON ROLE %I IS %L', 'commented_' || i, repeat('c', 4000));
                 END LOOP;
                 GRANT commented_1 TO commented_300; END $$`);
    // Its role check finds the roles first: their batches go before its own.
    await p.dba('GRANT SELECT ON orders TO commented_300');
    await p.settle(60_000);

    const { rows: batches } = await p.sourceClient.query<{ bytes: number; statuses: string[] }>(
      `SELECT octet_length(b.statements::text) AS bytes, array_agg(x.execution_status) AS statuses
         FROM permsync.batches b LEFT JOIN permsync.execution_log x ON x.batch_id = b.id
        WHERE b.origin = 'role_watcher' AND b.query_text LIKE '%commented\_%'
        GROUP BY b.id ORDER BY b.commit_seq`,
    );
    expect(batches.length).toBeGreaterThan(1);
    for (const batch of batches) {
      expect(batch.bytes).toBeLessThanOrEqual(MAX_GENERATED_BYTES);
      expect(batch.statuses).toEqual(['success']);
    }
    const prod = p.env('prod').client;
    const { rows } = await prod.query<{ count: number; members: number }>(
      `SELECT count(*)::int AS count,
              (SELECT count(*)::int FROM pg_auth_members m
                WHERE m.roleid = 'commented_1'::regrole AND m.member = 'commented_300'::regrole) AS members
         FROM pg_roles r WHERE r.rolname LIKE 'commented\_%' AND shobj_description(r.oid, 'pg_authid') = repeat('c', 4000)`,
    );
    expect(rows[0]).toEqual({ count: 300, members: 1 });
    expect(await relationPrivileges(prod, 'orders')).toContain('commented_300 SELECT by postgres');
  });
});
