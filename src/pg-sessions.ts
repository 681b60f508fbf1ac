import type pg from 'pg';

/**
 * pg emits a session's error as an event, thrown from the socket's handler when nothing
 * listens: a server that ends a session between two queries (a restart) would otherwise
 * bring the whole process down. With this listener the next query on that session fails
 * instead ("not queryable", transient).
 */
export function keepErrorsForTheNextQuery<T extends pg.ClientBase>(client: T): T {
  client.on('error', () => {});
  return client;
}

/**
 * The same for every session of a pool: pg-pool listens only while a session is idle. A
 * session that failed is dropped when it is released with its error (withPooledSession).
 */
export function keepSessionErrorsForTheNextQuery(pool: pg.Pool): pg.Pool {
  pool.on('connect', (client) => keepErrorsForTheNextQuery(client));
  return pool;
}

/** Runs `work` on a session of the pool; one whose work failed is not put back (broken, or inside a transaction). */
export async function withPooledSession<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    const result = await work(client);
    client.release();
    return result;
  } catch (error) {
    client.release(error as Error);
    throw error;
  }
}
