import pg from 'pg';
import { connectSession } from '../pg-sessions.js';
import type { Logger } from 'pino';
import { endSession, END_WITHIN_MS, settlesWithin } from '../pg-close.js';
import { CLAIM_LEADERSHIP, RELEASE_LEADERSHIP } from './queries.js';

/** The daemon holding the leader lease, as the source names its lease session. */
export interface LeaderHolder {
  pid: number;
  user: string;
  applicationName: string | null;
  clientAddr: string | null;
  since: Date;
}

export interface LeaderLockOptions {
  connectionString: string;
  applicationName: string;
  connectionTimeoutMs: number;
  /** The daemon group whose lease it claims: daemons of one group stand by for each other. */
  group: string;
  /** How often a standby claims the lease and a leader renews it. */
  intervalMs: number;
  /** How long a claim or a renewal holds the lease, by the source's clock. */
  leaseMs: number;
  logger: Logger;
  /** Called when this daemon becomes the one that applies. */
  onAcquired: () => Promise<void>;
  /** Called when it must stop applying: the lease's session is gone, the lease was not renewed in time, or it is stopping. */
  onLost: () => Promise<void>;
}

interface ClaimRow {
  is_leader: boolean;
  pid: number | null;
  user_name: string | null;
  application_name: string | null;
  client_addr: string | null;
  since: Date | null;
}

/**
 * Two or more daemons may run against one source for availability: the one holding the
 * leader lease (the row of permsync.leader, claimed through a function only
 * permsync_daemon may execute) applies, the others stand by. A standby claims the lease
 * every interval and gets it once it is free: released, expired, or held by a session
 * that has ended, so a daemon that dies (even by SIGKILL) is replaced within one interval.
 * The lease belongs to the session that claimed it. The leader renews it there every
 * interval, and stops applying as soon as it loses that session (an error, or a renewal
 * that fails) or once half the lease has passed since it sent its last successful
 * renewal: by its own clock, and so before the source lets a standby take an unrenewed
 * lease. The batch in flight may still finish, which is harmless, since replay is
 * idempotent.
 */
export class LeaderLock {
  private client: pg.Client | undefined;
  private leading = false;
  private answered = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** Stops the leader when its lease, unrenewed, would soon run out. */
  private fence: NodeJS.Timeout | undefined;
  /** Start and stop of the applying side run one at a time, in order. */
  private serial: Promise<void> = Promise.resolve();
  private lastWaitLog = 0;
  private lastHolder: LeaderHolder | undefined;
  private lastFailure: string | undefined;

  constructor(private readonly options: LeaderLockOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /** The lease's holder as the last claim found it (this daemon while it leads); undefined if none, or the claim failed. */
  get holder(): LeaderHolder | undefined {
    return this.lastHolder;
  }

  /** Why the last claim failed, until one succeeds. */
  get failure(): string | undefined {
    return this.lastFailure;
  }

  /** Whether a claim has been answered, or has failed, since start: before that this daemon does not know its role. */
  get claimed(): boolean {
    return this.answered;
  }

  start(): Promise<void> {
    return this.attempt();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.lose('stopping');
    const client = this.client;
    this.client = undefined;
    if (client) {
      // Sent after a claim still on its way, so it also gives up what that claim took. A
      // source that does not answer in time frees the lease once the session is gone.
      await settlesWithin(client.query(RELEASE_LEADERSHIP, [this.options.group]), END_WITHIN_MS);
      await endSession(client);
    }
  }

  /** Gives the lease up (a leader that cannot apply), to claim it again later. */
  async release(): Promise<void> {
    await this.lose('released');
    await this.client?.query(RELEASE_LEADERSHIP, [this.options.group]).catch(() => {});
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.attempt(), this.options.intervalMs);
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    let acquired: pg.Client | undefined;
    try {
      const client = await this.connection();
      const sentAt = performance.now();
      const { rows } = await client.query<ClaimRow>(CLAIM_LEADERSHIP, [this.options.leaseMs, this.options.group]);
      const claim = rows[0];
      if (claim?.is_leader && this.stopped) {
        // stop() came while the answer was on its way: it has released the lease and ended the session.
        await client.query(RELEASE_LEADERSHIP, [this.options.group]).catch(() => {});
        return;
      }
      this.answered = true;
      this.lastFailure = undefined;
      this.lastHolder =
        claim?.pid != null && claim.since
          ? {
              pid: claim.pid,
              user: claim.user_name ?? '',
              applicationName: claim.application_name,
              clientAddr: claim.client_addr,
              since: claim.since,
            }
          : undefined;
      if (claim?.is_leader) {
        this.renewed(sentAt);
        if (!this.leading) {
          this.leading = true;
          acquired = client;
        }
      } else {
        if (this.leading) await this.lose('another daemon holds the lease');
        if (Date.now() - this.lastWaitLog > 60_000) {
          this.lastWaitLog = Date.now();
          this.options.logger.info({ leader: this.lastHolder }, 'another daemon holds the leader lease: standing by');
        }
      }
    } catch (error) {
      this.answered = true;
      this.lastFailure = (error as Error).message;
      this.lastHolder = undefined;
      if (!this.stopped) this.options.logger.warn({ err: error }, 'could not claim or renew the leader lease');
      await this.dropConnection('lease session lost');
    }
    // Renewals go on while the applying side starts, however long that takes.
    this.schedule();
    if (acquired) await this.begin(acquired);
  }

  private begin(client: pg.Client): Promise<void> {
    this.options.logger.info('holding the leader lease: this daemon applies');
    return this.run(async () => {
      if (!this.leading) return;
      try {
        await this.options.onAcquired();
      } catch (error) {
        this.options.logger.error({ err: error }, 'could not start applying; will try again');
        this.leading = false;
        clearTimeout(this.fence);
        await this.options.onLost().catch(() => {});
        await client.query(RELEASE_LEADERSHIP, [this.options.group]).catch(() => {});
      }
    });
  }

  /** A renewal sent at `sentAt` succeeded: unless another does, stop applying half a lease from then. */
  private renewed(sentAt: number): void {
    clearTimeout(this.fence);
    const left = sentAt + this.options.leaseMs / 2 - performance.now();
    this.fence = setTimeout(
      () => {
        if (!this.leading) return;
        this.options.logger.warn({ leaseMs: this.options.leaseMs }, 'the leader lease was not renewed in time');
        void this.dropConnection('lease not renewed in time');
      },
      Math.max(0, left),
    );
  }

  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: `${this.options.applicationName}:lock`,
      connectionTimeoutMillis: this.options.connectionTimeoutMs,
      // A half-open connection must surface as an error, not a query that never returns.
      query_timeout: Math.max(this.options.intervalMs * 5, this.options.connectionTimeoutMs),
      keepAlive: true,
      keepAliveInitialDelayMillis: 1000,
    });
    client.on('error', (error) => {
      this.options.logger.warn({ err: error }, 'leader lease session lost');
      void this.dropConnection('lease session lost');
    });
    await connectSession(client);
    if (this.stopped) {
      // stop() came while connecting: it found no session to end.
      await client.end().catch(() => {});
      throw new Error('the leader lock was stopped');
    }
    this.client = client;
    return client;
  }

  private async dropConnection(reason: string): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (this.leading) await this.lose(reason);
    await client?.end().catch(() => {});
  }

  /** Runs `step` in turn with starts and stops, if (still) leading. */
  whileLeading(step: () => Promise<void>): Promise<void> {
    return this.run(async () => {
      if (this.leading) await step();
    });
  }

  private lose(reason: string): Promise<void> {
    clearTimeout(this.fence);
    return this.run(async () => {
      if (!this.leading) return;
      this.leading = false;
      await this.options.onLost();
      const level = reason === 'stopping' ? 'info' : 'warn';
      this.options.logger[level]({ reason }, 'no longer holding the leader lease: stopped applying');
    });
  }

  private run(step: () => Promise<void>): Promise<void> {
    this.serial = this.serial.then(step, step);
    return this.serial;
  }
}
