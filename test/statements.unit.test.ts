import { beforeAll, describe, expect, it } from 'vitest';
import { planBatch, type Batch } from '../src/capture/batch.js';
import { analyzeQuery, keepGrantees, loadParser, UnparsableQueryError, withoutGrantees } from '../src/capture/statements.js';
import { testBatch } from './support/batch.js';

const context = { currentUser: 'Dba Lead', sessionUser: 'alice', searchPath: '"$user", public' };
const analyze = (query: string) => analyzeQuery(query, context);
const replayed = (query: string) => analyze(query).flatMap((g) => g.replay.map((s) => s.sql));

beforeAll(loadParser);

describe('cutting permission statements out of a client string', () => {
  it('keeps only the permission statements of a mixed string, in order', () => {
    const query = `CREATE TABLE t (a int); GRANT SELECT ON t TO app; ALTER TABLE t ADD COLUMN b int;
                   REVOKE INSERT ON t FROM PUBLIC; INSERT INTO t VALUES (1)`;
    expect(replayed(query)).toEqual(['GRANT SELECT ON t TO app', 'REVOKE INSERT ON t FROM PUBLIC']);
  });

  it('predicts the tags the event trigger records, ALTER only when the string mentions an owner', () => {
    expect(analyze('GRANT SELECT ON t TO a; ALTER TABLE t ADD COLUMN b int').map((g) => g.firingTags)).toEqual([['GRANT']]);
    expect(analyze('ALTER TABLE t OWNER TO a; ALTER TABLE u ADD COLUMN b int').map((g) => g.firingTags)).toEqual([['ALTER TABLE', 'ALTER TABLE']]);
  });

  it('leaves out shared-object statements, for which no event trigger fires', () => {
    const groups = analyze('GRANT CONNECT ON DATABASE app TO a; GRANT r1 TO r2; ALTER DATABASE app OWNER TO a; GRANT USAGE ON SCHEMA s TO a');
    expect(groups.map((g) => g.firingTags)).toEqual([['GRANT']]);
  });

  it('keeps quoted, mixed-case and non-ASCII identifiers byte for byte', () => {
    const sql = `GRANT SELECT, UPDATE ("Größe") ON "Äpp Schema"."Mixed""Case" TO "Reader Role"`;
    expect(replayed(`SELECT 1; ${sql}; SELECT 'ü'`)).toEqual([sql]);
  });

  it('follows transaction control: rolled-back statements and savepoints are dropped', () => {
    const groups = analyze(`BEGIN; GRANT SELECT ON t TO a; ROLLBACK;
      GRANT INSERT ON t TO b; BEGIN; SAVEPOINT s; GRANT UPDATE ON t TO c; ROLLBACK TO SAVEPOINT s;
      GRANT DELETE ON t TO d; COMMIT; GRANT TRUNCATE ON t TO e`);
    expect(groups.map((g) => g.replay.map((s) => s.sql))).toEqual([
      ['GRANT INSERT ON t TO b', 'GRANT DELETE ON t TO d'],
      ['GRANT TRUNCATE ON t TO e'],
    ]);
  });

  it('refuses two-phase commit rather than guess', () => {
    expect(() => analyze("BEGIN; GRANT SELECT ON t TO a; PREPARE TRANSACTION 'x'")).toThrow(UnparsableQueryError);
  });

  it('finds nothing to replay inside a DO block (the planner flags the mismatch)', () => {
    expect(analyze('DO $$ BEGIN GRANT SELECT ON t TO a; END $$')).toEqual([]);
  });
});

describe('making session-dependent statements mean the same on the target', () => {
  it('names the source user where ALTER DEFAULT PRIVILEGES has no FOR ROLE', () => {
    expect(replayed('ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO reader')).toEqual([
      'ALTER DEFAULT PRIVILEGES FOR ROLE "Dba Lead" IN SCHEMA app GRANT SELECT ON TABLES TO reader',
    ]);
    expect(replayed('alter default privileges for role owner1 grant usage on types to reader')).toEqual([
      'alter default privileges for role owner1 grant usage on types to reader',
    ]);
  });

  it('replaces CURRENT_USER, CURRENT_ROLE and SESSION_USER with the names they had', () => {
    expect(replayed('GRANT SELECT ON t TO CURRENT_USER, session_user; ALTER FUNCTION f(int) OWNER TO current_role')).toEqual([
      'GRANT SELECT ON t TO "Dba Lead", "alice"',
      'ALTER FUNCTION f(int) OWNER TO "Dba Lead"',
    ]);
  });

  it('carries only the owner change of an ALTER TABLE that also changes the schema', () => {
    const [group] = analyze('ALTER TABLE IF EXISTS "S"."T" ADD COLUMN c int, OWNER TO "New Owner"');
    expect(group?.replay.map((s) => s.sql)).toEqual(['ALTER TABLE IF EXISTS "S"."T" OWNER TO "New Owner"']);
  });

  it('skips DROP OWNED with a reason, since it drops objects', () => {
    const [group] = analyze('DROP OWNED BY old_role');
    expect(group?.replay).toEqual([]);
    expect(group?.skipped[0]?.reason).toMatch(/drops objects/);
  });
});

describe('what rules see of a statement', () => {
  it('lists roles, grantees and schemas', () => {
    const [group] = analyze(
      'GRANT SELECT ON ALL TABLES IN SCHEMA sales, hr TO analyst WITH GRANT OPTION; GRANT USAGE ON SCHEMA "Fin" TO PUBLIC; GRANT SELECT ON t TO x',
    );
    const [all, usage, unqualified] = group?.replay ?? [];
    expect(all).toMatchObject({ kind: 'GRANT', roles: ['analyst'], grantees: ['analyst'], schemas: ['sales', 'hr'] });
    expect(usage).toMatchObject({ grantees: [], schemas: ['Fin'] });
    expect(unqualified?.schemas).toEqual(['Dba Lead', 'public']);
  });
});

describe('cutting grantees out of a statement', () => {
  it("rebuilds the grantee list from the parser's offsets, every other byte as it was", () => {
    const without = (sql: string, ...drop: (string | null)[]) => keepGrantees(sql, (g) => !drop.includes(g));
    expect(without('GRANT USAGE ON SCHEMA s TO postgres, anon, authenticated', 'postgres')).toBe('GRANT USAGE ON SCHEMA s TO anon, authenticated');
    expect(without('GRANT ALL ON "Äpp".t TO anon,"Post Gres" /* x */ , GROUP "Auth" WITH GRANT OPTION GRANTED BY postgres', 'Post Gres')).toBe(
      'GRANT ALL ON "Äpp".t TO anon, GROUP "Auth" WITH GRANT OPTION GRANTED BY postgres',
    );
    expect(without('revoke select on t from a, PUBLIC, b cascade', 'b', null)).toBe('revoke select on t from a cascade');
    expect(without('ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO postgres, anon', 'postgres')).toBe(
      'ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO anon',
    );
    // Nothing cut: the same text; nothing left, or no such statement: none.
    expect(without('GRANT SELECT ON t TO a, b', 'c')).toBe('GRANT SELECT ON t TO a, b');
    expect(without('GRANT SELECT ON t TO a, b', 'a', 'b')).toBeUndefined();
    expect(without('ALTER TABLE t OWNER TO a', 'a')).toBeUndefined();
    expect(without('GRANT SELECT ON t TO CURRENT_USER, b', 'b')).toBeUndefined();
  });

  it('gives the statement without them its roles, the roles beside its grantees kept', () => {
    const [adp] = analyze('ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "Dba Lead", anon, PUBLIC')[0]?.replay ?? [];
    expect(adp).toMatchObject({ roles: ['Dba Lead', 'anon'], grantees: ['Dba Lead', 'anon'], grantList: { otherRoles: ['Dba Lead'], public: true } });
    expect(withoutGrantees(adp as never, new Set(['Dba Lead', null]))).toMatchObject({
      sql: 'ALTER DEFAULT PRIVILEGES FOR ROLE "Dba Lead" IN SCHEMA public GRANT SELECT ON TABLES TO anon',
      roles: ['Dba Lead', 'anon'],
      grantees: ['anon'],
      grantList: { otherRoles: ['Dba Lead'], public: false },
    });
    const [grant] = analyze('GRANT SELECT ON t TO a, b')[0]?.replay ?? [];
    expect(withoutGrantees(grant as never, new Set(['a']))).toMatchObject({ sql: 'GRANT SELECT ON t TO b', roles: ['b'], grantees: ['b'] });
  });
});

/** A captured batch of one transaction, as the daemon reads it from the source. */
function captured(queryText: string | null, fields: Partial<Batch> = {}): Batch {
  return testBatch({ queryText, commandTags: ['GRANT'], commandObjects: [null], ...fields });
}
const noSiblings = () => Promise.reject(new Error('a one-transaction string needs no siblings'));

describe('planning a batch never fails: what cannot be planned is not replayable, with the reason', () => {
  it('whatever the parser makes of the text: an error, its own memory exhausted, an empty text', async () => {
    const deep = `GRANT SELECT ON t TO a; SELECT ${'('.repeat(200_000)}1${')'.repeat(200_000)}`;
    for (const text of ['GRANT SELECT ON t TO', deep, '', "BEGIN; GRANT SELECT ON t TO a; PREPARE TRANSACTION 'x'"]) {
      const plan = await planBatch(captured(text), noSiblings);
      expect(plan.replay, text.slice(0, 40)).toEqual([]);
      expect(plan.unreplayable, text.slice(0, 40)).toMatch(/\S/);
    }
  });

  it('whatever else goes wrong: a generated batch it cannot make statements of', async () => {
    const plan = await planBatch(captured(null, { origin: 'role_watcher', statements: [null as never] }), noSiblings);
    expect(plan.unreplayable).toMatch(/^the batch could not be planned: /);
  });

  it('a text the daemon did not read, for its size, or a reason capture gave', async () => {
    expect((await planBatch(captured(null, { textBytes: 62_914_560 }), noSiblings)).unreplayable).toMatch(
      /its text takes 62914560 bytes, over the 65536 the daemon reads of one batch/,
    );
    expect((await planBatch(captured(null, { origin: 'role_watcher', textBytes: 2_000_000 }), noSiblings)).unreplayable).toMatch(
      /its statements take 2000000 bytes, over the 1048576/,
    );
    const said = 'the string ran more than 1000 permission commands in one transaction; capture recorded the first 1000';
    expect((await planBatch(captured('GRANT SELECT ON t TO a', { notReplayable: said }), noSiblings)).unreplayable).toBe(said);
    const many = captured('GRANT SELECT ON t TO a', { commandTags: Array(1001).fill('GRANT'), commandObjects: Array(1001).fill(null) });
    expect((await planBatch(many, noSiblings)).unreplayable).toMatch(/more than 1000 permission commands/);
  });
});

describe('a transaction of more permission commands than capture records', () => {
  it('is converged on every statement of it the string holds, and says only what a function or DO block ran is unknown', async () => {
    const text = Array.from({ length: 1200 }, (_, i) => `GRANT SELECT ON s.t${i} TO reader`).join('; ');
    const said = 'the string ran more than 1000 permission commands in one transaction; capture recorded the first 1000';
    // As capture leaves it: the reason, and rows for the first 1,000 commands.
    const batch = captured(text, { notReplayable: said, commandTags: Array(1000).fill('GRANT'), commandObjects: Array(1000).fill(null) });
    const row = { tag: 'GRANT', objectType: 'table', identity: null, currentUser: 'dba', searchPath: 'public', nested: false, nestedText: null };
    const plan = await planBatch(batch, noSiblings, () => Promise.resolve(Array(1000).fill(row)));
    expect(plan.unreplayable).toBe(said);
    const names = plan.converge?.touches.flatMap((t) => (t.touched.on === 'objects' ? t.touched.names.map((n) => n.name) : []));
    expect(names).toHaveLength(1200);
    expect(names).toContain('t1199');
    expect(plan.converge?.unknown).toEqual(['any command past the first 1000 run by a function or a DO block, which capture did not record']);
  });
});

describe('a string in which a role was renamed or dropped between its permission commands', () => {
  it('is converged on what its statements name, not replayed: the role change reaches the targets before them', async () => {
    const reason = 'a role was renamed or dropped between its permission commands, and that change reaches the targets before them';
    const batch = captured('GRANT SELECT ON t TO old_name; ALTER ROLE old_name RENAME TO new_name; GRANT SELECT ON s.u TO new_name', {
      commandTags: ['GRANT', 'GRANT'],
      commandObjects: [null, null],
      convergeReason: reason,
    });
    const row = { tag: 'GRANT', objectType: 'table', identity: null, currentUser: 'dba', searchPath: 'public', nested: false, nestedText: null };
    const plan = await planBatch(batch, noSiblings, () => Promise.resolve([row, row]));
    expect(plan.replay).toEqual([]);
    expect(plan.unreplayable).toBe(reason);
    expect(plan.converge?.touches.map((t) => t.touched)).toMatchObject([
      { on: 'objects', names: [{ schema: null, name: 't' }] },
      { on: 'objects', names: [{ schema: 's', name: 'u' }] },
    ]);
    expect(plan.converge?.unknown).toEqual([]);
  });
});

describe('a text that may read otherwise on the source than here', () => {
  it('is not replayed when a standard literal holds a backslash: standard_conforming_strings decides where it ends', async () => {
    // Read with the setting off, as the source did, it is one SELECT and the GRANT on t.
    const text = "SELECT 'x\\'; GRANT SELECT ON secret TO app; --'; GRANT SELECT ON t TO app";
    const plan = await planBatch(captured(text), noSiblings);
    expect(plan.replay).toEqual([]);
    expect(plan.unreplayable).toMatch(/standard string literal in it holds a backslash/);
  });

  it('is replayed when backslashes stand only where both settings read them alike', async () => {
    const text = "SELECT E'x\\'', $$y\\$$, U&'\\0041'; GRANT SELECT ON t TO app";
    expect((await planBatch(captured(text), noSiblings)).replay.map((s) => s.sql)).toEqual(['GRANT SELECT ON t TO app']);
  });
});

describe('temporary objects of the source session', () => {
  const temporary = { temporaryObjects: ['tmp_orders', 'tmp_type'] };

  it('a GRANT naming one is not replayed, with the reason; the rest of the string is', async () => {
    const text =
      'GRANT SELECT ON tmp_orders, t TO app; GRANT USAGE ON TYPE tmp_type TO app; GRANT SELECT ON pg_temp.x TO app; ' +
      'GRANT SELECT ON ALL TABLES IN SCHEMA pg_temp_3 TO app; GRANT EXECUTE ON FUNCTION pg_temp.f() TO app; GRANT SELECT ON t TO app';
    const plan = await planBatch(
      captured(text, { ...temporary, commandTags: Array(6).fill('GRANT'), commandObjects: Array(6).fill(null) }),
      noSiblings,
    );
    expect(plan.unreplayable).toBeUndefined();
    expect(plan.replay.map((s) => s.sql)).toEqual(['GRANT SELECT ON t TO app']);
    expect(plan.skipped.map((s) => s.reason)).toEqual([
      'it names tmp_orders, a temporary object of the source session; a target has none',
      'it names tmp_type, a temporary object of the source session; a target has none',
      'it names pg_temp.x, a temporary object of the source session; a target has none',
      'it names schema pg_temp_3, a temporary object of the source session; a target has none',
      'it names pg_temp.f, a temporary object of the source session; a target has none',
    ]);
  });

  it('an owner change is not replayed when its audit row names an object in pg_temp', async () => {
    const text = 'ALTER TABLE tmp_orders OWNER TO app; ALTER TABLE t OWNER TO app';
    const plan = await planBatch(
      captured(text, {
        ...temporary,
        commandTags: ['ALTER TABLE', 'ALTER TABLE'],
        commandObjects: ['pg_temp.tmp_orders', 'public.t'],
      }),
      noSiblings,
    );
    expect(plan.replay.map((s) => s.sql)).toEqual(['ALTER TABLE t OWNER TO app']);
    expect(plan.skipped.map((s) => s.reason)).toEqual([
      'it changes the owner of pg_temp.tmp_orders, a temporary object of the source session; a target has none',
    ]);
  });
});
