import { describe, expect, it } from 'vitest';
import type { Batch } from '../src/capture/batch.js';
import { BatchFeed } from '../src/apply/feed.js';
import { testBatch } from './support/batch.js';

// The feed's own bookkeeping, over an in-memory list of committed batches: what reaches
// PostgreSQL (and what the appliers do with it) is covered by the pipeline tests.

function batch(seq: number, targetEnvironment: string | null = null): Batch {
  return testBatch({
    id: `b${seq}`,
    commitSeq: String(seq),
    queryText: `GRANT SELECT ON t${seq} TO app`,
    targetEnvironment,
    commandTags: ['GRANT'],
    commandObjects: ['public.t'],
    previousStatus: null,
  });
}

/** The source: committed batches, and the reads made of them. */
function source(committed: Batch[]) {
  const reads: bigint[] = [];
  const read = async (after: bigint, limit: number) => {
    reads.push(after);
    await Promise.resolve();
    return committed.filter((b) => BigInt(b.commitSeq) > after).slice(0, limit);
  };
  return { committed, reads, read };
}

const seqs = (r: { batches: Batch[] }) => r.batches.map((b) => Number(b.commitSeq));

describe('the shared batch feed', () => {
  it('reads once for every environment standing at the same place, at once or one after another', async () => {
    const src = source([1, 2, 3].map((n) => batch(n)));
    const feed = new BatchFeed(src.read, 10);
    const [dev, prod] = await Promise.all([feed.after(0n, 'dev'), feed.after(0n, 'prod')]);
    expect([seqs(dev), seqs(prod)]).toEqual([
      [1, 2, 3],
      [1, 2, 3],
    ]);
    expect(seqs(await feed.after(1n, 'test'))).toEqual([2, 3]);
    expect(src.reads).toEqual([0n]);
  });

  it('reads what committed since, once an environment has reached the end of what it read', async () => {
    const src = source([1, 2].map((n) => batch(n)));
    const feed = new BatchFeed(src.read, 10);
    expect(seqs(await feed.after(0n, 'dev'))).toEqual([1, 2]);
    src.committed.push(batch(3), batch(4));
    expect(seqs(await feed.after(2n, 'dev'))).toEqual([3, 4]);
    expect(seqs(await feed.after(2n, 'prod'))).toEqual([3, 4]);
    expect(await feed.after(4n, 'dev')).toEqual({ batches: [], more: false });
    expect(src.reads).toEqual([0n, 2n, 4n]);
  });

  it('leaves out batches aimed at another environment, and looks past a page that holds only those', async () => {
    const src = source([batch(1, 'prod'), batch(2, 'prod'), batch(3), batch(4, 'dev')]);
    const feed = new BatchFeed(src.read, 2);
    const dev = await feed.after(0n, 'dev');
    expect(seqs(dev)).toEqual([3, 4]);
    expect(seqs(await feed.after(0n, 'prod'))).toEqual([1, 2]);
    expect(seqs(await feed.after(2n, 'prod'))).toEqual([3]);
  });

  it('says when the source held more than a page', async () => {
    const src = source([1, 2, 3, 4, 5].map((n) => batch(n)));
    const feed = new BatchFeed(src.read, 2);
    expect(await feed.after(0n, 'dev')).toMatchObject({ more: true });
    expect(await feed.after(4n, 'dev')).toEqual({ batches: [batch(5)], more: false });
    expect(await feed.after(5n, 'dev')).toEqual({ batches: [], more: false });
  });

  it('sends an environment served from a page read earlier to look again past its end', async () => {
    // dev read 1..2 and moved on; prod was paused meanwhile, and 3 committed while it could
    // not take the notification. Served 1..2 from memory, prod must not stop there.
    const src = source([1, 2].map((n) => batch(n)));
    const feed = new BatchFeed(src.read, 10);
    expect(await feed.after(0n, 'dev')).toMatchObject({ more: false });
    src.committed.push(batch(3));
    expect(await feed.after(0n, 'prod')).toEqual({ batches: [batch(1), batch(2)], more: true });
    expect(await feed.after(2n, 'prod')).toEqual({ batches: [batch(3)], more: false });
    expect(src.reads).toEqual([0n, 2n]);
  });

  it('does not join a read that started before a notified commit', async () => {
    // prod's read takes its snapshot; batch 2 commits and its notification wakes dev, which
    // must read anew: joining prod's read would leave 2 unseen until the next wake-up.
    const committed = [batch(1)];
    const answers: (() => void)[] = [];
    const reads: bigint[] = [];
    const read = (after: bigint) => {
      reads.push(after);
      const snapshot = committed.filter((b) => BigInt(b.commitSeq) > after);
      return new Promise<Batch[]>((resolve) => answers.push(() => resolve(snapshot)));
    };
    const feed = new BatchFeed(read, 10);
    const prod = feed.after(0n, 'prod');
    committed.push(batch(2));
    feed.newCommits();
    const dev = feed.after(0n, 'dev');
    answers.forEach((answer) => answer());
    expect(seqs(await prod)).toEqual([1]);
    expect(seqs(await dev)).toEqual([1, 2]);
    expect(reads).toEqual([0n, 0n]);
  });
});
