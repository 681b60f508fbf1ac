import { beforeAll, describe, expect, it } from 'vitest';
import { compileRules, roleScope } from '../src/config/rules.js';
import { admit } from '../src/plan/admit.js';
import { analyzeQuery, loadParser } from '../src/capture/statements.js';
import type { Statement } from '../src/sql/statement.js';
import { defaultSettings } from '../src/config/schema.js';

beforeAll(loadParser);

const scope = roleScope({
  source: { url: 'postgres://sync@source/app', applicationName: 'permsync' },
  environments: [{ name: 'prod', url: 'postgres://prod_sync@prod/app', priority: 1, enabled: true, rules: [], onPermanentFailure: 'hold' }],
  settings: defaultSettings(),
  http: { port: 0, host: '127.0.0.1' },
  log: { level: 'info' },
});

function statement(sql: string): Statement {
  const [replay] = analyzeQuery(sql, { currentUser: 'dba', sessionUser: 'dba', searchPath: 'public' })[0]?.replay ?? [];
  if (!replay) throw new Error(`no statement in ${sql}`);
  return replay;
}

describe('a statement naming several grantees', () => {
  it('is carried without those a target must not get, and left out only when none is left', () => {
    const grant = statement('GRANT USAGE ON SCHEMA auth TO postgres, anon, prod_sync, authenticated, pg_monitor');
    expect(admit(grant, [], scope)).toEqual({
      admitted: true,
      statement: expect.objectContaining({
        sql: 'GRANT USAGE ON SCHEMA auth TO anon, authenticated, pg_monitor',
        grantees: ['anon', 'authenticated', 'pg_monitor'],
        roles: ['anon', 'authenticated', 'pg_monitor'],
      }),
      leftOut: 'without "postgres", "prod_sync": names excluded role "postgres"; names excluded role "prod_sync"',
    });
    const defaults = statement('ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO postgres, anon');
    expect(admit(defaults, [], scope)).toMatchObject({
      admitted: true,
      statement: { sql: 'ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO anon', roles: ['postgres', 'anon'] },
    });
    expect(admit(statement('GRANT SELECT ON t TO postgres, sync'), [], scope)).toEqual({
      admitted: false,
      reason: 'names excluded role "postgres"; names excluded role "sync"',
    });
    const whole = statement('GRANT SELECT ON t TO anon, PUBLIC');
    expect(admit(whole, [], scope)).toEqual({ admitted: true, statement: whole });
  });

  it("is judged grantee by grantee by an environment's rules too, as drift plans it", () => {
    const grant = statement('GRANT SELECT ON t TO anon, auditor, PUBLIC');
    expect(admit(grant, compileRules([{ action: 'exclude', rolePattern: '^audit' }]), scope)).toMatchObject({
      admitted: true,
      statement: { sql: 'GRANT SELECT ON t TO anon, PUBLIC' },
      leftOut: 'without "auditor": matches exclude rule (role_pattern ^audit)',
    });
    expect(admit(grant, compileRules([{ action: 'include', rolePattern: '^anon$' }]), scope)).toMatchObject({
      admitted: true,
      statement: { sql: 'GRANT SELECT ON t TO anon' },
      leftOut: 'without "auditor", PUBLIC: matches no include rule',
    });
    expect(admit(grant, compileRules([{ action: 'exclude', schemaPattern: '^public$' }]), scope)).toEqual({
      admitted: false,
      reason: 'matches exclude rule (schema_pattern ^public$)',
    });
  });

  it('never makes a predefined role a member of a role, whatever the configuration', () => {
    const membership: Statement = {
      ordinal: 1,
      kind: 'GRANT ROLE',
      sourceText: '',
      sql: 'GRANT "app" TO "pg_monitor"',
      roles: ['pg_monitor', 'app'],
      grantees: ['pg_monitor'],
      granted: 'app',
      schemas: [],
    };
    expect(admit(membership, [], scope)).toEqual({ admitted: false, reason: 'makes predefined role "pg_monitor" a member of a role' });
  });
});
