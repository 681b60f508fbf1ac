import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

/**
 * A batch statement replay cannot carry converges what it touched, and no more than its
 * author could change on the source: a login's DO block converges its own table, not one
 * it merely names; the target's own roles keep their grants and objects; what ran with
 * capture off stays on the source; an object a target lacks holds nothing.
 */

let p: Pipeline;
const prod = () => p.env('prod').client;
const dev = () => p.env('dev').client;

async function owner(client: typeof p.sourceClient, relation: string): Promise<string | undefined> {
  const { rows } = await client.query<{ owner: string }>(`SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = $1::regclass`, [
    relation,
  ]);
  return rows[0]?.owner;
}

/** The outcome on an environment of the last batch the event trigger wrote. */
async function lastOutcome(environment: string) {
  const { rows } = await p.sourceClient.query<{ execution_status: string; result_message: string | null }>(
    `SELECT x.execution_status, x.result_message FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
      WHERE b.origin = 'event_trigger' AND x.environment_name = $1 ORDER BY b.commit_seq DESC LIMIT 1`,
    [environment],
  );
  return rows[0];
}

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod']);
  await p.everywhere(`
    CREATE ROLE mallory LOGIN; CREATE ROLE auditor; CREATE ROLE app_owner;
    CREATE SCHEMA app; GRANT USAGE ON SCHEMA app TO mallory;
    CREATE TABLE app.mine (id int); ALTER TABLE app.mine OWNER TO mallory;
    CREATE TABLE app.secrets (id int); GRANT SELECT ON app.secrets TO mallory; CREATE TABLE app.shared (id int);
    CREATE FUNCTION app.grant_by_sql() RETURNS void LANGUAGE sql AS 'GRANT SELECT ON app.secrets TO app_owner';
    CREATE ROLE eve LOGIN NOINHERIT; GRANT app_owner TO eve;
    CREATE TABLE app.owned (id int); ALTER TABLE app.owned OWNER TO app_owner; GRANT SELECT ON app.owned TO eve; GRANT USAGE ON SCHEMA app TO eve`);
  await p.adopt();
  // prod's own roles, and a difference prod keeps on purpose.
  await prod().query(`
    CREATE ROLE prod_reader; CREATE ROLE prod_dba;
    GRANT SELECT ON app.mine TO prod_reader; GRANT SELECT ON app.secrets TO auditor; GRANT SELECT ON app.owned TO auditor;
    ALTER TABLE app.shared OWNER TO prod_dba`);
  await p.startDaemon();
});

afterAll(async () => {
  await p?.close();
});

describe('a batch statement replay cannot carry', () => {
  it("a login's DO block converges the table it owns, not one it names and cannot change; the target's own roles keep their grants", async () => {
    // Her GRANT on app.secrets grants nothing (she holds no grant option): a warning, and a recorded command.
    await p.dba(`SET ROLE mallory;
      DO $$ BEGIN GRANT SELECT ON app.mine TO auditor; GRANT SELECT ON app.secrets TO auditor; END $$;
      RESET ROLE`);
    await p.settle();
    for (const client of [dev(), prod()]) expect(await relationPrivileges(client, 'app.mine')).toContain('auditor SELECT by mallory');
    expect(await relationPrivileges(prod(), 'app.mine')).toContain('prod_reader SELECT by mallory');
    // app.secrets is not mallory's: prod keeps the grant to auditor the source lacks.
    expect(await relationPrivileges(prod(), 'app.secrets')).toContain('auditor SELECT by postgres');
    expect((await relationPrivileges(dev(), 'app.secrets')).join()).not.toMatch(/auditor/);
    expect(await lastOutcome('prod')).toMatchObject({
      execution_status: 'success',
      result_message: expect.stringMatching(
        /^converged 1 object\(s\) .*; 1 object\(s\) it names left as they are, but for the grants it made there through a grant option: the role that ran it could not change them on the source/,
      ),
    });
  });

  it("a member of the owner that does not have the owner's privileges (NOINHERIT) converges nothing of its objects", async () => {
    // Without app_owner's privileges, eve's GRANT grants nothing on the source: a warning, and a recorded command.
    await p.dba(`SET ROLE eve; DO $$ BEGIN GRANT SELECT ON app.owned TO auditor; END $$; RESET ROLE`);
    await p.settle();
    expect(await relationPrivileges(prod(), 'app.owned')).toContain('auditor SELECT by app_owner');
    expect(await lastOutcome('prod')).toMatchObject({
      execution_status: 'success',
      result_message: expect.stringMatching(/^the objects it touched match the source's state here .*; 1 object\(s\) it names left as they are/),
    });
  });

  it("a DBA's owner change in a DO block never takes an object from a role of the target's own", async () => {
    await p.dba(`DO $$ BEGIN EXECUTE 'ALTER TABLE app.shared OWNER TO app_owner'; END $$`);
    await p.settle();
    expect(await owner(dev(), 'app.shared')).toBe('app_owner');
    expect(await owner(prod(), 'app.shared')).toBe('prod_dba');
    expect((await lastOutcome('prod'))?.result_message).toMatch(
      /the owner of table "app"."shared" left as it is: "prod_dba" is a role of this environment's own/,
    );
  });

  it('what ran with capture off is not converged, nor a GRANT run by an SQL function, whose objects PostgreSQL does not name', async () => {
    await p.dba(`BEGIN; SET LOCAL permsync.capture = off; DO $$ BEGIN GRANT INSERT ON app.secrets TO app_owner; END $$; COMMIT`);
    await p.settle();
    expect(await lastOutcome('dev')).toMatchObject({ execution_status: 'skipped', result_message: expect.stringMatching(/capture off/) });
    await p.dba(`SELECT app.grant_by_sql()`);
    await p.settle();
    expect(await lastOutcome('dev')).toMatchObject({
      execution_status: 'skipped',
      result_message: expect.stringMatching(/^not replayable: permission commands ran inside a DO block or a function/),
    });
    for (const client of [dev(), prod()]) expect((await relationPrivileges(client, 'app.secrets')).join()).not.toMatch(/app_owner/);
  });

  it('says which objects it names the target lacks, and holds nothing', async () => {
    await p.sourceClient.query(`SET permsync.capture = off; CREATE TABLE app.later (id int); RESET permsync.capture`);
    await p.dba(`DO $$ BEGIN GRANT SELECT ON app.later TO auditor; END $$`);
    await p.settle();
    expect(await lastOutcome('dev')).toMatchObject({
      execution_status: 'skipped',
      result_message: expect.stringMatching(/not converged: table "app"."later", which this environment does not have/),
    });
    await p.dba(`GRANT SELECT ON app.mine TO app_owner`);
    await p.settle();
    for (const client of [dev(), prod()]) expect(await relationPrivileges(client, 'app.mine')).toContain('app_owner SELECT by mallory');
  });

  it('a routine named with its argument types converges that routine, not an overload with as many arguments', async () => {
    const acl = async (client: typeof p.sourceClient, routine: string) =>
      (await client.query<{ acl: string | null }>(`SELECT proacl::text AS acl FROM pg_proc WHERE oid = $1::regprocedure`, [routine])).rows[0]?.acl;
    await p.everywhere(`CREATE TYPE app.cents AS (v bigint);
      CREATE FUNCTION app.pay(int) RETURNS int LANGUAGE sql AS 'SELECT 1';
      CREATE FUNCTION app.pay(text) RETURNS int LANGUAGE sql AS 'SELECT 2';
      CREATE FUNCTION app.pay(app.cents[]) RETURNS int LANGUAGE sql AS 'SELECT 3';
      REVOKE EXECUTE ON FUNCTION app.pay(int), app.pay(text), app.pay(app.cents[]) FROM PUBLIC`);
    // A difference prod keeps on purpose, on the overloads the batch does not name.
    await prod().query(`GRANT EXECUTE ON FUNCTION app.pay(text), app.pay(app.cents[]) TO auditor`);
    const before = { text: await acl(prod(), 'app.pay(text)'), cents: await acl(prod(), 'app.pay(app.cents[])') };
    // Named as written: int is pg_catalog.int4, and the array of a type found in the search path.
    await p.dba(`SET search_path = app, public; DO $$ BEGIN GRANT EXECUTE ON FUNCTION pay(int) TO auditor; END $$; RESET search_path`);
    await p.settle();
    for (const client of [dev(), prod()]) expect(await acl(client, 'app.pay(integer)')).toMatch(/auditor=X\/postgres/);
    expect({ text: await acl(prod(), 'app.pay(text)'), cents: await acl(prod(), 'app.pay(app.cents[])') }).toEqual(before);
    expect(before.cents).toMatch(/auditor=X/);
    await p.dba(`SET search_path = app, public; DO $$ BEGIN GRANT EXECUTE ON FUNCTION pay(cents[]) TO auditor; END $$; RESET search_path`);
    await p.settle();
    expect(await acl(dev(), 'app.pay(app.cents[])')).toMatch(/auditor=X\/postgres/);
    expect(await acl(prod(), 'app.pay(text)')).toEqual(before.text);
  });
});
