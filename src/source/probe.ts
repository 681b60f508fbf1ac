import pg from 'pg';
import { connectSession } from '../pg-sessions.js';
import { endSession } from '../pg-close.js';

export interface SourceProbeOptions {
  connectionString: string;
  applicationName: string;
  connectionTimeoutMs: number;
  /** How long an answer is given again before the source is asked anew. */
  reuseMs: number;
}

/**
 * Whether the source answers, for /readyz. On a session of its own, so that probes never
 * wait for, nor take, a session of the daemon's pool; one question at a time, shared by
 * every probe that comes while it is asked, and its answer given again for reuseMs: a
 * flood of probes costs the source one session and at most one query per reuseMs.
 */
export class SourceProbe {
  private client: pg.Client | undefined;
  private asking: Promise<string | undefined> | undefined;
  private answer: { at: number; failure: string | undefined } | undefined;
  private closed = false;

  constructor(private readonly options: SourceProbeOptions) {}

  /** Undefined when the source answered, otherwise why it did not. */
  check(): Promise<string | undefined> {
    if (this.answer && performance.now() - this.answer.at < this.options.reuseMs) return Promise.resolve(this.answer.failure);
    this.asking ??= this.ask().finally(() => (this.asking = undefined));
    return this.asking;
  }

  /** Ends the session; a question still being asked fails. */
  async close(): Promise<void> {
    this.closed = true;
    await this.drop();
  }

  private async ask(): Promise<string | undefined> {
    let failure: string | undefined;
    try {
      await (await this.connection()).query('SELECT 1');
    } catch (error) {
      failure = (error as Error).message;
      await this.drop();
    }
    this.answer = { at: performance.now(), failure };
    return failure;
  }

  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: this.options.applicationName,
      connectionTimeoutMillis: this.options.connectionTimeoutMs,
      // A source that stops answering fails the question instead of holding every later probe.
      query_timeout: this.options.connectionTimeoutMs,
      keepAlive: true,
    });
    // A session the server ended is replaced at the next question.
    client.on('error', () => void this.drop(client));
    await connectSession(client);
    if (this.closed) {
      // close() came while connecting: it found no session to end.
      await client.end().catch(() => {});
      throw new Error('readiness is closed');
    }
    this.client = client;
    return client;
  }

  private async drop(client = this.client): Promise<void> {
    if (this.client === client) this.client = undefined;
    if (client) await endSession(client);
  }
}
