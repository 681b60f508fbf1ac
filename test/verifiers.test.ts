import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config/schema.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

let p: Pipeline;
let config: Config;

const ROLES = ['early_login', 'late_login', 'new_login', 'straddler'];

const dba = (sql: string) => p.dba(sql);
const dev = () => p.env('dev').client;

/** Each role's verifier on one server (null: no password). */
async function verifiers(client: pg.Client, roles = ROLES): Promise<Record<string, string | null>> {
  const { rows } = await client.query<{ name: string; v: string | null }>(
    'SELECT rolname AS name, rolpassword AS v FROM pg_authid WHERE rolname = ANY ($1) ORDER BY 1', [roles]);
  return Object.fromEntries(rows.map((r) => [r.name, r.v]));
}

/** The role check the watcher makes, now (its own interval is an hour here), and every batch carried. */
async function look(): Promise<void> {
  await dba('SELECT permsync.capture_role_changes()');
  await p.settle();
}

beforeAll(async () => {
  p = await startPipeline(['dev']);
  await p.everywhere('CREATE SCHEMA app; CREATE TABLE app.t (id int)');
  // The role watcher looks once, at start: the tests say when it looks again (look()), so
  // that what happens between two of its checks is not left to timing.
  config = p.config({ settings: { syncPasswords: true, roleWatchIntervalMs: 3_600_000 } });
  await p.startDaemon(config);
});

afterAll(async () => {
  await p?.close();
});

describe('verifier capture', () => {
  it('turning it on brings every verifier over, one given before the next role check included, and later ones follow', async () => {
    await dba(`CREATE ROLE early_login LOGIN PASSWORD 'early-1'; CREATE ROLE late_login LOGIN`);
    await look();
    // Capture is off: the roles arrive without a verifier.
    expect(await verifiers(dev())).toEqual({ early_login: null, late_login: null });

    await dba('SELECT permsync.enable_password_sync()');
    // After the switch, before the role watcher next looks.
    await dba(`ALTER ROLE late_login PASSWORD 'late-1'; CREATE ROLE new_login LOGIN PASSWORD 'new-1'`);
    await look();
    const source = await verifiers(p.sourceClient);
    expect(Object.keys(source)).toEqual(['early_login', 'late_login', 'new_login']);
    for (const verifier of Object.values(source)) expect(verifier).toMatch(/^SCRAM-SHA-256\$/);
    expect(await verifiers(dev())).toEqual(source);

    await dba(`ALTER ROLE late_login PASSWORD 'late-2'`);
    await look();
    expect((await verifiers(dev())).late_login).toBe((await verifiers(p.sourceClient)).late_login);
  });

  it('a role created in a DBA transaction the switch commits during arrives with its verifier', async () => {
    await dba('SELECT permsync.disable_password_sync()');
    await look();
    const session = new pg.Client(p.source.url);
    await session.connect();
    try {
      // The GRANT's role check stores a snapshot without verifiers in this transaction,
      // before the switch commits; the role commits after it.
      await session.query(`BEGIN; CREATE ROLE straddler LOGIN PASSWORD 'straddler-1'; GRANT SELECT ON app.t TO straddler`);
      await dba('SELECT permsync.enable_password_sync()');
      await session.query('COMMIT');
    } finally {
      await session.end();
    }
    await look();
    const { straddler } = await verifiers(p.sourceClient, ['straddler']);
    expect(straddler).toMatch(/^SCRAM-SHA-256\$/);
    expect(await verifiers(dev(), ['straddler'])).toEqual({ straddler });
  });

  it('a password given just before capture is turned off still travels; one given after does not', async () => {
    await dba(`ALTER ROLE late_login PASSWORD 'late-3'`);
    await dba('SELECT permsync.disable_password_sync()');
    await look();
    const carried = (await verifiers(p.sourceClient)).late_login;
    expect((await verifiers(dev())).late_login).toBe(carried);

    await dba(`ALTER ROLE late_login PASSWORD 'late-4'`);
    await look();
    expect((await verifiers(p.sourceClient)).late_login).not.toBe(carried);
    expect((await verifiers(dev())).late_login).toBe(carried);
    await dba('SELECT permsync.enable_password_sync()');
    await look();
    expect(await verifiers(dev())).toEqual(await verifiers(p.sourceClient));
  });
});
