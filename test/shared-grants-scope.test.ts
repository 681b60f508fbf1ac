import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, type Pipeline } from './support/pipeline.js';

/**
 * What the role watcher carries of grantors and of privileges on shared objects reaches
 * no further on a target than on the source: a grantor is named only where it is
 * permsync's, and a privilege granted by a role that is no superuser is granted there as
 * that role, with that role's rights there. Neither holds the environment.
 */
describe('grantors and shared objects, within what permsync may do on a target', () => {
  let p: Pipeline;

  beforeAll(async () => {
    p = await startPipeline(['prod']);
    // prod has a role of its own named like the source's delegated administrator, and
    // owns its "scratch" database through a role of its own.
    await p.env('prod').client.query('CREATE ROLE delegate CREATEROLE; CREATE ROLE prod_dba');
    for (const client of [p.sourceClient, p.env('prod').client]) await client.query('CREATE DATABASE scratch');
    await p.env('prod').client.query('ALTER DATABASE scratch OWNER TO prod_dba');
    await p.startDaemon();
  });

  afterAll(async () => {
    await p?.close();
  });

  it("a membership granted by a role of the target's own is carried without naming it, and nothing is held", async () => {
    await p.dba('CREATE ROLE delegate CREATEROLE');
    await p.dba('CREATE ROLE app_user');
    await p.dba('CREATE ROLE app_group');
    await p.dba('GRANT app_group TO delegate WITH ADMIN OPTION');
    await p.dba('SET ROLE delegate; GRANT app_group TO app_user; RESET ROLE');
    await p.settleRoles();
    const { rows } = await p.env('prod').client.query<{ grantor: string }>(
      `SELECT pg_get_userbyid(grantor) AS grantor FROM pg_auth_members
        WHERE roleid = 'app_group'::regrole AND member = 'app_user'::regrole`,
    );
    // The sync user's (the bootstrap superuser's) grant, never prod's own delegate's.
    expect(rows).toEqual([{ grantor: 'postgres' }]);
    const held = await p.env('prod').client.query(`SELECT 1 FROM pg_auth_members WHERE member = 'delegate'::regrole`);
    expect(held.rows).toEqual([]);
    const failed = await p.sourceClient.query(`SELECT 1 FROM permsync.execution_log WHERE execution_status = 'failed'`);
    expect(failed.rows).toEqual([]);
  });

  it("a database owner that is no superuser grants on its database as itself: not on a target's database of that name it does not own", async () => {
    await p.dba('CREATE ROLE scratch_owner; CREATE ROLE snoop');
    await p.dba('ALTER DATABASE scratch OWNER TO scratch_owner');
    await p.dba('SET ROLE scratch_owner; GRANT CONNECT, CREATE ON DATABASE scratch TO snoop; RESET ROLE');
    await p.settleRoles();
    const acl = (client: { query: Pipeline['sourceClient']['query'] }) =>
      client.query<{ privilege: string }>(
        `SELECT a.privilege_type AS privilege FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
        WHERE d.datname = 'scratch' AND a.grantee = 'snoop'::regrole ORDER BY 1`,
      );
    expect((await acl(p.sourceClient)).rows).toEqual([{ privilege: 'CONNECT' }, { privilege: 'CREATE' }]);
    expect((await acl(p.env('prod').client)).rows).toEqual([]);
    const failed = await p.sourceClient.query(`SELECT 1 FROM permsync.execution_log WHERE execution_status = 'failed'`);
    expect(failed.rows).toEqual([]);
  });
});
