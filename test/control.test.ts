import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { Daemon } from '../src/daemon.js';
import { relationPrivileges } from './support/catalog.js';
import { spawnPermsync } from './support/child.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';

let p: Pipeline;
/** The in-process daemon; a test that stops it sets this to undefined, and the next gets a new one. */
let daemon: Daemon | undefined;

async function status(text: string, environment: string): Promise<string | undefined> {
  const { rows } = await p.sourceClient.query<{ s: string }>(
    `SELECT x.execution_status AS s FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
      WHERE b.query_text = $1 AND x.environment_name = $2`,
    [text, environment],
  );
  return rows[0]?.s;
}

const untilStatus = (text: string, environment: string, wanted: string) =>
  waitFor(async () => (await status(text, environment)) === wanted, 10_000, `${environment} to record ${wanted} for ${text}`);

/** Lets a second go by, to show that something did not happen in that time. */
const aMoment = () => new Promise((r) => setTimeout(r, 1000));

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod']);
  await p.everywhere(`CREATE ROLE app; CREATE TABLE t1 (id int); CREATE TABLE t2 (id int); CREATE TABLE t3 (id int)`);
  // Roles created on every server are each environment's own until handed over (onboarding).
  await p.adopt();
});

beforeEach(async () => {
  daemon ??= await p.startDaemon(p.config({ settings: { pollIntervalMs: 60_000 } })); // notifications alone must do it
});

afterAll(async () => {
  await p?.close();
});

describe('operators steer the running daemon from the source', () => {
  it('pause_environment holds one environment; resume_environment lets it catch up', async () => {
    await p.dba(`SELECT permsync.pause_environment('prod')`);
    await p.dba('GRANT SELECT ON t1 TO app');
    await untilStatus('GRANT SELECT ON t1 TO app', 'dev', 'success');
    await aMoment();
    expect(await status('GRANT SELECT ON t1 TO app', 'prod')).toBeUndefined();
    await p.dba(`SELECT permsync.resume_environment('prod')`);
    await untilStatus('GRANT SELECT ON t1 TO app', 'prod', 'success');
  });

  it('enable_dry_run / disable_dry_run switch dry run live', async () => {
    await p.dba(`SELECT permsync.enable_dry_run()`);
    await p.dba('GRANT INSERT ON t1 TO app');
    await untilStatus('GRANT INSERT ON t1 TO app', 'prod', 'dry_run');
    expect(await relationPrivileges(p.env('prod').client, 't1')).not.toContain('app INSERT by postgres');
    await p.dba(`SELECT permsync.disable_dry_run()`);
    await p.dba('GRANT UPDATE ON t1 TO app');
    await untilStatus('GRANT UPDATE ON t1 TO app', 'prod', 'success');
  });

  it('disable_sync stops applying (capture goes on); enable_sync carries what waited', async () => {
    await p.dba(`SELECT permsync.disable_sync()`);
    await p.dba('GRANT DELETE ON t1 TO app');
    await aMoment();
    expect(await status('GRANT DELETE ON t1 TO app', 'dev')).toBeUndefined();
    await p.dba(`SELECT permsync.enable_sync()`);
    await untilStatus('GRANT DELETE ON t1 TO app', 'dev', 'success');
    await untilStatus('GRANT DELETE ON t1 TO app', 'prod', 'success');
  });

  it('retry_failed resumes an environment held on a permanent failure, once the cause is fixed', async () => {
    await p.dba(`SET permsync.capture = 'off'; CREATE TABLE only_source (id int); RESET permsync.capture`);
    await p.env('dev').client.query('CREATE TABLE only_source (id int)');
    await p.dba('GRANT SELECT ON only_source TO app');
    await p.dba('GRANT SELECT ON t2 TO app');
    await untilStatus('GRANT SELECT ON only_source TO app', 'prod', 'failed');
    await aMoment();
    expect(await status('GRANT SELECT ON t2 TO app', 'prod')).toBeUndefined(); // held, in order
    await p.env('prod').client.query('CREATE TABLE only_source (id int)');
    await p.dba(`SELECT permsync.retry_failed('prod')`);
    await untilStatus('GRANT SELECT ON t2 TO app', 'prod', 'success');
    expect(await status('GRANT SELECT ON only_source TO app', 'prod')).toBe('success');
  });
});

describe('retention', () => {
  it('runs cleanup_old_logs on its schedule (settings.cleanup_cron)', async () => {
    await p.dba('GRANT SELECT ON t3 TO app');
    await p.settle();
    await daemon?.stop();
    // Age what is there past log_retention_days (90 by default).
    const { rows } = await p.sourceClient.query<{ n: string }>(
      `UPDATE permsync.execution_log SET finished_at = now() - interval '100 days' RETURNING 1 AS n`,
    );
    expect(rows.length).toBeGreaterThan(0);
    daemon = await p.startDaemon(p.config({ settings: { cleanupCron: '* * * * * *' } }));
    await waitFor(
      async () => {
        const { rows: left } = await p.sourceClient.query<{ n: string }>(
          `SELECT count(*)::text AS n FROM permsync.execution_log WHERE finished_at < now() - interval '90 days'`,
        );
        return left[0]?.n === '0';
      },
      10_000,
      'the scheduled cleanup',
    );
  });
});

describe('SIGHUP', () => {
  it('takes a good new file (a new rule applies) and refuses a bad one, keeping the old', async () => {
    await daemon?.stop();
    daemon = undefined;
    const dir = await mkdtemp(join(tmpdir(), 'permsync-reload-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'permsync.yaml');
    const config = p.config();
    const yaml = (extra: string) =>
      `source:\n  url: ${config.source.url}\n  application_name: permsync-test\n` +
      `environments:\n${config.environments.map((e) => `  - name: ${e.name}\n    url: ${e.url}\n${e.name === 'prod' ? extra : ''}`).join('')}` +
      `settings:\n  poll_interval_ms: 500\nhttp:\n  port: 0\nlog:\n  level: info\n`;
    await writeFile(file, yaml(''));
    const child = spawnPermsync(['run', '--config', file]);
    try {
      await child.until(() => child.output.includes('permsync daemon running'), 15_000, 'the daemon to start');
      await writeFile(file, yaml(`    rules:\n      - action: exclude\n        command_tag: REVOKE\n`));
      child.kill('SIGHUP');
      await child.until(() => child.output.includes('configuration reloaded'), 10_000, 'the reload');
      await p.dba('REVOKE SELECT ON t2 FROM app');
      await untilStatus('REVOKE SELECT ON t2 FROM app', 'prod', 'skipped');
      await untilStatus('REVOKE SELECT ON t2 FROM app', 'dev', 'success');

      await writeFile(file, yaml(`    rules:\n      - action: sometimes\n`));
      child.kill('SIGHUP');
      await child.until(() => child.output.includes('new configuration refused'), 10_000, 'the refusal');
      expect(child.output).toContain('environments[1].rules[0].action');
      await p.dba('REVOKE SELECT ON t1 FROM app');
      await untilStatus('REVOKE SELECT ON t1 FROM app', 'prod', 'skipped'); // the old rules still hold
    } finally {
      await child.stop();
    }
  });
});

describe('a daemon process that cannot start', () => {
  it('is reported as soon as it exits, with what it said, not when the wait for it times out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'permsync-start-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const missing = join(dir, 'missing.yaml');
    const child = spawnPermsync(['run', '--config', missing]);
    const started = Date.now();
    await expect(child.until(() => child.output.includes('permsync daemon running'), 15_000, 'the daemon to start')).rejects.toThrow(
      `exited with code 2 before the daemon to start; its output:\npermsync: invalid configuration:\n  config file not found: ${missing}`,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await child.stop()).toEqual({ code: 2, signal: null });
  });
});
