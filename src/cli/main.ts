import { Command, CommanderError } from 'commander';
import pg from 'pg';
import { ConfigError } from '../config/errors.js';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../config/load.js';
import { redactUrl } from '../redact.js';
import type { Config } from '../config/schema.js';
import { startDaemon, type Daemon } from '../daemon.js';
import { describeError, PermsyncError } from '../errors.js';
import { install, uninstall } from '../install/migrate.js';
import { registerConfiguration } from '../source/store.js';
import { createLogger } from '../log.js';
import { registerDriftCommands } from './drift.js';
import { registerOperatorCommands } from './operator.js';
import { connectSession, keepErrorsForTheNextQuery } from '../pg-sessions.js';

/**
 * How long `permsync run` takes at most to stop (SIGTERM, SIGINT). The daemon's own stop is
 * bounded (the batch in flight gets two seconds, sessions that do not end are cut); this
 * also bounds what it waits for beyond that, such as starting to apply on a source that
 * stopped answering. Well within systemd's and container runtimes' default of 10 s or more.
 */
const STOP_TIMEOUT_MS = 6000;

/** Runs the CLI and returns the exit code: 0 ok, 1 a check found a problem, 2 bad usage or configuration. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    return report(error);
  }
}

function report(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  if (error instanceof ConfigError) {
    process.stderr.write(`permsync: invalid configuration:\n${error.issues.map((i) => `  ${i}`).join('\n')}\n`);
    return 2;
  }
  if (error instanceof PermsyncError) {
    process.stderr.write(`permsync: ${error.message}\n`);
    return error.exitCode;
  }
  process.stderr.write(`permsync: ${describeError(error)}\n`);
  return 1;
}

function buildProgram(): Command {
  const program = new Command('permsync')
    .description('Keeps PostgreSQL roles and privileges the same across environments')
    .exitOverride()
    .showHelpAfterError();
  const withConfig = (command: Command) => command.option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG_PATH);

  withConfig(program.command('install'))
    .description('install or upgrade permsync on the source database (safe to run again)')
    .action(async (options: { config: string }) => {
      const config = await loadConfig(options.config);
      await withSourceClient(config, async (client) => {
        const result = await install(client, { onWait: (holder) => process.stderr.write(`waiting for ${holder}\n`) });
        // Environments are known from now on: changes made before the daemon first runs still reach them.
        const { refused } = await registerConfiguration(client, config);
        for (const { environment, reason } of refused)
          process.stderr.write(`environment "${environment}" is not registered for this daemon group: ${reason}\n`);
        const applied = result.applied.map((m) => `${m.version} ${m.name}`);
        process.stdout.write(
          applied.length
            ? `installed on ${redactUrl(config.source.url)}: ${applied.join(', ')}\n`
            : `already up to date on ${redactUrl(config.source.url)}\n`,
        );
      });
    });

  withConfig(program.command('uninstall'))
    .description('remove every permsync object from the source database, the event trigger included')
    .action(async (options: { config: string }) => {
      const config = await loadConfig(options.config);
      await withSourceClient(config, uninstall);
      process.stdout.write(`uninstalled from ${redactUrl(config.source.url)}\n`);
    });

  withConfig(program.command('run'))
    .description('run the daemon: carry every captured change to every environment')
    .action(async (options: { config: string }) => {
      const config = await loadConfig(options.config);
      const logger = createLogger(config.log.level);
      // A stop asked for while the daemon starts (systemctl stop right after start) is
      // carried out once it has started, not by the signal's default action. Either way the
      // process ends within STOP_TIMEOUT_MS of the signal: a start that waits on a source that
      // stopped answering, like a stop that does, is abandoned. What is abandoned goes with
      // the process: targets roll back what did not commit, and the in-flight mark has the
      // next run apply it again.
      const started: { daemon?: Daemon } = {};
      let stopAskedBy: string | undefined;
      let finish = () => {};
      const stopped = new Promise<void>((resolve) => (finish = resolve));
      const stopDaemon = (running: Daemon) =>
        void running
          .stop()
          .catch((error: unknown) => logger.error({ err: error }, 'error while stopping; exiting anyway'))
          .finally(finish);
      const onSignal = (signal: string) => {
        if (stopAskedBy !== undefined) return;
        stopAskedBy = signal;
        logger.info({ signal }, 'stopping');
        setTimeout(() => {
          logger.error(`the daemon did not stop within ${STOP_TIMEOUT_MS} ms; exiting anyway`);
          process.exit();
        }, STOP_TIMEOUT_MS).unref();
        if (started.daemon) stopDaemon(started.daemon);
      };
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      process.once('SIGINT', () => onSignal('SIGINT'));
      const running = (started.daemon = await startDaemon(config, logger));
      if (stopAskedBy !== undefined) stopDaemon(running);
      // SIGHUP (systemctl reload) re-reads the file; a bad one is refused and the old one kept.
      process.on('SIGHUP', () => {
        loadConfig(options.config)
          .then((next) => running.reload(next))
          .catch((error) => {
            const why = error instanceof ConfigError ? error.issues : [(error as Error).message];
            logger.error({ issues: why }, 'new configuration refused; keeping the running one');
          });
      });
      await stopped;
      // A session still open to a server that stopped answering must not keep the process
      // running. Unreferenced: a clean stop exits before it fires.
      setTimeout(() => process.exit(), 100).unref();
    });

  withConfig(program.command('test-connection'))
    .description('check that the source and each environment (or one) accept a connection')
    .argument('[environment]', 'only this environment')
    .action(async (only: string | undefined, options: { config: string }) => {
      const config = await loadConfig(options.config);
      const envs = config.environments.filter((e) => only === undefined || e.name === only);
      if (only !== undefined && envs.length === 0) throw new PermsyncError(`no environment named "${only}" in the configuration`, { exitCode: 2 });
      let failures = 0;
      for (const [name, url] of [['source', config.source.url] as const, ...envs.map((e) => [e.name, e.url] as const)]) {
        const started = performance.now();
        let client: pg.Client | undefined;
        try {
          // The constructor reads sslrootcert, sslcert and sslkey: a missing file fails this database only.
          client = keepErrorsForTheNextQuery(new pg.Client({ connectionString: url, connectionTimeoutMillis: config.settings.connectionTimeoutMs }));
          await client.connect();
          const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
          process.stdout.write(`${name.padEnd(12)} ok      ${rows[0]?.server_version}  ${Math.round(performance.now() - started)} ms\n`);
        } catch (error) {
          failures++;
          process.stdout.write(`${name.padEnd(12)} FAILED  ${(error as Error).message}\n`);
        } finally {
          await client?.end().catch(() => {});
        }
      }
      process.exitCode = failures ? 1 : 0;
    });

  registerOperatorCommands(program, withConfig, withSourceClient);
  registerDriftCommands(program, withConfig);
  return program;
}

async function withSourceClient<T>(config: Config, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = keepErrorsForTheNextQuery(
    new pg.Client({
      connectionString: config.source.url,
      application_name: config.source.applicationName,
      connectionTimeoutMillis: config.settings.connectionTimeoutMs,
    }),
  );
  await connectSession(client);
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
