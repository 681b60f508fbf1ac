import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { PermsyncError, RACED_CREATE } from '../errors.js';
import { SQL_DIR } from '../paths.js';

/** Oldest server the install supports: xid8 and the event trigger features used. */
const MIN_SERVER_VERSION_NUM = 140000;

/**
 * The version sql/schema.sql installs. Upgrades are sql/migrations/NNNN_name.sql, numbered
 * above it. It is the number of the last pre-release migration the schema file folds, so
 * an install recorded by those migrations counts as this version.
 */
export const BASE_VERSION = 22;

export interface Migration {
  version: number;
  name: string;
  /** Its file, under sql/. */
  file: string;
}

const BASE: Migration = { version: BASE_VERSION, name: 'schema', file: 'schema.sql' };

/** What a fresh install runs, in order: the schema, then every migration above it. */
export async function listMigrations(): Promise<Migration[]> {
  const files = (await readdir(join(SQL_DIR, 'migrations'))).filter((f) => /^\d{4}_.+\.sql$/.test(f)).sort();
  const upgrades = files.map((f) => ({ version: Number(f.slice(0, 4)), name: f.slice(5, -4), file: `migrations/${f}` }));
  let last = BASE;
  for (const migration of upgrades) {
    if (migration.version <= last.version) {
      throw new Error(`sql/${migration.file} must be numbered above ${last.version} (sql/${last.file})`);
    }
    last = migration;
  }
  return [BASE, ...upgrades];
}

/** The database's recorded schema version is one this permsync cannot install over. */
export class SchemaVersionError extends PermsyncError {
  constructor(
    readonly recorded: number,
    readonly known: number,
  ) {
    super(
      recorded > known
        ? `the permsync schema in this database is version ${recorded}, newer than this permsync knows (${known}): install with a permsync release that knows version ${recorded}`
        : `the permsync schema in this database is version ${recorded}, a development version older than the base version ${known}, which cannot be upgraded: run permsync uninstall, then install again`,
    );
  }
}

export interface InstallResult {
  applied: Migration[];
  alreadyApplied: number[];
}

export interface InstallOptions {
  /** Called when another install holds the install lock, naming it, before this one waits for it. */
  onWait?: (holder: string) => void;
}

/**
 * Installs the schema on a new database, then applies the migrations the database has not
 * seen yet; each step runs in its own transaction with its version row. Each transaction
 * first locks the row 'install' of permsync.locks, which no role but the owner may lock,
 * and reads the versions recorded under that lock: two installs apply each step once, in
 * order, and an install of a database already up to date does nothing. A database whose
 * schema is newer than this permsync knows is left alone (SchemaVersionError).
 */
export async function install(client: pg.ClientBase, options: InstallOptions = {}): Promise<InstallResult> {
  await assertServerVersion(client);
  const bootstrap = await readFile(join(SQL_DIR, 'bootstrap.sql'), 'utf8');
  await runInTransaction(client, bootstrap).catch((error: { code?: string }) => {
    // Two first installs created the schema at once: the loser runs bootstrap again.
    if (!RACED_CREATE.has(error.code ?? '')) throw error;
    return runInTransaction(client, bootstrap);
  });
  const migrations = await listMigrations();
  const known = migrations[migrations.length - 1]?.version ?? BASE_VERSION;
  const applied: Migration[] = [];
  let done: Set<number> | undefined;
  for (const migration of migrations) {
    await runInTransaction(client, async () => {
      const versions = await lockInstall(client, options);
      assertInstallable(versions, known);
      done ??= versions;
      if (versions.has(migration.version)) return;
      await client.query(await readFile(join(SQL_DIR, migration.file), 'utf8'));
      await client.query('INSERT INTO permsync.schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      applied.push(migration);
    });
  }
  if (applied.includes(BASE)) {
    await runInTransaction(client, 'SELECT permsync.take_role_baseline()');
  }
  return { applied, alreadyApplied: [...(done ?? [])].sort((a, b) => a - b) };
}

/** Refuses a schema newer than `known`, or one recorded before the base (nothing upgrades it). */
function assertInstallable(versions: Set<number>, known: number): void {
  const recorded = Math.max(0, ...versions);
  if (recorded > known) throw new SchemaVersionError(recorded, known);
  if (recorded > 0 && recorded < BASE_VERSION) throw new SchemaVersionError(recorded, BASE_VERSION);
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

/**
 * Who holds the install lock: the session holding the lock on the row's xmax, which is a
 * subtransaction's id where the row was locked under a savepoint (backend_xid never shows it).
 */
async function installLockHolder(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{
    pid: number;
    usename: string | null;
    application_name: string | null;
    client_addr: string | null;
    xact_start: Date | null;
  }>(
    `SELECT a.pid, a.usename, a.application_name, pg_catalog.host(a.client_addr) AS client_addr, a.xact_start
       FROM permsync.locks l
       JOIN pg_catalog.pg_locks k ON k.locktype = 'transactionid' AND k.transactionid = l.xmax AND k.mode = 'ExclusiveLock' AND k.granted
       JOIN pg_catalog.pg_stat_activity a ON a.pid = k.pid
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
    throw new PermsyncError(`permsync needs PostgreSQL 14 or later on the source; this server is version ${version}`);
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
