import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { PACKAGE_ROOT } from '../src/paths.js';
import { now } from './stats.js';

/**
 * Objects and grants for the drift measurement, the same on the source (capture off: this
 * is set-up, not a change to carry) and on one target: `tables` tables, each granted
 * SELECT to `rolesPerTable` of the roles bench_r1 .. bench_r<roles>.
 */
export async function createGrants(client: pg.ClientBase, options: { tables: number; rolesPerTable: number; roles: number }): Promise<void> {
  await client.query(`SET permsync.capture = 'off'`);
  await client.query(`CREATE SCHEMA drift`);
  await client.query(`DO $$ BEGIN
      FOR t IN 0..${options.tables - 1} LOOP
        EXECUTE format('CREATE TABLE drift.t%s (id int)', t);
        EXECUTE format('GRANT SELECT ON drift.t%s TO %s', t,
          (SELECT string_agg(quote_ident('bench_r' || ((t * 10 + k) % ${options.roles} + 1)), ', ')
             FROM generate_series(0, ${options.rolesPerTable - 1}) k));
      END LOOP;
    END $$`);
  await client.query(`RESET permsync.capture`);
}

export type DriftResult =
  { measured: true; seconds: number; peakRssMb: number; exitCode: number | null; differences: number | null } | { measured: false; reason: string };

/**
 * `permsync drift --env ENV` (every environment, without one) as an operator runs it, in a
 * process of its own: wall time (node's start included) and that process's peak resident
 * memory; the differences, summed over the environments.
 */
export async function runDrift(configFile: string, environment: string | undefined, dir: string, source: pg.Client): Promise<DriftResult> {
  const rssFile = join(dir, 'drift-peak-rss');
  // Each check is recorded in permsync.drift_checks: the new rows say the command compared.
  const latestCheck = async (since?: string) => {
    const { rows } = await source.query<{ id: string; differences: number | null }>(
      `SELECT max(id)::text AS id, sum(differences)::int AS differences FROM permsync.drift_checks
        WHERE ($1::text IS NULL OR environment = $1) AND id > coalesce($2::bigint, 0)`,
      [environment ?? null, since ?? null],
    );
    return rows[0]?.id ? rows[0] : undefined;
  };
  let before: string | undefined;
  try {
    before = (await latestCheck())?.id;
  } catch (error) {
    return { measured: false, reason: `drift not available: ${(error as Error).message}` };
  }
  const started = now();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        join(PACKAGE_ROOT, 'dist/bench/peak-rss.js'),
        join(PACKAGE_ROOT, 'bin/permsync.js'),
        'drift',
        ...(environment === undefined ? [] : ['--env', environment]),
        '--json',
        '--config',
        configFile,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BENCH_PEAK_RSS_FILE: rssFile } },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (exitCode) => resolve({ code: exitCode, stderr }));
  });
  const seconds = (now() - started) / 1000;
  const check = await latestCheck(before);
  if (!check) {
    return { measured: false, reason: `drift did not compare (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' ')}` };
  }
  const peakRssMb = Number(await readFile(rssFile, 'utf8')) / 1024;
  return { measured: true, seconds, peakRssMb, exitCode: code, differences: check.differences };
}
