import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERMSYNC_ROLES } from '../src/config/rules.js';
import type { Daemon } from '../src/daemon.js';
import { permissionSnapshot } from './support/catalog.js';
import { roleCatalog } from './support/roles.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

// An environment added to a running daemon's configuration (SIGHUP) is brought to the
// source's state, then follows the batches, while the others keep going.

let p: Pipeline;
let daemon: Daemon;

beforeAll(async () => {
  p = await startPipeline(['prod', 'staging']);
  await p.everywhere('CREATE ROLE app; CREATE SCHEMA shop; CREATE TABLE shop.orders (id int); CREATE TABLE shop.items (id int)');
  await p.adopt();
  const all = p.config();
  daemon = await p.startDaemon({ ...all, environments: all.environments.filter((e) => e.name === 'prod') });
});

afterAll(async () => {
  await p?.close();
});

describe('an environment added to a running daemon', () => {
  it('gets what the source had before it was added, then what follows, and the others keep going', async () => {
    // Before staging is configured: roles, memberships and privileges it has never seen.
    await p.dba(`CREATE ROLE analyst LOGIN; CREATE ROLE readers; GRANT readers TO analyst`);
    await p.dba(`GRANT USAGE ON SCHEMA shop TO readers; GRANT SELECT ON shop.orders TO readers; GRANT SELECT, UPDATE ON shop.items TO analyst`);
    await p.dba(`ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO readers`);
    // A login's own setting in a database only the source has: staging cannot take it, and
    // must not be held by it.
    await p.dba(`CREATE DATABASE analytics`);
    await p.dba(`SET ROLE analyst; ALTER ROLE analyst IN DATABASE analytics SET work_mem = '64MB'; RESET ROLE`);
    await p.settleRoles();

    await daemon.reload(p.config());
    await p.dba('REVOKE UPDATE ON shop.items FROM analyst');
    await p.dba('GRANT INSERT ON shop.orders TO app');
    await p.settleRoles();

    const excluded = ['postgres', ...PERMSYNC_ROLES];
    const sourceRoles = (await roleCatalog(p.sourceClient, excluded)).filter((line) => !line.includes(' in analytics: '));
    expect(await roleCatalog(p.sourceClient, excluded)).toContain('setting analyst in analytics: work_mem=64MB');
    const sourcePrivileges = await permissionSnapshot(p.sourceClient);
    expect(sourcePrivileges).toContain('r shop.orders app INSERT by postgres');
    for (const name of ['staging', 'prod']) {
      expect(await roleCatalog(p.env(name).client, excluded)).toEqual(sourceRoles);
      expect(await permissionSnapshot(p.env(name).client)).toEqual(sourcePrivileges);
    }
    // Logged like any batch: its own line in staging's execution log, saying what it did.
    const { rows } = await p.sourceClient.query<{ status: string; message: string }>(
      `SELECT x.execution_status AS status, x.result_message AS message
         FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE b.origin = 'bootstrap' AND x.environment_name = 'staging'`,
    );
    expect(rows).toEqual([{ status: 'success', message: expect.stringMatching(/^added to the configuration: brought to the source's state, /) }]);
  });
});

describe('an environment added to a running daemon that carries verifiers', () => {
  let q: Pipeline;

  beforeAll(async () => {
    q = await startPipeline(['prod', 'staging']);
    await q.everywhere('CREATE TABLE t (id int)');
    await q.adopt();
  });

  afterAll(async () => {
    await q?.close();
  });

  it('gets the source verifier of a login made before it was added, and no log shows it', async () => {
    const config = q.config({ settings: { syncPasswords: true } });
    const daemon = await q.startDaemon({ ...config, environments: config.environments.filter((e) => e.name === 'prod') });
    await q.dba(`SELECT permsync.enable_password_sync()`);
    await q.dba(`CREATE ROLE login_a LOGIN PASSWORD 'secret-a-Pa55'; GRANT SELECT ON t TO login_a`);
    await q.settleRoles();

    await daemon.reload(config);
    await q.settleRoles();

    const verifier = async (client: pg.ClientBase) =>
      (await client.query<{ v: string | null }>(`SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'login_a'`)).rows[0]?.v;
    const source = await verifier(q.sourceClient);
    expect(source).toMatch(/^SCRAM-SHA-256\$/);
    expect(await verifier(q.env('staging').client)).toBe(source);
    const { rows } = await q.sourceClient.query<{ text: string }>(
      `SELECT concat_ws(' ', x.applied_sql, x.result_message, x.error_detail, x.error_hint) AS text
         FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE b.origin = 'bootstrap' AND x.environment_name = 'staging'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]?.text).toContain('ALTER ROLE "login_a" WITH PASSWORD');
    expect(rows[0]?.text).not.toContain(source);
    expect(rows[0]?.text).not.toContain('secret-a');
  });
});
