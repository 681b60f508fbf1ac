import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { runCli } from './support/cli.js';

/**
 * A DROP ROLE a target cannot perform: what the source's DROP OWNED released (the role's
 * row-level security policies) is released there too; what the target alone has (an
 * object the source does not have) holds the environment, with a failure that says what
 * depends on the role and the way out, which `permsync status` shows, and the operator's
 * skip lets the environment go on.
 */

let p: Pipeline;
let dir: string;
const prod = () => p.env('prod').client;

async function roleExists(client: typeof p.sourceClient, name: string): Promise<boolean> {
  const { rows } = await client.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [name]);
  return rows.length > 0;
}

const settleRoles = () => p.settleRoles();

/** The outcome on an environment of the last batch the role watcher wrote. */
async function lastRoleOutcome(environment: string) {
  const { rows } = await p.sourceClient.query<{
    batch_id: string;
    execution_status: string;
    result_message: string | null;
    error_code: string | null;
    error_hint: string | null;
  }>(
    `SELECT x.batch_id::text, x.execution_status, x.result_message, x.error_code, x.error_hint
        FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
       WHERE b.origin = 'role_watcher' AND x.environment_name = $1 ORDER BY b.commit_seq DESC LIMIT 1`,
    [environment],
  );
  return rows[0];
}

/** Runs the CLI in this process, as bin/permsync.js does, capturing what it prints. */
async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  const { code, out } = await runCli(...args, '--config', join(dir, 'permsync.yaml'));
  return { code, out };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'permsync-drop-role-'));
  p = await startPipeline(['dev', 'prod']);
  const c = p.config();
  await writeFile(
    join(dir, 'permsync.yaml'),
    [
      'source:',
      `  url: "${c.source.url}"`,
      'environments:',
      ...c.environments.flatMap((e) => [`  - name: ${e.name}`, `    url: "${e.url}"`]),
      'settings:',
      '  drift_check_cron: null',
    ].join('\n'),
  );
  await p.startDaemon();
});

afterAll(async () => {
  await p?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('DROP ROLE of a role a target still depends on', () => {
  it('takes it out of the policies that name it, as DROP OWNED did on the source, and drops it', async () => {
    await p.dba(`CREATE ROLE tenant; CREATE ROLE support`);
    await settleRoles();
    await p.everywhere(`
      CREATE SCHEMA docs; CREATE TABLE docs.files (id int, owner_name text);
      ALTER TABLE docs.files ENABLE ROW LEVEL SECURITY;
      CREATE POLICY own_files ON docs.files TO tenant USING (owner_name = current_user);
      CREATE POLICY shared_files ON docs.files TO tenant, support USING (true)`);
    await p.dba(`DROP OWNED BY tenant; DROP ROLE tenant`);
    await settleRoles();
    const policies = async (client: typeof p.sourceClient) =>
      (
        await client.query<{ line: string }>(
          `SELECT polname || ' ' || array_to_string(ARRAY(SELECT pg_get_userbyid(r) FROM unnest(polroles) r ORDER BY 1), ',') AS line
         FROM pg_policy WHERE polrelid = 'docs.files'::regclass ORDER BY 1`,
        )
      ).rows.map((r) => r.line);
    expect(await policies(p.sourceClient)).toEqual(['shared_files support']);
    for (const name of ['dev', 'prod']) {
      expect(await lastRoleOutcome(name), name).toMatchObject({ execution_status: 'success' });
      expect(await roleExists(p.env(name).client, 'tenant'), name).toBe(false);
      expect(await policies(p.env(name).client), name).toEqual(['shared_files support']);
    }
  });

  it('holds on what only the target has, says what depends on the role and the way out, in the log and in status; a skip lets it go on', async () => {
    await p.dba(`CREATE ROLE contractor`);
    await settleRoles();
    await prod().query(`CREATE TABLE public.prod_scratch (id int); ALTER TABLE public.prod_scratch OWNER TO contractor`);
    await p.dba(`DROP ROLE contractor`);
    await waitFor(async () => (await lastRoleOutcome('prod'))?.execution_status === 'failed', 10_000, 'prod to refuse the drop');
    const failed = await lastRoleOutcome('prod');
    const skip = `permsync skip --env prod --batch ${failed?.batch_id} --reason`;
    expect(failed).toMatchObject({
      error_code: '2BP01',
      result_message: expect.stringContaining('owner of table public.prod_scratch'),
      error_hint: expect.stringContaining('REASSIGN OWNED BY contractor TO <role>; DROP OWNED BY contractor'),
    });
    for (const text of [failed?.result_message, failed?.error_hint]) {
      expect(text).toContain('`permsync retry --env prod`');
      expect(text).toContain(skip);
    }
    const status = await cli('status');
    expect(status.code).toBe(1);
    expect(status.out).toMatch(
      new RegExp(`^prod: held on batch ${failed?.batch_id}: SQLSTATE 2BP01: .*owner of table public.prod_scratch.*${skip}`, 'm'),
    );

    // Later changes wait behind it on prod, and go on once the operator leaves the role there.
    await p.dba(`CREATE ROLE after_contractor`);
    await waitFor(async () => roleExists(p.env('dev').client, 'after_contractor'), 10_000, 'dev to carry the next change');
    expect(await roleExists(prod(), 'after_contractor')).toBe(false);
    expect((await cli('skip', '--env', 'prod', '--batch', failed?.batch_id as string, '--reason', 'prod keeps its scratch table')).code).toBe(0);
    await waitFor(async () => roleExists(prod(), 'after_contractor'), 10_000, 'prod to go on after the skip');
    expect(await roleExists(prod(), 'contractor')).toBe(true);
    expect(await roleExists(p.env('dev').client, 'contractor')).toBe(false);
  });
});
