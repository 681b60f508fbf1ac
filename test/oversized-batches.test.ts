import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnDaemon, type DaemonProcess } from '../bench/daemon-process.js';
import { relationPrivileges } from './support/catalog.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

let p: Pipeline;
let daemon: DaemonProcess;
let dir: string;

const SIXTY_MB = 60 * 1024 * 1024;

beforeAll(async () => {
  p = await startPipeline(['prod']);
  await p.everywhere('CREATE ROLE app; CREATE TABLE after_big (id int)');
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
  dir = await mkdtemp(join(tmpdir(), 'permsync-oversized-'));
  // The daemon as the service runs it: its own process, under the unit's heap limits.
  daemon = await spawnDaemon({
    dir,
    config: {
      source: { url: p.source.url, application_name: 'permsync-test' },
      environments: [{ name: 'prod', url: p.env('prod').server.url }],
      settings: { drift_check_cron: null, cleanup_cron: null },
      log: { level: 'info' },
    },
  });
});

afterAll(async () => {
  await daemon?.stop();
  await p?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('a batch too large to process', () => {
  it('is logged as skipped with its size, and the daemon, under the service heap limit, goes on applying', async () => {
    // A 60 MB string granting on a temporary table, as a client may send it.
    await p.dba(`CREATE TEMP TABLE big_tmp (id int); GRANT SELECT ON big_tmp TO app; SELECT 1 /* ${'x'.repeat(SIXTY_MB)} */`);
    // One stored whole, as capture stored such strings before it had a limit.
    await p.dba(`SET permsync.capture = 'off';
      INSERT INTO permsync.batches (query_text) VALUES ('GRANT SELECT ON after_big TO app; /*' || repeat('y', ${SIXTY_MB}) || '*/');
      RESET permsync.capture`);
    await p.dba('GRANT SELECT ON after_big TO app');
    // A daemon that ran out of memory exits at once (and, under systemd, on every start).
    await waitFor(
      async () => !alive(daemon.pid) || (await relationPrivileges(p.env('prod').client, 'after_big')).includes('app SELECT by postgres'),
      60_000,
      'the later grant',
    );
    expect(alive(daemon.pid)).toBe(true);
    // The target commits before the source logs the outcome: wait for the log too.
    await p.settle();
    const { rows } = await p.sourceClient.query<{ status: string; message: string }>(
      `SELECT x.execution_status AS status, x.result_message AS message
         FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE b.origin = 'event_trigger' ORDER BY b.commit_seq`,
    );
    expect(rows).toEqual([
      {
        status: 'skipped',
        message: expect.stringMatching(/^not replayable: the string is \d{8} bytes, over the limit of 65536 that capture stores/),
      },
      {
        status: 'skipped',
        message: expect.stringMatching(/^not replayable: its text takes \d{8} bytes, over the 65536 the daemon reads of one batch/),
      },
      expect.objectContaining({ status: 'success' }),
    ]);
  });
});
