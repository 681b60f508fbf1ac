import type pg from 'pg';
import type { Logger } from 'pino';
import { CAPTURE_OWNER_CHANGES, CAPTURE_ROLE_CHANGES } from '../source/queries.js';

/** How often the owner check reads the ledger whatever the write counters say: they lag, and stop with track_counts off. */
const OWNERS_READ_MS = 60_000;

/**
 * Notices changes to roles, memberships, role settings and database privileges, for
 * which PostgreSQL fires no event trigger. Each tick asks the source to compare a cheap
 * fingerprint of the role catalogs with its snapshot; only a change costs a diff, which
 * the source writes as a batch (in the same transaction as the new snapshot). Then it looks
 * for owners changed by REASSIGN OWNED, which fires no event trigger either: only when
 * pg_shdepend's write counters moved since the last look, or a minute has passed.
 */
export class RoleWatcher {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private failing = false;
  /** The pg_shdepend write counters at the last owner check, and when the ledger was last read whatever they said. */
  private ownerCounters: string | null = null;
  private ownersReadAt = -Infinity;

  constructor(
    private readonly source: pg.Pool,
    private readonly intervalMs: number,
    private readonly logger: Logger,
    private readonly onCheck?: (durationMs: number, batchId: string | null) => void,
    /** Each check that failed, so that an outage shows in the metrics, not only in the log. */
    private readonly onFailure?: () => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    void this.check();
  }

  /** One check now (also run at start, so changes made while the daemon was down are found). */
  check(): Promise<void> {
    this.inFlight ??= this.run().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.inFlight;
  }

  /** Owners changed by a command no event trigger reports, after the role changes (which may create the new owner). */
  private async checkOwners(): Promise<void> {
    const stale = performance.now() - this.ownersReadAt >= OWNERS_READ_MS;
    if (stale) this.ownersReadAt = performance.now();
    const { rows } = await this.source.query<{ batch: string | null; counted: string | null }>(CAPTURE_OWNER_CHANGES, [
      stale ? null : this.ownerCounters,
    ]);
    this.ownerCounters = rows[0]?.counted ?? null;
    const batchId = rows[0]?.batch ?? null;
    if (batchId) this.logger.info({ batchId }, 'owner changes captured (REASSIGN OWNED)');
  }

  private async run(): Promise<void> {
    const started = performance.now();
    try {
      const { rows } = await this.source.query<{ batch: string | null }>(CAPTURE_ROLE_CHANGES);
      const batchId = rows[0]?.batch ?? null;
      if (batchId) this.logger.info({ batchId }, 'role changes captured');
      await this.checkOwners();
      if (this.failing) this.logger.info('role watcher recovered');
      this.failing = false;
      this.onCheck?.(performance.now() - started, batchId);
    } catch (error) {
      // Log once per outage, not every few hundred milliseconds.
      if (!this.failing) this.logger.error({ err: error }, 'role watcher check failed; will keep trying');
      this.failing = true;
      this.onFailure?.();
    }
  }
}
