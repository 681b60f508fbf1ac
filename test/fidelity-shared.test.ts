import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkEnvironments } from '../src/drift/check.js';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { permissionDump } from './support/dump-shared.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';
import { TablespaceDirs } from './support/tablespace.js';

/**
 * Fidelity by pg_dump's account, for what no event trigger sees: memberships with their
 * grantors, privileges on other databases, tablespaces and parameters. Schema (databases,
 * tablespaces) is made on every server, as migrations would; the DBA's script runs on the
 * source only. Then every target's dump equals the source's, but for permsync's own
 * schema and roles, and drift agrees. On the oldest and newest majors.
 */
const LEAVE_OUT = /permsync/;

/** A DBA's script for an API's roles: a delegated role administrator, a monitoring login, a reporting database. */
function script(major: PostgresMajor): string[] {
  return [
    'CREATE ROLE api_admin CREATEROLE',
    'CREATE ROLE authenticator LOGIN NOINHERIT',
    'CREATE ROLE anon',
    'CREATE ROLE authenticated',
    'CREATE ROLE monitoring_agent LOGIN',
    'CREATE ROLE report_reader',
    'GRANT anon, authenticated TO authenticator',
    'GRANT anon, authenticated TO api_admin WITH ADMIN OPTION',
    // The delegated administrator creates and grants roles itself: its grants are its own.
    'SET ROLE api_admin',
    'CREATE ROLE service_role',
    'GRANT service_role TO authenticator',
    'GRANT authenticated TO report_reader',
    'RESET ROLE',
    'GRANT anon TO monitoring_agent GRANTED BY api_admin',
    'GRANT report_reader TO monitoring_agent',
    'REVOKE CONNECT, TEMPORARY ON DATABASE reporting FROM PUBLIC',
    'GRANT CONNECT ON DATABASE reporting TO report_reader, monitoring_agent',
    'GRANT TEMPORARY ON DATABASE reporting TO report_reader WITH GRANT OPTION',
    'GRANT CREATE ON TABLESPACE fast TO api_admin WITH GRANT OPTION',
    'SET ROLE api_admin',
    'GRANT CREATE ON TABLESPACE fast TO report_reader',
    'RESET ROLE',
    // A grant-option chain in one transaction, the grantor newer than its grantee: on each
    // target the grantor gets its option before it grants, and grants as itself.
    [
      'GRANT CREATE ON TABLESPACE fast TO monitoring_agent WITH GRANT OPTION',
      'GRANT CONNECT ON DATABASE reporting TO monitoring_agent WITH GRANT OPTION',
      'GRANT CONNECT ON DATABASE postgres TO monitoring_agent WITH GRANT OPTION',
      'SET ROLE monitoring_agent',
      'GRANT CREATE ON TABLESPACE fast TO anon',
      'GRANT CONNECT ON DATABASE reporting TO anon',
      'GRANT CONNECT ON DATABASE postgres TO anon',
      'RESET ROLE',
    ].join('; '),
    'REVOKE ALL ON TABLESPACE fast FROM PUBLIC',
    ...(major >= 15
      ? [
          'GRANT SET ON PARAMETER log_min_duration_statement TO api_admin',
          'GRANT ALTER SYSTEM ON PARAMETER work_mem TO monitoring_agent WITH GRANT OPTION',
        ]
      : []),
  ];
}

/** The second round: what goes away, and a grantor whose grants go before it does. */
const UNDO = [
  'REVOKE anon FROM monitoring_agent GRANTED BY api_admin',
  // The grantor's grants go with it: on each target, its grantees' are revoked first.
  'REVOKE CONNECT ON DATABASE reporting FROM monitoring_agent CASCADE',
  'REVOKE CONNECT ON DATABASE postgres FROM monitoring_agent CASCADE',
  'REVOKE CREATE ON TABLESPACE fast FROM monitoring_agent CASCADE',
  'GRANT CONNECT ON DATABASE reporting TO PUBLIC',
  'REVOKE GRANT OPTION FOR TEMPORARY ON DATABASE reporting FROM report_reader',
  // A grantor older than its grantee: the grantee's is revoked first all the same.
  'REVOKE CREATE ON TABLESPACE fast FROM api_admin CASCADE',
];

describe.each([14, 18] as const)('PostgreSQL %i', (major) => {
  let p: Pipeline;
  const dirs = new TablespaceDirs();

  /** Schema, on every server, as migrations would make it. */
  async function schema(client: { query(sql: string): Promise<unknown> }): Promise<void> {
    await client.query('CREATE DATABASE reporting');
    await client.query(`CREATE TABLESPACE fast LOCATION '${await dirs.make()}'`);
  }

  /** `chained`: whether the source holds a privilege its grantor granted through a grant option. */
  async function expectEqualByDump(chained: boolean): Promise<void> {
    const source = await permissionDump(p.source, { leaveOut: LEAVE_OUT });
    expect(source.some((l) => /GRANTED BY "?api_admin/.test(l))).toBe(true);
    expect(source.some((l) => /anon=c\/monitoring_agent|^SET SESSION AUTHORIZATION "?monitoring_agent"?;/.test(l))).toBe(chained);
    for (const e of p.environments) expect(await permissionDump(e.server, { leaveOut: LEAVE_OUT })).toEqual(source);
    const [result] = await checkEnvironments(p.config(), p.sourceClient, p.config().environments, { dropExtraRoles: false });
    expect(result?.error).toBeUndefined();
    expect(result?.report?.differences.map((d) => d.change)).toEqual([]);
    const { rows } = await p.sourceClient.query(`SELECT result_message FROM permsync.execution_log WHERE execution_status = 'failed'`);
    expect(rows).toEqual([]);
  }

  beforeAll(async () => {
    p = await startPipeline([`pg${major}`], { major, embedded: true });
    await schema(p.sourceClient);
    for (const e of p.environments) await schema(e.client);
    await p.startDaemon();
  }, 120_000);

  afterAll(async () => {
    await p?.close();
    await dirs.remove();
  });

  it('a DBA script of role hierarchy, grantors and privileges on shared objects leaves every target equal by pg_dump, and drift agrees', async () => {
    for (const statement of script(major)) await p.dba(statement);
    await p.settleRoles();
    await expectEqualByDump(true);
  });

  it('the same after grants by a grantor, privileges on another database and a tablespace are taken back', async () => {
    for (const statement of UNDO) await p.dba(statement);
    await p.settleRoles();
    await expectEqualByDump(false);
  });
});
