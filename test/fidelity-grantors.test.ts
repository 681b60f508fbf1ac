import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { PERMSYNC_ROLES } from '../src/config/rules.js';
import type { ReconcileResult } from '../src/drift/reconcile.js';
import type { PostgresMajor } from '../dev/embedded/cluster.js';
import { permissionSnapshot } from './support/catalog.js';
import { accountDifference, canDump, catalogAccount, dumpAccount, type AccountOptions } from './support/dump.js';
import { reconcileFirst, startPipeline, type Pipeline } from './support/pipeline.js';

/**
 * Reconcile converges privileges granted through grant options where the target's chain
 * is not the source's: a grantor moved by hand, a chain of other depth, and a grantor
 * that lacks USAGE on the schema it grants in (on the source too, where it granted
 * before its USAGE was taken away). Each situation is made on a target by hand; one
 * reconcile makes the target's privileges, grantors included, the source's by the
 * catalog and by pg_dump (the catalog's account where no pg_dump reads the major).
 */
describe.each([14, 18] as PostgresMajor[])('PostgreSQL %i', (major) => {
  let p: Pipeline;

  beforeAll(async () => {
    p = await startPipeline(['dev'], { major });
  });

  afterAll(async () => {
    await p?.close();
  });

  const dev = (sql: string) => p.env('dev').client.query(sql);

  /**
   * Roles and schemas on both servers (as migrations and onboarding would make them), the
   * first role owning the schemas, handed over to permsync on dev; dropped everywhere once the test is over, so that
   * each test's reconcile meets only its own situation.
   */
  async function given(roles: string[], schemas: string[], sql: string): Promise<void> {
    onTestFinished(() =>
      p.everywhere(`DROP SCHEMA IF EXISTS ${schemas.join(', ')} CASCADE; DROP OWNED BY ${roles.join(', ')}; DROP ROLE ${roles.join(', ')}`),
    );
    await p.everywhere(
      `${roles.map((r) => `CREATE ROLE ${r};`).join(' ')} ${schemas.map((s) => `CREATE SCHEMA ${s} AUTHORIZATION ${roles[0]};`).join(' ')} ${sql}`,
    );
    await p.adopt(roles);
  }

  async function reconcileDev(): Promise<ReconcileResult> {
    return reconcileFirst(p);
  }

  /** Privilege lines (grantee, privilege, grant option, grantor) of the objects of these schemas, the schemas' own included. */
  async function privileges(client: 'source' | 'dev', schemas: string[]): Promise<string[]> {
    const lines = await permissionSnapshot(client === 'source' ? p.sourceClient : p.env('dev').client);
    return lines.filter((l) => schemas.some((s) => l.split(' ')[1]?.startsWith(`${s}.`) || l.startsWith(`schema ${s} `)));
  }

  /** The account by pg_dump where an installed one reads this major, else by the catalog. */
  async function account(client: 'source' | 'dev'): Promise<string[]> {
    const options: AccountOptions = { ignoreRoles: [...PERMSYNC_ROLES], database: 'postgres' };
    const server = client === 'source' ? p.source : p.env('dev').server;
    return canDump(major) ? dumpAccount(server.url, options) : catalogAccount(client === 'source' ? p.sourceClient : p.env('dev').client, options);
  }

  /** Reconciles dev, then holds it to the source's privileges on these schemas, and to its whole account. */
  async function expectConverged(schemas: string[]): Promise<ReconcileResult> {
    const before = await privileges('source', schemas);
    expect(await privileges('dev', schemas)).not.toEqual(before);
    const result = await reconcileDev();
    expect(result.failure).toBeUndefined();
    expect(result.after?.report?.differences).toEqual([]);
    expect(await privileges('dev', schemas)).toEqual(before);
    expect(accountDifference(await account('source'), await account('dev'))).toEqual({ onlySource: [], onlyTarget: [] });
    return result;
  }

  it('a grantee whose grant option came from another grantor on the target keeps the grants it made through it', async () => {
    await given(
      ['mv_owner', 'mv_lead', 'mv_team', 'mv_app'],
      ['mv'],
      `CREATE TABLE mv.orders (id int, note text); ALTER TABLE mv.orders OWNER TO mv_owner;
       GRANT USAGE ON SCHEMA mv TO mv_lead, mv_team, mv_app`,
    );
    // On the source the lead passes the option on to the team, which grants the app.
    await p.dba(`SET ROLE mv_owner; GRANT SELECT, UPDATE ON mv.orders TO mv_lead WITH GRANT OPTION;
                 SET ROLE mv_lead; GRANT SELECT, UPDATE ON mv.orders TO mv_team WITH GRANT OPTION;
                 SET ROLE mv_team; GRANT SELECT ON mv.orders TO mv_app; RESET ROLE`);
    // On dev the owner gave the team its option itself: taking that back first, while the
    // team's grant to the app rests on it, is refused (2BP01).
    await dev(`SET ROLE mv_owner; GRANT SELECT, UPDATE ON mv.orders TO mv_team WITH GRANT OPTION;
               SET ROLE mv_team; GRANT SELECT ON mv.orders TO mv_app; RESET ROLE`);
    await expectConverged(['mv']);
  });

  it("grants follow the source's chain where the target's runs deeper through other grantors", async () => {
    await given(
      ['dp_owner', 'dp_a', 'dp_b', 'dp_c', 'dp_lead', 'dp_team', 'dp_app'],
      ['dp'],
      `CREATE TABLE dp.orders (id int); ALTER TABLE dp.orders OWNER TO dp_owner;
       GRANT USAGE ON SCHEMA dp TO dp_a, dp_b, dp_c, dp_lead, dp_team, dp_app`,
    );
    await p.dba(`SET ROLE dp_owner; GRANT SELECT ON dp.orders TO dp_lead WITH GRANT OPTION;
                 SET ROLE dp_lead; GRANT SELECT ON dp.orders TO dp_team WITH GRANT OPTION;
                 SET ROLE dp_team; GRANT SELECT ON dp.orders TO dp_app; RESET ROLE`);
    // On dev the lead is three grants down a chain the source does not have.
    await dev(`SET ROLE dp_owner; GRANT SELECT ON dp.orders TO dp_a WITH GRANT OPTION;
               SET ROLE dp_a; GRANT SELECT ON dp.orders TO dp_b WITH GRANT OPTION;
               SET ROLE dp_b; GRANT SELECT ON dp.orders TO dp_c WITH GRANT OPTION;
               SET ROLE dp_c; GRANT SELECT ON dp.orders TO dp_lead WITH GRANT OPTION; RESET ROLE`);
    await expectConverged(['dp']);
  });

  it("a column's privileges are what the source holds after its table's grant option moves", async () => {
    await given(
      ['cl_owner', 'cl_lead', 'cl_team', 'cl_app', 'cl_audit'],
      ['cl'],
      `CREATE TABLE cl.orders (id int, note text); ALTER TABLE cl.orders OWNER TO cl_owner;
       CREATE TABLE cl.items (id int, note text); ALTER TABLE cl.items OWNER TO cl_owner;
       GRANT USAGE ON SCHEMA cl TO cl_lead, cl_team, cl_app, cl_audit`,
    );
    // The team holds the table's option from the lead, and the owner's SELECT on one column.
    await p.dba(`SET ROLE cl_owner; GRANT SELECT ON cl.orders TO cl_lead WITH GRANT OPTION;
                 GRANT SELECT (note) ON cl.orders TO cl_team;
                 SET ROLE cl_lead; GRANT SELECT ON cl.orders TO cl_team WITH GRANT OPTION;
                 SET ROLE cl_team; GRANT SELECT ON cl.orders TO cl_app; RESET ROLE`);
    // The auditor keeps the owner's option on a column, without it on the table.
    await p.dba(`SET ROLE cl_owner; GRANT SELECT ON cl.items TO cl_audit; GRANT SELECT (note) ON cl.items TO cl_audit WITH GRANT OPTION; RESET ROLE`);
    await dev(`SET ROLE cl_owner; GRANT SELECT ON cl.orders TO cl_team WITH GRANT OPTION;
               SET ROLE cl_team; GRANT SELECT ON cl.orders TO cl_app; RESET ROLE;
               SET ROLE cl_owner; GRANT SELECT ON cl.items TO cl_audit WITH GRANT OPTION;
               GRANT SELECT (note) ON cl.items TO cl_audit WITH GRANT OPTION; RESET ROLE`);
    await expectConverged(['cl']);
  });

  it('a grantor that lacks USAGE on the schema, there as on the source, grants and revokes all the same, and still lacks it after', async () => {
    await given(
      ['us_owner', 'us_lead', 'us_former', 'us_app', 'us_tool'],
      ['us', 'us_types'],
      `CREATE TYPE us_types.mood AS ENUM ('ok'); ALTER TYPE us_types.mood OWNER TO us_owner;
       CREATE TABLE us.orders (id int); ALTER TABLE us.orders OWNER TO us_owner;
       CREATE FUNCTION us.rate(us_types.mood) RETURNS int LANGUAGE sql AS 'SELECT 1';
       ALTER FUNCTION us.rate(us_types.mood) OWNER TO us_owner;
       REVOKE EXECUTE ON FUNCTION us.rate(us_types.mood) FROM PUBLIC;
       GRANT USAGE ON SCHEMA us, us_types TO us_app, us_tool;
       SET ROLE us_owner;
       GRANT SELECT, INSERT ON us.orders TO us_lead, us_former WITH GRANT OPTION;
       GRANT EXECUTE ON FUNCTION us.rate(us_types.mood) TO us_lead WITH GRANT OPTION;
       RESET ROLE`,
    );
    // The lead granted while it had USAGE on both schemas, which was taken away after.
    const asLead = (grants: string) =>
      `GRANT USAGE ON SCHEMA us, us_types TO us_lead; SET ROLE us_lead; ${grants}; RESET ROLE; REVOKE USAGE ON SCHEMA us, us_types FROM us_lead`;
    await p.dba(asLead('GRANT SELECT ON us.orders TO us_app; GRANT EXECUTE ON FUNCTION us.rate(us_types.mood) TO us_app'));
    // On dev the lead granted something else; and a former lead still has USAGE there,
    // which the source took away after it granted.
    await dev(asLead('GRANT INSERT ON us.orders TO us_tool'));
    await p.dba(
      `GRANT USAGE ON SCHEMA us TO us_former; SET ROLE us_former; GRANT INSERT ON us.orders TO us_app; RESET ROLE; REVOKE USAGE ON SCHEMA us FROM us_former`,
    );
    await dev('GRANT USAGE ON SCHEMA us TO us_former');

    const result = await expectConverged(['us', 'us_types']);
    expect(result.applied?.notes).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/INSERT ON TABLE "us"\."orders" FROM "us_tool".*USAGE on SCHEMA "us" lent to its grantor/),
        expect.stringMatching(/EXECUTE ON FUNCTION "us"\."rate"\(us_types\.mood\) TO "us_app".*USAGE on SCHEMA "us", "us_types" lent/),
        expect.stringMatching(/INSERT ON TABLE "us"\."orders" TO "us_app".*USAGE on SCHEMA "us" lent/),
      ]),
    );
    const { rows } = await dev(
      `SELECT r.rolname, has_schema_privilege(r.rolname, 'us', 'USAGE') AS us, has_schema_privilege(r.rolname, 'us_types', 'USAGE') AS types
         FROM pg_roles r WHERE r.rolname IN ('us_lead', 'us_former') ORDER BY 1`,
    );
    expect(rows).toEqual([
      { rolname: 'us_former', us: false, types: false },
      { rolname: 'us_lead', us: false, types: false },
    ]);
  });
});
