import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pgDumpOf } from './dump.js';

const run = promisify(execFile);

/**
 * The major whose pg_dump writes sql/schema.dump.sql, against a server of the same major:
 * pg_dump's output changes from one major to the next. 15 is Debian 12's client.
 */
export const SCHEMA_DUMP_MAJOR = 15;

/** The tables whose rows a fresh install writes and the daemon relies on; role_snapshot's are the server's own. */
const INSTALLED_ROWS = ['permsync.schema_migrations', 'permsync.config', 'permsync.locks', 'permsync.leader'];

/**
 * What an install left in the database at `url`: `pg_dump --schema-only`, then the rows
 * of INSTALLED_ROWS, the same from run to run. Left out: pg_dump's version lines and its
 * \restrict lines (a random key each run); timestamps read 2000-01-01.
 */
export async function dumpSchema(url: string): Promise<string> {
  const pgDump = pgDumpOf(SCHEMA_DUMP_MAJOR);
  const options = { maxBuffer: 64 * 1024 * 1024 };
  const schema = (await run(pgDump, ['--schema-only', '-d', url], options)).stdout;
  const data = (await run(pgDump, ['--data-only', ...INSTALLED_ROWS.map((t) => `--table=${t}`), '-d', url], options)).stdout;
  // Each table's rows, with the comment pg_dump heads them with.
  const rows = data.match(/^--\n-- Data for Name: .*\n--\n\n[^]*?^\\\.$/gm) ?? [];
  const end = schema.lastIndexOf('--\n-- PostgreSQL database dump complete');
  const text = `${schema.slice(0, end)}${rows.join('\n\n')}\n\n${schema.slice(end)}`;
  return text
    .replace(/^(-- Dumped (from database|by pg_dump) version .*\n)+\n/m, '')
    .replace(/^\\(un)?restrict \S+\n\n/gm, '')
    .replace(/\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d)?\b/g, '2000-01-01 00:00:00+00');
}
