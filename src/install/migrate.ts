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

export interface InstallOptions {
  /** Called when another install holds the install lock, naming it, before this one waits for it. */
  onWait?: (holder: string) => void;
}

/** SQLSTATEs of two first installs creating the schema at once: the loser runs bootstrap again. */
const CREATED_MEANWHILE = new Set(['23505', '42P06', '42P07']);

/**
 * Applies the migrations the database has not seen yet, each in its own transaction
 * with its version row. Each transaction first locks the row 'install' of permsync.locks,
 * which no role but the owner may lock, and reads the versions applied under that lock:
 * two installs apply each migration once, in order.
 */
export async function install(client: pg.ClientBase, options: InstallOptions = {}): Promise<InstallResult> {
  await assertServerVersion(client);
  const bootstrap = await readFile(join(SQL_DIR, 'bootstrap.sql'), 'utf8');
  await runInTransaction(client, bootstrap).catch((error: { code?: string }) => {
    if (!CREATED_MEANWHILE.has(error.code ?? '')) throw error;
    return runInTransaction(client, bootstrap);
  });
  const applied: Migration[] = [];
  let done: Set<number> | undefined;
  for (const migration of await listMigrations()) {
    await runInTransaction(client, async () => {
      const versions = await lockInstall(client, options);
      done ??= versions;
      if (versions.has(migration.version)) return;
      await client.query(await readFile(join(SQL_DIR, migration.file), 'utf8'));
      await client.query('INSERT INTO permsync.schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      applied.push(migration);
    });
  }
  done ??= new Set();
  if (!done.has(1) && applied.some((m) => m.version === 1)) {
    await runInTransaction(client, 'SELECT permsync.take_role_baseline()');
  }
  return { applied, alreadyApplied: [...done].sort((a, b) => a - b) };
}

/** Takes the install lock for the transaction (waiting for another install) and returns the versions applied. */
async function lockInstall(client: pg.ClientBase, options: InstallOptions): Promise<Set<number>> {
  const { rowCount } = await client.query(`SELECT FROM permsync.locks WHERE name = 'install' FOR UPDATE SKIP LOCKED`);
  if (!rowCount) {
    options.onWait?.(await installLockHolder(client));
    const { rowCount: locked } = await client.query(`SELECT FROM permsync.locks WHERE name = 'install' FOR UPDATE`);
    if (!locked) throw new PermsyncError("permsync.locks has no row 'install': run the install again to create it");
  }
  const { rows } = await client.query<{ version: number }>('SELECT version FROM permsync.schema_migrations');
  return new Set(rows.map((r) => r.version));
}

/** Who holds the install lock: the session whose transaction locked the row (its xmax). */
async function installLockHolder(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ pid: number; usename: string | null; application_name: string | null; client_addr: string | null; xact_start: Date | null }>(
    `SELECT a.pid, a.usename, a.application_name, pg_catalog.host(a.client_addr) AS client_addr, a.xact_start
       FROM permsync.locks l JOIN pg_catalog.pg_stat_activity a ON a.backend_xid = l.xmax
      WHERE l.name = 'install'`,
  );
  const holder = rows[0];
  if (!holder) return 'another install (its session is not visible to this login)';
  const from = holder.client_addr ? ` from ${holder.client_addr}` : '';
  const app = holder.application_name ? ` (${holder.application_name})` : '';
  const since = holder.xact_start ? `, in its transaction since ${holder.xact_start.toISOString()}` : '';
  return `another install: pid ${holder.pid}, user ${holder.usename ?? '?'}${app}${from}${since}`;
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

async function runInTransaction(client: pg.ClientBase, work: string | (() => Promise<void>)): Promise<void> {
  await client.query('BEGIN');
  try {
    // The install's own grants must not be captured as DBA changes.
    await client.query("SET LOCAL permsync.capture = 'off'");
    if (typeof work === 'string') await client.query(work);
    else await work();
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}
