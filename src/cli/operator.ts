import { InvalidArgumentError, type Command } from 'commander';
import type pg from 'pg';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { NOT_INSTALLED, SQLSTATE, UsageError } from '../errors.js';
import * as operatorSql from '../source/operator-queries.js';

type WithConfig = (command: Command) => Command;
type WithSourceClient = <T>(config: Config, work: (client: pg.Client) => Promise<T>) => Promise<T>;

/** A row of permsync.v_environment_status, as ENVIRONMENT_STATUS selects it. */
interface StatusRow {
  environment: string;
  label: string | null;
  state: 'disabled' | 'held' | 'failing' | 'paused' | 'sync_disabled' | 'pending' | 'ok';
  enabled: boolean;
  paused: boolean;
  sync_enabled: boolean;
  dry_run: boolean;
  last_success_at: Date | null;
  success_count: number;
  failed_count: number;
  skipped_count: number;
  dry_run_count: number;
  pending_batches: number;
  oldest_pending_batch_id: string | null;
  oldest_pending_age_seconds: number | null;
  blocking_error_code: string | null;
  blocking_error: string | null;
  /** Source roles whose name a role of the environment's own holds (permsync.v_role_conflicts). */
  role_conflicts: number;
}

interface RetryRow {
  environment_name: string;
  batch_id: string;
  commit_seq: string;
  failure_kind: string | null;
  error_code: string | null;
  error_message: string | null;
}

interface SkipRow {
  environment_name: string;
  batch_id: string;
  commit_seq: string;
  was: string;
}

const DEFAULT_MAX_LAG_SECONDS = 60;

/**
 * SQLSTATEs that mean the command cannot work as invoked or configured (exit 2) rather
 * than that it found a problem: an unknown environment or bad argument, a source user
 * without the permsync role it needs, or a source without (this version of) permsync.
 */
const USAGE_SQLSTATES = new Map<string, string | undefined>([
  [SQLSTATE.undefinedObject, undefined],
  [SQLSTATE.invalidParameterValue, undefined],
  [SQLSTATE.objectNotInPrerequisiteState, undefined],
  [
    SQLSTATE.insufficientPrivilege,
    'the source user needs permsync_reader (status), permsync_operator (manual-sync, retry, skip, pause, resume) or permsync_admin (cleanup)',
  ],
  ...[...NOT_INSTALLED].map((code): [string, string] => [
    code,
    code === SQLSTATE.undefinedSchema
      ? 'is permsync installed on the source? run `permsync install`'
      : 'is permsync installed and up to date on the source? run `permsync install`',
  ]),
]);

/** The commands an operator uses day to day, all through the source's permsync views and functions. */
export function registerOperatorCommands(program: Command, withConfig: WithConfig, withSourceClient: WithSourceClient): void {
  const onSource = async <T>(options: { config: string }, work: (client: pg.Client) => Promise<T>): Promise<T> => {
    const config = await loadConfig(options.config);
    try {
      return await withSourceClient(config, work);
    } catch (error) {
      throw asUsageError(error) ?? error;
    }
  };

  withConfig(program.command('status'))
    .description('show each environment: state, batches waiting, recent outcomes; exit 1 if one is held, failing or lagging')
    .option('--json', 'print JSON instead of a table')
    .option('--max-lag <seconds>', 'how long a batch may wait before the environment counts as lagging', parseSeconds, DEFAULT_MAX_LAG_SECONDS)
    .addHelpText(
      'after',
      `
States: ok, pending (batches waiting, nothing failed), failing (retrying a transient failure),
held (stopped on a permanent failure: fix it, then \`permsync retry\`, or \`permsync skip\`), paused, sync_disabled,
disabled. Exit status: 0 all well, 1 an environment is held, failing, or has waited longer
than --max-lag (paused, sync_disabled and disabled are deliberate and do not count).`,
    )
    .action(async (options: { config: string; json?: boolean; maxLag: number }) => {
      const rows = await onSource(options, async (client) => (await client.query<StatusRow>(operatorSql.ENVIRONMENT_STATUS)).rows);
      const problems = rows.map((row) => problemOf(row, options.maxLag));
      if (options.json) {
        const environments = rows.map((row, i) => ({ ...row, problem: problems[i] ?? null }));
        print(JSON.stringify({ ok: problems.every((p) => p === undefined), environments }, null, 2));
      } else {
        printStatus(rows, problems);
      }
      process.exitCode = problems.some((p) => p !== undefined) ? 1 : 0;
    });

  withConfig(program.command('manual-sync'))
    .description('queue SQL to be carried to every environment (or one), like a captured change')
    .argument('<sql>', 'the permission statements to carry, e.g. "GRANT SELECT ON sales.orders TO reporting"')
    .option('--env <name>', 'only this environment')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Unqualified names and CURRENT_USER are read as in a session of the configured source user.
Needs permsync_operator.`,
    )
    .action(async (sql: string, options: { config: string; env?: string; json?: boolean }) => {
      const batchId = await onSource(options, async (client) => {
        const { rows } = await client.query<{ batch_id: string }>(operatorSql.MANUAL_SYNC, [sql, options.env ?? null]);
        return rows[0]?.batch_id;
      });
      if (options.json) print(JSON.stringify({ batch_id: batchId, environment: options.env ?? null }));
      else print(`queued batch ${batchId} for ${options.env === undefined ? 'every environment' : options.env}`);
    });

  withConfig(program.command('retry'))
    .description('ask the daemon to re-attempt now the failed batch each environment (or one) waits on')
    .option('--env <name>', 'only this environment')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Lists the failed batches concerned. A held environment resumes from its failed batch, in
order; fix the cause on the target first. The request is stored on the source: a daemon
that is reconnecting or stopped carries it out when it next reads it. Needs permsync_operator.`,
    )
    .action(async (options: { config: string; env?: string; json?: boolean }) => {
      const rows = await onSource(options, async (client) => (await client.query<RetryRow>(operatorSql.RETRY_FAILED, [options.env ?? null])).rows);
      const scope = options.env ?? 'every environment';
      if (options.json) {
        print(JSON.stringify({ environment: options.env ?? null, failed: rows }, null, 2));
      } else if (rows.length === 0) {
        print(`retry requested for ${scope}; no environment waits on a failed batch`);
      } else {
        print(`retry requested for ${scope}; failed batches to re-attempt:`);
        print(
          table(
            ['ENVIRONMENT', 'BATCH', 'KIND', 'ERROR'],
            rows.map((r) => [r.environment_name, r.batch_id, r.failure_kind ?? '', describeError(r.error_code, r.error_message)]),
          ),
        );
      }
    });

  withConfig(program.command('skip'))
    .description('give up on one batch in one environment: it is logged as skipped there, and the environment goes on')
    .requiredOption('--env <name>', 'the environment')
    .requiredOption('--batch <id>', 'the batch id (permsync status shows the one an environment is held on)', parseBatchId)
    .requiredOption('--reason <text>', 'why: recorded with the skip, with who skipped it')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
The running daemon moves on within a second; nothing of the batch runs there. Drift shows
what the environment then lacks. Recorded in permsync.v_operator_actions. Needs permsync_operator.`,
    )
    .action(async (options: { config: string; env: string; batch: string; reason: string; json?: boolean }) => {
      const row = await onSource(
        options,
        async (client) => (await client.query<SkipRow>(operatorSql.SKIP_BATCH, [options.env, options.batch, options.reason])).rows[0],
      );
      if (options.json) print(JSON.stringify(row));
      else print(`skipped batch ${row?.batch_id} (commit_seq ${row?.commit_seq}, ${row?.was}) for ${row?.environment_name}`);
    });

  withConfig(program.command('cleanup'))
    .description('delete execution and audit records older than log_retention_days / audit_retention_days')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Never deletes a batch an enabled environment has yet to finish. Needs permsync_admin.`,
    )
    .action(async (options: { config: string; json?: boolean }) => {
      const counts = await onSource(options, async (client) => {
        const { rows } = await client.query<{ execution_log_deleted: number; audit_log_deleted: number; batches_deleted: number }>(
          operatorSql.CLEANUP_OLD_LOGS,
        );
        return rows[0] ?? { execution_log_deleted: 0, audit_log_deleted: 0, batches_deleted: 0 };
      });
      if (options.json) print(JSON.stringify(counts));
      else {
        print(
          `deleted ${counts.execution_log_deleted} execution_log rows, ${counts.audit_log_deleted} audit_log rows, ` +
            `${counts.batches_deleted} batches`,
        );
      }
    });

  withConfig(program.command('pause'))
    .description('stop carrying changes to one environment; they are kept and carried after resume')
    .argument('<environment>', 'environment name')
    .addHelpText('after', '\nNeeds permsync_operator.')
    .action(async (environment: string, options: { config: string }) => {
      await onSource(options, (client) => client.query(operatorSql.PAUSE_ENVIRONMENT, [environment]));
      print(`paused ${environment}: changes wait until \`permsync resume ${environment}\``);
    });

  withConfig(program.command('resume'))
    .description('carry changes to a paused environment again, starting with those that waited')
    .argument('<environment>', 'environment name')
    .addHelpText('after', '\nNeeds permsync_operator.')
    .action(async (environment: string, options: { config: string }) => {
      await onSource(options, (client) => client.query(operatorSql.RESUME_ENVIRONMENT, [environment]));
      print(`resumed ${environment}`);
    });
}

/** Why an environment needs attention, or undefined; deliberate stops are not problems. */
function problemOf(row: StatusRow, maxLagSeconds: number): string | undefined {
  const problems = [stateProblem(row, maxLagSeconds)];
  if (row.role_conflicts > 0) {
    problems.push(
      `${row.role_conflicts} role conflict(s): source roles whose name a role of ${row.environment}'s own holds ` +
        'are not carried there (permsync.v_role_conflicts; `permsync adopt` hands a role over)',
    );
  }
  return problems.filter(Boolean).join('; ') || undefined;
}

function stateProblem(row: StatusRow, maxLagSeconds: number): string | undefined {
  const batch = `batch ${row.oldest_pending_batch_id}`;
  switch (row.state) {
    case 'held':
      return `held on ${batch}: ${describeError(row.blocking_error_code, row.blocking_error)}`;
    case 'failing':
      return `failing on ${batch}, retrying: ${describeError(row.blocking_error_code, row.blocking_error)}`;
    case 'pending':
      if ((row.oldest_pending_age_seconds ?? 0) <= maxLagSeconds) return undefined;
      return (
        `lagging: ${row.pending_batches} batch(es) waiting, the oldest (${batch}) for ${formatAge(row.oldest_pending_age_seconds)}` +
        ' (is the daemon running?)'
      );
    default:
      return undefined;
  }
}

function printStatus(rows: StatusRow[], problems: (string | undefined)[]): void {
  const first = rows[0];
  if (!first) {
    print('no environment registered yet: the daemon registers them from its configuration when it starts');
    return;
  }
  print(`sync ${first.sync_enabled ? 'enabled' : 'DISABLED'}, dry run ${first.dry_run ? 'ON' : 'off'}`);
  print(
    table(
      ['ENVIRONMENT', 'STATE', 'WAITING', 'OLDEST', 'LAST SUCCESS', '24H OK', 'FAILED', 'SKIPPED', 'DRY RUN', 'CONFLICTS'],
      rows.map((r) => [
        r.environment,
        r.state,
        String(r.pending_batches),
        formatAge(r.oldest_pending_age_seconds),
        r.last_success_at ? formatTime(r.last_success_at) : '-',
        String(r.success_count),
        String(r.failed_count),
        String(r.skipped_count),
        String(r.dry_run_count),
        String(r.role_conflicts),
      ]),
    ),
  );
  rows.forEach((row, i) => {
    if (problems[i]) print(`${row.environment}: ${problems[i]}`);
  });
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function describeError(code: string | null, message: string | null): string {
  return [code && `SQLSTATE ${code}`, message].filter(Boolean).join(': ') || 'no error recorded';
}

function formatAge(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

function formatTime(time: Date): string {
  return `${time.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

function parseBatchId(value: string): string {
  if (!/^[1-9]\d{0,18}$/.test(value)) throw new InvalidArgumentError('expected a batch id (a positive whole number)');
  return value;
}

function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(seconds)) throw new InvalidArgumentError('expected a number of seconds');
  return seconds;
}

/** The PostgreSQL error as a usage error (exit 2) when its SQLSTATE says so, with the SQLSTATE shown. */
function asUsageError(error: unknown): UsageError | undefined {
  const e = error as { code?: unknown; message?: unknown; hint?: unknown };
  if (typeof e.code !== 'string' || !USAGE_SQLSTATES.has(e.code)) return undefined;
  const hint = USAGE_SQLSTATES.get(e.code) ?? (typeof e.hint === 'string' ? e.hint : undefined);
  return new UsageError(`${String(e.message)} (SQLSTATE ${e.code})${hint ? `\n  hint: ${hint}` : ''}`);
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}
