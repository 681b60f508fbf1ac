import { describe, expect, it } from 'vitest';
import type { Catalog, Grant } from '../src/catalog/catalog.js';
import { compare } from '../src/catalog/compare.js';
import { orderPlan, planChange } from '../src/plan/changes.js';
import { releaseStatements } from '../src/plan/release.js';
import { admit } from '../src/plan/admit.js';
import { roleScope } from '../src/config/rules.js';
import { defaultSettings } from '../src/config/schema.js';

// Privileges granted through grant options, compared and planned per grantor: the
// statements a grant-option chain needs, in the order a target accepts them.

function catalog(grants: Grant[]): Catalog {
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
    objects: [{ kind: 'table', schema: 'app', name: 'orders', args: null, owner: 'owner', columns: [], grants }],
    defaultPrivileges: [],
  };
}

/** owner → u1 → u2 → u3, each with the grant option but the last. */
const CHAIN: Grant[] = [
  { grantee: 'u1', privilege: 'SELECT', grantable: true, grantor: null },
  { grantee: 'u2', privilege: 'SELECT', grantable: true, grantor: 'u1' },
  { grantee: 'u3', privilege: 'SELECT', grantable: false, grantor: 'u2' },
];

function plan(source: Grant[], target: Grant[]): string[] {
  const changes = compare(catalog(source), catalog(target), { includeExtraRoles: false, foreign: new Set() });
  return orderPlan(changes.flatMap((c) => planChange(c, { targetVersionNum: 170000 }))).map((s) => s.sql);
}

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
