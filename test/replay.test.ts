import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { permissionSnapshot, relationPrivileges } from './support/catalog.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

let p: Pipeline;

/** The same roles and objects on every server: permsync carries permissions, not schema. */
const FIXTURES = `
  CREATE ROLE app; CREATE ROLE reader; CREATE ROLE "Mixed Case Role"; CREATE ROLE "Ünïcode ""Quoted""";
  CREATE ROLE team_owner LOGIN PASSWORD 'team-owner-pw'; CREATE ROLE app_writer;
  CREATE SCHEMA sales; CREATE SCHEMA "Reporting Schema";
  CREATE TABLE sales.orders (id int, amount numeric, "Secret Note" text);
  CREATE TABLE sales.refunds (id int);
  CREATE TABLE "Reporting Schema"."Monthly ""Totals""" (month date);
  CREATE VIEW sales.order_view AS SELECT id FROM sales.orders;
  CREATE SEQUENCE sales.order_seq;
  CREATE FUNCTION sales.total(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
  CREATE TABLE sales.team_table (id int);
  ALTER TABLE sales.team_table OWNER TO team_owner;
  GRANT USAGE ON SCHEMA sales TO team_owner;
  GRANT app TO team_owner`;

const dba = (sql: string) => p.dba(sql);

async function expectEveryTargetEqualsSource(): Promise<void> {
  await p.settle();
  const expected = await permissionSnapshot(p.sourceClient);
  for (const env of p.environments) {
    expect({ env: env.name, lines: await permissionSnapshot(env.client) }).toEqual({ env: env.name, lines: expected });
  }
}

/** The outcomes of the batch a client string wrote (stored with its literals masked). */
interface Execution {
  environment_name: string;
  execution_status: string;
  error_code: string | null;
  result_message: string | null;
  applied_sql: string | null;
}

async function executions(batchText: string): Promise<Execution[]> {
  const { rows } = await p.sourceClient.query<Execution>(
    `SELECT x.environment_name, x.execution_status, x.error_code, x.result_message, x.applied_sql
       FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
      WHERE b.query_text = permsync.masked_text($1) ORDER BY x.environment_name`,
    [batchText],
  );
  return rows;
}

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod']);
  await p.everywhere(FIXTURES);
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  await p.startDaemon();
});

afterAll(async () => {
  await p?.close();
});

describe('each kind of permission statement reaches every environment', () => {
  it('GRANT and REVOKE on tables, columns, views, sequences, functions and schemas', async () => {
    await dba(`GRANT SELECT, INSERT ON sales.orders TO app WITH GRANT OPTION`);
    await dba(`GRANT SELECT ("Secret Note"), UPDATE (amount) ON sales.orders TO reader`);
    await dba(`GRANT SELECT ON sales.order_view TO reader`);
    await dba(`GRANT USAGE, SELECT ON SEQUENCE sales.order_seq TO app`);
    await dba(`REVOKE EXECUTE ON FUNCTION sales.total(int) FROM PUBLIC`);
    await dba(`GRANT EXECUTE ON FUNCTION sales.total(int) TO app`);
    await dba(`GRANT USAGE ON SCHEMA sales TO reader`);
    await dba(`GRANT SELECT ON ALL TABLES IN SCHEMA sales TO reader`);
    await dba(`REVOKE INSERT ON sales.orders FROM app`);
    await expectEveryTargetEqualsSource();
    // Granted as the table's owner, whichever role another test made it.
    const {
      rows: [orders],
    } = await p.sourceClient.query<{ owner: string }>(`SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'sales.orders'::regclass`);
    expect(await relationPrivileges(p.environments[1]!.client, 'sales.orders')).toContain(`app SELECT* by ${orders?.owner}`);
  });

  it('ALTER DEFAULT PRIVILEGES, with and without FOR ROLE, as the user who ran it', async () => {
    await dba(`ALTER DEFAULT PRIVILEGES IN SCHEMA sales GRANT SELECT ON TABLES TO reader`);
    await dba(`ALTER DEFAULT PRIVILEGES FOR ROLE team_owner GRANT USAGE ON SEQUENCES TO app`);
    await dba(`ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`);
    await expectEveryTargetEqualsSource();
    const { rows } = await p.environments[0]!.client.query<{ role: string }>(
      `SELECT pg_get_userbyid(defaclrole) AS role FROM pg_default_acl ORDER BY 1`,
    );
    // Without FOR ROLE the source's current user (postgres), never the sync user by accident.
    expect(rows.map((r) => r.role)).toEqual(['postgres', 'postgres', 'team_owner']);
  });

  it('ownership changes of tables, views, sequences, functions and schemas', async () => {
    await dba(`ALTER TABLE sales.refunds OWNER TO app`);
    await dba(`ALTER VIEW sales.order_view OWNER TO app`);
    await dba(`ALTER SEQUENCE sales.order_seq OWNER TO app`);
    await dba(`ALTER FUNCTION sales.total(int) OWNER TO app`);
    await dba(`ALTER SCHEMA "Reporting Schema" OWNER TO app`);
    await expectEveryTargetEqualsSource();
  });

  it('quoted, mixed-case and non-ASCII names', async () => {
    await dba(`GRANT SELECT ON "Reporting Schema"."Monthly ""Totals""" TO "Mixed Case Role", "Ünïcode ""Quoted"""`);
    await dba(`GRANT USAGE ON SCHEMA "Reporting Schema" TO "Ünïcode ""Quoted"""`);
    await expectEveryTargetEqualsSource();
    expect(await relationPrivileges(p.environments[0]!.client, '"Reporting Schema"."Monthly ""Totals"""')).toContain(
      'Ünïcode "Quoted" SELECT by postgres',
    );
  });

  it("a non-superuser's grant is replayed as that user, with the same grantor", async () => {
    const owner = new pg.Client(p.source.urlFor('postgres', 'team_owner', 'team-owner-pw'));
    await owner.connect();
    try {
      await owner.query(`SET search_path = sales; GRANT SELECT ON team_table TO reader WITH GRANT OPTION`);
    } finally {
      await owner.end();
    }
    await expectEveryTargetEqualsSource();
    expect(await relationPrivileges(p.environments[0]!.client, 'sales.team_table')).toContain('reader SELECT* by team_owner');
  });
});

describe('names resolved as on the source', () => {
  it('a superuser\'s "$user" in search_path is still the superuser\'s schema, though the sync user runs it', async () => {
    await p.everywhere(`CREATE ROLE alice SUPERUSER LOGIN PASSWORD 'alice-pw'; CREATE SCHEMA alice AUTHORIZATION alice;
      CREATE TABLE alice.ledger (id int); CREATE TABLE public.ledger (id int)`);
    await p.adopt(['alice']);
    const alice = new pg.Client(p.source.urlFor('postgres', 'alice', 'alice-pw'));
    await alice.connect();
    try {
      await alice.query('GRANT SELECT ON ledger TO app');
    } finally {
      await alice.end();
    }
    await p.settle();
    for (const client of [p.sourceClient, ...p.environments.map((e) => e.client)]) {
      expect(await relationPrivileges(client, 'alice.ledger')).toContain('app SELECT by postgres');
      expect(await relationPrivileges(client, 'public.ledger')).not.toContain('app SELECT by postgres');
    }
    await expectEveryTargetEqualsSource();
  });
});

describe('ALTER ... IF EXISTS of a relation the source does not have', () => {
  it('changes nothing anywhere, and the rest of the string is carried', async () => {
    await p.env('prod').client.query('CREATE TABLE sales.legacy (id int)');
    await dba('ALTER TABLE IF EXISTS sales.legacy OWNER TO app; GRANT REFERENCES ON sales.refunds TO reader');
    await p.settle();
    const { rows } = await p
      .env('prod')
      .client.query<{ owner: string }>(`SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'sales.legacy'::regclass`);
    expect(rows[0]?.owner).toBe('postgres');
    for (const client of [p.sourceClient, ...p.environments.map((e) => e.client)]) {
      expect((await relationPrivileges(client, 'sales.refunds')).some((line) => line.startsWith('reader REFERENCES by '))).toBe(true);
    }
    await p.env('prod').client.query('DROP TABLE sales.legacy');
    await expectEveryTargetEqualsSource();
  });

  it('one that did not run cannot stand for an owner change made inside a DO block', async () => {
    await p.env('prod').client.query('CREATE TABLE sales.legacy (id int)');
    await dba(`SET permsync.capture = 'off'; CREATE TABLE sales.source_only (id int); RESET permsync.capture`);
    const text = `ALTER TABLE IF EXISTS sales.legacy OWNER TO app;
      DO $$ BEGIN EXECUTE 'ALTER TABLE sales.source_only OWNER TO reader'; END $$`;
    await dba(text);
    await p.settle();
    for (const row of await executions(text)) expect(row.execution_status).toBe('skipped');
    const { rows } = await p
      .env('prod')
      .client.query<{ owner: string }>(`SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'sales.legacy'::regclass`);
    expect(rows[0]?.owner).toBe('postgres');
    await p.env('prod').client.query('DROP TABLE sales.legacy');
    await dba(`SET permsync.capture = 'off'; DROP TABLE sales.source_only; RESET permsync.capture`);
  });

  it('two of them, one run: the object the trigger recorded tells which, and only that one is replayed', async () => {
    await p.env('prod').client.query('CREATE TABLE sales.legacy (id int)');
    await dba(`SET permsync.capture = 'off'; CREATE TABLE sales.source_only (id int); RESET permsync.capture`);
    const text = 'ALTER TABLE IF EXISTS sales.legacy OWNER TO app; ALTER TABLE IF EXISTS sales.source_only OWNER TO reader';
    await dba(text);
    await p.settle();
    for (const row of await executions(text)) {
      expect(row.execution_status).toBe('success');
      expect(row.applied_sql).not.toContain('legacy');
    }
    const { rows } = await p
      .env('prod')
      .client.query<{ owner: string }>(`SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'sales.legacy'::regclass`);
    expect(rows[0]?.owner).toBe('postgres');
    await p.env('prod').client.query('DROP TABLE sales.legacy');
    await dba(`SET permsync.capture = 'off'; DROP TABLE sales.source_only; RESET permsync.capture`);
  });
});

describe('what is never carried', () => {
  it('the non-permission parts of a mixed string', async () => {
    const text = `CREATE TABLE sales.only_on_source (id int); GRANT SELECT ON sales.refunds TO reader;
                  ALTER TABLE sales.orders ADD COLUMN only_on_source int, OWNER TO app_writer`;
    // What the string made on the source alone goes at the end, passed or failed, so that no other test sees it.
    onTestFinished(async () => {
      await p.sourceClient.query(`SET permsync.capture = 'off'; DROP TABLE IF EXISTS sales.only_on_source;
        ALTER TABLE sales.orders DROP COLUMN IF EXISTS only_on_source; RESET permsync.capture`);
    });
    const {
      rows: [refunds],
    } = await p.sourceClient.query<{ owner: string }>(`SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'sales.refunds'::regclass`);
    await dba(text);
    await expectEveryTargetEqualsSource().catch(() => {}); // the new table exists on the source only
    for (const env of p.environments) {
      const { rows } = await env.client.query<{ t: string | null; c: string }>(
        `SELECT to_regclass('sales.only_on_source')::text AS t,
                (SELECT count(*) FROM pg_attribute WHERE attrelid = 'sales.orders'::regclass AND attname = 'only_on_source')::text AS c`,
      );
      expect(rows[0]).toEqual({ t: null, c: '0' });
      expect(await relationPrivileges(env.client, 'sales.refunds')).toContain(`reader SELECT by ${refunds?.owner}`);
      const { rows: owner } = await env.client.query<{ o: string }>(
        `SELECT relowner::regrole::text AS o FROM pg_class WHERE oid = 'sales.orders'::regclass`,
      );
      expect(owner[0]?.o).toBe('app_writer');
    }
    expect((await executions(text)).map((x) => x.applied_sql)).toEqual([
      expect.stringContaining('ALTER TABLE "sales"."orders" OWNER TO "app_writer"'),
      expect.stringContaining('ALTER TABLE "sales"."orders" OWNER TO "app_writer"'),
    ]);
    await p.sourceClient.query(`SET permsync.capture = 'off'; DROP TABLE sales.only_on_source;
      ALTER TABLE sales.orders DROP COLUMN only_on_source; RESET permsync.capture`);
    await expectEveryTargetEqualsSource();
  });

  it('a transaction rolled back on the source', async () => {
    await dba('BEGIN');
    await dba('GRANT DELETE ON sales.orders TO reader');
    await dba('ROLLBACK');
    await dba('GRANT TRUNCATE ON sales.refunds TO reader'); // a later change, so we know the daemon moved on
    await expectEveryTargetEqualsSource();
    for (const env of p.environments) {
      expect(await relationPrivileges(env.client, 'sales.orders')).not.toContain('reader DELETE by postgres');
    }
  });

  it('a string whose text was withheld (no password may be stored): logged as skipped with the reason', async () => {
    onTestFinished(async () => {
      await dba(
        `SET permsync.capture = off; REVOKE ALL ON sales.refunds FROM withheld_login; DROP ROLE IF EXISTS withheld_login; RESET permsync.capture`,
      );
      // The role watcher carries the drop: in a batch of its own, before the next test.
      await p.settleRoles();
    });
    const {
      rows: [last],
    } = await p.sourceClient.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text AS id FROM permsync.batches`);
    await dba(`SET standard_conforming_strings = off; SET escape_string_warning = off`);
    await dba(`SET standard_conforming_strings = on; CREATE ROLE withheld_login LOGIN PASSWORD 'a\\' b \\'c';
               GRANT SELECT ON sales.refunds TO withheld_login`);
    await dba(`RESET standard_conforming_strings; RESET escape_string_warning`);
    await p.settle();
    const { rows } = await p.sourceClient.query<{ execution_status: string; result_message: string }>(
      `SELECT x.execution_status, x.result_message FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE b.query_text LIKE '/* permsync: text withheld%' AND b.id > $1`,
      [last?.id],
    );
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(row.execution_status).toBe('skipped');
      expect(row.result_message).toMatch(/its string literals read differently with and without standard_conforming_strings/);
    }
  });

  it("grants inside a DO block: not replayed, the table they name converged to the source's state instead", async () => {
    const text = `DO $$ BEGIN EXECUTE 'GRANT DELETE ON sales.refunds TO reader'; END $$`;
    await dba(text);
    await p.settle();
    const rows = await executions(text);
    expect(rows.map((r) => r.execution_status)).toEqual(['success', 'success']);
    expect(rows[0]?.result_message).toMatch(
      /^converged 1 object\(s\) it touched to the source's state, as statement replay cannot carry the batch: permission commands ran inside a DO block or a function/,
    );
    const expected = await relationPrivileges(p.sourceClient, 'sales.refunds');
    expect(expected.join()).toMatch(/reader DELETE/);
    for (const env of p.environments) expect(await relationPrivileges(env.client, 'sales.refunds')).toEqual(expected);
    await dba('REVOKE DELETE ON sales.refunds FROM reader');
    await expectEveryTargetEqualsSource();
  });
});

describe('client strings that do more than one thing', () => {
  it('a string that commits several transactions: each batch carries its own transaction', async () => {
    await dba(
      'BEGIN; GRANT SELECT ON sales.refunds TO "Mixed Case Role"; COMMIT; BEGIN; GRANT INSERT ON sales.refunds TO "Mixed Case Role"; COMMIT;',
    );
    await expectEveryTargetEqualsSource();
    const {
      rows: [refunds],
    } = await p.sourceClient.query<{ owner: string }>(`SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = 'sales.refunds'::regclass`);
    for (const env of p.environments) {
      const privileges = await relationPrivileges(env.client, 'sales.refunds');
      expect(privileges).toContain(`Mixed Case Role SELECT by ${refunds?.owner}`);
      expect(privileges).toContain(`Mixed Case Role INSERT by ${refunds?.owner}`);
    }
  });

  it('a string that changes search_path between its grants is never replayed under the wrong one: what it names under either is converged', async () => {
    await p.everywhere(`CREATE TABLE "Reporting Schema".refunds (id int)`);
    const text = `SET search_path = sales; REVOKE ALL ON refunds FROM reader; SET search_path = "Reporting Schema"; GRANT SELECT ON refunds TO reader`;
    await dba(text);
    await dba('RESET search_path');
    await expectEveryTargetEqualsSource();
    const rows = await executions(text);
    expect(rows.map((r) => r.execution_status)).toEqual(['success', 'success']);
    expect(rows[0]?.result_message).toMatch(/changes role or search_path/);
  });
});

describe('role changes between the permission commands of one string', () => {
  beforeAll(() => p.everywhere('CREATE TABLE sales.midstring (id int)'));

  it('a role created between its grants reaches every target before them, and each grant naming it is carried', async () => {
    const texts = [
      'GRANT SELECT ON sales.midstring TO app; CREATE ROLE mid_b; GRANT SELECT ON sales.midstring TO mid_b;',
      'GRANT INSERT ON sales.midstring TO app; GRANT UPDATE ON sales.midstring TO reader; CREATE ROLE mid_c; GRANT mid_b TO mid_c; ' +
        'GRANT INSERT ON sales.midstring TO mid_c; GRANT DELETE ON sales.midstring TO mid_c, reader;',
    ];
    // Each one client string, sent with the simple query protocol.
    for (const text of texts) await dba(text);
    await expectEveryTargetEqualsSource();
    for (const env of p.environments) {
      expect(await relationPrivileges(env.client, 'sales.midstring')).toEqual(
        expect.arrayContaining(['mid_b SELECT by postgres', 'mid_c INSERT by postgres', 'mid_c DELETE by postgres', 'reader DELETE by postgres']),
      );
    }
    for (const [i, text] of texts.entries()) {
      const { rows } = await p.sourceClient.query<{ change: string; change_seq: string; string_seq: string }>(
        `SELECT r.query_text AS change, r.commit_seq::text AS change_seq, s.commit_seq::text AS string_seq
           FROM permsync.batches s JOIN permsync.batches r ON r.precedes = s.id
          WHERE s.query_text = permsync.masked_text($1)`,
        [text],
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]?.change).toBe(i === 0 ? 'CREATE ROLE mid_b;' : 'CREATE ROLE mid_c;\nGRANT mid_b TO mid_c;');
      expect(BigInt(rows[0]?.change_seq ?? 0)).toBeLessThan(BigInt(rows[0]?.string_seq ?? 0));
      for (const row of await executions(text)) {
        expect(row).toMatchObject({ execution_status: 'success', result_message: null });
      }
    }
  });

  it('a role renamed between its grants: what they touched is converged, under the new name', async () => {
    await dba('CREATE ROLE mid_old');
    await p.settleRoles();
    const text = 'GRANT SELECT ON sales.midstring TO mid_old; ALTER ROLE mid_old RENAME TO mid_new; GRANT UPDATE ON sales.midstring TO mid_new';
    await dba(text);
    await expectEveryTargetEqualsSource();
    for (const env of p.environments) {
      expect(await relationPrivileges(env.client, 'sales.midstring')).toEqual(
        expect.arrayContaining(['mid_new SELECT by postgres', 'mid_new UPDATE by postgres']),
      );
    }
    for (const row of await executions(text)) {
      expect(row.execution_status).toBe('success');
      expect(row.result_message).toMatch(/^converged 1 object\(s\) .*a role was renamed or dropped between its permission commands/);
    }
  });
});

describe('temporary objects of the source session', () => {
  it('a GRANT or owner change naming one is not replayed, and holds no environment', async () => {
    const texts = [
      'CREATE TEMP TABLE tmp_report (id int); GRANT SELECT ON tmp_report TO reader; GRANT SELECT ON sales.order_view TO app_writer',
      'CREATE TEMP TABLE tmp_owned (id int); ALTER TABLE tmp_owned OWNER TO app',
      // Created by dynamic SQL after the string's first permission command.
      'GRANT UPDATE ON sales.order_seq TO reader; DO $$ BEGIN CREATE TEMP TABLE tmp_dynamic (id int); END $$; GRANT SELECT ON tmp_dynamic TO app',
    ];
    for (const text of texts) await dba(text);
    await dba('GRANT USAGE ON SEQUENCE sales.order_seq TO app_writer'); // a later change: carried, so nothing waits
    await p.settle();
    const granted = (lines: string[], grant: string) => lines.some((line) => line.startsWith(`${grant} by `));
    for (const env of p.environments) {
      expect(granted(await relationPrivileges(env.client, 'sales.order_view'), 'app_writer SELECT')).toBe(true);
      const sequence = await relationPrivileges(env.client, 'sales.order_seq');
      expect(granted(sequence, 'reader UPDATE') && granted(sequence, 'app_writer USAGE')).toBe(true);
    }
    for (const [i, text] of texts.entries()) {
      for (const row of await executions(text)) {
        expect(row.execution_status, text).toBe(i === 1 ? 'skipped' : 'success');
        expect(row.result_message, text).toMatch(/a temporary object of the source session; a target has none/);
      }
    }
    await dba('DROP TABLE tmp_report, tmp_owned, tmp_dynamic');
  });
});

describe('strings whose meaning on a target could differ from what ran', () => {
  beforeAll(() => p.everywhere('CREATE TABLE sales.vault (id int)'));
  afterAll(() => p.everywhere('DROP TABLE sales.vault'));

  it('one that reads otherwise with standard_conforming_strings off than on: logged as skipped, never replayed', async () => {
    await dba('SET standard_conforming_strings = off; SET escape_string_warning = off');
    // Read with the setting off, as the server did: a SELECT, and a grant of INSERT. Read
    // with it on: a grant of DELETE, then a comment.
    const text = `SELECT 'x\\'; GRANT DELETE ON sales.vault TO reader; --'; GRANT INSERT ON sales.vault TO reader`;
    await dba(text);
    await dba('RESET standard_conforming_strings; RESET escape_string_warning');
    await p.settle();
    for (const env of p.environments) {
      expect(await relationPrivileges(env.client, 'sales.vault')).not.toContain('reader DELETE by postgres');
    }
    const { rows } = await p.sourceClient.query<{ execution_status: string; result_message: string }>(
      `SELECT x.execution_status, x.result_message FROM permsync.execution_log x
        WHERE x.batch_id = (SELECT max(id) FROM permsync.batches WHERE origin = 'event_trigger')`,
    );
    expect(rows.map((r) => r.execution_status)).toEqual(['skipped', 'skipped']);
    expect(rows[0]?.result_message).toMatch(/read differently with and without standard_conforming_strings/);
  });

  it('one that turns capture off for a transaction, however it does so: each batch carries its own transaction', async () => {
    for (const [i, off] of [`SELECT set_config('permsync' || '.capture', 'off', true)`, `SET LOCAL "permsync"."capture" TO off`].entries()) {
      const kept = i === 0 ? 'UPDATE' : 'TRUNCATE';
      await dba(`BEGIN; ${off}; GRANT DELETE ON sales.vault TO reader; COMMIT;
                 BEGIN; GRANT ${kept} ON sales.vault TO reader; COMMIT`);
      await p.settle();
      for (const env of p.environments) {
        const privileges = await relationPrivileges(env.client, 'sales.vault');
        expect(privileges, off).not.toContain('reader DELETE by postgres');
        expect(privileges, off).toContain(`reader ${kept} by postgres`);
      }
    }
  });
});

describe('the execution log', () => {
  it('holds one row per batch and environment, in commit order', async () => {
    await p.settle();
    const { rows } = await p.sourceClient.query<{ missing: string; duplicated: string; unordered: string }>(`
      SELECT (SELECT count(*) FROM permsync.batches b CROSS JOIN permsync.environments e
               WHERE b.commit_seq > e.start_after_seq
                 AND NOT EXISTS (SELECT 1 FROM permsync.execution_log x WHERE x.batch_id = b.id AND x.environment_name = e.name))::text AS missing,
             (SELECT count(*) FROM (SELECT 1 FROM permsync.execution_log GROUP BY batch_id, environment_name HAVING count(*) > 1) d)::text AS duplicated,
             (SELECT count(*) FROM (
                SELECT commit_seq < lag(commit_seq) OVER (PARTITION BY environment_name ORDER BY started_at, id) AS back
                  FROM permsync.execution_log) o WHERE back)::text AS unordered`);
    expect(rows[0]).toEqual({ missing: '0', duplicated: '0', unordered: '0' });
  });

  it('records server version, timings and the exact SQL sent', async () => {
    const text = 'GRANT SELECT ON sales.refunds TO app';
    await dba(text);
    await p.settle();
    const { rows } = await p.sourceClient.query<Execution & { server_version: string; duration_ms: string }>(
      `SELECT x.* FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id WHERE b.query_text = $1`,
      [text],
    );
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(row).toMatchObject({ execution_status: 'success', error_code: null });
      expect(row.server_version).toMatch(/^\d+/);
      expect(Number(row.duration_ms)).toBeGreaterThan(0);
      // The superuser's "$user" is written as its name: the sync user runs the statement.
      expect(row.applied_sql).toBe(`SELECT pg_catalog.set_config('search_path', '"postgres", public', true);\n${text};`);
    }
  });
});
