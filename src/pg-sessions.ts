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
 * permsync's own queries call pg_catalog's functions by their bare names, and a function a
 * login creates in a schema of the default search_path ("$user", public) is taken instead
 * where it matches better (public.array_agg(text) over pg_catalog.array_agg(anynonarray)):
 * it would run as permsync's login. So every session permsync opens searches pg_catalog
 * alone (pg_temp last, which is never searched for functions) from its first query on; the
 * statements it replays set the source's search_path for their own transaction. Set by a
 * statement rather than the startup `options`, which an `options` in the URL replaces.
 */
const OWN_SEARCH_PATH = 'SET search_path = pg_catalog, pg_temp';

/** Sets permsync's own search_path (OWN_SEARCH_PATH): a pool's `onConnect`, before it hands the session out. */
export async function ownSearchPath(client: pg.ClientBase): Promise<void> {
  await client.query(OWN_SEARCH_PATH);
}

/** Connects, and sets permsync's own search_path (OWN_SEARCH_PATH). */
export async function connectSession(client: pg.Client): Promise<void> {
  await client.connect();
  await ownSearchPath(client);
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
