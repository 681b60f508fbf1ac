import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEADER_LOCK_KEY, LeaderLock } from '../src/source/leader-lock.js';
import { startServer, type TestServer } from './support/servers.js';

let server: TestServer;
const query = pg.Client.prototype.query;

beforeAll(async () => {
  server = await startServer('lock');
});

afterAll(async () => {
  pg.Client.prototype.query = query;
  await server?.destroy();
});

describe('the leader lock', () => {
  it('never makes a daemon leader after stop() has returned, though the lock was granted meanwhile', async () => {
    // The answer to the try-lock is held back until stop() has returned (a slow network).
    let deliver!: () => void;
    const held = new Promise<void>((resolve) => (deliver = resolve));
    let asked!: () => void;
    const onTheWire = new Promise<void>((resolve) => (asked = resolve));
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const result = (query as (...a: unknown[]) => unknown).apply(this, args);
      if (typeof args[0] !== 'string' || !args[0].includes('pg_try_advisory_lock')) return result;
      asked();
      return (result as Promise<unknown>).then(async (answer) => (await held, answer));
    } as typeof pg.Client.prototype.query;

    const events: string[] = [];
    const lock = new LeaderLock({
      connectionString: server.url, applicationName: 'permsync-test', connectionTimeoutMs: 2000, intervalMs: 1000,
      logger: pino({ level: 'silent' }),
      onAcquired: async () => void events.push('acquired'),
      onLost: async () => void events.push('lost'),
    });
    try {
      const started = lock.start();
      await onTheWire;
      await lock.stop();
      events.push('stopped');
      deliver();
      await started;
    } finally {
      pg.Client.prototype.query = query;
    }
    expect(events).toEqual(['stopped']);
    expect(lock.isLeader).toBe(false);
    // Nothing holds the lock: another daemon gets it at once.
    const other = new pg.Client(server.url);
    await other.connect();
    try {
      const { rows } = await other.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock(hashtext($1)) AS locked`, [LEADER_LOCK_KEY]);
      expect(rows[0]?.locked).toBe(true);
    } finally {
      await other.end();
    }
  });
});
