import type { Logger } from 'pino';
import type { EnvironmentApplier } from '../apply/applier.js';
import type { BatchFeed } from '../apply/feed.js';
import type { SourceStore, Switches } from '../source/store.js';

/** Reads of the operators' switches and requests start at least this far apart, however many wake-ups come. */
const CONTROL_READ_SPACING_MS = 250;

/**
 * What operators asked for: the switches (disable_sync, pause, dry run) and retries or
 * skips. It is read from the source, never taken from a notification (anyone may send
 * one): at start, on every control wake-up, after a reconnect and at every poll. However
 * many wake-ups come, one read runs and at most one more waits, a quarter of a second at
 * least after it. Each read ends by waking the appliers.
 */
export class OperatorControls {
  private current: Switches;
  /** The retry counters as last acted on: a fresh applier re-attempts what it waits on anyway. */
  private readonly retriesSeen: Map<string, bigint>;
  private appliers: readonly EnvironmentApplier[] = [];
  private feed: BatchFeed | undefined;
  private readonly reads = coalesced(() => this.read(), CONTROL_READ_SPACING_MS);

  constructor(
    private readonly store: SourceStore,
    private readonly logger: Logger,
    switches: Switches,
  ) {
    this.current = switches;
    this.retriesSeen = new Map(switches.retryRequests);
  }

  /** The switches as last read. */
  get switches(): Switches {
    return this.current;
  }

  /** The appliers the controls govern, and their shared feed: each read acts on their retry requests and wakes them. */
  govern(appliers: readonly EnvironmentApplier[], feed: BatchFeed): void {
    this.appliers = appliers;
    this.feed = feed;
  }

  /** Reads the controls anew (soon, see CONTROL_READ_SPACING_MS). */
  request(): void {
    this.reads.request();
  }

  /**
   * A batch was committed. One committed after disable_sync() must not slip through before
   * the switch is read: while a read runs or waits, its end wakes the appliers instead.
   */
  batchCommitted(): void {
    if (!this.reads.busy) this.wakeAll();
  }

  stop(): void {
    this.reads.stop();
  }

  private async read(): Promise<void> {
    try {
      this.current = await this.store.readSwitches();
      for (const applier of this.appliers) {
        const asked = this.current.retryRequests.get(applier.name) ?? 0n;
        if (asked > (this.retriesSeen.get(applier.name) ?? 0n)) {
          this.retriesSeen.set(applier.name, asked);
          this.logger.info({ environment: applier.name }, 'an operator asked for a retry or a skip');
          applier.retryNow();
        }
      }
    } catch (error) {
      this.logger.warn({ err: error }, "could not read the operators' switches and requests; keeping the last ones");
    }
    this.wakeAll();
  }

  private wakeAll(): void {
    this.feed?.newCommits();
    this.appliers.forEach((a) => a.wake());
  }
}

/**
 * Runs `task` when asked, never twice at once, and runs start at least `spacingMs` apart:
 * asks that come meanwhile are folded into one more run. Any login may send the wake-ups
 * that ask, as fast as it likes. `busy` while a run is under way or waiting.
 */
function coalesced(task: () => Promise<void>, spacingMs: number): { request(): void; stop(): void; readonly busy: boolean } {
  let running = false;
  let again = false;
  let lastStart = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  const run = (): void => {
    timer = undefined;
    running = true;
    lastStart = performance.now();
    void task().finally(() => {
      running = false;
      if (again) {
        again = false;
        request();
      }
    });
  };
  const request = (): void => {
    if (running) again = true;
    else if (timer === undefined) {
      const wait = lastStart + spacingMs - performance.now();
      if (wait > 0) timer = setTimeout(run, wait);
      else run();
    }
  };
  return {
    request,
    stop: () => clearTimeout(timer),
    get busy() {
      return running || timer !== undefined;
    },
  };
}
