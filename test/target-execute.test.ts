import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Target } from '../src/target/target.js';
import { relationPrivileges } from './support/catalog.js';
import { testSettings } from './support/pipeline.js';
import { startServer, type TestServer } from './support/servers.js';

let server: TestServer;
let admin: pg.Client;
let target: Target;

const grant = (table: string) => ({ kind: 'GRANT' as const, sql: `GRANT SELECT ON ${table} TO writer`, roles: [], grantees: [], schemas: [] });

beforeAll(async () => {
  server = await startServer('target-execute');
  admin = new pg.Client(server.url);
  await admin.connect();
  await admin.query('CREATE TABLE orders (id int); CREATE TABLE lines (id int); CREATE ROLE writer');
  target = new Target(
    { name: 'one-trip', url: server.url, priority: 10, enabled: true, rules: [], onPermanentFailure: 'hold' },
    testSettings,
    () => {},
  );
});

afterAll(async () => {
  await target?.close();
  await admin?.end();
  await server?.destroy();
});

/** The last text the environment's session sent: the whole transaction where it went in one round trip. */
async function lastSent(): Promise<string | undefined> {
  const { rows } = await admin.query<{ query: string }>(`SELECT query FROM pg_stat_activity WHERE application_name = 'permsync:one-trip'`);
  return rows[0]?.query;
}

describe('a batch on a target', () => {
  it('goes in one round trip where nothing needs a statement on its own', async () => {
    const result = await target.execute({ searchPath: 'public' }, [grant('orders'), grant('lines')]);
    expect(result.error).toBeUndefined();
    expect(await relationPrivileges(admin, 'orders')).toContain('writer SELECT by postgres');
    expect(await relationPrivileges(admin, 'lines')).toContain('writer SELECT by postgres');
    expect(await lastSent()).toMatch(/^BEGIN\n;\n[\s\S]*GRANT SELECT ON orders TO writer\n;\nGRANT SELECT ON lines TO writer\n;\nCOMMIT$/);
  });

  it('refused, applies nothing and says which statement the target refused', async () => {
    await admin.query('REVOKE ALL ON orders, lines FROM writer');
    const result = await target.execute({ searchPath: 'public' }, [grant('orders'), grant('missing'), grant('lines')]);
    expect(result.error).toMatchObject({ code: '42P01', failedSql: 'GRANT SELECT ON missing TO writer' });
    expect(await relationPrivileges(admin, 'orders')).not.toContain('writer SELECT by postgres');
    expect(await relationPrivileges(admin, 'lines')).not.toContain('writer SELECT by postgres');
  });
});
