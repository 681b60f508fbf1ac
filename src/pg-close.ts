import type pg from 'pg';

/**
 * Ending pg sessions within a bound. pg's end() says goodbye and waits for the server to
 * close the connection: a server that stopped answering (hung, or behind a network that
 * drops everything) never does, and the open socket keeps the process running. What has
 * not ended in time is cut: the server, once it notices, rolls back whatever was open.
 */

/** How long a session has to end before it is cut: a server that answers ends it in a round trip. */
export const END_WITHIN_MS = 500;

const tracked = new WeakMap<pg.Pool, Set<pg.Client>>();

/** Whether `work` settled within `ms` (it goes on either way). */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes the session's connection at once, whatever it was doing. */
function cutSession(client: pg.Client): void {
  client.connection.stream.destroy();
}

/** Ends the session, or cuts it if it has not ended within `ms`. */
export async function endSession(client: pg.Client, ms = END_WITHIN_MS): Promise<void> {
  if (!(await settlesWithin(client.end(), ms))) cutSession(client);
}

/** Remembers the pool's sessions, so that endPool() can cut those that do not end in time. Call it before the pool connects. */
export function trackSessions(pool: pg.Pool): pg.Pool {
  const open = new Set<pg.Client>();
  pool.on('connect', (client) => open.add(client));
  pool.on('remove', (client) => open.delete(client as pg.Client));
  tracked.set(pool, open);
  return pool;
}

/**
 * Ends the pool: sessions in use or ending after `ms` are cut, and whoever used one gets
 * its query's error. Resolves within about twice `ms`, ended or not.
 */
export async function endPool(pool: pg.Pool, ms = END_WITHIN_MS): Promise<void> {
  const ended = pool.end();
  if (await settlesWithin(ended, ms)) return;
  for (const client of tracked.get(pool) ?? []) cutSession(client);
  await settlesWithin(ended, ms);
}
