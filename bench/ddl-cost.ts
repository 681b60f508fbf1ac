import type pg from 'pg';

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
