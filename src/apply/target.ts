import pg from 'pg';
import { classifyError, type ClassifiedError } from '../errors.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import type { EnvironmentConfig, Settings } from '../config/schema.js';

export interface SessionIdentity {
  /** The source's search_path when the statements ran. */
  searchPath: string;
  /** Role to run as (SET LOCAL ROLE); undefined runs as the sync user. */
  runAs?: string;
}

export interface ExecutionResult {
  appliedSql: string;
  startedAt: Date;
  finishedAt: Date;
  durationMs: number;
  connectionTimeMs: number | undefined;
  serverVersion: string | undefined;
  error?: ClassifiedError & { failedSql?: string };
}

/**
 * One environment's database: a small pool with connect and statement timeouts and an
 * application_name that names it in pg_stat_activity.
 */
export class Target {
  private readonly pool: pg.Pool;
  private serverVersion: string | undefined;

  constructor(
    readonly environment: EnvironmentConfig,
    settings: Settings,
    onIdleError: (error: Error) => void,
  ) {
    this.pool = new pg.Pool({
      connectionString: environment.url,
      application_name: `permsync:${environment.name}`,
      connectionTimeoutMillis: settings.connectionTimeoutMs,
      statement_timeout: settings.statementTimeoutMs,
      // A target that stops answering (not just slow) is cut off on the client side too.
      query_timeout: settings.statementTimeoutMs + settings.connectionTimeoutMs,
      keepAlive: true,
      max: 2,
      idleTimeoutMillis: 60_000,
    });
    this.pool.on('error', onIdleError);
  }

  /** The exact text sent for a batch: the session set-up, then its statements. */
  static sessionSql(identity: SessionIdentity, statements: string[]): string[] {
    return [
      `SELECT pg_catalog.set_config('search_path', ${quoteLiteral(identity.searchPath)}, true)`,
      ...(identity.runAs !== undefined ? [`SET LOCAL ROLE ${quoteIdent(identity.runAs)}`] : []),
      ...statements,
    ];
  }

  /** Runs a batch's statements in one transaction, as the source ran them. */
  async execute(identity: SessionIdentity, statements: string[]): Promise<ExecutionResult> {
    const sql = Target.sessionSql(identity, statements);
    const appliedSql = sql.map((s) => `${s};`).join('\n');
    const startedAt = new Date();
    const t0 = performance.now();
    const done = (fields: Partial<ExecutionResult>): ExecutionResult => ({
      appliedSql,
      startedAt,
      finishedAt: new Date(),
      durationMs: performance.now() - t0,
      connectionTimeMs: undefined,
      serverVersion: this.serverVersion,
      ...fields,
    });
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      return done({ error: classifyError(error) });
    }
    const connectionTimeMs = performance.now() - t0;
    let statementIndex = -1;
    try {
      if (this.serverVersion === undefined) {
        this.serverVersion = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version;
      }
      await client.query('BEGIN');
      for (statementIndex = 0; statementIndex < sql.length; statementIndex++) {
        await client.query(sql[statementIndex] as string);
      }
      statementIndex = -1;
      await client.query('COMMIT');
      client.release();
      return done({ connectionTimeMs });
    } catch (error) {
      const classified = classifyError(error);
      let broken = classified.kind === 'transient';
      if (!broken) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
      }
      // A connection that failed mid-transaction is discarded, not reused.
      client.release(broken ? (error as Error) : undefined);
      const failedSql = statementIndex >= 0 ? sql[statementIndex] : undefined;
      return done({ connectionTimeMs, error: { ...classified, ...(failedSql !== undefined && { failedSql }) } });
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
