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
const HEAP_LIMIT = /^--max-(old|semi)-space-size(=.*)?$/;
const withoutHeapLimits = (options: string[]) => options.filter((o) => !HEAP_LIMIT.test(o));

/** What the child sends back (check-child.ts). */
export type DriftCheckReply = { results: DriftCheckResult[] } | { error: string };

/**
 * The scheduled drift check (drift/scheduled.ts) in a process of its own. A comparison
 * holds both sides' catalogs, 100 MB and more with 100,000 grants: in a child that memory
 * goes back to the system when the check ends, the daemon can run with a small heap, and a
 * check that runs out of memory ends alone, not the applying.
 */
export class DriftCheckProcess {
  private child: ChildProcess | undefined;

  run(config: Config): Promise<DriftCheckResult[]> {
    const nodeOptions = withoutHeapLimits((process.env.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean)).join(' ');
    const child = fork(childEntry(), [], {
      execArgv: withoutHeapLimits(process.execArgv),
      env: { ...process.env, NODE_OPTIONS: nodeOptions },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    this.child = child;
    return new Promise<DriftCheckResult[]>((resolve, reject) => {
      child.once('message', (reply: DriftCheckReply) => ('results' in reply ? resolve(reply.results) : reject(new Error(reply.error))));
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        reject(new Error(`the drift check process ended (${signal ?? `exit code ${code}`}) before it answered`));
      });
      // The configuration goes over the IPC channel: its URLs may hold passwords, which
      // must not appear in a command line or an environment.
      child.send(config);
    });
  }

  /** Ends a check that is still running (the daemon is stopping). */
  stop(): void {
    this.child?.kill('SIGTERM');
  }
}
