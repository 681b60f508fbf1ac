import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/schema.js';
import { PACKAGE_ROOT } from '../paths.js';
import type { DriftCheckResult } from './scheduled.js';

/** The child's entry. Tests run the sources: the child is always the compiled module. */
function childEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith('.ts') ? join(PACKAGE_ROOT, 'dist', 'src', 'drift', 'check-child.js') : join(dirname(here), 'check-child.js');
}

/** Heap limits meant for the daemon (deploy/permsync.service), not for a comparison. */
const HEAP_LIMIT = /^--max[-_](old|semi)[-_]space[-_]size(=.*)?$/;
const withoutHeapLimits = (options: string[]) => options.filter((o) => !HEAP_LIMIT.test(o));

/**
 * What the child's process starts with: nothing that may hold a secret (a .env file's).
 * USER (LOGNAME, USERNAME) is pg's default user name, for URLs that name none (peer auth).
 */
const INHERITED = /^(PATH|HOME|USER|LOGNAME|USERNAME|TZ|LANG|LC_[A-Z]+|NODE_EXTRA_CA_CERTS|PERMSYNC_LOG_FORMAT)$/;

/** libpq's variables (PGPASSWORD, PGSSLMODE, ...), which pg reads too: sent, not inherited. */
const LIBPQ = /^PG[A-Z]+$/;

function pick(env: NodeJS.ProcessEnv, names: RegExp): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => names.test(e[0]) && e[1] !== undefined));
}

/** What the daemon sends the child (check-child.ts). */
export interface DriftCheckRequest {
  config: Config;
  libpqEnv: Record<string, string>;
}

/** What the child sends back. */
export type DriftCheckReply = { results: DriftCheckResult[] } | { error: string };

/**
 * The scheduled drift check (drift/scheduled.ts) in a process of its own. A comparison
 * holds both sides' catalogs, 100 MB and more with 100,000 grants: in a child that memory
 * goes back to the system when the check ends, the daemon can run with a small heap, and a
 * check that runs out of memory ends alone, not the applying.
 */
export class DriftCheckProcess {
  private child: ChildProcess | undefined;
  /** The child stop() ended: its exit is no failure. */
  private stopped: ChildProcess | undefined;

  /** The check's results, or null when the daemon stopped it. */
  run(config: Config): Promise<DriftCheckResult[] | null> {
    const nodeOptions = withoutHeapLimits((process.env.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean)).join(' ');
    const child = fork(childEntry(), [], {
      execArgv: withoutHeapLimits(process.execArgv),
      env: { ...pick(process.env, INHERITED), NODE_OPTIONS: nodeOptions },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    this.child = child;
    return new Promise<DriftCheckResult[] | null>((resolve, reject) => {
      child.once('message', (reply: DriftCheckReply) => ('results' in reply ? resolve(reply.results) : reject(new Error(reply.error))));
      // A process that cannot start reports it here, and again when it is written to.
      child.on('error', reject);
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        if (this.stopped === child) resolve(null);
        reject(new Error(`the drift check process ended (${signal ?? `exit code ${code}`}) before it answered`));
      });
      // Passwords (in the URLs, in PGPASSWORD) go over the IPC channel: never in a command
      // line or an environment another process can read.
      const request: DriftCheckRequest = { config, libpqEnv: pick(process.env, LIBPQ) };
      child.send(request, (error) => error && reject(error));
    });
  }

  /** Ends a check that is still running (the daemon is stopping). */
  stop(): void {
    this.stopped = this.child;
    this.child?.kill('SIGTERM');
  }
}
