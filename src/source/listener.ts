import pg from 'pg';
import type { Logger } from 'pino';
import { withTimeout } from '../deadline.js';
import { endSession } from '../pg-close.js';
import { quoteIdent } from '../sql/quote.js';

/** A reconnect waits up to this long at first, twice as long after each failed attempt, up to RECONNECT_MAX_MS. */
const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 10_000;

export interface ListenerStatus {
  /** connected: LISTEN is in place and the source answers; reconnecting: it is not, and a new session is being made. */
  state: 'connected' | 'reconnecting';
  /** When the listener entered this state. */
  since: Date;
  /** When the source last answered on the listening session (the LISTEN itself, then each heartbeat). */
  lastHeartbeat: Date | undefined;
  /** While reconnecting: why the session was lost, or why the last attempt failed. */
  failure: string | undefined;
}

export interface SourceListenerOptions {
  connectionString: string;
  applicationName: string;
  /** How long connecting, LISTEN and each heartbeat may take before the session is given up. */
  timeoutMs: number;
  /** How often the session must answer a heartbeat. */
  heartbeatMs: number;
  channels: readonly string[];
  logger: Logger;
  onNotification: (channel: string) => void;
  /**
   * Listening (again): at start and after every reconnect. What was notified while it was
   * not listening is lost: the caller catches up from the tables.
   */
  onListening: () => void;
}

/**
 * LISTEN on the source, on a session of its own that is never left to die silently. A
 * firewall or NAT that drops an idle connection's state sends nothing: the session would
 * wait for notifications forever. So the session must answer a heartbeat every
 * heartbeatMs, within timeoutMs, and show that it still listens; if it does not, or fails,
 * it is cut and replaced. Connecting has the same timeout (a proxy in front of a dead
 * server accepts and never answers), and attempts are retried with capped, jittered
 * backoff until stop(). TCP keepalive is on too, for the operating system to notice.
 */
export class SourceListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private attempts = 0;
  private listenedBefore = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private current: ListenerStatus = { state: 'reconnecting', since: new Date(), lastHeartbeat: undefined, failure: undefined };

  constructor(private readonly options: SourceListenerOptions) {}

  get status(): ListenerStatus {
    return this.current;
  }

  /** Resolves once the first attempt has connected or failed; attempts go on until stop(). */
  start(): Promise<void> {
    return this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.heartbeatTimer);
    const client = this.client;
    this.client = undefined;
    if (client) await endSession(client);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: this.options.applicationName,
      connectionTimeoutMillis: this.options.timeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: this.options.heartbeatMs,
    });
    this.client = client;
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, new Error('the source ended the session')));
    client.on('notification', (n) => {
      if (this.client === client) this.options.onNotification(n.channel);
    });
    try {
      await client.connect();
    } catch (error) {
      this.lost(client, new Error(`connecting: ${(error as Error).message}`));
      return;
    }
    try {
      await this.answered(client.query(this.options.channels.map((c) => `LISTEN ${quoteIdent(c)}`).join('; ')));
    } catch (error) {
      this.lost(client, error as Error);
      return;
    }
    if (this.client !== client) return;
    this.options.logger.info(this.listenedBefore ? 'listening on the source again' : 'listening on the source');
    this.listenedBefore = true;
    this.attempts = 0;
    const now = new Date();
    this.current = { state: 'connected', since: now, lastHeartbeat: now, failure: undefined };
    this.heartbeatAfterInterval(client);
    this.options.onListening();
  }

  private heartbeatAfterInterval(client: pg.Client): void {
    this.heartbeatTimer = setTimeout(() => void this.heartbeat(client), this.options.heartbeatMs);
  }

  private async heartbeat(client: pg.Client): Promise<void> {
    if (this.client !== client) return;
    try {
      const { rows } = await this.answered(client.query<{ channel: string }>('SELECT pg_catalog.pg_listening_channels() AS channel'));
      const listening = new Set(rows.map((r) => r.channel));
      const missing = this.options.channels.filter((c) => !listening.has(c));
      if (missing.length > 0) throw new Error(`the session no longer listens on ${missing.join(', ')}`);
    } catch (error) {
      this.lost(client, error as Error);
      return;
    }
    if (this.client !== client) return;
    this.current = { ...this.current, lastHeartbeat: new Date() };
    this.heartbeatAfterInterval(client);
  }

  /** `query`, failed if the source takes longer than timeoutMs to answer (the query itself stays, for lost() to cut). */
  private answered<T>(query: Promise<T>): Promise<T> {
    return withTimeout(query, this.options.timeoutMs, `the source did not answer within ${this.options.timeoutMs} ms`);
  }

  /** The session failed, ended or stopped answering: it is given up, and another is made after a backoff. */
  private lost(client: pg.Client, error: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    clearTimeout(this.heartbeatTimer);
    void endSession(client);
    const failure = error.message;
    if (this.current.state === 'connected') {
      this.options.logger.warn({ err: error }, 'the source listener lost its session: reconnecting; changes wait for the reconnect or the poll');
      this.current = { state: 'reconnecting', since: new Date(), lastHeartbeat: this.current.lastHeartbeat, failure };
    } else {
      // Once per outage, then at debug level: attempts go on every few seconds.
      const level = this.attempts === 0 ? 'warn' : 'debug';
      this.options.logger[level]({ err: error, attempt: this.attempts + 1 }, 'the source listener could not connect; will try again');
      this.current = { ...this.current, failure };
    }
    // Jittered within the upper half of the ceiling, so that daemons cut off together do not all come back together.
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** this.attempts);
    this.attempts++;
    this.retryTimer = setTimeout(() => void this.connect(), ceiling / 2 + Math.random() * (ceiling / 2));
  }
}
