import type { Command } from 'commander';
import type pg from 'pg';
import { loadConfig } from '../config/load.js';
import type { Config, EnvironmentConfig } from '../config/schema.js';
import { describeError, NOT_INSTALLED, PermsyncError, SQLSTATE, UsageError } from '../errors.js';
import { checkEnvironments, openSession } from '../drift/check.js';
import { formatJson, formatText, type EnvironmentResult } from '../drift/format.js';
import { recordCheck } from '../drift/history.js';
import { reconcile, type ReconcileResult } from '../drift/reconcile.js';
import { adoptRoles } from '../drift/adopt.js';

type WithConfig = (command: Command) => Command;

/** SQLSTATEs of the source that mean permsync (this version of it) is not installed there. */

const EXIT_STATUS = `
Exit status: 0 every environment compared matches the source, 1 something differs,
2 an error (configuration, connection: the cause is named).`;

/** drift and reconcile: compare environments with the source by state, and converge them. */
export function registerDriftCommands(program: Command, withConfig: WithConfig): void {
  withConfig(program.command('drift'))
    .description('compare each enabled environment (or one) with the source, by name, and print the SQL that converges it')
    .option('--env <name>', 'only this environment')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Compares roles and their attributes, memberships, role settings, privileges on the
database, schemas, tables, views, sequences, foreign tables, columns, routines, types and
domains, ownership, and default privileges. Objects on one side only are reported, never
created. Each check is recorded in permsync.drift_checks (see permsync.v_drift_status).
${EXIT_STATUS}`,
    )
    .action(async (options: { config: string; env?: string; json?: boolean }) => {
      const config = await loadConfig(options.config);
      const environments = options.env === undefined ? config.environments.filter((e) => e.enabled) : [findEnvironment(config, options.env)];
      const results = await onSource(config, async (source) => {
        const checked = await checkEnvironments(config, source, environments, { dropExtraRoles: false });
        for (const result of checked) await recordBestEffort(source, result);
        return checked;
      });
      if (options.json) print(JSON.stringify({ ok: exitCode(results) === 0, environments: results.map(formatJson) }, null, 2));
      else for (const result of results) process.stdout.write(formatText(result));
      process.exitCode = exitCode(results);
    });

  withConfig(program.command('reconcile'))
    .description('converge one environment on the source: print the plan, or run it with --apply')
    .requiredOption('--env <name>', 'the environment to converge')
    .option('--apply', 'run the plan in the environment, in one transaction, and record it as a batch')
    .option('--drop-extra-roles', 'also drop roles that exist only in the environment (after revoking what they hold there)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Without --apply, prints what differs and the SQL that would converge it (as drift does).
With --apply, runs that SQL in one transaction on the environment; once committed, it is
recorded on the source as a batch with origin 'reconcile' and its execution_log row, then
the environment is compared again. Needs no running daemon (a new environment is brought
up this way). Roles only in the environment are left alone unless --drop-extra-roles;
dropping one that still owns objects fails, and nothing is reassigned.
${EXIT_STATUS} With --apply: 0 when the environment now matches.`,
    )
    .action(async (options: { config: string; env: string; apply?: boolean; dropExtraRoles?: boolean; json?: boolean }) => {
      const config = await loadConfig(options.config);
      const environment = findEnvironment(config, options.env);
      const result = await onSource(config, async (source) => {
        const outcome = await reconcile(config, environment, source, {
          apply: options.apply === true,
          dropExtraRoles: options.dropExtraRoles === true,
        });
        await recordBestEffort(source, outcome.after ?? outcome.plan);
        return outcome;
      });
      if (options.json) print(JSON.stringify(reconcileJson(result), null, 2));
      else printReconcile(result);
      process.exitCode = result.failure !== undefined ? 1 : exitCode([result.after ?? result.plan]);
    });

  withConfig(program.command('adopt'))
    .description('hand roles of an environment over to permsync, so that replication changes them there as the source does')
    .requiredOption('--env <name>', 'the environment')
    .option('--all', 'every role the environment shares by name with the source')
    .argument('[roles...]', 'the roles to hand over')
    .addHelpText(
      'after',
      `
permsync changes, grants to, runs as and drops only the roles it manages on an environment:
those it created there (replication, reconcile) and those handed over with this command.
Any other role is the environment's own; a source role of the same name is a conflict
(permsync.v_role_conflicts, \`permsync drift\`) and nothing of it is carried there. Hand a
role over only when it is the same role as the source's: it is then changed as the source
says, its password and memberships included. \`permsync reconcile --env NAME\` then shows
what differs. Needs the daemon's login or permsync_admin on the source.`,
    )
    .action(async (roles: string[], options: { config: string; env: string; all?: boolean }) => {
      if ((roles.length === 0) === (options.all !== true)) throw new UsageError('name the roles to hand over, or give --all (not both)');
      const config = await loadConfig(options.config);
      const environment = findEnvironment(config, options.env);
      const result = await onSource(config, (source) => adoptRoles(config, environment, source, options.all ? undefined : roles));
      print(
        result.adopted.length
          ? `handed over to permsync on ${environment.name}: ${result.adopted.join(', ')}`
          : `nothing new to hand over on ${environment.name}`,
      );
      if (result.already.length) print(`permsync's already: ${result.already.join(', ')}`);
      for (const { role, reason } of result.heldBack) print(`not handed over: "${role}": ${reason}; name it to hand it over`);
    });
}

function findEnvironment(config: Config, name: string): EnvironmentConfig {
  const found = config.environments.find((e) => e.name === name);
  if (!found) {
    throw new UsageError(`no environment named "${name}" in the configuration (known: ${config.environments.map((e) => e.name).join(', ')})`);
  }
  return found;
}

/** Runs work with a session on the source; every failure is an error (exit 2) that names its cause. */
async function onSource<T>(config: Config, work: (source: pg.Client) => Promise<T>): Promise<T> {
  const source = await openSession(config.source.url, 'source', config.settings);
  try {
    return await work(source);
  } catch (error) {
    if (error instanceof PermsyncError) throw error;
    const code = (error as { code?: string }).code;
    const hint =
      code !== undefined && NOT_INSTALLED.has(code) ? '\n  hint: is permsync installed and up to date on the source? run `permsync install`' : '';
    throw new PermsyncError(describeError(error) + hint, { exitCode: 2, cause: error });
  } finally {
    await source.end().catch(() => {});
  }
}

/** A check is recorded when the source user may (permsync_daemon may); a user who may not still gets the report. */
async function recordBestEffort(source: pg.Client, result: EnvironmentResult): Promise<void> {
  try {
    await recordCheck(source, result.environment, result.report, result.error);
  } catch (error) {
    if ((error as { code?: string }).code !== SQLSTATE.insufficientPrivilege) throw error;
    process.stderr.write(`permsync: this check of ${result.environment} was not recorded: ${describeError(error)}\n`);
  }
}

function exitCode(results: EnvironmentResult[]): number {
  if (results.some((r) => r.error !== undefined)) return 2;
  return results.some((r) => (r.report?.differences.length ?? 0) > 0) ? 1 : 0;
}

function printReconcile(result: ReconcileResult): void {
  process.stdout.write(formatText(result.plan));
  const env = result.plan.environment;
  if (result.failure !== undefined) {
    print(`reconcile failed on ${env}: ${result.failure}\nits transaction was rolled back: nothing was changed, nothing recorded`);
    return;
  }
  if (!result.applied) {
    if ((result.plan.report?.plan.length ?? 0) > 0) print('nothing applied: run again with --apply to apply this plan');
    return;
  }
  const { batchId, statements, durationMs, notes } = result.applied;
  print(`applied ${statements} statement(s) to ${env} in one transaction in ${Math.round(durationMs)} ms; recorded as batch ${batchId}`);
  for (const note of notes) print(`  note: ${note}`);
  if (result.after) process.stdout.write(`after reconcile: ${formatText(result.after)}`);
}

function reconcileJson(result: ReconcileResult) {
  return {
    ...formatJson(result.plan),
    applied: result.applied
      ? {
          batch_id: result.applied.batchId,
          statements: result.applied.statements,
          duration_ms: Math.round(result.applied.durationMs),
          notes: result.applied.notes,
        }
      : null,
    failure: result.failure ?? null,
    after: result.after ? formatJson(result.after) : null,
  };
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}
