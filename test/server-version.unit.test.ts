import { beforeAll, describe, expect, it } from 'vitest';
import { forServer } from '../src/plan/server-version.js';
import type { Statement } from '../src/sql/statement.js';
import { loadParser } from '../src/capture/statements.js';

const named = { roles: [], grantees: [], schemas: [] };
const grant = (sql: string): Statement => ({ kind: 'GRANT', sql, ...named });
const sqlOf = (statement: Statement, versionNum: number) => forServer(statement, versionNum).statements.map((s) => s.sql);

beforeAll(async () => {
  await loadParser();
});

describe('a statement for an older server', () => {
  it('is the same object where the server takes it as it is', () => {
    for (const [sql, versionNum] of [
      ['GRANT SELECT, MAINTAIN ON app.t TO w', 170000],
      ['GRANT SELECT ON app.t TO maintainers', 140000],
      ['GRANT ALL ON app.t TO w', 140000],
      ['ALTER ROLE w SET search_path = app', 140000],
      ['GRANT CONNECT ON DATABASE {"database"} TO w', 140000],
    ] as const) {
      const statement = grant(sql);
      expect(forServer(statement, versionNum)).toEqual({ statements: [statement], notes: [] });
      expect(forServer(statement, versionNum).statements[0]).toBe(statement);
    }
  });

  it('leaves MAINTAIN out of a privilege list before 17, however the list is written', () => {
    expect(sqlOf(grant('GRANT SELECT, MAINTAIN ON app.t TO w'), 160000)).toEqual(['GRANT SELECT ON app.t TO w']);
    expect(sqlOf(grant('GRANT maintain, UPDATE (a, "b c"), "maintain" ON TABLE app.t TO w WITH GRANT OPTION'), 140000)).toEqual([
      'GRANT UPDATE (a, "b c") ON TABLE app.t TO w WITH GRANT OPTION',
    ]);
    expect(sqlOf(grant('REVOKE GRANT OPTION FOR INSERT, MAINTAIN ON app.t FROM w'), 150000)).toEqual([
      'REVOKE GRANT OPTION FOR INSERT ON app.t FROM w',
    ]);
    expect(sqlOf(grant('ALTER DEFAULT PRIVILEGES FOR ROLE "for" IN SCHEMA "on" GRANT MAINTAIN, SELECT ON TABLES TO "grant"'), 160000)).toEqual([
      'ALTER DEFAULT PRIVILEGES FOR ROLE "for" IN SCHEMA "on" GRANT SELECT ON TABLES TO "grant"',
    ]);
    expect(sqlOf(grant('ALTER DEFAULT PRIVILEGES FOR ROLE "rôle" IN SCHEMA "schéma" GRANT MAINTAIN, SELECT ON TABLES TO "lecteur"'), 160000)).toEqual(
      ['ALTER DEFAULT PRIVILEGES FOR ROLE "rôle" IN SCHEMA "schéma" GRANT SELECT ON TABLES TO "lecteur"'],
    );
    const { notes } = forServer(grant('GRANT SELECT, MAINTAIN ON app.t TO w'), 160000);
    expect(notes).toEqual([
      'MAINTAIN is left out of "GRANT SELECT, MAINTAIN ON app.t TO w": MAINTAIN is PostgreSQL 17\'s, and this server runs PostgreSQL 16',
    ]);
  });

  it('skips a statement that names nothing but what the server lacks, saying why', () => {
    expect(forServer(grant('REVOKE MAINTAIN ON app.t FROM w'), 140000)).toEqual({
      statements: [],
      notes: ['skipped "REVOKE MAINTAIN ON app.t FROM w": MAINTAIN is PostgreSQL 17\'s, and this server runs PostgreSQL 14'],
    });
    expect(forServer(grant('ALTER DEFAULT PRIVILEGES FOR ROLE o GRANT SELECT ON LARGE OBJECTS TO r'), 170000)).toEqual({
      statements: [],
      notes: [
        'skipped "ALTER DEFAULT PRIVILEGES FOR ROLE o GRANT SELECT ON LARGE OBJECTS TO r": default privileges on large objects are PostgreSQL 18\'s, and this server runs PostgreSQL 17',
      ],
    });
  });

  it('leaves a predefined role the server lacks out of the grantees, or skips the statement when it names it otherwise', () => {
    expect(forServer(grant('GRANT SELECT ON app.t TO pg_maintain, pg_monitor, PUBLIC'), 160000)).toEqual({
      statements: [
        { kind: 'GRANT', sql: 'GRANT SELECT ON app.t TO pg_monitor, PUBLIC', display: 'GRANT SELECT ON app.t TO pg_monitor, PUBLIC', ...named },
      ],
      notes: [
        'pg_maintain is left out of the grantees of "GRANT SELECT ON app.t TO pg_maintain, pg_monitor, PUBLIC": pg_maintain is PostgreSQL 17\'s, and this server runs PostgreSQL 16',
      ],
    });
    expect(sqlOf(grant('ALTER DEFAULT PRIVILEGES FOR ROLE o GRANT SELECT, MAINTAIN ON TABLES TO pg_checkpoint, r'), 140000)).toEqual([
      'ALTER DEFAULT PRIVILEGES FOR ROLE o GRANT SELECT ON TABLES TO r',
    ]);
    expect(sqlOf(grant('REVOKE SELECT ON app.t FROM pg_maintain'), 160000)).toEqual([]);
    expect(
      sqlOf(
        { kind: 'GRANT ON DATABASE', sql: 'GRANT CONNECT ON DATABASE {"database"} TO pg_use_reserved_connections', onTargetDatabase: true, ...named },
        150000,
      ),
    ).toEqual([]);
    expect(forServer({ kind: 'ALTER OWNER', sql: 'ALTER TABLE app.t OWNER TO pg_maintain', ...named }, 160000)).toEqual({
      statements: [],
      notes: ['skipped "ALTER TABLE app.t OWNER TO pg_maintain": pg_maintain is PostgreSQL 17\'s, and this server runs PostgreSQL 16'],
    });
    const older = grant('GRANT SELECT ON app.t TO pg_maintain');
    expect(forServer(older, 170000).statements[0]).toBe(older);
  });

  it('before 16, grants a membership without its INHERIT option, and never one without SET; never one in a younger predefined role', () => {
    const membership = (sql: string): Statement => ({ kind: 'GRANT ROLE', sql, ...named });
    expect(sqlOf(membership('GRANT "a b" TO m WITH ADMIN TRUE, INHERIT FALSE, SET TRUE'), 150000)).toEqual(['GRANT "a b" TO "m" WITH ADMIN OPTION']);
    expect(sqlOf(membership('GRANT a TO m WITH ADMIN FALSE, INHERIT TRUE, SET TRUE'), 140000)).toEqual([
      'GRANT "a" TO "m"',
      'REVOKE ADMIN OPTION FOR "a" FROM "m"',
    ]);
    expect(sqlOf(membership('GRANT a TO m WITH INHERIT FALSE'), 140000)).toEqual(['GRANT "a" TO "m"']);
    expect(forServer(membership('GRANT a TO m WITH ADMIN TRUE, INHERIT TRUE, SET FALSE'), 140000)).toEqual({
      statements: [{ kind: 'REVOKE ROLE', sql: 'REVOKE "a" FROM "m"', display: 'REVOKE "a" FROM "m"', ...named }],
      notes: [
        '"GRANT a TO m WITH ADMIN TRUE, INHERIT TRUE, SET FALSE": PostgreSQL 14 has no SET option for a membership, and granting it there would let "m" SET ROLE "a": not granted there (revoked if it was)',
      ],
    });
    expect(forServer(membership('GRANT pg_maintain TO m'), 160000)).toEqual({
      statements: [],
      notes: ['skipped "GRANT pg_maintain TO m": pg_maintain is PostgreSQL 17\'s, and this server runs PostgreSQL 16'],
    });
    expect(sqlOf(membership('REVOKE pg_checkpoint FROM m'), 140000)).toEqual([]);
    const kept = membership('GRANT a TO m WITH ADMIN FALSE, INHERIT FALSE, SET FALSE');
    expect(forServer(kept, 160000).statements[0]).toBe(kept);
  });
});
