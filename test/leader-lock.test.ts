import pg from 'pg';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install } from '../src/install/migrate.js';
import { LeaderLock, type LeaderLockOptions } from '../src/source/leader-lock.js';
import { waitFor } from './support/pipeline.js';
import { startServer, type TestServer } from './support/servers.js';

let server: TestServer;
let admin: pg.Client;
// eslint-disable-next-line @typescript-eslint/unbound-method -- pg's own query, put back after a test wraps it
const query = pg.Client.prototype.query;
const locks: LeaderLock[] = [];

beforeAll(async () => {
  server = await startServer('lock');
  admin = new pg.Client(server.url);
  await admin.connect();
  await install(admin);
});

afterEach(async () => {
  pg.Client.prototype.query = query;
  await Promise.all(locks.splice(0).map((l) => l.stop()));
});

afterAll(async () => {
  await admin?.end();
  await server?.destroy();
});

function newLock(events: string[], options: Partial<LeaderLockOptions> = {}): LeaderLock {
  const lock = new LeaderLock({
    connectionString: server.url,
    applicationName: 'permsync-test',
    connectionTimeoutMs: 2000,
    group: 'default',
    intervalMs: 1000,
    leaseMs: 10_000,
    logger: pino({ level: 'silent' }),
    onAcquired: () => {
      events.push('acquired');
      return Promise.resolve();
    },
    onLost: () => {
      events.push('lost');
      return Promise.resolve();
    },
    ...options,
  });
  locks.push(lock);
  return lock;
}

/** Claims the lease on a session of its own, as another daemon would. */
async function claimElsewhere(leaseMs = 10_000): Promise<{ leading: boolean; client: pg.Client }> {
  const client = new pg.Client({ connectionString: server.url, application_name: 'other-daemon:lock' });
  client.on('error', () => {}); // a test may end its session
  await client.connect();
  const { rows } = await client.query<{ is_leader: boolean }>('SELECT is_leader FROM permsync.claim_leadership($1)', [leaseMs]);
  return { leading: rows[0]?.is_leader ?? false, client };
}

describe('the leader lease', () => {
  it('never makes a daemon leader after stop() has returned, though the lease was granted meanwhile', async () => {
    // The answer to the claim is held back until stop() has returned (a slow network).
    let deliver!: () => void;
    const held = new Promise<void>((resolve) => (deliver = resolve));
    let asked!: () => void;
    const onTheWire = new Promise<void>((resolve) => (asked = resolve));
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const result = (query as (...a: unknown[]) => unknown).apply(this, args);
      if (typeof args[0] !== 'string' || !args[0].includes('claim_leadership')) return result;
      asked();
      return (result as Promise<unknown>).then(async (answer) => (await held, answer));
    } as typeof pg.Client.prototype.query;

    const events: string[] = [];
    const lock = newLock(events);
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
    // Nothing holds the lease: another daemon gets it at once.
    const other = await claimElsewhere();
    expect(other.leading).toBe(true);
    await other.client.query('SELECT permsync.release_leadership()');
    await other.client.end();
  });

  it("a standby names the leader, and takes over at once when the leader's session ends", async () => {
    const leader = await claimElsewhere();
    expect(leader.leading).toBe(true);
    const {
      rows: [session],
    } = await leader.client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    // Logged in as another user than the leader, whose sessions it may not see in pg_stat_activity.
    await admin.query(`CREATE ROLE standby_daemon LOGIN PASSWORD 'standby-pw' IN ROLE permsync_daemon`);
    const events: string[] = [];
    const standby = newLock(events, { intervalMs: 200, connectionString: server.urlFor('postgres', 'standby_daemon', 'standby-pw') });
    await standby.start();
    expect(standby.isLeader).toBe(false);
    expect(standby.holder).toMatchObject({ pid: session?.pid, user: 'postgres', applicationName: 'other-daemon:lock' });
    // Killed: its lease has 10 s to run, but its session is gone.
    await admin.query('SELECT pg_terminate_backend($1, 5000)', [session?.pid]);
    await waitFor(() => standby.isLeader, 5000, 'the standby to take over');
    expect(events).toEqual(['acquired']);
    expect(standby.holder?.pid).not.toBe(session?.pid);
    await leader.client.end().catch(() => {});
  });

  it('a standby takes over a lease whose holder lives on but no longer renews it, once it expires', async () => {
    const silent = await claimElsewhere(1000);
    expect(silent.leading).toBe(true);
    const events: string[] = [];
    const standby = newLock(events, { intervalMs: 200 });
    await standby.start();
    expect(standby.isLeader).toBe(false);
    await waitFor(() => standby.isLeader, 5000, 'the standby to take the expired lease');
    // The silent holder, asking again, finds the standby there.
    const { rows } = await silent.client.query<{ is_leader: boolean }>('SELECT is_leader FROM permsync.claim_leadership(1000)');
    expect(rows[0]?.is_leader).toBe(false);
    await silent.client.end();
  });

  it('a leader that cannot renew stops applying before its lease runs out', async () => {
    const lease = async () =>
      (await admin.query<{ pid: number | null; live: boolean }>('SELECT pid, expires_at > clock_timestamp() AS live FROM permsync.leader')).rows[0];
    const events: string[] = [];
    let leaseWhenLost: Awaited<ReturnType<typeof lease>>;
    const leader = newLock(events, {
      intervalMs: 200,
      // It stops 2 s after its last renewal: 2 s before the lease ends, however slow this machine.
      leaseMs: 4000,
      onLost: async () => {
        leaseWhenLost = await lease();
        events.push('lost');
      },
    });
    await leader.start();
    expect(leader.isLeader).toBe(true);
    const holder = (await lease())?.pid;
    // Its renewals wait on the lease row, locked by the test's superuser session.
    const blocker = new pg.Client(server.url);
    await blocker.connect();
    await blocker.query('BEGIN; SELECT FROM permsync.leader FOR UPDATE');
    try {
      await waitFor(() => events.includes('lost'), 10_000, 'the leader to stop applying');
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    expect(leaseWhenLost).toEqual({ pid: holder, live: true });
  });

  it('a login without permsync_daemon cannot claim the lease, and the lock says why', async () => {
    await admin.query(`CREATE ROLE no_daemon LOGIN PASSWORD 'no-daemon-pw'`);
    const events: string[] = [];
    const lock = newLock(events, { connectionString: server.urlFor('postgres', 'no_daemon', 'no-daemon-pw') });
    await lock.start();
    expect(lock.isLeader).toBe(false);
    expect(lock.failure).toBe('permission denied for schema permsync');
    expect(lock.holder).toBeUndefined();
    expect(events).toEqual([]);
  });

  it('refuses a lease it cannot keep', async () => {
    for (const leaseMs of [0, 999, 600_001]) {
      await expect(admin.query('SELECT permsync.claim_leadership($1)', [leaseMs])).rejects.toMatchObject({
        code: '22023',
        message: expect.stringContaining(`a leader lease of ${leaseMs} ms`),
      });
    }
  });
});
