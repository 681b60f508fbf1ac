import { describe, expect, it } from 'vitest';
import type { Catalog, Grant, Membership, ObjectKind, RoleState } from '../src/catalog/catalog.js';
import { compare, type PrivilegeTarget } from '../src/catalog/compare.js';
import { orderPlan, planChange } from '../src/plan/changes.js';
import { releaseStatements } from '../src/plan/release.js';
import { admit } from '../src/plan/admit.js';
import { roleScope } from '../src/config/rules.js';
import { defaultSettings } from '../src/config/schema.js';

// Privileges granted through grant options, compared and planned per grantor: the
// statements a grant-option chain needs, in the order a target accepts them.

/** A catalog with one table, app.orders, and its column `note` where it holds privileges. */
function catalog(grants: Grant[], noteGrants: Grant[] = []): Catalog {
  return {
    serverVersionNum: 170000,
    database: 'app',
    user: 'permsync',
    superuser: true,
    verifiersRead: false,
    verifiersUnread: null,
    roles: new Map(),
    roleOids: new Map(),
    memberships: [],
    settings: [],
    databaseOwner: 'postgres',
    databaseGrants: [],
    shared: { database: [], tablespace: [], parameter: [] },
    objects: [
      { kind: 'table', schema: 'app', name: 'orders', args: null, owner: 'owner', columns: ['id', 'note'], grants },
      ...(noteGrants.length > 0
        ? [{ kind: 'column' as const, schema: 'app', name: 'orders', args: 'note', owner: null, columns: null, grants: noteGrants }]
        : []),
    ],
    defaultPrivileges: [],
  };
}

/** owner → u1 → u2 → u3, each with the grant option but the last. */
const CHAIN: Grant[] = [
  { grantee: 'u1', privilege: 'SELECT', grantable: true, grantor: null },
  { grantee: 'u2', privilege: 'SELECT', grantable: true, grantor: 'u1' },
  { grantee: 'u3', privilege: 'SELECT', grantable: false, grantor: 'u2' },
];

function plan(source: Grant[], target: Grant[], sourceNote: Grant[] = [], targetNote: Grant[] = []): string[] {
  const changes = compare(catalog(source, sourceNote), catalog(target, targetNote), { includeExtraRoles: false, foreign: new Set() });
  return orderPlan(changes.flatMap((c) => planChange(c, { targetVersionNum: 170000 }))).map((s) => s.sql);
}

const grant = (grantee: string, grantor: string | null, grantable = false): Grant => ({ grantee, privilege: 'SELECT', grantable, grantor });

describe('privileges granted through grant options', () => {
  it('are granted by their grantors, each grantor after the grant that gives it the option', () => {
    expect(plan(CHAIN, [])).toEqual([
      'GRANT SELECT ON TABLE "app"."orders" TO "u1" WITH GRANT OPTION',
      'SET LOCAL ROLE "u1"; GRANT SELECT ON TABLE "app"."orders" TO "u2" WITH GRANT OPTION; RESET ROLE',
      'SET LOCAL ROLE "u2"; GRANT SELECT ON TABLE "app"."orders" TO "u3"; RESET ROLE',
    ]);
  });

  it('are revoked by their grantors, the grants that depend on others first', () => {
    expect(plan([], CHAIN)).toEqual([
      'SET LOCAL ROLE "u2"; REVOKE SELECT ON TABLE "app"."orders" FROM "u3"; RESET ROLE',
      'SET LOCAL ROLE "u1"; REVOKE SELECT ON TABLE "app"."orders" FROM "u2"; RESET ROLE',
      'REVOKE SELECT ON TABLE "app"."orders" FROM "u1"',
    ]);
  });

  it('of any depth, listed in any order, are granted grantor first and revoked dependents first', () => {
    const depth = 300;
    const links = Array.from({ length: depth }, (_, i) => ((i * 37) % depth) + 1);
    const chain: Grant[] = links.map((i) => ({ grantee: `u${i}`, privilege: 'SELECT', grantable: true, grantor: i === 1 ? null : `u${i - 1}` }));
    const grant = (i: number) =>
      i === 1
        ? 'GRANT SELECT ON TABLE "app"."orders" TO "u1" WITH GRANT OPTION'
        : `SET LOCAL ROLE "u${i - 1}"; GRANT SELECT ON TABLE "app"."orders" TO "u${i}" WITH GRANT OPTION; RESET ROLE`;
    const revoke = (i: number) =>
      i === 1
        ? 'REVOKE SELECT ON TABLE "app"."orders" FROM "u1"'
        : `SET LOCAL ROLE "u${i - 1}"; REVOKE SELECT ON TABLE "app"."orders" FROM "u${i}"; RESET ROLE`;
    expect(plan(chain, [])).toEqual(Array.from({ length: depth }, (_, i) => grant(i + 1)));
    expect(plan([], chain)).toEqual(Array.from({ length: depth }, (_, i) => revoke(depth - i)));
  });

  it('as deep as any login likes are ordered without running out of stack', () => {
    const depth = 50_000;
    const chain: Grant[] = Array.from({ length: depth }, (_, i) => ({
      grantee: `u${i + 1}`,
      privilege: 'SELECT',
      grantable: true,
      grantor: i === 0 ? null : `u${i}`,
    }));
    const planned = plan(chain.slice().reverse(), []);
    expect(planned).toHaveLength(depth);
    expect(planned[depth - 1]).toBe(
      `SET LOCAL ROLE "u${depth - 1}"; GRANT SELECT ON TABLE "app"."orders" TO "u${depth}" WITH GRANT OPTION; RESET ROLE`,
    );
  });

  it('differ when only the grantor does: the grant moves to the source grantor', () => {
    const byOwner: Grant[] = [CHAIN[0] as Grant, CHAIN[1] as Grant, { ...(CHAIN[2] as Grant), grantor: null }];
    expect(plan(CHAIN, byOwner)).toEqual([
      'REVOKE SELECT ON TABLE "app"."orders" FROM "u3"',
      'SET LOCAL ROLE "u2"; GRANT SELECT ON TABLE "app"."orders" TO "u3"; RESET ROLE',
    ]);
    expect(plan(CHAIN, CHAIN)).toEqual([]);
  });

  it('by a role of the target its own are left alone', () => {
    const changes = compare(catalog(CHAIN), catalog([]), { includeExtraRoles: false, foreign: new Set(['u2']) });
    expect(changes.map((c) => (c.type === 'privileges' ? [c.grantee, c.grantor] : c.type))).toEqual([['u1', null]]);
  });

  it('held by a role dropped on the source are revoked by each grantor, with what depends on them, before it is dropped', () => {
    const held = {
      objects: [
        {
          kind: 'table' as const,
          schema: 'app',
          name: 'orders',
          args: null,
          owned: false,
          grants: [
            { privilege: 'SELECT', state: 'grantable' as const, grantor: null },
            { privilege: 'UPDATE', state: 'granted' as const, grantor: 'u1' },
          ],
        },
      ],
      databaseGrants: [],
      defaultPrivileges: [],
      policies: [],
    };
    expect(releaseStatements('gone', held, new Map(), { targetVersionNum: 170000 }).map((s) => s.sql)).toEqual([
      'SET LOCAL ROLE "u1"; REVOKE UPDATE ON TABLE "app"."orders" FROM "gone" CASCADE; RESET ROLE',
      'REVOKE SELECT ON TABLE "app"."orders" FROM "gone" CASCADE',
    ]);
  });

  it('are not made as an excluded or a predefined role: the difference stays, marked so', () => {
    const scope = roleScope({
      source: { url: 'postgres://sync@source/app', applicationName: 'permsync' },
      environments: [{ name: 'prod', url: 'postgres://sync@prod/app', priority: 1, enabled: true, rules: [], onPermanentFailure: 'hold' }],
      settings: { ...defaultSettings(), excludedRoles: ['postgres', 'ops_*'] },
      http: { port: 0, host: '127.0.0.1' },
      log: { level: 'info' },
    });
    const by = (grantor: string) =>
      orderPlan(
        compare(catalog([{ grantee: 'u3', privilege: 'SELECT', grantable: false, grantor }]), catalog([]), {
          includeExtraRoles: false,
          foreign: new Set(),
        }).flatMap((c) => planChange(c, { targetVersionNum: 170000 })),
      ).map((s) => admit(s, [], scope));
    expect(by('ops_admin')).toEqual([{ admitted: false, reason: 'runs as excluded role "ops_admin", its grantor' }]);
    expect(by('pg_monitor')).toEqual([{ admitted: false, reason: 'runs as predefined role "pg_monitor", its grantor' }]);
    expect(by('u2')).toEqual([{ admitted: true, statement: expect.objectContaining({ runAs: 'u2' }) }]);
  });
});

describe('grant-option chains that run otherwise on the target than on the source', () => {
  it('take a grant option back from a grantee that keeps it through another grantor once that grant is made', () => {
    // Taken back first, u2's option would leave its grant to u3 without one: PostgreSQL refuses (2BP01).
    expect(plan(CHAIN, [grant('u2', null, true), CHAIN[2] as Grant])).toEqual([
      'GRANT SELECT ON TABLE "app"."orders" TO "u1" WITH GRANT OPTION',
      'SET LOCAL ROLE "u1"; GRANT SELECT ON TABLE "app"."orders" TO "u2" WITH GRANT OPTION; RESET ROLE',
      'REVOKE SELECT ON TABLE "app"."orders" FROM "u2"',
    ]);
  });

  it("grant in the order of the source's chain and revoke in the reverse order of the target's, whichever runs deeper", () => {
    // On the target u1 is two grants down, through x: its grants must not wait for that depth.
    expect(plan(CHAIN, [grant('x', null, true), grant('u1', 'x', true)])).toEqual([
      'GRANT SELECT ON TABLE "app"."orders" TO "u1" WITH GRANT OPTION',
      'SET LOCAL ROLE "u1"; GRANT SELECT ON TABLE "app"."orders" TO "u2" WITH GRANT OPTION; RESET ROLE',
      'SET LOCAL ROLE "u2"; GRANT SELECT ON TABLE "app"."orders" TO "u3"; RESET ROLE',
      'SET LOCAL ROLE "x"; REVOKE SELECT ON TABLE "app"."orders" FROM "u1"; RESET ROLE',
      'REVOKE SELECT ON TABLE "app"."orders" FROM "x"',
    ]);
  });

  it("grant on a column after a revoke on its table that would take the column's grant back", () => {
    // u1's option moves to u2's grant; the owner's grant on the column stays, and the
    // table's revoke, which waits for u1's new option, takes the owner's column grant with it.
    const source = [grant('u2', null, true), grant('u1', 'u2', true), grant('u3', 'u1')];
    const target = [grant('u1', null, true), grant('u3', 'u1')];
    expect(plan(source, target, [grant('u1', null)], [grant('u1', null)])).toEqual([
      'GRANT SELECT ON TABLE "app"."orders" TO "u2" WITH GRANT OPTION',
      'SET LOCAL ROLE "u2"; GRANT SELECT ON TABLE "app"."orders" TO "u1" WITH GRANT OPTION; RESET ROLE',
      'REVOKE SELECT ON TABLE "app"."orders" FROM "u1"',
      'GRANT SELECT ("note") ON TABLE "app"."orders" TO "u1"',
    ]);
  });

  it("give a column its grant option again where taking the table's away takes the column's too", () => {
    expect(plan([grant('u1', null)], [grant('u1', null, true)], [grant('u1', null, true)], [grant('u1', null, true)])).toEqual([
      'REVOKE GRANT OPTION FOR SELECT ON TABLE "app"."orders" FROM "u1"',
      'GRANT SELECT ("note") ON TABLE "app"."orders" TO "u1" WITH GRANT OPTION',
    ]);
  });
});

describe('a statement run as its grantor', () => {
  const statement = (target: PrivilegeTarget, grantor: string | null = 'u1') =>
    planChange(
      {
        type: 'privileges',
        target,
        grantee: 'u2',
        grantor,
        depth: { source: 1, target: 1 },
        changes: [{ privilege: 'USAGE', from: 'absent', to: 'granted' }],
      },
      { targetVersionNum: 170000 },
    )[0]?.statement;
  const object = (kind: ObjectKind, args: string | null = null): PrivilegeTarget => ({
    on: 'object',
    object: { kind, schema: 'app', name: 'x', args },
  });

  it("names the schemas it looks names up in: its object's, and a routine's argument types'", () => {
    expect(statement(object('table'))?.lookups).toEqual(['app']);
    expect(statement(object('column', 'note'))?.lookups).toEqual(['app']);
    expect(statement(object('function', 'integer, "My Types".mood[], app.x, character varying'))?.lookups).toEqual(['app', 'My Types']);
    expect(statement(object('aggregate', ''))?.lookups).toEqual(['app']);
  });

  it("names none where nothing is looked up: a schema's own privileges, the owner's grants", () => {
    expect(statement({ on: 'object', object: { kind: 'schema', schema: 'app', name: null, args: null } })?.lookups).toBeUndefined();
    expect(statement({ on: 'database' })?.lookups).toBeUndefined();
    expect(statement(object('table'), null)?.lookups).toBeUndefined();
  });
});

describe('grant-option chains PostgreSQL takes apart only with CASCADE', () => {
  it('take options left in a cycle back with CASCADE, once, after everything else on the object', () => {
    // u1 and u2 hold their options only through each other's grants: either revoke alone is refused (2BP01).
    expect(plan([], [grant('u1', 'u2', true), grant('u2', 'u1', true), grant('u3', 'u2')])).toEqual([
      'SET LOCAL ROLE "u2"; REVOKE SELECT ON TABLE "app"."orders" FROM "u3"; RESET ROLE',
      'SET LOCAL ROLE "u2"; REVOKE SELECT ON TABLE "app"."orders" FROM "u1" CASCADE; RESET ROLE',
    ]);
  });

  it('make a revoke the plan would order wrongly in a cycle plainly, last, where it is accepted by then', () => {
    expect(plan([], [grant('u1', null, true), grant('u1', 'u2', true), grant('u2', 'u1', true)])).not.toContainEqual(
      expect.stringContaining('CASCADE'),
    );
  });

  it("take a column's option back with CASCADE where its grantee granted on the column through the table's, and grant again what it took", () => {
    const table = [grant('u1', null, true)];
    expect(
      plan(table, table, [grant('u2', 'u1', true), grant('u3', 'u2')], [grant('u1', null, true), grant('u2', 'u1', true), grant('u3', 'u2')]),
    ).toEqual([
      'REVOKE SELECT ("note") ON TABLE "app"."orders" FROM "u1" CASCADE',
      'SET LOCAL ROLE "u1"; GRANT SELECT ("note") ON TABLE "app"."orders" TO "u2" WITH GRANT OPTION; RESET ROLE',
      'SET LOCAL ROLE "u2"; GRANT SELECT ("note") ON TABLE "app"."orders" TO "u3"; RESET ROLE',
    ]);
  });
});

describe('an option its grantee keeps through a membership (has_privs_of_role)', () => {
  // The target: u1 and u2 hold the option from the owner, and u1 granted u3. The source took u1's option back.
  const target = [grant('u1', null, true), grant('u2', null, true), grant('u3', 'u1')];
  const source = [grant('u1', null), grant('u2', null, true), grant('u3', 'u1')];
  const role = (name: string, superuser = false) => ({ name, superuser, inherit: true }) as RoleState;
  const member = (of: string, inherit: boolean | null = true): Membership => ({
    role: of,
    member: 'u1',
    grantor: null,
    admin: false,
    inherit,
    set: true,
  });

  function planWith(sides: { source?: Partial<Catalog>; target?: Partial<Catalog> }, rolesAsTheyAre = false): string[] {
    const on = (grants: Grant[], extra: Partial<Catalog> = {}) => ({ ...catalog(grants), ...extra });
    const changes = compare(on(source, sides.source), on(target, sides.target), { includeExtraRoles: false, foreign: new Set(), rolesAsTheyAre });
    return orderPlan(changes.flatMap((c) => planChange(c, { targetVersionNum: 170000 }))).map((s) => s.sql);
  }

  const PLAIN = 'REVOKE GRANT OPTION FOR SELECT ON TABLE "app"."orders" FROM "u1"';

  it('is taken plainly, leaving what it granted, where it inherits from a holder of the option or from the owner', () => {
    expect(planWith({ source: { memberships: [member('u2')] }, target: { memberships: [member('u2')] } })).toEqual([PLAIN]);
    expect(planWith({ source: { memberships: [member('owner')] }, target: { memberships: [member('owner')] } })).toEqual([PLAIN]);
    const superuser = { roles: new Map([['u1', role('u1', true)]]) };
    expect(planWith({ source: superuser, target: superuser })).toEqual([PLAIN]);
  });

  it('is taken with CASCADE, and what it granted granted again, where its membership does not inherit', () => {
    const memberships = [member('u2', false)];
    expect(planWith({ source: { memberships }, target: { memberships } })).toContain(`${PLAIN} CASCADE`);
  });

  it("counts the plan's membership for reconcile, and the target's as it is for a converged batch", () => {
    const sides = { source: { memberships: [member('u2')] } };
    expect(planWith(sides)).toEqual([expect.stringMatching(/^GRANT "u2" TO "u1"/), PLAIN]);
    expect(planWith(sides, true)).toContain(`${PLAIN} CASCADE`);
  });
});
