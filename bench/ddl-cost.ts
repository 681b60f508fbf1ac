import type pg from 'pg';
import { distribution, type Distribution } from './stats.js';

/**
 * What permsync's ledger of owners (the event trigger permsync_owners, which notes each
 * new object's owner for the release before a DROP ROLE) adds to a DBA's schema change:
 * a role that owns its schema creates a table with a serial key and drops it again, on a
 * source that already holds `existing` of its tables, so that the ledger and pg_depend
 * are not empty.
 */

export const DDL_ROLE = 'bench_ddl';

/** The role, its schema and its existing tables; as a superuser, statement by statement in groups (each group one transaction, within the lock table's room). */
export async function prepareDdl(client: pg.ClientBase, existing: number): Promise<void> {
  await client.query(`CREATE ROLE ${DDL_ROLE}; CREATE SCHEMA ${DDL_ROLE} AUTHORIZATION ${DDL_ROLE}`);
  for (let from = 0; from < existing; from += 200) {
    const tables = Array.from(
      { length: Math.min(200, existing - from) },
      (_, i) => `CREATE TABLE ${DDL_ROLE}.e${from + i} (id serial PRIMARY KEY, v text);`,
    );
    await client.query(`SET ROLE ${DDL_ROLE}; ${tables.join(' ')} RESET ROLE;`);
  }
}

/** The i-th statement: a CREATE TABLE (timed), then the DROP TABLE of it (timed apart). */
export function createOrDrop(i: number): { sql: string; label: string } {
  const table = `${DDL_ROLE}.d${Math.floor(i / 2)}`;
  return i % 2 === 0
    ? { sql: `CREATE TABLE ${table} (id serial PRIMARY KEY, v text)`, label: 'CREATE TABLE' }
    : { sql: `DROP TABLE ${table}`, label: 'DROP TABLE' };
}

/**
 * The i-th migration, as a tool that sends a file in one string runs it: a new table of the
 * role's, then `columns` ALTER TABLE ... ADD COLUMN with a default. Capture sees each ALTER
 * and records none (no owner changes), but has to read the string to know that.
 */
export function migration(i: number, columns: number): { sql: string; label: string } {
  const table = `${DDL_ROLE}.m${i}`;
  const alters = Array.from({ length: columns }, (_, k) => `ALTER TABLE ${table} ADD COLUMN c${k} text DEFAULT 'v${k}'`);
  return { sql: [`CREATE TABLE ${table} (id int)`, ...alters].join('; '), label: 'migration' };
}

export interface OwnerLooks {
  /** Objects in the ledger of owners. */
  objects: number;
  /** A look whose pg_shdepend write counters are those of the last look: nothing read. */
  unchanged: Distribution;
  /** A look that reads the ledger and pg_shdepend (counters moved, or once a minute), nothing to converge. */
  read: Distribution;
  /** After REASSIGN OWNED of `reassigned` of the tables: each look that wrote a batch, and what it holds. */
  batches: { ms: number; objects: number }[];
}

/**
 * What the role watcher's look for owners REASSIGN OWNED changed costs the source
 * (permsync.capture_owner_changes), in a database where permsync is installed and no
 * daemon looks (so that the looks timed are the only ones): a role's `existing` tables,
 * another role's `reassigned`; a look that finds the counters unchanged, one that reads
 * everything and finds nothing, and, once REASSIGN OWNED has given the second role's tables
 * to a third, each look until none is left.
 */
export async function measureOwnerLooks(client: pg.ClientBase, existing: number, reassigned: number, rounds: number): Promise<OwnerLooks> {
  const make = async (role: string, count: number) => {
    await client.query(`CREATE ROLE ${role}; CREATE SCHEMA ${role} AUTHORIZATION ${role}`);
    for (let from = 0; from < count; from += 200) {
      const tables = Array.from({ length: Math.min(200, count - from) }, (_, i) => `CREATE TABLE ${role}.t${from + i} (id int, v text);`);
      await client.query(`SET ROLE ${role}; ${tables.join(' ')} RESET ROLE;`);
    }
  };
  await make('bench_keeper', existing - reassigned);
  await make('bench_leaver', reassigned);
  await client.query('CREATE ROLE bench_heir');
  const look = async (seen: string | null) => {
    const started = performance.now();
    const { rows } = await client.query<{ batch: string | null; counted: string | null }>(
      'SELECT o.batch::text AS batch, o.counted FROM permsync.capture_owner_changes($1) o',
      [seen],
    );
    return { ms: performance.now() - started, batch: rows[0]?.batch ?? null, counted: rows[0]?.counted ?? null };
  };
  // The roles as the role watcher would see them, and whatever is left to note.
  await client.query('SELECT permsync.capture_role_changes()');
  while ((await look(null)).batch !== null);
  // This session's own writes reach the counters at its next report (at most once a second):
  // reported now, so that the counters taken are the ones the timed looks find.
  await client.query('SELECT pg_stat_force_next_flush()');
  await client.query('SELECT 1');
  const { counted } = await look(null);
  const unchanged: number[] = [];
  const read: number[] = [];
  for (let i = 0; i < rounds; i++) {
    unchanged.push((await look(counted)).ms);
    read.push((await look(null)).ms);
  }
  await client.query('REASSIGN OWNED BY bench_leaver TO bench_heir');
  const batches: { ms: number; objects: number }[] = [];
  for (let found = await look(null); found.batch !== null; found = await look(null)) {
    const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM permsync.audit_log WHERE batch_id = $1', [found.batch]);
    batches.push({ ms: found.ms, objects: rows[0]?.n ?? 0 });
  }
  const { rows } = await client.query<{ n: number }>('SELECT count(DISTINCT (classid, objid))::int AS n FROM permsync.object_owners');
  return { objects: rows[0]?.n ?? 0, unchanged: distribution(unchanged), read: distribution(read), batches };
}
