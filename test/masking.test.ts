import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';

let p: Pipeline;
const logLines: string[] = [];

/** Every password below holds this; none may be found anywhere permsync writes. */
const SECRET = 'S3cret';

/**
 * Client strings that each set a password and grant, quoted every way PostgreSQL's
 * scanner allows. Each grant must still reach the target.
 */
const STRINGS: { text: string; grantee: string; standardConformingStrings?: 'off' }[] = [
  // A dollar-quote tag of non-ASCII letters.
  { text: `CREATE ROLE m1 LOGIN PASSWORD $€$${SECRET}-1$€$; GRANT SELECT ON masked TO m1`, grantee: 'm1' },
  // A -- comment ends at a bare carriage return; what follows is code.
  { text: `GRANT INSERT ON masked TO m2; -- it's a note\rALTER ROLE m2 PASSWORD '${SECRET}-2'`, grantee: 'm2' },
  // With standard_conforming_strings off, a backslash escapes in a plain literal too.
  { text: `CREATE ROLE m3 LOGIN PASSWORD '${SECRET}-3'; GRANT SELECT ON masked TO m3`, grantee: 'm3', standardConformingStrings: 'off' },
  // Dynamic SQL: the string never says the word.
  { text: `DO $$ BEGIN EXECUTE 'ALTER ROLE m4 PASS' || 'WORD ''${SECRET}-4'''; END $$; GRANT SELECT ON masked TO m4`, grantee: 'm4' },
  // An E string continued on the next line stays an E string: \\' does not end it.
  { text: `ALTER ROLE m5 PASSWORD E'a'\n'${SECRET}-5\\'b'; GRANT SELECT ON masked TO m5`, grantee: 'm5' },
  // ... also across a comment.
  { text: `ALTER ROLE m6 PASSWORD E'a' -- '\n'\\'${SECRET}-6'; GRANT SELECT ON masked TO m6`, grantee: 'm6' },
  // Nested comments, with quotes and dollars inside.
  { text: `/* one /* two */ it's $$ still */ ALTER ROLE m7 PASSWORD '${SECRET}-7'; GRANT SELECT ON masked TO m7`, grantee: 'm7' },
  // Unicode escapes, with their own escape character.
  { text: `ALTER ROLE m8 PASSWORD U&'${SECRET}!002D8' UESCAPE '!'; GRANT SELECT ON masked TO m8`, grantee: 'm8' },
  // Tags with digits and underscores; a dollar inside an identifier is no quote.
  { text: `SELECT 1 AS a$$b; ALTER ROLE m9 PASSWORD $t_1$${SECRET}-9$t_1$; GRANT SELECT ON masked TO m9`, grantee: 'm9' },
  // Doubled quotes in identifiers and strings, -- inside a string.
  { text: `CREATE ROLE "m""1'0" LOGIN PASSWORD '${SECRET}--''10'; GRANT SELECT ON masked TO "m""1'0"`, grantee: 'm"1\'0' },
  // Bit, hex and national strings around it.
  { text: `SELECT B'1', X'FF', N'n'; ALTER ROLE m11 PASSWORD '${SECRET}-11'; GRANT SELECT ON masked TO m11`, grantee: 'm11' },
  // A verifier typed by a client (psql's \password sends one).
  { text: `ALTER ROLE m12 PASSWORD 'md5${'0'.repeat(26)}${SECRET}'; GRANT SELECT ON masked TO m12`, grantee: 'm12' },
];

beforeAll(async () => {
  p = await startPipeline(['prod']);
  await p.everywhere(`CREATE TABLE masked (id int);
    CREATE ROLE m2; CREATE ROLE m4; CREATE ROLE m5; CREATE ROLE m6; CREATE ROLE m7; CREATE ROLE m8; CREATE ROLE m9;
    CREATE ROLE m11; CREATE ROLE m12`);
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  await p.startDaemon(p.config(), logLines);
});

afterAll(async () => {
  await p?.close();
});

describe('no password typed in a captured string is stored or logged, however it is quoted', () => {
  it("the batches, audit trail, execution log, views and the daemon's log hold none, and every grant is carried", async () => {
    for (const { text, standardConformingStrings } of STRINGS) {
      if (standardConformingStrings) await p.dba('SET standard_conforming_strings = off; SET escape_string_warning = off');
      try {
        await p.dba(text);
      } finally {
        if (standardConformingStrings) await p.dba('RESET standard_conforming_strings; RESET escape_string_warning');
      }
    }
    await p.settle();
    const privileges = await relationPrivileges(p.env('prod').client, 'masked');
    for (const { grantee } of STRINGS) {
      expect(
        privileges.some((line) => line.startsWith(`${grantee} `)),
        grantee,
      ).toBe(true);
    }
    const { rows } = await p.sourceClient.query<{ what: string; text: string }>(`
      SELECT 'batches' AS what, row_to_json(t)::text AS text FROM permsync.batches t
      UNION ALL SELECT 'audit_log', row_to_json(t)::text FROM permsync.audit_log t
      UNION ALL SELECT 'execution_log', row_to_json(t)::text FROM permsync.execution_log t
      UNION ALL SELECT 'retry_queue', row_to_json(t)::text FROM permsync.retry_queue t
      UNION ALL SELECT 'role_snapshot', row_to_json(t)::text FROM permsync.role_snapshot t
      UNION ALL SELECT 'v_recent_batches', row_to_json(t)::text FROM permsync.v_recent_batches t
      UNION ALL SELECT 'v_execution_details', row_to_json(t)::text FROM permsync.v_execution_details t
      UNION ALL SELECT 'v_failed_syncs', row_to_json(t)::text FROM permsync.v_failed_syncs t
      UNION ALL SELECT 'v_audit_trail', row_to_json(t)::text FROM permsync.v_audit_trail t`);
    expect(rows.filter((r) => r.what === 'batches').length).toBeGreaterThanOrEqual(STRINGS.length);
    expect(rows.filter((r) => r.text.includes(SECRET))).toEqual([]);
    expect(logLines.join('')).toContain('applied');
    expect(logLines.filter((line) => line.includes(SECRET))).toEqual([]);
  });
});
