import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config/schema.js';
import type { Daemon } from '../src/daemon.js';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

// A fleet larger than one daemon, split by configuration: each daemon group leads on its
// own through the source, applies to its own environments, and never to another's.

let p: Pipeline;
let east: Daemon;
let west: Daemon;

/** The pipeline's configuration for one environment, as a daemon of `group` runs it. */
function groupConfig(environment: string, group: string): Config {
  const all = p.config();
  return { ...all, group, environments: all.environments.filter((e) => e.name === environment) };
}

beforeAll(async () => {
  p = await startPipeline(['east_prod', 'west_prod']);
  await p.everywhere('CREATE ROLE app; CREATE TABLE orders (id int)');
  await p.adopt();
  east = await p.startDaemon(groupConfig('east_prod', 'east'));
  west = await p.startDaemon(groupConfig('west_prod', 'west'));
});

afterAll(async () => {
  await p?.close();
});

/** Applications of one batch to one environment that succeeded more than once. */
async function appliedTwice(): Promise<{ environment_name: string; batch_id: string; times: number }[]> {
  const { rows } = await p.sourceClient.query<{ environment_name: string; batch_id: string; times: number }>(
    `SELECT environment_name, batch_id, count(*)::int AS times FROM permsync.execution_log
      WHERE execution_status = 'success' GROUP BY 1, 2 HAVING count(*) > 1`,
  );
  return rows;
}

describe('daemons of two groups on one source', () => {
  it('both lead and apply, each to its own environment, each batch once', async () => {
    await waitFor(() => east.isLeader() && west.isLeader(), 10_000, 'both daemons to lead');
    for (let i = 0; i < 20; i++) await p.dba(i % 2 === 0 ? 'GRANT SELECT ON orders TO app' : 'REVOKE SELECT ON orders FROM app');
    await p.dba('GRANT INSERT ON orders TO app');
    await p.settle();

    const source = await relationPrivileges(p.sourceClient, 'orders');
    expect(source).toContain('app INSERT by postgres');
    expect(await relationPrivileges(p.env('east_prod').client, 'orders')).toEqual(source);
    expect(await relationPrivileges(p.env('west_prod').client, 'orders')).toEqual(source);
    expect(await appliedTwice()).toEqual([]);
    // Neither daemon's configuration retired the other's environment.
    const { rows } = await p.sourceClient.query('SELECT name, group_name, enabled FROM permsync.environments ORDER BY name');
    expect(rows).toEqual([
      { name: 'east_prod', group_name: 'east', enabled: true },
      { name: 'west_prod', group_name: 'west', enabled: true },
    ]);
  });

  it('a daemon of a third group configured with an environment another group applies to is refused it, and applies nothing there', async () => {
    const log: string[] = [];
    const intruder = await p.startDaemon(groupConfig('east_prod', 'intruder'), log);
    await waitFor(() => log.some((line) => line.includes('the daemons of group \\"east\\" apply to it')), 10_000, 'the refusal');
    await p.dba('REVOKE INSERT ON orders FROM app');
    await p.settle();

    expect(await relationPrivileges(p.env('east_prod').client, 'orders')).toEqual(await relationPrivileges(p.sourceClient, 'orders'));
    expect(await appliedTwice()).toEqual([]);
    const { rows } = await p.sourceClient.query(`SELECT group_name FROM permsync.environments WHERE name = 'east_prod'`);
    expect(rows).toEqual([{ group_name: 'east' }]);
    await intruder.stop();
  });
});
