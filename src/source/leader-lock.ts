import pg from 'pg';
import type { Logger } from 'pino';

/** The session advisory lock that lets one daemon at a time apply for a source. */
export const LEADER_LOCK_KEY = 'permsync.daemon';

export interface LeaderLockOptions {
  connectionString: string;
  applicationName: string;
  connectionTimeoutMs: number;
  /** How often a standby tries for the lock (and a leader checks it still has its session). */
  intervalMs: number;
  logger: Logger;
  /** Called when this daemon becomes the one that applies. */
  onAcquired: () => Promise<void>;
  /** Called when it must stop applying: the lock's session is gone, or it is stopping. */
  onLost: () => Promise<void>;
}

/**
 * Two or more daemons may run against one source for availability: the one holding a
 * session-level advisory lock applies, the others wait. The lock lives exactly as long
 * as its connection, so a daemon that dies (even by SIGKILL) frees it for a standby
 * within one interval. A leader that loses the lock's connection stops applying as soon
 * as it notices (an error, or a check every interval bounded by a query timeout); the
 * batch in flight may still finish, which is harmless, since replay is idempotent.
 */
export class LeaderLock {
  private client: pg.Client | undefined;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** Start and stop of the applying side run one at a time, in order. */
  private serial: Promise<void> = Promise.resolve();
  private lastWaitLog = 0;

  constructor(private readonly options: LeaderLockOptions) {}

  get isLeader(): boolean {
    return this.leading;
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
      await client.query('SELECT pg_advisory_unlock(hashtext($1))', [LEADER_LOCK_KEY]).catch(() => {});
      await client.end().catch(() => {});
    }
  }

  /** Lets go of the lock (a leader that cannot apply), to try for it again later. */
  async release(): Promise<void> {
    await this.lose('released');
    await this.client?.query('SELECT pg_advisory_unlock(hashtext($1))', [LEADER_LOCK_KEY]).catch(() => {});
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.attempt(), this.options.intervalMs);
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    try {
      const client = await this.connection();
      if (this.leading) {
        // A cheap round trip: a dead session surfaces here even if no 'error' event came.
        await client.query('SELECT 1');
      } else {
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS locked', [LEADER_LOCK_KEY]);
        if (rows[0]?.locked && this.stopped) {
          // stop() came while the answer was on its way: it has ended the session (and so the lock).
          await client.query('SELECT pg_advisory_unlock(hashtext($1))', [LEADER_LOCK_KEY]).catch(() => {});
          return;
        }
        if (rows[0]?.locked) {
          this.leading = true;
          this.options.logger.info('holding the leader lock: this daemon applies');
          await this.run(async () => {
            try {
              await this.options.onAcquired();
            } catch (error) {
              this.options.logger.error({ err: error }, 'could not start applying; will try again');
              this.leading = false;
              await this.options.onLost().catch(() => {});
              await client.query('SELECT pg_advisory_unlock(hashtext($1))', [LEADER_LOCK_KEY]).catch(() => {});
            }
          });
        } else if (Date.now() - this.lastWaitLog > 60_000) {
          this.lastWaitLog = Date.now();
          this.options.logger.info('another daemon holds the leader lock: standing by');
        }
      }
    } catch (error) {
      if (!this.stopped) this.options.logger.warn({ err: error }, 'leader lock connection failed');
      await this.dropConnection();
    }
    this.schedule();
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
      this.options.logger.warn({ err: error }, 'leader lock session lost');
      void this.dropConnection();
    });
    await client.connect();
    if (this.stopped) {
      // stop() came while connecting: it found no session to end.
      await client.end().catch(() => {});
      throw new Error('the leader lock was stopped');
    }
    this.client = client;
    return client;
  }

  private async dropConnection(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (this.leading) await this.lose('lock session lost');
    await client?.end().catch(() => {});
  }

  /** Runs `step` in turn with starts and stops, if (still) leading. */
  whileLeading(step: () => Promise<void>): Promise<void> {
    return this.run(async () => {
      if (this.leading) await step();
    });
  }

  private lose(reason: string): Promise<void> {
    return this.run(async () => {
      if (!this.leading) return;
      this.leading = false;
      await this.options.onLost();
      const level = reason === 'stopping' ? 'info' : 'warn';
      this.options.logger[level]({ reason }, 'no longer holding the leader lock: stopped applying');
    });
  }

  private run(step: () => Promise<void>): Promise<void> {
    this.serial = this.serial.then(step, step);
    return this.serial;
  }
}
