import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/daemon.js';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

let p: Pipeline;
let daemon: Daemon | undefined;

const FIXTURES = `
  CREATE ROLE app; CREATE ROLE reader; CREATE ROLE tmp_contractor;
  CREATE SCHEMA sales; CREATE SCHEMA audit;
  CREATE TABLE sales.orders (id int); CREATE TABLE sales.refunds (id int); CREATE TABLE audit.events (id int)`;

const dba = (sql: string) => p.dba(sql);

const env = (name: string) => p.env(name);

interface ExecutionRow {
  execution_status: string;
  error_code: string | null;
  error_detail: string | null;
  error_hint: string | null;
  failure_kind: string | null;
  result_message: string | null;
  applied_sql: string | null;
  retry_count: number;
}

async function execution(text: string, environment: string): Promise<ExecutionRow | undefined> {
  const { rows } = await p.sourceClient.query<ExecutionRow>(
    `SELECT x.* FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
      WHERE b.query_text = $1 AND x.environment_name = $2`,
    [text, environment],
  );
  return rows[0];
}

/**
 * A grant on a table of the source and dev that prod lacks: dev applies it, prod fails
 * it for good and holds (the daemon must run). Returns the grant's text.
 */
async function holdProd(table: string): Promise<string> {
  await dba(`SET permsync.capture = 'off'; CREATE TABLE sales.${table} (id int); RESET permsync.capture`);
  await env('dev').client.query(`CREATE TABLE sales.${table} (id int)`);
  const failing = `GRANT SELECT ON sales.${table} TO reader`;
  await dba(failing);
  await waitFor(async () => (await execution(failing, 'prod'))?.execution_status === 'failed', 10_000, 'prod to fail');
  return failing;
}

/** Ends the hold holdProd() began: prod gets the table and tries again, and carries what waited (the daemon must run). */
async function releaseProd(table: string): Promise<void> {
  await env('prod').client.query(`CREATE TABLE sales.${table} (id int)`);
  await p.sourceClient.query(`SELECT permsync.retry_failed('prod')`);
  await p.settle();
}

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod']);
  await p.everywhere(FIXTURES);
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  // A first daemon registers the environments and carries the fixtures' roles (the role
  // watcher finds them): each test starts with nothing pending and every environment up.
  const first = await p.startDaemon();
  await p.settleRoles();
  await first.stop();
});

afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

afterAll(async () => {
  await p?.close();
});

describe('per-environment rules', () => {
  it('exclude by command tag and by role pattern, for that environment only', async () => {
    daemon = await p.startDaemon(
      p.config({
        environments: [
          {},
          {
            rules: [
              { action: 'exclude', commandTag: 'REVOKE' },
              { action: 'exclude', rolePattern: '^tmp_' },
            ],
          },
        ],
      }),
    );
    await dba('GRANT SELECT ON sales.orders TO app');
    await dba('GRANT SELECT ON sales.orders TO tmp_contractor');
    await dba('REVOKE SELECT ON sales.orders FROM app');
    await p.settle();
    const dev = await relationPrivileges(env('dev').client, 'sales.orders');
    expect(dev).toContain('tmp_contractor SELECT by postgres');
    expect(dev).not.toContain('app SELECT by postgres');
    expect(await relationPrivileges(env('prod').client, 'sales.orders')).toContain('app SELECT by postgres');
    expect(await relationPrivileges(env('prod').client, 'sales.orders')).not.toContain('tmp_contractor SELECT by postgres');
    expect(await execution('REVOKE SELECT ON sales.orders FROM app', 'prod')).toMatchObject({
      execution_status: 'skipped',
      result_message: expect.stringContaining('exclude rule (command_tag REVOKE)'),
    });
    expect(await execution('GRANT SELECT ON sales.orders TO tmp_contractor', 'prod')).toMatchObject({
      execution_status: 'skipped',
      result_message: expect.stringContaining('role_pattern ^tmp_'),
    });
  });

  it('include rules admit only what they name (here: one schema)', async () => {
    await p.everywhere('CREATE TABLE audit.reports (id int)');
    daemon = await p.startDaemon(p.config({ environments: [{}, { rules: [{ action: 'include', schemaPattern: '^sales$' }] }] }));
    await dba('GRANT SELECT ON audit.reports TO reader');
    await dba('GRANT SELECT ON sales.refunds TO reader');
    await p.settle();
    expect(await relationPrivileges(env('prod').client, 'audit.reports')).toEqual([]);
    expect(await relationPrivileges(env('prod').client, 'sales.refunds')).toContain('reader SELECT by postgres');
    expect(await relationPrivileges(env('dev').client, 'audit.reports')).toContain('reader SELECT by postgres');
  });
});

describe('dry run', () => {
  it('logs what would run and runs nothing', async () => {
    daemon = await p.startDaemon(p.config({ settings: { dryRun: true } }));
    const text = 'GRANT UPDATE ON sales.refunds TO app';
    await dba(text);
    await p.settle();
    for (const e of p.environments) {
      expect(await relationPrivileges(e.client, 'sales.refunds')).not.toContain('app UPDATE by postgres');
      expect(await execution(text, e.name)).toMatchObject({ execution_status: 'dry_run', applied_sql: expect.stringContaining(text) });
    }
    await p.sourceClient.query(`SET permsync.capture = 'off'; REVOKE UPDATE ON sales.refunds FROM app; RESET permsync.capture`);
  });
});

describe('an environment that fails', () => {
  it('is down at start: the others proceed, and it catches up in order when it returns', async () => {
    const texts = ['GRANT INSERT ON sales.orders TO reader', 'REVOKE INSERT ON sales.orders FROM reader', 'GRANT DELETE ON sales.orders TO reader'];
    await env('prod').proxy.cut();
    try {
      daemon = await p.startDaemon();
      for (const text of texts) await dba(text);
      await waitFor(async () => (await execution(texts[2] as string, 'dev'))?.execution_status === 'success', 10_000, 'dev to apply');
      await waitFor(async () => (await execution(texts[0] as string, 'prod'))?.execution_status === 'failed', 10_000, 'prod to fail');
      const failed = await execution(texts[0] as string, 'prod');
      expect(failed).toMatchObject({ failure_kind: 'transient', error_code: 'ECONNREFUSED' });
      expect(await execution(texts[1] as string, 'prod')).toBeUndefined(); // waits behind the first: order is kept
    } finally {
      await env('prod').proxy.open();
    }
    await p.settle();
    const prod = await relationPrivileges(env('prod').client, 'sales.orders');
    expect(prod).toContain('reader DELETE by postgres');
    expect(prod).not.toContain('reader INSERT by postgres');
    const recovered = await execution(texts[0] as string, 'prod');
    expect(recovered?.execution_status).toBe('success');
    expect(recovered?.retry_count).toBeGreaterThan(0);
  });

  it('fails one statement that only it cannot run: SQLSTATE logged, it holds, the others go on', async () => {
    daemon = await p.startDaemon();
    const failing = await holdProd('new_table');
    const later = 'GRANT SELECT ON audit.events TO app';
    await dba(later);
    await waitFor(async () => (await execution(later, 'dev'))?.execution_status === 'success', 10_000, 'dev to apply');
    expect(await execution(failing, 'prod')).toMatchObject({
      error_code: '42P01',
      failure_kind: 'permanent',
      result_message: expect.stringContaining('relation "sales.new_table" does not exist'),
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(await execution(later, 'prod')).toBeUndefined();
    await releaseProd('new_table');
  });

  it('holds across a restart: the failed batch is tried again, never taken for applied', async () => {
    daemon = await p.startDaemon();
    const failing = await holdProd('held_table');
    const later = 'GRANT INSERT ON audit.events TO app';
    await dba(later);
    await daemon.stop();
    const before = await execution(failing, 'prod');
    daemon = await p.startDaemon();
    await waitFor(async () => ((await execution(failing, 'prod'))?.retry_count ?? 0) > (before?.retry_count ?? 0), 10_000, 'prod to try again');
    expect(await execution(failing, 'prod')).toMatchObject({ execution_status: 'failed', error_code: '42P01' });
    expect(await execution(later, 'prod')).toBeUndefined();
    await releaseProd('held_table');
  });

  it('set to continue, it moves past a permanent failure', async () => {
    daemon = await p.startDaemon();
    await holdProd('passed_table');
    const later = 'GRANT UPDATE ON audit.events TO app';
    await dba(later);
    await daemon.stop();
    daemon = await p.startDaemon(p.config({ environments: [{}, { onPermanentFailure: 'continue' }] }));
    await p.settle();
    expect(await execution(later, 'prod')).toMatchObject({ execution_status: 'success' });
    expect(await relationPrivileges(env('prod').client, 'audit.events')).toContain('app UPDATE by postgres');
    await releaseProd('passed_table');
  });

  it('carries a backlog in one transaction; a batch in it that fails is found and fails alone', async () => {
    await dba(`SET permsync.capture = 'off'; CREATE TABLE sales.dev_only (id int); RESET permsync.capture`);
    await env('dev').client.query('CREATE TABLE sales.dev_only (id int)');
    const before = ['GRANT TRUNCATE ON sales.orders TO app', 'GRANT TRUNCATE ON sales.refunds TO app'];
    const failing = 'GRANT SELECT ON sales.dev_only TO app';
    const after = 'GRANT TRUNCATE ON audit.events TO app';
    for (const text of [...before, failing, after]) await dba(text); // no daemon yet: a backlog
    daemon = await p.startDaemon();
    await waitFor(async () => (await execution(after, 'dev'))?.execution_status === 'success', 10_000, 'dev to apply');
    await waitFor(async () => (await execution(failing, 'prod'))?.execution_status === 'failed', 10_000, 'prod to fail');
    for (const text of [...before, failing, after]) {
      expect(await execution(text, 'dev')).toMatchObject({
        execution_status: 'success',
        result_message: expect.stringContaining('in one transaction'),
      });
    }
    for (const text of before) expect(await execution(text, 'prod')).toMatchObject({ execution_status: 'success' });
    expect(await execution(failing, 'prod')).toMatchObject({ error_code: '42P01', failure_kind: 'permanent' });
    expect(await execution(after, 'prod')).toBeUndefined(); // held behind it, in order
    expect(await relationPrivileges(env('prod').client, 'sales.refunds')).toContain('app TRUNCATE by postgres');
    await releaseProd('dev_only');
  });
});
