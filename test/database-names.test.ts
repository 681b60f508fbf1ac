import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkEnvironments } from '../src/drift/check.js';
import type { Config } from '../src/config/schema.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

/**
 * A database of the source's cluster that an environment names otherwise
 * (environments[].databases): its privileges and the role settings made in it reach the
 * environment's database of that name, and drift compares them there.
 */
describe('a database the environment names otherwise', () => {
  let p: Pipeline;
  let config: Config;

  beforeAll(async () => {
    p = await startPipeline(['dev']);
    await p.sourceClient.query('CREATE DATABASE reporting');
    await p.env('dev').client.query('CREATE DATABASE reporting_dev');
    config = p.config({ environments: [{ databases: { reporting: 'reporting_dev' } }] });
    await p.startDaemon(config);
  });

  afterAll(async () => {
    await p?.close();
  });

  it('gets the privileges on it and the role settings made in it', async () => {
    await p.dba('CREATE ROLE analyst');
    await p.dba('GRANT CONNECT ON DATABASE reporting TO analyst');
    await p.dba("ALTER ROLE analyst IN DATABASE reporting SET work_mem = '32MB'");
    await p.settleRoles();

    const { rows } = await p.env('dev').client.query<{ database: string; config: string[] }>(
      `SELECT d.datname AS database, s.setconfig AS config
         FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE s.setrole = 'analyst'::regrole`,
    );
    expect(rows).toEqual([{ database: 'reporting_dev', config: ['work_mem=32MB'] }]);
    const connect = await p.env('dev').client.query<{ ok: boolean }>(`SELECT has_database_privilege('analyst', 'reporting_dev', 'CONNECT') AS ok`);
    expect(connect.rows[0]?.ok).toBe(true);
    const failed = await p.sourceClient.query(`SELECT result_message FROM permsync.execution_log WHERE execution_status <> 'success'`);
    expect(failed.rows).toEqual([]);

    const [result] = await checkEnvironments(config, p.sourceClient, config.environments, { dropExtraRoles: false });
    expect(result?.report?.differences.map((d) => d.change)).toEqual([]);
  });

  it('drift names a setting there that differs, by the environment name of the database', async () => {
    await p.env('dev').client.query("ALTER ROLE analyst IN DATABASE reporting_dev SET work_mem = '1MB'");
    const [result] = await checkEnvironments(config, p.sourceClient, config.environments, { dropExtraRoles: false });
    expect(result?.report?.differences.map((d) => d.change)).toEqual([
      { type: 'setting', role: 'analyst', database: 'reporting_dev', here: false, key: 'work_mem', from: '1MB', to: '32MB' },
    ]);
  });
});
