import pg from 'pg';
import type { Config } from '../config/schema.js';
import { keepSessionErrorsForTheNextQuery, ownSearchPath } from '../pg-sessions.js';

/** A pool of connections to the source, with the daemon's timeouts. */
export function openSourcePool(config: Config, options: { applicationName: string; max: number }): pg.Pool {
  return keepSessionErrorsForTheNextQuery(
    new pg.Pool({
      connectionString: config.source.url,
      application_name: options.applicationName,
      connectionTimeoutMillis: config.settings.connectionTimeoutMs,
      statement_timeout: config.settings.statementTimeoutMs,
      // Keeps a source that stops answering from hanging the daemon.
      query_timeout: config.settings.statementTimeoutMs + config.settings.connectionTimeoutMs,
      max: options.max,
      // pg-pool awaits it before handing the session out (its types say void).
      // eslint-disable-next-line @typescript-eslint/no-misused-promises
      onConnect: ownSearchPath,
    }),
  );
}
