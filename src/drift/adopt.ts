import type pg from 'pg';
import { roleScope } from '../config/rules.js';
import { FIRST_USER_OID } from '../catalog/catalog.js';
import type { Config, EnvironmentConfig } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { readManagedRoles, recordManagedRoles } from '../source/store.js';
import { openSession } from './check.js';

export interface AdoptResult {
  /** Roles handed over now. */
  adopted: string[];
  /** Roles that were permsync's there already. */
  already: string[];
  /** Roles `--all` leaves for an operator to name, with the reason. */
  heldBack: { role: string; reason: string }[];
}

interface TargetRole {
  name: string;
  oid: number;
  /** SUPERUSER, REPLICATION or BYPASSRLS: powers a look-alike on the source must not come to steer. */
  powerful: boolean;
}

const SOURCE_ROLES = 'SELECT rolname AS name, oid::int8::float8 AS oid FROM pg_catalog.pg_roles WHERE rolname = ANY($1)';
const TARGET_ROLES = `
  SELECT rolname AS name, oid::int8::float8 AS oid, rolsuper OR rolreplication OR rolbypassrls AS powerful
    FROM pg_catalog.pg_roles WHERE rolname !~ '^pg_' AND ($1::name[] IS NULL OR rolname = ANY($1))`;
const OPEN_CONFLICTS = `SELECT role_name AS name FROM permsync.v_role_conflicts WHERE environment_name = $1`;

/**
 * Hands roles of an environment over to permsync (onboarding): from then on replication
 * changes them there as the source does, their passwords and memberships included. A
 * role is handed over by its oid and name on the environment, and only when the source
 * has a role of that name and permsync does not leave it alone (excluded_roles, the sync
 * users, its own roles); never the bootstrap superuser. `names` undefined hands over every
 * such role the environment shares with the source, but for those an operator must name:
 * a role in an open conflict (the source's may be a look-alike created to take it over)
 * and a role with SUPERUSER, REPLICATION or BYPASSRLS. Their open conflicts close.
 */
export async function adoptRoles(
  config: Config,
  environment: EnvironmentConfig,
  source: pg.ClientBase,
  names: string[] | undefined,
): Promise<AdoptResult> {
  const scope = roleScope(config);
  const session = await openSession(environment.url, environment.name, config.settings);
  let target: TargetRole[];
  try {
    target = (await session.query<TargetRole>(TARGET_ROLES, [names ?? null])).rows;
  } finally {
    await session.end().catch(() => {});
  }
  const onSource = new Map(
    (await source.query<{ name: string; oid: number }>(SOURCE_ROLES, [target.map((r) => r.name)])).rows.map((r) => [r.name, r.oid]),
  );
  if (names !== undefined) {
    const problems = names.flatMap((name) => {
      const role = target.find((r) => r.name === name);
      if (scope.excluded(name)) return [`"${name}" is a role permsync leaves alone (excluded_roles, a sync user or its own)`];
      if (!role) return [`${environment.name} has no role "${name}"`];
      if (role.oid < FIRST_USER_OID) return [`"${name}" is ${environment.name}'s bootstrap superuser, which is never handed over`];
      if (!onSource.has(name)) return [`the source has no role "${name}": there is nothing to carry to it`];
      return [];
    });
    if (problems.length > 0) throw new UsageError(`nothing handed over: ${problems.join('; ')}`);
  }
  const managed = await readManagedRoles(source, environment.name);
  const conflicts = new Set((await source.query<{ name: string }>(OPEN_CONFLICTS, [environment.name])).rows.map((r) => r.name));
  const heldBack: AdoptResult['heldBack'] = [];
  const wanted = target.filter((r) => r.oid >= FIRST_USER_OID && onSource.has(r.name) && !scope.excluded(r.name));
  // Managed for the source's role of that name, or for one the source dropped (its drop not carried).
  const standing = (r: TargetRole) => {
    const role = managed.get(r.oid);
    return role?.name === r.name && (role.sourceOid === undefined || role.sourceOid === onSource.get(r.name));
  };
  const fresh = wanted.filter((r) => {
    if (standing(r)) return false;
    if (names !== undefined) return true;
    const reason = conflicts.has(r.name)
      ? "in an open role conflict: the source's may be a look-alike"
      : managed.get(r.oid)?.name === r.name
        ? "it stands for a role the source dropped, and the source's of its name is another: it may be a look-alike"
        : r.powerful
          ? 'it has SUPERUSER, REPLICATION or BYPASSRLS'
          : undefined;
    if (reason !== undefined) heldBack.push({ role: r.name, reason });
    return reason === undefined;
  });
  await recordManagedRoles(
    source,
    environment.name,
    fresh.map((r) => ({ oid: r.oid, name: r.name, sourceOid: onSource.get(r.name) })),
    'adopted',
  );
  return {
    adopted: fresh.map((r) => r.name),
    already: wanted.filter(standing).map((r) => r.name),
    heldBack,
  };
}
