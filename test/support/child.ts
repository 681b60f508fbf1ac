import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** How long an ended process's output may take to arrive after its exit. */
const OUTPUT_DRAIN_MS = 1000;

/**
 * A process a test starts, its output kept. Its end is listened for from the start, so a
 * process that ends before anyone waits (a failed start) is reported at once, with what
 * it wrote, instead of as a timeout.
 */
export class TestProcess {
  output = '';
  /** Settles when the process has exited. */
  readonly exited: Promise<Exit>;
  private readonly closed: Promise<void>;
  private exit: Exit | undefined;

  constructor(
    readonly child: ChildProcess,
    onOutput?: (text: string) => void,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve((this.exit = { code, signal }))));
    this.closed = new Promise((resolve) => child.once('close', () => resolve()));
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        const text = String(chunk);
        this.output += text;
        onOutput?.(text);
      });
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exit === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until `ready` holds; fails as soon as the process ends first, saying how and what it wrote. */
  async until(ready: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    await waitFor(
      async () => {
        if (!this.running) throw await this.endedBefore(what);
        return ready();
      },
      timeoutMs,
      what,
    );
  }

  /** Sends `signal` unless the process has ended already. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.child.kill(signal);
  }

  /** Sends `signal` unless the process has ended already, and waits for its exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    this.kill(signal);
    return this.exited;
  }

  private async endedBefore(what: string): Promise<Error> {
    const exit = await this.exited;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise((resolve) => (timer = setTimeout(resolve, OUTPUT_DRAIN_MS)))]);
    clearTimeout(timer);
    const how = exit.signal ? `was ended by ${exit.signal}` : `exited with code ${exit.code}`;
    return new Error(`process ${this.pid} ${how} before ${what}; its output:\n${this.output}`);
  }
}

const CLI = fileURLToPath(new URL('../../bin/permsync.js', import.meta.url));

/** `permsync <args>` as operators run it, a process of its own logging JSON lines. */
export function spawnPermsync(args: string[], onOutput?: (text: string) => void): TestProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PERMSYNC_LOG_FORMAT: 'json' },
  });
  return new TestProcess(child, onOutput);
}
