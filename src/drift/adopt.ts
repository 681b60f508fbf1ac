import type pg from 'pg';
import { roleScope } from '../apply/rules.js';
import { FIRST_USER_OID } from '../apply/role-ownership.js';
import type { Config, EnvironmentConfig } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { recordManagedRoles } from '../source/store.js';
import { openSession, readManagedRoles } from './check.js';

export interface AdoptResult {
  /** Roles handed over now. */
  adopted: string[];
  /** Roles that were permsync's there already. */
  already: string[];
}

const SOURCE_ROLES = 'SELECT rolname AS name FROM pg_catalog.pg_roles WHERE rolname = ANY($1)';
const TARGET_ROLES = `
  SELECT rolname AS name, oid::int8::float8 AS oid FROM pg_catalog.pg_roles
   WHERE oid >= ${FIRST_USER_OID} AND ($1::name[] IS NULL OR rolname = ANY($1))`;

/**
 * Hands roles of an environment over to permsync (onboarding): from then on replication
 * changes them there as the source does. A role is handed over by its oid on the
 * environment, and only when the source has a role of that name and permsync does not
 * leave it alone (excluded_roles, the sync users, its own roles). `names` undefined hands
 * over every such role the environment shares with the source. Their open conflicts close.
 */
export async function adoptRoles(config: Config, environment: EnvironmentConfig, source: pg.ClientBase, names: string[] | undefined): Promise<AdoptResult> {
  const scope = roleScope(config);
  const session = await openSession(environment.url, environment.name, config.settings);
  let target: { name: string; oid: number }[];
  try {
    target = (await session.query<{ name: string; oid: number }>(TARGET_ROLES, [names ?? null])).rows;
  } finally {
    await session.end().catch(() => {});
  }
  const onSource = new Set((await source.query<{ name: string }>(SOURCE_ROLES, [target.map((r) => r.name)])).rows.map((r) => r.name));
  if (names !== undefined) {
    const problems = names.flatMap((name) => {
      if (scope.excluded(name)) return [`"${name}" is a role permsync leaves alone (excluded_roles, a sync user or its own)`];
      if (!target.some((r) => r.name === name)) return [`${environment.name} has no role "${name}"`];
      if (!onSource.has(name)) return [`the source has no role "${name}": there is nothing to carry to it`];
      return [];
    });
    if (problems.length > 0) throw new UsageError(`nothing handed over: ${problems.join('; ')}`);
  }
  const managed = await readManagedRoles(source, environment.name);
  const wanted = target.filter((r) => onSource.has(r.name) && !scope.excluded(r.name));
  const fresh = wanted.filter((r) => !managed.has(r.oid));
  await recordManagedRoles(source, environment.name, fresh, 'adopted');
  return { adopted: fresh.map((r) => r.name), already: wanted.filter((r) => managed.has(r.oid)).map((r) => r.name) };
}
