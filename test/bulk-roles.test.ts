import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { MAX_GENERATED_BYTES } from '../src/capture/batch.js';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

// A provisioning script that makes thousands of roles in one DO block: the role watcher
// carries them all, in batches the daemon reads, and the DBA's next GRANT follows them.
// (How long the watcher and that GRANT take is the bench's: npm run bench.)
const TENANTS = 2000;

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

  it('thousands of roles created at once, each with a comment, reach the target whole, before the GRANT that names the last', async () => {
    await p.dba(`DO $$ BEGIN
        FOR i IN 1..${TENANTS} LOOP
          EXECUTE format('CREATE ROLE %I', 'tenant_' || i);
          EXECUTE format('COMMENT ON ROLE %I IS %L', 'tenant_' || i, 'tenant ' || i || ': ' || repeat('x', 1000));
        END LOOP;
      END $$`);
    await p.dba(`GRANT SELECT ON orders TO tenant_${TENANTS}`);
    await p.settle(120_000);

    const prod = p.env('prod').client;
    const { rows } = await prod.query<{ count: number; described: number }>(
      `SELECT count(*)::int AS count, count(d.description) FILTER (WHERE d.description LIKE 'tenant ' || substr(r.rolname, 8) || ': x%')::int AS described
         FROM pg_roles r LEFT JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
        WHERE r.rolname LIKE 'tenant\\_%'`,
    );
    expect(rows[0]).toEqual({ count: TENANTS, described: TENANTS });
    expect(await relationPrivileges(prod, 'orders')).toContain(`tenant_${TENANTS} SELECT by postgres`);
    // Over 2 MB of statements, in several batches the daemon reads (none over its limit).
    const { rows: batches } = await p.sourceClient.query<{ batches: number; largest: number }>(
      `SELECT count(*)::int AS batches, max(octet_length(query_text))::int AS largest FROM permsync.batches WHERE origin = 'role_watcher'`,
    );
    expect(batches[0]?.batches).toBeGreaterThan(1);
    expect(batches[0]?.largest).toBeLessThanOrEqual(MAX_GENERATED_BYTES);
  });
});
