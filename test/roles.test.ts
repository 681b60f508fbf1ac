import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERMSYNC_ROLES } from '../src/config/rules.js';
import type { Config } from '../src/config/schema.js';
import type { Daemon } from '../src/daemon.js';
import { permissionSnapshot, relationPrivileges } from './support/catalog.js';
import { reconcileFirst, startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { roleCatalog } from './support/roles.js';
import { settingValueSql } from '../src/sql/quote.js';
import { planChange } from '../src/plan/changes.js';
import type { RoleState } from '../src/catalog/catalog.js';

let p: Pipeline;
let daemon: Daemon;
/** The file's configuration: every environment, the managed one through its CREATEROLE user. */
let standard: Config;
const logLines: string[] = [];

/** A target where permsync connects as a CREATEROLE user, as on managed PostgreSQL. */
const MANAGED_USER = 'permsync_sync';
const PLAINTEXT = 'Plain-Text-Pa55word';
/** This file checks that every role fact can travel: the powers only a superuser guards are allowed here. */
const SETTINGS = {
  syncPasswords: true,
  carryRoleAttributes: ['SUPERUSER', 'REPLICATION', 'BYPASSRLS'] as ('SUPERUSER' | 'REPLICATION' | 'BYPASSRLS')[],
  carryPredefinedRoles: ['pg_read_all_settings'],
};

const dba = (sql: string) => p.dba(sql);

const env = (name: string) => p.env(name);

/** Waits for the role watcher to see the source's roles, and the appliers to carry what it found. */
const settleRoles = () => p.settleRoles();

/** Starts the daemon again with `config`; a test that runs it otherwise ends by calling this with none. */
async function restartDaemon(config = standard): Promise<void> {
  await daemon.stop();
  daemon = await p.startDaemon(config, logLines);
}

/** The file's configuration with the managed environment left out. */
const withoutManaged = () => p.config({ settings: SETTINGS, environments: [{}, {}, { enabled: false }] });

/** Waits for the role watcher and the appliers, then compares the full role catalogs. */
async function expectRolesEqual(names = ['dev', 'prod']): Promise<void> {
  await settleRoles();
  const outOfScope = ['postgres', MANAGED_USER, ...PERMSYNC_ROLES];
  const expected = await roleCatalog(p.sourceClient, outOfScope);
  for (const name of names) {
    expect({ env: name, roles: await roleCatalog(env(name).client, outOfScope) }).toEqual({ env: name, roles: expected });
  }
}

async function lastRoleExecution(environment: string) {
  const { rows } = await p.sourceClient.query<{
    execution_status: string;
    result_message: string | null;
    error_code: string | null;
    applied_sql: string;
  }>(
    `SELECT x.execution_status, x.result_message, x.error_code, x.applied_sql
       FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
      WHERE b.origin = 'role_watcher' AND x.environment_name = $1 ORDER BY b.commit_seq DESC, x.id DESC LIMIT 1`,
    [environment],
  );
  return rows[0];
}

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod', 'managed']);
  // The source captures verifiers only when an admin says so; the daemon's sync_passwords cannot.
  await dba('SELECT permsync.enable_password_sync()');
  await p.everywhere(`CREATE SCHEMA app; CREATE TABLE app.orders (id int)`);
  await env('managed').client.query(
    `CREATE ROLE ${MANAGED_USER} LOGIN CREATEROLE PASSWORD 'sync-pw';
     GRANT ALL ON DATABASE postgres TO ${MANAGED_USER} WITH GRANT OPTION;
     GRANT USAGE ON SCHEMA app TO ${MANAGED_USER}`,
  );
  const managed = env('managed');
  standard = p.config({
    settings: SETTINGS,
    environments: [
      {},
      {},
      { url: managed.proxy.rewrite(managed.server.urlFor('postgres', MANAGED_USER, 'sync-pw')), onPermanentFailure: 'continue' },
    ],
  });
  daemon = await p.startDaemon(standard, logLines);
});

afterAll(async () => {
  await p?.close();
});

describe('roles reach every environment', () => {
  it('creation with every attribute, comment and password verifier', async () => {
    await dba(`CREATE ROLE app_login LOGIN CREATEDB CREATEROLE NOINHERIT CONNECTION LIMIT 7
                 VALID UNTIL '2031-06-30 12:00:00+00' PASSWORD '${PLAINTEXT}'`);
    await dba(`CREATE ROLE "Ops Admin" SUPERUSER REPLICATION BYPASSRLS`);
    await dba(`COMMENT ON ROLE app_login IS 'the application''s login'`);
    await expectRolesEqual();
    // The verifier travelled: the same password logs in on a target.
    const login = new pg.Client(env('dev').server.urlFor('postgres', 'app_login', PLAINTEXT));
    await login.connect();
    await login.end();
  });

  it('a rename is a rename (the target keeps the same role), then attribute changes', async () => {
    await dba(`CREATE ROLE renamed_login LOGIN CREATEDB NOINHERIT CONNECTION LIMIT 7 VALID UNTIL '2031-06-30 12:00:00+00'`);
    await expectRolesEqual();
    const oidBefore = await roleOid(env('prod').client, 'renamed_login');
    await dba(`ALTER ROLE renamed_login RENAME TO "App Login ""2"""`);
    await dba(`ALTER ROLE "App Login ""2""" NOCREATEDB INHERIT CONNECTION LIMIT -1 VALID UNTIL 'infinity'`);
    await expectRolesEqual();
    expect(await roleOid(env('prod').client, 'App Login "2"')).toBe(oidBefore);
  });

  it('memberships with ADMIN, INHERIT and SET options, granted and revoked', async () => {
    await dba(`CREATE ROLE readers; CREATE ROLE writers; CREATE ROLE "Mixed.Case"`);
    await dba(`GRANT readers TO writers WITH ADMIN OPTION`);
    await dba(`GRANT writers TO "Mixed.Case" WITH INHERIT FALSE, SET FALSE`);
    await dba(`GRANT pg_read_all_settings TO readers`);
    await expectRolesEqual();
    await dba(`REVOKE ADMIN OPTION FOR readers FROM writers`);
    await dba(`REVOKE writers FROM "Mixed.Case"`);
    await expectRolesEqual();
  });

  it('ALTER ROLE SET, IN DATABASE SET, and RESET', async () => {
    await dba(`CREATE ROLE set_reader; CREATE ROLE set_writer`);
    await dba(`ALTER ROLE set_reader SET search_path = app, "$user", public`);
    await dba(`ALTER ROLE set_reader SET statement_timeout = '5s'`);
    await dba(`ALTER ROLE set_writer IN DATABASE postgres SET work_mem = '16MB'`);
    await expectRolesEqual();
    await dba(`ALTER ROLE set_reader RESET statement_timeout`);
    await expectRolesEqual();
  });

  it('a list setting stored from any text arrives as a value, never as SQL', async () => {
    // Any login may do this for itself: FROM CURRENT stores what set_config was given.
    await dba(`CREATE ROLE list_reader; CREATE ROLE list_writer`);
    const stored = 'app;GRANT/**/ALL/**/ON/**/app.orders/**/TO/**/public, "Odd ""Name""",  Sales';
    await dba(`SELECT set_config('search_path', '${stored.replaceAll("'", "''")}', false);
               ALTER ROLE list_reader SET search_path FROM CURRENT; RESET search_path`);
    await dba(`ALTER ROLE list_writer SET temp_tablespaces = ''`);
    await settleRoles();
    for (const name of ['dev', 'prod']) {
      const { rows } = await env(name).client.query<{ config: string[] }>(
        `SELECT setconfig AS config FROM pg_db_role_setting WHERE setrole = 'list_reader'::regrole AND setdatabase = 0`,
      );
      // PostgreSQL's own rendering of the same list: an unquoted element is an identifier, in lower case.
      expect(rows[0]?.config).toContain('search_path="app;grant/**/all/**/on/**/app.orders/**/to/**/public", "Odd ""Name""", sales');
      expect(await relationPrivileges(env(name).client, 'app.orders')).not.toContain('PUBLIC INSERT by postgres');
    }
    await dba(`ALTER ROLE list_reader RESET search_path; ALTER ROLE list_writer RESET temp_tablespaces`);
    await expectRolesEqual();
  });

  it('reconcile writes a setting as the role watcher does', async () => {
    const long = Array.from({ length: 1000 }, (_, i) => (i % 3 === 0 ? `"S ${i}"` : `s${i}`)).join(', ');
    const values = [
      '"$user", public',
      'app;DROP/**/TABLE/**/x',
      '"a,b", "c""d",  Mixed ',
      '""',
      'not "a list',
      '',
      'x,',
      'a,\vb',
      'a,\u00a0b',
      'A\u00a0B',
      'A"b',
      'a,\tb',
      ' a , b ',
      'a,,b',
      ',a',
      '"a"b',
      '"a" "b"',
      '""""',
      'a ,',
      ' ',
      // Long lists are split in one pass; past 8 kB a value is not carried, the limit counted in bytes.
      long,
      `${long}, ${'x'.repeat(8190 - Buffer.byteLength(long))}`,
      `${long}, ${'x'.repeat(8191 - Buffer.byteLength(long))}`,
      'é'.repeat(4096),
      'é'.repeat(4097),
      Array.from({ length: 100_000 }, (_, i) => `s${i}`).join(', '),
    ];
    for (const key of ['search_path', 'session_preload_libraries', 'work_mem']) {
      for (const value of values) {
        const { rows } = await p.sourceClient.query<{ sql: string }>('SELECT permsync.setting_value_sql($1, $2) AS sql', [key, value]);
        expect({ key, value, sql: settingValueSql(key, value) }).toEqual({ key, value, sql: rows[0]?.sql });
      }
    }
  });

  it('reconcile writes role attributes as the role watcher does, for every combination', async () => {
    const flags = ['superuser', 'replication', 'bypassrls', 'login', 'inherit', 'createrole', 'createdb'] as const;
    const role = (mask: number, values: Partial<RoleState> = {}): RoleState => ({
      name: 'Odd "Role"',
      ...(Object.fromEntries(flags.map((f, i) => [f, (mask & (1 << i)) !== 0])) as Record<(typeof flags)[number], boolean>),
      connlimit: -1,
      validUntil: null,
      comment: null,
      ...values,
    });
    // As the role watcher's snapshot holds a role (permsync.permission_state), with its verifier when it reads them.
    const snapshot = (r: RoleState) => ({
      name: r.name,
      ...Object.fromEntries(flags.map((f) => [f, r[f]])),
      connlimit: r.connlimit,
      validuntil: r.validUntil,
      comment: r.comment,
      ...(r.password !== undefined && { password: r.password }),
      ...(r.passwordWithheld !== undefined && { password: { withheld: r.passwordWithheld } }),
    });
    const pairs: { from?: RoleState; to: RoleState }[] = [];
    const masks = Array.from({ length: 1 << flags.length }, (_, mask) => mask);
    for (const to of masks) {
      pairs.push({ to: role(to) });
      for (const from of masks) pairs.push({ from: role(from), to: role(to) });
    }
    // No expiry goes back to none on PostgreSQL ('infinity' stands for it), so the watcher
    // never sees that; and drift takes 'infinity' for no expiry, writing none for a new role.
    const expiries = [null, '2030-01-01 00:00:00+00', '2031-06-30 12:00:00+02'];
    const values = expiries.flatMap((validUntil) =>
      [-1, 0, 5].flatMap((connlimit) =>
        [null, 'c', "it's \\ a 'role'"].flatMap((comment) =>
          [undefined, null, 'SCRAM-SHA-256$4096:c2FsdA==$a:b', 'md5a3556571e93b0d20722ba62be61e8c2d'].map((password) => ({
            validUntil,
            connlimit,
            comment,
            ...(password !== undefined && { password }),
          })),
        ),
      ),
    );
    for (const to of values) {
      pairs.push({ to: role(0b1010000, to) });
      for (const from of values) {
        if ((from.validUntil !== null && to.validUntil === null) || 'password' in from !== 'password' in to) continue;
        pairs.push({ from: role(0b1010000, from), to: role(0b1010000, to) });
      }
    }
    // A source's verifier over 512 bytes, which takes a target's away.
    const withheld = role(0b1010000, { passwordWithheld: 600 });
    pairs.push({ to: withheld });
    for (const password of [null, 'SCRAM-SHA-256$4096:c2FsdA==$a:b']) pairs.push({ from: role(0b1010000, { password }), to: withheld });
    const { rows } = await p.sourceClient.query<{ statements: Record<string, unknown>[] }>(
      `SELECT (SELECT coalesce(jsonb_agg(s), '[]') FROM permsync.role_attribute_statements(e -> 'old', e -> 'new') s) AS statements
         FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS pairs(e, i) ORDER BY i`,
      [JSON.stringify(pairs.map(({ from, to }) => ({ ...(from && { old: snapshot(from) }), new: snapshot(to) })))],
    );
    const ddl = (s: { kind?: unknown; sql?: unknown; display?: unknown; privileged?: unknown; attribute?: unknown }) => ({
      kind: s.kind,
      sql: s.sql,
      display: s.display,
      privileged: s.privileged === true,
      attribute: s.attribute ?? null,
    });
    const mismatches = pairs.flatMap(({ from, to }, i) => {
      const planned = from
        ? planChange({ type: 'role attributes', from, to }, { targetVersionNum: 170000 })
        : planChange({ type: 'role missing', role: to }, { targetVersionNum: 170000 }).slice(1);
      const typescript = planned.map((p) => ddl(p.statement));
      const sql = (rows[i]?.statements ?? []).map(ddl);
      return JSON.stringify(typescript) === JSON.stringify(sql) ? [] : [{ from, to, typescript, sql }];
    });
    expect(pairs.length).toBeGreaterThan(20_000);
    expect(mismatches.slice(0, 3)).toEqual([]);
  });

  it('privileges on the database: CONNECT, CREATE, TEMPORARY, and revoking from PUBLIC', async () => {
    await dba(`CREATE ROLE db_reader; CREATE ROLE db_writer`);
    await dba(`GRANT CONNECT, TEMPORARY ON DATABASE postgres TO db_reader`);
    await dba(`GRANT CREATE ON DATABASE postgres TO db_writer WITH GRANT OPTION`);
    await dba(`REVOKE TEMPORARY ON DATABASE postgres FROM PUBLIC`);
    await expectRolesEqual();
  });

  it('a role created and granted to in quick succession arrives before the grant', async () => {
    await dba(`CREATE ROLE quick_role`);
    await dba(`GRANT SELECT ON app.orders TO quick_role`);
    await expectRolesEqual();
    for (const name of ['dev', 'prod']) {
      expect(await relationPrivileges(env(name).client, 'app.orders')).toContain('quick_role SELECT by postgres');
    }
  });

  it('a dropped role is dropped', async () => {
    await dba(`CREATE ROLE dropped_role; GRANT SELECT ON app.orders TO dropped_role`);
    await expectRolesEqual();
    await dba(`REVOKE ALL ON app.orders FROM dropped_role; DROP ROLE dropped_role`);
    await expectRolesEqual();
  });
});

describe('what permsync never does', () => {
  it('never stores or logs the plaintext, and masks verifiers in logs, query text and applied SQL', async () => {
    await dba(`CREATE ROLE pw_reader`);
    await expectRolesEqual();
    await dba(`ALTER ROLE pw_reader LOGIN PASSWORD '${PLAINTEXT}-again'`);
    await expectRolesEqual();
    const { rows } = await p.sourceClient.query<{ verifier: string }>(`SELECT rolpassword AS verifier FROM pg_authid WHERE rolname = 'pw_reader'`);
    const verifier = rows[0]?.verifier as string;
    expect(verifier).toMatch(/^SCRAM-SHA-256\$/);
    const everything = await p.sourceClient.query<{ text: string }>(
      `SELECT concat_ws(' ', b.query_text, a.object_identity, x.applied_sql, x.result_message) AS text
         FROM permsync.batches b LEFT JOIN permsync.audit_log a ON a.batch_id = b.id
         LEFT JOIN permsync.execution_log x ON x.batch_id = b.id`,
    );
    const stored = everything.rows.map((r) => r.text).join('\n');
    expect(stored).toContain(`ALTER ROLE pw_reader WITH PASSWORD '********'`);
    expect(stored).not.toContain(PLAINTEXT);
    expect(stored).not.toContain(verifier);
    const logs = logLines.join('');
    expect(logs).toContain('role changes captured');
    expect(logs).not.toContain(PLAINTEXT);
    expect(logs).not.toContain(verifier.slice(0, 40));
  });

  it('leaves excluded roles and the sync users alone', async () => {
    await dba(`ALTER ROLE postgres SET work_mem = '3MB'`);
    await dba(`CREATE ROLE ${MANAGED_USER}`); // a role named like a target's sync user
    await expectRolesEqual(['dev', 'prod']);
    const managed = await env('managed').client.query<{ super: boolean; login: boolean }>(
      `SELECT rolcreaterole AS super, rolcanlogin AS login FROM pg_roles WHERE rolname = $1`,
      [MANAGED_USER],
    );
    expect(managed.rows[0]).toEqual({ super: true, login: true }); // untouched: still its own attributes
    const { rows } = await env('dev').client.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM pg_db_role_setting WHERE setrole = 'postgres'::regrole`,
    );
    expect(rows[0]?.n).toBe('0');
    await dba(`ALTER ROLE postgres RESET work_mem; DROP ROLE ${MANAGED_USER}`);
    // Carried before the next test, whose last role watcher batch is its own.
    await expectRolesEqual(['dev', 'prod']);
  });
});

describe('a sync user without SUPERUSER (CREATEROLE only)', () => {
  it('creates and alters what it may, and logs the rest as skipped with the reason', async () => {
    await dba(`CREATE ROLE managed_app LOGIN CONNECTION LIMIT 3`);
    await dba(`CREATE ROLE managed_super SUPERUSER`);
    await expectRolesEqual();
    const { rows } = await env('managed').client.query<{ rolname: string; rolsuper: boolean; rolconnlimit: number }>(
      `SELECT rolname, rolsuper, rolconnlimit FROM pg_roles WHERE rolname IN ('managed_app', 'managed_super') ORDER BY 1`,
    );
    expect(rows).toEqual([
      { rolname: 'managed_app', rolsuper: false, rolconnlimit: 3 },
      { rolname: 'managed_super', rolsuper: false, rolconnlimit: -1 },
    ]);
    expect(await lastRoleExecution('managed')).toMatchObject({
      execution_status: 'success',
      result_message: expect.stringContaining('skipped "ALTER ROLE managed_super WITH SUPERUSER": only a superuser may do this'),
    });
  });
});

describe('changes made while the daemon is down', () => {
  it('are found at its next start', async () => {
    await daemon.stop();
    await dba(`CREATE ROLE down_group; CREATE ROLE created_while_down LOGIN; GRANT down_group TO created_while_down`);
    daemon = await p.startDaemon(withoutManaged(), logLines);
    try {
      await expectRolesEqual();
    } finally {
      await restartDaemon();
    }
  });
});

describe('a role the DBA releases and drops (REASSIGN OWNED, DROP OWNED, DROP ROLE)', () => {
  it('is released on each target as it was on the source, then dropped there', async () => {
    await p.everywhere(`CREATE TABLE app.ledger (id int, amount int);
      CREATE TYPE public.mood AS ENUM ('ok'); CREATE FUNCTION public.cheer(public.mood) RETURNS int LANGUAGE sql AS 'SELECT 1'`);
    await dba(`CREATE ROLE leaver; CREATE ROLE successor`);
    await expectRolesEqual();
    // A schema and a table the role made itself, as migrations would everywhere.
    await p.everywhere(`CREATE SCHEMA leaver_space AUTHORIZATION leaver; SET ROLE leaver; CREATE TABLE leaver_space.journal (id int); RESET ROLE`);
    // A routine whose argument type needs its schema named, and a privilege the role passed on.
    await dba(`GRANT EXECUTE ON FUNCTION public.cheer(public.mood) TO leaver`);
    await dba(`GRANT USAGE ON SCHEMA app TO leaver; GRANT INSERT ON app.orders TO leaver WITH GRANT OPTION`);
    await dba(`SET ROLE leaver; GRANT INSERT ON app.orders TO successor; RESET ROLE`);
    await dba(`ALTER TABLE app.ledger OWNER TO leaver`);
    await dba(`GRANT SELECT ON app.orders TO leaver`);
    await dba(`GRANT UPDATE (id) ON app.orders TO leaver`);
    await dba(`GRANT CONNECT ON DATABASE postgres TO leaver`);
    await dba(`ALTER DEFAULT PRIVILEGES FOR ROLE leaver IN SCHEMA app GRANT SELECT ON TABLES TO successor`);
    await dba(`ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT INSERT ON TABLES TO leaver`);
    await expectRolesEqual();
    for (const name of ['dev', 'prod']) expect(await relevantPermissions(env(name).client)).toEqual(await relevantPermissions(p.sourceClient));
    expect((await relevantPermissions(env('dev').client)).filter((line) => line.includes('leaver'))).not.toEqual([]);

    // No event trigger fires for REASSIGN OWNED, and DROP OWNED is not replayed.
    await dba(`REASSIGN OWNED BY leaver TO successor; DROP OWNED BY leaver; DROP ROLE leaver`);
    await expectRolesEqual();
    for (const name of ['dev', 'prod']) {
      expect(await roleOid(env(name).client, 'leaver')).toBeUndefined();
      expect(await relevantPermissions(env(name).client)).toEqual(await relevantPermissions(p.sourceClient));
      expect(await lastRoleExecution(name)).toMatchObject({ execution_status: 'success' });
    }
    expect(await relevantPermissions(p.sourceClient)).toContain('r app.ledger owner successor');
    for (const name of ['dev', 'prod']) {
      const { rows } = await env(name).client.query<{ schema: string; table: string }>(
        `SELECT n.nspowner::regrole::text AS schema, c.relowner::regrole::text AS table
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'leaver_space.journal'::regclass`,
      );
      expect(rows[0], name).toEqual({ schema: 'successor', table: 'successor' });
    }
  });

  /** A table of `leaver` on every server, once `roles` created it (and others) on the targets. */
  async function tableOf(leaver: string, table: string, roles: string): Promise<void> {
    await p.everywhere(`CREATE TABLE ${table} (id int)`);
    await dba(roles);
    await expectRolesEqual();
    await dba(`ALTER TABLE ${table} OWNER TO ${leaver}`);
    await p.settle();
  }

  /**
   * A table of `leaver` on every server (tableOf); with the daemon down, `script` on the source gives
   * it to `heir` and drops `leaver`, so that the role watcher sees it all in one look.
   */
  async function dropWhileDown(table: string, roles: string, leaver: string, script: string, heir: string, after?: string): Promise<void> {
    await tableOf(leaver, table, roles);
    await daemon.stop();
    const { rows: seq } = await p.sourceClient.query<{ last: string }>(`SELECT coalesce(max(commit_seq), 0)::text AS last FROM permsync.batches`);
    await dba(script);
    if (after !== undefined) await dba(after);
    daemon = await p.startDaemon(withoutManaged(), logLines);
    try {
      await expectRolesEqual();
      await p.settle();
      for (const name of ['dev', 'prod']) {
        const { rows } = await env(name).client.query<{ owner: string }>(
          `SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = $1::regclass`,
          [table],
        );
        expect(rows[0]?.owner, name).toBe(heir);
        expect(await relationPrivileges(env(name).client, table), name).toEqual(await relationPrivileges(p.sourceClient, table));
        expect(await lastRoleExecution(name), name).toMatchObject({ execution_status: 'success' });
        const { rows: unsettled } = await p.sourceClient.query(
          `SELECT x.batch_id, x.execution_status, x.result_message FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
            WHERE x.environment_name = $1 AND b.commit_seq > $2 AND x.execution_status <> 'success'`,
          [name, seq[0]?.last],
        );
        expect(unsettled, name).toEqual([]);
      }
    } finally {
      await restartDaemon();
    }
  }

  it('the same while the daemon is down, to an owner created meanwhile', async () => {
    await dropWhileDown(
      'app.archive',
      'CREATE ROLE leaver_late',
      'leaver_late',
      'CREATE ROLE heir; REASSIGN OWNED BY leaver_late TO heir; DROP ROLE leaver_late',
      'heir',
    );
  });

  it('the same while the daemon is down, to an owner renamed meanwhile', async () => {
    // The target has the heir under its old name until the batch's rename, which comes after the drop.
    await dropWhileDown(
      'app.records',
      'CREATE ROLE leaver_renamed; CREATE ROLE heir_before',
      'leaver_renamed',
      'ALTER ROLE heir_before RENAME TO heir_after; REASSIGN OWNED BY leaver_renamed TO heir_after; DROP ROLE leaver_renamed',
      'heir_after',
    );
  });

  it('the same while the daemon is down, to an owner dropped and created again in that moment, granted to afterwards', async () => {
    // The new owner takes a name the look frees: the target has it only after the batch's DROP ROLE of the old one.
    await dropWhileDown(
      'app.reborn',
      'CREATE ROLE leaver_reborn; CREATE ROLE heir_reborn',
      'leaver_reborn',
      'DROP ROLE heir_reborn; CREATE ROLE heir_reborn; REASSIGN OWNED BY leaver_reborn TO heir_reborn; DROP ROLE leaver_reborn',
      'heir_reborn',
      'GRANT SELECT ON app.reborn TO heir_reborn',
    );
  });

  it("the same while the daemon is down, a CREATEROLE login's: a new role renamed onto the name of the one it dropped gets its objects, and the environment goes on", async () => {
    // Not a DBA: a login with CREATEROLE may do all of it to the roles it created.
    await dropWhileDown(
      'app.handover',
      'CREATE ROLE mallory_cr CREATEROLE; SET ROLE mallory_cr; CREATE ROLE m_victim; RESET ROLE',
      'm_victim',
      `SET ROLE mallory_cr; CREATE ROLE m_tmp; GRANT m_victim, m_tmp TO mallory_cr;
       REASSIGN OWNED BY m_victim TO m_tmp; DROP ROLE m_victim; ALTER ROLE m_tmp RENAME TO m_victim; RESET ROLE`,
      'm_victim',
      'GRANT SELECT ON app.handover TO m_victim',
    );
  });

  it('the same while the daemon is down, behind a hundred and forty roles with long comments made in that moment', async () => {
    // Their creations and comments take over 1 MB: the heir's CREATE ROLE still comes in the drop's batch.
    const pads = Array.from({ length: 140 }, (_, i) => `commented_pad${i}`);
    const comment = 'x'.repeat(8000);
    try {
      await dropWhileDown(
        'app.behind',
        'CREATE ROLE leaver_behind',
        'leaver_behind',
        `${pads.map((r) => `CREATE ROLE ${r}; COMMENT ON ROLE ${r} IS '${comment}'`).join(';\n')};
         CREATE ROLE heir_behind; REASSIGN OWNED BY leaver_behind TO heir_behind; DROP ROLE leaver_behind;
         ALTER ROLE heir_behind RENAME TO leaver_behind`,
        'leaver_behind',
      );
    } finally {
      await p.everywhere('DROP TABLE app.behind');
      await dba(`DROP ROLE leaver_behind, ${pads.join(', ')}`);
      await settleRoles();
    }
  }, 120_000);

  it('the same while the daemon is down, while a CREATEROLE login renames hundreds of roles with long names in that moment', async () => {
    // Names of control characters print six bytes each in the role watcher's statements:
    // 400 renames take over 1 MB, but cannot come between a DBA's drop and the heir's creation.
    const names = (prefix: string) => `SELECT '${prefix}' || i || repeat(chr(1), 55) AS name FROM generate_series(1, 400) i`;
    const each = (query: string, sql: string) => `DO $$ DECLARE r record; BEGIN FOR r IN ${query} LOOP EXECUTE ${sql}; END LOOP; END $$`;
    try {
      await dropWhileDown(
        'app.renamed_around',
        `CREATE ROLE leaver_around; CREATE ROLE mallory_around CREATEROLE;
         SET ROLE mallory_around; ${each(names('ctl_'), `format('CREATE ROLE %I', r.name)`)}; RESET ROLE`,
        'leaver_around',
        `SET ROLE mallory_around;
         ${each(names('ctl_'), `format('ALTER ROLE %I RENAME TO %I', r.name, replace(r.name, 'ctl_', 'ren_'))`)};
         RESET ROLE;
         CREATE ROLE heir_around; REASSIGN OWNED BY leaver_around TO heir_around; DROP ROLE leaver_around;
         ALTER ROLE heir_around RENAME TO leaver_around`,
        'leaver_around',
      );
    } finally {
      await p.everywhere('DROP TABLE app.renamed_around');
      await dba(`${each(names('ren_'), `format('DROP ROLE %I', r.name)`)}; DROP ROLE leaver_around, mallory_around`);
      // Each target releases each of the 400 roles before it drops it.
      await p.settleRoles(90_000);
    }
  }, 120_000);

  it('a new owner the rules keep off a target gets nothing there, nor does the role of its name the look dropped', async () => {
    await tableOf('leaver_kept_off', 'app.kept_off', 'CREATE ROLE leaver_kept_off; CREATE ROLE heir_kept_off');
    await daemon.stop();
    const { rows: seq } = await p.sourceClient.query<{ last: string }>(`SELECT coalesce(max(commit_seq), 0)::text AS last FROM permsync.batches`);
    await dba('DROP ROLE heir_kept_off; CREATE ROLE heir_kept_off; REASSIGN OWNED BY leaver_kept_off TO heir_kept_off; DROP ROLE leaver_kept_off');
    const rules = [
      { action: 'exclude' as const, commandTag: 'DROP ROLE' as const },
      { action: 'exclude' as const, commandTag: 'CREATE ROLE' as const },
    ];
    daemon = await p.startDaemon(p.config({ settings: SETTINGS, environments: [{}, { rules }, { enabled: false }] }), logLines);
    try {
      await settleRoles();
      const { rows } = await env('prod').client.query<{ owner: string }>(
        `SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'app.kept_off'::regclass`,
      );
      // Not the heir_kept_off prod still has: the source dropped that one.
      expect(rows[0]?.owner).toBe('leaver_kept_off');
      const { rows: logged } = await p.sourceClient.query<{ applied_sql: string }>(
        `SELECT x.applied_sql FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
          WHERE x.environment_name = 'prod' AND b.origin = 'role_watcher' AND b.commit_seq > $1`,
        [seq[0]?.last],
      );
      expect(logged).not.toEqual([]);
      expect(logged.map((l) => l.applied_sql).join('\n')).not.toContain('OWNER TO');
    } finally {
      await restartDaemon();
      // What the rules kept off prod, which the other tests compare with the source.
      await p.everywhere('DROP TABLE app.kept_off');
      await env('prod').client.query('DROP ROLE leaver_kept_off');
    }
  });

  it("a drop that still fails after the role went by a name of permsync's names the role in its way out", async () => {
    await tableOf('leaver_way_out', 'app.way_out', 'CREATE ROLE leaver_way_out; CREATE ROLE heir_way_out');
    // An object of the role's that only prod has keeps the DROP ROLE from succeeding there.
    await env('prod').client.query('CREATE TABLE app.way_out_prod (id int); ALTER TABLE app.way_out_prod OWNER TO leaver_way_out');
    await dba('DROP ROLE heir_way_out; CREATE ROLE heir_way_out; REASSIGN OWNED BY leaver_way_out TO heir_way_out; DROP ROLE leaver_way_out');
    await waitFor(async () => (await lastRoleExecution('prod'))?.execution_status === 'failed', 15_000, 'prod to refuse the drop');
    const failed = await lastRoleExecution('prod');
    expect(failed?.error_code).toBe('2BP01');
    expect(failed?.result_message).toContain('leave "leaver_way_out" there with');
    const { rows } = await p.sourceClient.query<{ hint: string }>(
      `SELECT x.error_hint AS hint FROM permsync.execution_log x WHERE x.environment_name = 'prod' AND x.execution_status = 'failed' ORDER BY x.id DESC LIMIT 1`,
    );
    expect(rows[0]?.hint).toContain('REASSIGN OWNED BY "leaver_way_out" TO <role>');
    expect(rows[0]?.hint).not.toContain('permsync_dropping_');
    // The way out works: released there, the retry goes through, and nothing of permsync's is left.
    await env('prod').client.query('DROP TABLE app.way_out_prod');
    await dba(`SELECT permsync.retry_failed('prod')`);
    await waitFor(async () => (await lastRoleExecution('prod'))?.execution_status === 'success', 15_000, 'prod to carry the drop');
    const { rows: owner } = await env('prod').client.query<{ owner: string }>(
      `SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'app.way_out'::regclass`,
    );
    expect(owner[0]?.owner).toBe('heir_way_out');
    const { rows: left } = await env('prod').client.query(
      `SELECT rolname FROM pg_roles WHERE rolname LIKE 'permsync\\_dropping\\_%' OR rolname = 'leaver_way_out'`,
    );
    expect(left).toEqual([]);
  });

  /** The state of each environment named, as v_environment_status says, in their order. */
  async function states(names: string[]): Promise<string[]> {
    const { rows } = await p.sourceClient.query<{ state: string }>(
      `SELECT s.state FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i) JOIN permsync.v_environment_status s ON s.environment = n.name ORDER BY n.i`,
      [names],
    );
    return rows.map((r) => r.state);
  }

  /**
   * A table of `leaver` on every server (tableOf) and `${table}_prod` of its on prod alone;
   * with the daemon down, `script` drops `leaver` on the source. The owners of both on prod
   * afterwards, and whether each owner may log in.
   */
  async function dropWithProdOnly(
    table: string,
    roles: string,
    leaver: string,
    script: string,
  ): Promise<{ table: string; owner: string; login: boolean }[]> {
    await tableOf(leaver, table, roles);
    await env('prod').client.query(`CREATE TABLE ${table}_prod (id int); ALTER TABLE ${table}_prod OWNER TO ${leaver}`);
    await daemon.stop();
    await dba(script);
    daemon = await p.startDaemon(withoutManaged(), logLines);
    await settleRoles();
    const { rows } = await env('prod').client.query<{ table: string; owner: string; login: boolean }>(
      `SELECT c.relname AS table, r.rolname AS owner, r.rolcanlogin AS login FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
        WHERE c.oid IN ($1::regclass, $2::regclass) ORDER BY 1`,
      [table, `${table}_prod`],
    );
    return rows;
  }

  it("a CREATEROLE login's drop of a role that owns a table prod alone has, whose objects go to a new role of its name, leaves it on prod locked under a name of permsync's", async () => {
    try {
      const rows = await dropWithProdOnly(
        'app.aside',
        'CREATE ROLE mallory_as CREATEROLE; SET ROLE mallory_as; CREATE ROLE m_aside LOGIN; RESET ROLE',
        'm_aside',
        `SET ROLE mallory_as; CREATE ROLE m_as_tmp; GRANT m_aside, m_as_tmp TO mallory_as;
         REASSIGN OWNED BY m_aside TO m_as_tmp; DROP ROLE m_aside; ALTER ROLE m_as_tmp RENAME TO m_aside; RESET ROLE`,
      );
      // The source's table went to its new m_aside; prod's own table stays with the old role, locked.
      expect(rows).toEqual([
        { table: 'aside', owner: 'm_aside', login: false },
        { table: 'aside_prod', owner: expect.stringMatching(/^permsync_dropping_[0-9a-f]{16}$/), login: false },
      ]);
      const { rows: conflicts } = await p.sourceClient.query<{ role: string; reason: string }>(
        `SELECT role_name AS role, reason FROM permsync.v_role_conflicts WHERE environment_name = 'prod' AND role_name LIKE 'permsync\\_dropping\\_%'`,
      );
      expect(conflicts).toEqual([
        {
          role: rows[1]?.owner,
          reason: expect.stringMatching(
            /^the source dropped this role \(the source's "m_aside", renamed for the batch, whose name a new role has\), and prod could not: owner of table app\.aside_prod/,
          ),
        },
      ]);
      expect(await states(['prod'])).toEqual(['ok']);
    } finally {
      await restartDaemon();
      await p.everywhere('DROP TABLE app.aside');
      const { rows: left } = await env('prod').client.query<{ name: string }>(
        `SELECT rolname AS name FROM pg_roles WHERE rolname LIKE 'permsync\\_dropping\\_%'`,
      );
      await env('prod').client.query('DROP TABLE app.aside_prod');
      for (const { name } of left) await env('prod').client.query(`DROP ROLE "${name}"`);
      await dba('DROP ROLE m_aside, mallory_as');
      await settleRoles();
      await dba(`UPDATE permsync.role_conflicts SET resolved_at = now(), resolution = 'test cleanup' WHERE role_name LIKE 'permsync\\_dropping\\_%'`);
    }
  });

  it("a CREATEROLE login's drop that prod refuses, and a role of hers renamed onto its name in that moment, hold nothing there", async () => {
    try {
      const rows = await dropWithProdOnly(
        'app.named',
        'CREATE ROLE mallory_nm CREATEROLE; SET ROLE mallory_nm; CREATE ROLE m_named LOGIN; CREATE ROLE m_next; RESET ROLE',
        'm_named',
        `SET ROLE mallory_nm; GRANT m_named, m_next TO mallory_nm;
         REASSIGN OWNED BY m_named TO m_next; DROP ROLE m_named; ALTER ROLE m_next RENAME TO m_named; RESET ROLE`,
      );
      // The source's table went to the renamed role, which prod keeps under its old name; prod's own stays with the old role, locked.
      expect(rows).toEqual([
        { table: 'named', owner: 'm_next', login: false },
        { table: 'named_prod', owner: 'm_named', login: false },
      ]);
      expect(await states(['prod'])).toEqual(['ok']);
    } finally {
      await restartDaemon();
      await p.everywhere('DROP TABLE app.named');
      await env('prod').client.query('DROP TABLE app.named_prod');
      await dba('DROP ROLE m_named, mallory_nm');
      await settleRoles();
      for (const name of ['dev', 'prod', 'managed']) await env(name).client.query('DROP ROLE IF EXISTS m_named; DROP ROLE IF EXISTS m_next');
      await dba(`UPDATE permsync.role_conflicts SET resolved_at = now(), resolution = 'test cleanup' WHERE role_name IN ('m_named', 'm_next')`);
    }
  });

  it("a CREATEROLE login's drop that no release can follow leaves the role on each target as the target's own, locked, and holds no environment", async () => {
    // The table goes with DROP OWNED on the source, which is never replayed: no target can
    // release the role, and a role of hers takes its name in that moment.
    await tableOf(
      'm_leaver',
      'app.padded',
      `CREATE ROLE mallory_pad CREATEROLE; CREATE ROLE pii_pad; SET ROLE mallory_pad; CREATE ROLE m_leaver LOGIN;
       GRANT m_leaver TO mallory_pad; RESET ROLE; GRANT pii_pad TO m_leaver`,
    );
    await daemon.stop();
    const { rows: seq } = await p.sourceClient.query<{ last: string }>(`SELECT coalesce(max(commit_seq), 0)::text AS last FROM permsync.batches`);
    await dba(`SET ROLE mallory_pad; CREATE ROLE m_tmp; GRANT m_tmp TO mallory_pad;
      DROP OWNED BY m_leaver; DROP ROLE m_leaver; ALTER ROLE m_tmp RENAME TO m_leaver; RESET ROLE`);
    daemon = await p.startDaemon(withoutManaged(), logLines);
    try {
      await waitFor(
        async () => (await p.sourceClient.query<{ same: boolean }>('SELECT permsync.role_snapshot_matches(false) AS same')).rows[0]?.same === true,
        10_000,
        'the role watcher to see the change',
      );
      const { rows: batches } = await p.sourceClient.query<{ n: number }>(`SELECT count(*)::int AS n FROM permsync.batches WHERE commit_seq > $1`, [
        seq[0]?.last,
      ]);
      // Each target runs the drop's batch a statement at a time to find the one it refuses, then again.
      const ran = async () =>
        (
          await p.sourceClient.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
              WHERE x.environment_name IN ('dev', 'prod') AND b.commit_seq > $1`,
            [seq[0]?.last],
          )
        ).rows[0]?.n;
      await waitFor(async () => (await ran()) === 2 * (batches[0]?.n ?? 0), 60_000, 'dev and prod to run the look');
      // A DBA's change afterwards goes through.
      await dba('CREATE ROLE after_padding');
      await settleRoles();
      for (const name of ['dev', 'prod']) {
        const { rows } = await env(name).client.query<{ owner: string; login: boolean; members: number }>(
          `SELECT c.relowner::regrole::text AS owner, r.rolcanlogin AS login,
                  (SELECT count(*)::int FROM pg_auth_members m WHERE m.roleid = r.oid OR m.member = r.oid) AS members
             FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = 'app.padded'::regclass`,
        );
        // The table stays with the role it had there, which the source's new m_leaver is not; no one acts as it, nor does it act as another role.
        expect(rows[0], name).toEqual({ owner: 'm_leaver', login: false, members: 0 });
        const { rows: failed } = await p.sourceClient.query(
          `SELECT x.batch_id, x.result_message FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
            WHERE x.environment_name = $1 AND b.commit_seq > $2 AND x.execution_status NOT IN ('success', 'skipped')`,
          [name, seq[0]?.last],
        );
        expect(failed, name).toEqual([]);
        const { rows: conflicts } = await p.sourceClient.query<{ reason: string }>(
          `SELECT reason FROM permsync.v_role_conflicts WHERE environment_name = $1 AND role_name = 'm_leaver'`,
          [name],
        );
        expect(conflicts.map((c) => c.reason)).toEqual([
          expect.stringMatching(/^the source dropped this role, and \w+ could not: owner of table app\.padded/),
        ]);
        const { rows: left } = await p.sourceClient.query<{ message: string }>(
          `SELECT x.result_message AS message FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
            WHERE x.environment_name = $1 AND b.commit_seq > $2 AND x.result_message LIKE '%"DROP ROLE IF EXISTS m_leaver": refused here (owner of table app.padded); the role is left here%'`,
          [name, seq[0]?.last],
        );
        expect(left).toHaveLength(1);
      }
      expect(await states(['dev', 'prod'])).toEqual(['ok', 'ok']);
      // The way out its message gives: release and drop the role left on dev, then reconcile there.
      await env('dev').client.query('REASSIGN OWNED BY m_leaver TO postgres; DROP OWNED BY m_leaver; DROP ROLE m_leaver');
      await reconcileFirst(p);
      // The source's m_leaver, made of her m_tmp, with its memberships.
      const members = `SELECT member::regrole::text AS member, grantor::regrole::text AS grantor, admin_option AS admin
                         FROM pg_auth_members WHERE roleid = 'm_leaver'::regrole ORDER BY 1, 2`;
      const { rows: after } = await env('dev').client.query(members);
      expect(after).toEqual((await p.sourceClient.query(members)).rows);
      expect(after).toContainEqual(expect.objectContaining({ member: 'mallory_pad' }));
    } finally {
      await restartDaemon();
      // What the targets keep as their own, which the other tests compare with the source.
      await p.everywhere('DROP TABLE IF EXISTS app.padded');
      await dba(`DROP ROLE m_leaver, after_padding, mallory_pad, pii_pad`);
      await waitFor(
        async () => (await env('prod').client.query(`SELECT FROM pg_roles WHERE rolname = 'mallory_pad'`)).rows.length === 0,
        90_000,
        'prod to carry the clean-up',
      );
      await settleRoles();
      for (const name of ['dev', 'prod', 'managed']) await env(name).client.query('DROP ROLE IF EXISTS m_leaver');
      await dba(`UPDATE permsync.role_conflicts SET resolved_at = now(), resolution = 'test cleanup' WHERE role_name = 'm_leaver'`);
    }
  }, 240_000);

  it("a chain: a dropped role's objects its heir gives on while no target has run the DROP ROLE reach each target as the source has them", async () => {
    await p.everywhere('CREATE TABLE app.chain_report (id int)');
    await dba('CREATE ROLE chain_first; CREATE ROLE chain_heir; CREATE ROLE chain_last');
    await expectRolesEqual();
    await p.everywhere('ALTER TABLE app.chain_report OWNER TO chain_first');
    await p.settle();
    const environments = ['dev', 'prod', 'managed'];
    const pause = (action: 'pause' | 'resume') =>
      Promise.all(environments.map((name) => p.sourceClient.query(`SELECT permsync.${action}_environment($1)`, [name])));
    // No target's release of chain_first notes whose the table is: the role watcher's look alone does.
    await pause('pause');
    try {
      await dba('REASSIGN OWNED BY chain_first TO chain_heir; DROP OWNED BY chain_first; DROP ROLE chain_first');
      const noted = async () =>
        (
          await p.sourceClient.query<{ owner: string }>(
            `SELECT o.owner_oid::regrole::text AS owner FROM permsync.object_owners o
              WHERE o.classid = 'pg_class'::regclass AND o.objid = 'app.chain_report'::regclass ORDER BY o.noted DESC LIMIT 1`,
          )
        ).rows[0]?.owner;
      await waitFor(async () => (await noted()) === 'chain_heir', 10_000, "the look to note the heir's table");
      await dba('REASSIGN OWNED BY chain_heir TO chain_last');
      await waitFor(async () => (await noted()) === 'chain_last', 10_000, "the look to note the last owner's table");
      // The heir's REASSIGN OWNED is one the look converges: it found the table the heir's.
      const { rows } = await p.sourceClient.query<{ reassigned_from: string; owner: string }>(
        `SELECT a.reassigned_from, a.current_user_name AS owner FROM permsync.audit_log a JOIN permsync.batches b ON b.id = a.batch_id
          WHERE b.origin = 'owner_watcher' AND a.object_identity = 'app.chain_report'`,
      );
      expect(rows).toEqual([{ reassigned_from: 'chain_heir', owner: 'chain_last' }]);
    } finally {
      await pause('resume');
    }
    await expectRolesEqual();
    await p.settle();
    // The managed environment's CREATEROLE user may not give the table away: dev and prod are the ones to compare.
    for (const name of ['dev', 'prod']) {
      const { rows } = await env(name).client.query<{ owner: string }>(
        `SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'app.chain_report'::regclass`,
      );
      expect(rows[0]?.owner, name).toBe('chain_last');
    }
  });
});

/** The permissions the release test changes: on its two tables, and default privileges. */
async function relevantPermissions(client: pg.Client): Promise<string[]> {
  const lines = await permissionSnapshot(client);
  return lines.filter((line) => /^(r app\.(ledger|orders)|column app\.orders\.|default |function (public\.)?cheer|schema app )/.test(line));
}

describe('DROP ROLE of a role that still owns objects on a target', () => {
  it('fails there with its SQLSTATE, and nothing is reassigned or dropped behind the DBA', async () => {
    await dba(`CREATE ROLE owner_elsewhere`);
    await expectRolesEqual();
    await env('prod').client.query(`CREATE TABLE app.prod_only (id int); ALTER TABLE app.prod_only OWNER TO owner_elsewhere`);
    await dba(`DROP ROLE owner_elsewhere`);
    await waitFor(async () => (await lastRoleExecution('prod'))?.execution_status === 'failed', 10_000, 'prod to refuse the drop');
    expect(await lastRoleExecution('prod')).toMatchObject({ error_code: '2BP01' });
    const { rows } = await env('prod').client.query<{ owner: string }>(
      `SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'app.prod_only'::regclass`,
    );
    expect(rows[0]?.owner).toBe('owner_elsewhere');
    await waitFor(async () => (await lastRoleExecution('dev'))?.execution_status === 'success', 10_000, 'dev to drop it');
    // prod holds on the drop until its DBA deals with what the role owns there.
    await env('prod').client.query(`DROP TABLE app.prod_only`);
    await dba(`SELECT permsync.retry_failed('prod')`);
    await waitFor(async () => (await lastRoleExecution('prod'))?.execution_status === 'success', 10_000, 'prod to drop it');
  });
});

async function roleOid(client: pg.Client, name: string): Promise<string | undefined> {
  const { rows } = await client.query<{ oid: string }>(`SELECT oid::text FROM pg_roles WHERE rolname = $1`, [name]);
  return rows[0]?.oid;
}
