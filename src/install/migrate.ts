import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { PermsyncError } from '../errors.js';
import { SQL_DIR } from '../paths.js';

/** Oldest server the install supports: xid8 and the event trigger features used. */
export const MIN_SERVER_VERSION_NUM = 140000;

export interface Migration {
  version: number;
  name: string;
  file: string;
}

export async function listMigrations(): Promise<Migration[]> {
  const files = (await readdir(SQL_DIR)).filter((f) => /^\d{4}_.+\.sql$/.test(f)).sort();
  return files.map((file) => ({ version: Number(file.slice(0, 4)), name: file.slice(5, -4), file }));
}

export interface InstallResult {
  applied: Migration[];
  alreadyApplied: number[];
}

/**
 * Applies the migrations the database has not seen yet, each in its own transaction
 * with its version row, under an advisory lock so two installs cannot interleave.
 */
export async function install(client: pg.ClientBase): Promise<InstallResult> {
  await assertServerVersion(client);
  const applied: Migration[] = [];
  await client.query('SELECT pg_advisory_lock(hashtext($1))', ['permsync.install']);
  try {
    await runInTransaction(client, await readFile(join(SQL_DIR, 'bootstrap.sql'), 'utf8'));
    const done = new Set(
      (await client.query<{ version: number }>('SELECT version FROM permsync.schema_migrations')).rows.map((r) => r.version),
    );
    for (const migration of await listMigrations()) {
      if (done.has(migration.version)) continue;
      const sql = await readFile(join(SQL_DIR, migration.file), 'utf8');
      await runInTransaction(client, sql, async () => {
        await client.query('INSERT INTO permsync.schema_migrations (version, name) VALUES ($1, $2)', [
          migration.version,
          migration.name,
        ]);
      });
      applied.push(migration);
    }
    if (!done.has(1) && applied.some((m) => m.version === 1)) {
      await runInTransaction(client, 'SELECT permsync.take_role_baseline()');
    }
    return { applied, alreadyApplied: [...done].sort((a, b) => a - b) };
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', ['permsync.install']);
  }
}

export async function uninstall(client: pg.ClientBase): Promise<void> {
  await runInTransaction(client, await readFile(join(SQL_DIR, 'uninstall.sql'), 'utf8'));
}

async function assertServerVersion(client: pg.ClientBase): Promise<void> {
  const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  const version = Number(rows[0]?.v);
  if (version < MIN_SERVER_VERSION_NUM) {
    throw new PermsyncError(
      `permsync needs PostgreSQL 14 or later on the source; this server is version ${version}`,
    );
  }
}

async function runInTransaction(client: pg.ClientBase, sql: string, after?: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    // The install's own grants must not be captured as DBA changes.
    await client.query("SET LOCAL permsync.capture = 'off'");
    await client.query(sql);
    await after?.();
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}
