import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedServers } from '../src/apply/shared-servers.js';
import { RECORD_MANAGED_ROLES } from '../src/source/queries.js';
import { readManagedRoles, recordManagedRoles, SourceStore } from '../src/source/store.js';
import { Target } from '../src/target/target.js';
import { startPipeline, testSettings, waitFor, type Pipeline } from './support/pipeline.js';

// The roles permsync manages on a server are one set for the environments that are its
// databases: recorded once, read by each, and a join brings only what the joining
// environment recorded alone. The daemon's own login (permsync_daemon) does all of it.

const PASSWORD = 'managed-roles-pw';

let p: Pipeline;
let pool: pg.Pool;
let store: SourceStore;
let nextOid = 100_000;

beforeAll(async () => {
  p = await startPipeline([]);
  await p.dba(`CREATE ROLE roles_daemon LOGIN PASSWORD '${PASSWORD}' IN ROLE permsync_daemon`);
  pool = new pg.Pool({ connectionString: p.source.urlFor('postgres', 'roles_daemon', PASSWORD), max: 2 });
  store = new SourceStore(pool);
});

afterAll(async () => {
  await pool?.end();
  await p?.close();
});

/** Environments as the daemon registers them, not yet on a known server. */
async function register(...names: string[]): Promise<void> {
  await p.dba(`INSERT INTO permsync.environments (name) SELECT unnest(ARRAY[${names.map((n) => `'${n}'`).join(', ')}])`);
}

/** Roles as a target would number them: oids this file has not used yet. */
function roles(...names: string[]): { oid: number; name: string }[] {
  return names.map((name) => ({ oid: nextOid++, name }));
}

async function managedNames(environment: string): Promise<string[]> {
  return [...(await readManagedRoles(pool, environment)).values()].map((r) => r.name).sort();
}

async function count(sql: string): Promise<number> {
  const { rows } = await p.sourceClient.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`);
  return rows[0]?.n ?? -1;
}

describe('the roles permsync manages on a server', () => {
  it('are one row per role for all its environments: a write is one row, a join copies nothing', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `fleet_${i}`);
    await register(...names);
    for (const name of names) await store.recordServer(name, 'fleet-server');
    const set = roles(...Array.from({ length: 1000 }, (_, i) => `fleet_role_${i}`));
    const empty = await count('permsync.managed_roles');
    await store.recordManagedRoles('fleet_3', set, 'created');

    // 10 environments sharing 1,000 roles: 1,000 rows (10,000 while each environment had a copy).
    expect((await count('permsync.managed_roles')) - empty).toBe(1000);
    // Operators still read one row per environment and role.
    expect(await count(`permsync.v_managed_roles WHERE environment_name LIKE 'fleet\\_%'`)).toBe(10_000);
    for (const name of names) expect((await readManagedRoles(pool, name)).size).toBe(1000);

    // An eleventh environment joins: nothing is written but its own row in environments.
    await register('fleet_10');
    const before = await count('permsync.managed_roles');
    await store.recordServer('fleet_10', 'fleet-server');
    expect(await count('permsync.managed_roles')).toBe(before);
    expect((await readManagedRoles(pool, 'fleet_10')).size).toBe(1000);

    // A drop or a rename through any of them is the server's.
    const [first, second] = set as [{ oid: number; name: string }, { oid: number; name: string }];
    await store.forgetManagedRoles('fleet_7', [first.oid]);
    await store.renameManagedRole('fleet_9', second.oid, 'fleet_role_renamed');
    for (const name of [...names, 'fleet_10']) {
      const managed = await readManagedRoles(pool, name);
      expect(managed.has(first.oid)).toBe(false);
      expect(managed.get(second.oid)?.name).toBe('fleet_role_renamed');
    }
  });

  it('are an environment’s own until the daemon knows its server, registered or not, and go with it into its server’s set', async () => {
    await register('own_a');
    await store.recordServer('own_a', 'own-server');
    const [server, early, adopted] = [roles('own_server_role'), roles('own_early_role'), roles('own_adopted_role')];
    await store.recordManagedRoles('own_a', server, 'created');
    // Adopted at onboarding, before any daemon registered the environment.
    await recordManagedRoles(pool, 'own_b', adopted, 'adopted');
    expect(await managedNames('own_b')).toEqual(['own_adopted_role']);
    await register('own_b');
    await store.recordManagedRoles('own_b', early, 'created');
    expect(await managedNames('own_b')).toEqual(['own_adopted_role', 'own_early_role']);
    expect(await managedNames('own_a')).toEqual(['own_server_role']);

    await store.recordServer('own_b', 'own-server');
    for (const name of ['own_a', 'own_b']) expect(await managedNames(name)).toEqual(['own_adopted_role', 'own_early_role', 'own_server_role']);
    // Nothing is left under the name it had alone.
    expect(await count(`permsync.managed_roles WHERE server_key = 'own_b'`)).toBe(0);
    expect(await count(`permsync.v_managed_roles WHERE environment_name IN ('own_a', 'own_b')`)).toBe(6);
  });

  it('part when one of its environments is on another server now, and meet again once the others are too', async () => {
    await register('part_a', 'part_b');
    for (const name of ['part_a', 'part_b']) await store.recordServer(name, 'part-server');
    await store.recordManagedRoles('part_a', roles('part_before'), 'created');

    // part_a's server was restarted, or its URL names a copy of it: it keeps what was
    // recorded until then, and what is recorded for it now is not part_b's, nor the reverse.
    await store.recordServer('part_a', 'part-server-restarted');
    await store.recordManagedRoles('part_a', roles('part_a_after'), 'created');
    await store.recordManagedRoles('part_b', roles('part_b_after'), 'created');
    expect(await managedNames('part_a')).toEqual(['part_a_after', 'part_before']);
    expect(await managedNames('part_b')).toEqual(['part_b_after', 'part_before']);

    // part_b sees the same server now: one set again, with what each recorded.
    await store.recordServer('part_b', 'part-server-restarted');
    for (const name of ['part_a', 'part_b']) expect(await managedNames(name)).toEqual(['part_a_after', 'part_b_after', 'part_before']);
    await store.recordManagedRoles('part_b', roles('part_together'), 'created');
    expect(await managedNames('part_a')).toContain('part_together');
  });

  it('has a role recorded while another environment joins the server, in the source and in the daemon', async () => {
    await register('race_a', 'race_b');
    const environment = { name: 'race', url: p.source.url, priority: 10, enabled: true, rules: [], onPermanentFailure: 'hold' as const };
    // Never asked anything here: a member's target is for releasing a dropped role.
    const target = new Target(environment, testSettings, () => {});
    try {
      const servers = new SharedServers(store);
      const server = await servers.join('race-server', { name: 'race_a', target, rules: '[]' }, 0n);
      // race_a creates a role on the server and records it; the recording has not committed yet.
      const [created] = roles('race_created') as [{ oid: number; name: string }];
      const writer = new pg.Client(p.source.urlFor('postgres', 'roles_daemon', PASSWORD));
      await writer.connect();
      try {
        await writer.query('BEGIN');
        await writer.query(RECORD_MANAGED_ROLES, ['race_a', JSON.stringify([created]), 'created']);
        let joined = false;
        const joining = servers.join('race-server', { name: 'race_b', target, rules: '[]' }, 0n).then((s) => ((joined = true), s));
        const waiting = async () => (await count(`pg_locks WHERE NOT granted AND relation = 'permsync.managed_roles'::regclass`)) > 0;
        await waitFor(async () => joined || (await waiting()), 10_000, 'the join to end or to wait for the recording');
        await writer.query('COMMIT');
        // What the applier does once the recording committed.
        server.managed.set(created.oid, { name: created.name });
        expect(await joining).toBe(server);
      } finally {
        await writer.end();
      }
      expect(await managedNames('race_b')).toEqual(['race_created']);
      expect(server.managed.get(created.oid)?.name).toBe('race_created');
    } finally {
      await target.close();
    }
  });
});
