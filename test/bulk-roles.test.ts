import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
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
});
