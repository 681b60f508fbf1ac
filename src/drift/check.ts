import pg from 'pg';
import { redactUrl } from '../redact.js';
import type { Config, EnvironmentConfig, Settings } from '../config/schema.js';
import { describeError, PermsyncError } from '../errors.js';
import { readCatalog, readServerIdentity, type Catalog, type ServerCatalog } from '../catalog/catalog.js';
import type { EnvironmentResult } from './format.js';
import { unreplayableHints } from './history.js';
import { buildReport, type DriftReport } from '../plan/report.js';
import { roleScope } from '../config/rules.js';
import type { ManagedRoles } from '../plan/role-ownership.js';
import { readManagedRoles } from '../source/store.js';
import { connectSession, keepErrorsForTheNextQuery } from '../pg-sessions.js';

/**
 * A session for catalog reads. A failure to connect names the database (password
 * redacted) and the cause; the exit code is 2, as for any error.
 */
export async function openSession(url: string, label: string, settings: Settings): Promise<pg.Client> {
  const client = keepErrorsForTheNextQuery(
    new pg.Client({
      connectionString: url,
      application_name: `permsync:drift:${label}`,
      connectionTimeoutMillis: settings.connectionTimeoutMs,
      statement_timeout: settings.statementTimeoutMs,
    }),
  );
  try {
    await connectSession(client);
  } catch (error) {
    throw new PermsyncError(`${label}: cannot connect to ${redactUrl(url)}: ${describeError(error)}`, { exitCode: 2, cause: error });
  }
  return client;
}

export function readSourceCatalog(client: pg.ClientBase, settings: Settings): Promise<Catalog> {
  return readCatalog(client, { verifiers: settings.syncPasswords, source: true });
}

export function readTargetCatalog(client: pg.ClientBase, settings: Settings, server?: ServerCatalog): Promise<Catalog> {
  return readCatalog(client, { verifiers: settings.syncPasswords, ...(server && { server }) });
}

/** The server part of the catalogs read so far, by server and user: environments of one server read its roles once. */
type ServersRead = Map<string, ServerCatalog>;

export interface CheckOptions {
  dropExtraRoles: boolean;
}

/** Reads one environment and compares it with the source's catalog. */
async function checkEnvironment(
  config: Config,
  environment: EnvironmentConfig,
  source: Catalog,
  managed: ManagedRoles,
  options: CheckOptions,
  servers: ServersRead,
): Promise<DriftReport> {
  const client = await openSession(environment.url, environment.name, config.settings);
  try {
    const server = `${await readServerIdentity(client)}/${client.user ?? ''}`;
    const target = await readTargetCatalog(client, config.settings, servers.get(server));
    if (!servers.has(server)) {
      const { verifiersRead, verifiersUnread, roles, roleOids, memberships, settings } = target;
      servers.set(server, { verifiersRead, verifiersUnread, roles, roleOids, memberships, settings });
    }
    return buildReport(environment, config.settings, roleScope(config), source, target, { ...options, managed });
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Compares each environment with the source, one after another. An environment that
 * cannot be read is reported with the cause; the others are compared all the same.
 */
export async function checkEnvironments(
  config: Config,
  source: pg.ClientBase,
  environments: EnvironmentConfig[],
  options: CheckOptions,
): Promise<EnvironmentResult[]> {
  const catalog = await readSourceCatalog(source, config.settings);
  const results: EnvironmentResult[] = [];
  const servers: ServersRead = new Map();
  for (const environment of environments) {
    let report: DriftReport;
    try {
      report = await checkEnvironment(config, environment, catalog, await readManagedRoles(source, environment.name), options, servers);
    } catch (error) {
      const message = error instanceof PermsyncError ? error.message.replace(`${environment.name}: `, '') : describeError(error);
      results.push({ environment: environment.name, hints: [], error: message });
      continue;
    }
    // A failure here is the source's, not the environment's: it ends the check.
    const hints = report.differences.length > 0 ? await unreplayableHints(source, environment.name) : [];
    results.push({ environment: environment.name, report, hints });
  }
  return results;
}
