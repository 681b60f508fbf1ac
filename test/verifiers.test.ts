import pg from 'pg';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config/schema.js';
import { checkEnvironments } from '../src/drift/check.js';
import { formatText } from '../src/drift/format.js';
import { runDriftCheck } from '../src/drift/scheduled.js';
import { createLogger } from '../src/log.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

let p: Pipeline;
let config: Config;

const ROLES = ['early_login', 'late_login', 'new_login', 'straddler'];

const dba = (sql: string) => p.dba(sql);
const dev = () => p.env('dev').client;

/** Each role's verifier on one server (null: no password). */
async function verifiers(client: pg.Client, roles = ROLES): Promise<Record<string, string | null>> {
  const { rows } = await client.query<{ name: string; v: string | null }>(
    'SELECT rolname AS name, rolpassword AS v FROM pg_authid WHERE rolname = ANY ($1) ORDER BY 1',
    [roles],
  );
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

describe('drift', () => {
  /** The drift report of dev, as `permsync drift` prints it, read with `checked`'s source and dev URLs. */
  async function drift(checked = config): Promise<string> {
    const source = new pg.Client(checked.source.url);
    await source.connect();
    try {
      const [result] = await checkEnvironments(checked, source, checked.environments, { dropExtraRoles: false });
      if (!result) throw new Error('no result for dev');
      return formatText(result);
    } finally {
      await source.end();
    }
  }

  /** Runs work with a new login on `server`, made with `options`; its URL is work's. */
  async function asLogin<T>(server: typeof p.source, name: string, options: string, work: (url: string) => Promise<T>): Promise<T> {
    const admin = new pg.Client(server.url);
    await admin.connect();
    // permsync.capture is only a placeholder setting on a target.
    const uncaptured = (sql: string) => admin.query(`SET permsync.capture = 'off'; ${sql}; RESET permsync.capture`);
    try {
      await uncaptured(`CREATE ROLE ${name} LOGIN PASSWORD 'drift-pw' ${options}`);
      return await work(server.urlFor('postgres', name, 'drift-pw'));
    } finally {
      await uncaptured(`DROP ROLE ${name}`);
      await admin.end();
    }
  }

  it('reports a role whose verifier differs on the target, whoever reads the source', async () => {
    await dev().query(`ALTER ROLE early_login PASSWORD 'changed-on-dev'`);
    const expected = [
      'dev: 1 difference(s) from the source',
      '  role "early_login": password differs',
      '  -- SQL that converges dev (1 statement(s)); {"database"} is its current database:',
      `  ALTER ROLE "early_login" WITH PASSWORD '********';`,
      '',
    ].join('\n');
    expect(await drift()).toBe(expected);
    // The daemon's login may not read pg_authid: it reads the verifiers the source captures.
    await asLogin(p.source, 'drift_daemon', 'IN ROLE permsync_daemon', async (url) => {
      expect(await drift({ ...config, source: { ...config.source, url } })).toBe(expected);
    });
  });

  it("says why, in the report and in the scheduled check's record, when it cannot compare them", async () => {
    await dba('SELECT permsync.disable_password_sync()');
    await look();
    try {
      // A superuser could read them, but the source does not capture them: they would not travel.
      const off = await drift();
      expect(off).toMatch(/^dev: matches the source, password verifiers aside \(not compared: see the note\)$/m);
      expect(off).toContain(
        '  note: password verifiers are not compared: on the source, capture is off ' +
          '(an admin turns it on with SELECT permsync.enable_password_sync())',
      );
    } finally {
      await dba('SELECT permsync.enable_password_sync()');
      await look();
    }
    // A sync user that is no superuser cannot read pg_authid on its target.
    await asLogin(p.env('dev').server, 'drift_reader', '', async (url) => {
      const checked = { ...config, environments: config.environments.map((e) => ({ ...e, url })) };
      const note = 'password verifiers are not compared: on dev, "drift_reader" may not read pg_authid (only a superuser may)';
      const text = await drift(checked);
      expect(text).toMatch(/^dev: matches the source, password verifiers aside \(not compared: see the note\)$/m);
      expect(text).toContain(`  note: ${note}`);

      const source = new pg.Pool({ connectionString: p.source.url, max: 1 });
      try {
        const logger = createLogger('warn', new Writable({ write: (_chunk, _enc, done) => done() }));
        const [result] = await runDriftCheck({ config: checked, source, logger });
        expect(result).toMatchObject({ environment: 'dev', differences: 0, summary: { notes: [note] } });
      } finally {
        await source.end();
      }
      const { rows } = await p.sourceClient.query(
        `SELECT state, last_summary -> 'notes' AS notes FROM permsync.v_drift_status WHERE environment = 'dev'`,
      );
      expect(rows).toEqual([{ state: 'matches', notes: [note] }]);
    });
  });

  it("a login's own verifier over 512 bytes is not copied into the role snapshot at each role check, nor carried: the target's goes, and drift says so", async () => {
    await dba(`SELECT permsync.enable_password_sync(); CREATE ROLE big_verifier LOGIN PASSWORD 'big-1'`);
    await look();
    // A login may set its own password to any text of a verifier's shape: here one with a salt of 20 MB.
    const key = Buffer.alloc(32, 'k').toString('base64');
    const verifier = `SCRAM-SHA-256$4096:${Buffer.alloc(15_000_000, 's').toString('base64')}$${key}:${key}`;
    const login = new pg.Client(p.source.urlFor('postgres', 'big_verifier', 'big-1'));
    await login.connect();
    try {
      await login.query(`ALTER ROLE big_verifier PASSWORD '${verifier}'`);
    } finally {
      await login.end();
    }
    try {
      // A DBA's role change and a GRANT naming it: the GRANT's role check stores a new snapshot.
      await dba('CREATE ROLE after_big; GRANT SELECT ON app.t TO after_big');
      const { rows } = await p.sourceClient.query<{ bytes: number }>('SELECT octet_length(state::text) AS bytes FROM permsync.role_snapshot');
      expect(rows[0]?.bytes).toBeLessThan(1_000_000);
      await look();
      expect(await verifiers(dev(), ['big_verifier'])).toEqual({ big_verifier: null });
      const text = await drift();
      expect(text).toMatch(/^dev: 1 difference\(s\) from the source$/m);
      expect(text).toContain(
        `  role "big_verifier": password verifier of ${Buffer.byteLength(verifier)} bytes on the source, over the 512 bytes permsync carries`,
      );
    } finally {
      await dba('REVOKE SELECT ON app.t FROM after_big; DROP ROLE big_verifier, after_big');
      await look();
    }
  });
});
