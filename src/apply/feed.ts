import type { Batch } from '../capture/batch.js';

/** Batches read from the source at a time. */
export const BATCH_PAGE = 200;

/** Reads the batches committed after a commit_seq, for every environment, in commit order. */
export type ReadNewBatches = (after: bigint, limit: number) => Promise<Batch[]>;

export interface BatchRead {
  batches: Batch[];
  /** The source held more than one page: read again after these. */
  more: boolean;
}

interface Page {
  after: bigint;
  /** The page holds every batch in (after, through]: commit_seq is assigned in commit order. */
  through: bigint;
  batches: Batch[];
}

/**
 * New batches, read from the source once for all environments. The appliers usually stand
 * at the same place, and each reading the same rows (with their audit trail) costs the
 * source and the daemon four times what one read does. An applier that may meet a batch it
 * has tried before reads on its own (SourceStore.batchesAfter), since it needs that batch's
 * logged outcome; these batches have none yet.
 */
export class BatchFeed {
  private page: Page | undefined;
  private readonly reads = new Map<bigint, Promise<Page>>();

  constructor(
    private readonly read: ReadNewBatches,
    private readonly limit = BATCH_PAGE,
  ) {}

  /** Batches after `cursor` that are for `environment`, at most a page of them. */
  async after(cursor: bigint, environment: string): Promise<BatchRead> {
    let from = cursor;
    for (;;) {
      const held = this.page;
      const fromMemory = held !== undefined && held.after <= from && from < held.through;
      const page = fromMemory ? held : await this.readAfter(from);
      const mine = page.batches.filter((b) => BigInt(b.commitSeq) > cursor && (b.targetEnvironment === null || b.targetEnvironment === environment));
      // A page read earlier may end before batches committed since, whose notification the
      // applier may have let pass (it was paused or backing off): it must look again.
      const more = fromMemory || page.batches.length === this.limit;
      // Nothing for this environment up to the page's end (a manual sync aimed elsewhere): look past it.
      if (mine.length > 0 || page.through === from) return { batches: mine, more };
      from = page.through;
    }
  }

  /**
   * Batches may have committed since the reads now in flight took their snapshot (a
   * notification came): an applier that asks from now on must not join one of them, or
   * it would miss those batches and wait for the next wake-up.
   */
  newCommits(): void {
    this.reads.clear();
  }

  /** One read per cursor however many appliers ask at once; the page that reaches furthest is kept. */
  private readAfter(cursor: bigint): Promise<Page> {
    let reading = this.reads.get(cursor);
    if (!reading) {
      reading = this.read(cursor, this.limit).then((batches) => {
        const last = batches[batches.length - 1];
        const page = { after: cursor, through: last ? BigInt(last.commitSeq) : cursor, batches };
        if (!this.page || page.through > this.page.through) this.page = page;
        return page;
      });
      const started = reading;
      const forget = () => {
        if (this.reads.get(cursor) === started) this.reads.delete(cursor);
      };
      reading.then(forget, forget);
      this.reads.set(cursor, reading);
    }
    return reading;
  }
}
