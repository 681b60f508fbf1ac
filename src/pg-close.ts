import type pg from 'pg';

/**
 * Ending pg sessions within a bound. pg's end() says goodbye and waits for the server to
 * close the connection: a server that stopped answering (hung, or behind a network that
 * drops everything) never does, and the open socket keeps the process running. What has
 * not ended in time is cut: the server, once it notices, rolls back whatever was open.
 */

/** How long a session has to end before it is cut: a server that answers ends it in a round trip. */
export const END_WITHIN_MS = 500;

/** Whether `work` settled within `ms` (it goes on either way). */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes the session's connection at once, whatever it was doing. */
export function cutSession(client: pg.Client): void {
  client.connection.stream.destroy();
}

/** Ends the session, or cuts it if it has not ended within `ms`. */
export async function endSession(client: pg.Client, ms = END_WITHIN_MS): Promise<void> {
  if (!(await settlesWithin(client.end(), ms))) cutSession(client);
}
