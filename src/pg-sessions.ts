import type pg from 'pg';

/**
 * pg emits a session's error as an event, thrown from the socket's handler when nothing
 * listens: the pool listens only while a session is idle, and a server that ends a session
 * just after a query (a restart) would otherwise bring the whole process down. With this
 * listener the next query on that session fails instead ("not queryable", transient), and
 * the session is dropped when it is released with that error.
 */
export function keepSessionErrorsForTheNextQuery(pool: pg.Pool): pg.Pool {
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
