import { compileRules, type RoleScope } from '../config/rules.js';
import { admit } from './admit.js';
import type { ReplayStatement } from '../capture/statements.js';
import type { EnvironmentConfig } from '../config/schema.js';
import type { PlannedStatement } from './changes.js';

/**
 * Not admitted: why the daemon would not carry it (`reason`), and whether it is about
 * permsync's own machinery (`internal`: the sync users and permsync's roles, which differ
 * between environments by design and are not compared).
 */
export type DriftAdmission = { admitted: true } | { admitted: false; internal: boolean; reason: string };

/**
 * Whether the daemon would carry a planned statement to this environment, and if not,
 * why: the configuration keeps it from there (excluded_roles, the environment's rules,
 * carry_predefined_roles, carry_role_attributes), or it names permsync's own roles.
 */
export function admitter(environment: EnvironmentConfig, roles: RoleScope): (statement: PlannedStatement) => DriftAdmission {
  const rules = compileRules(environment.rules);
  return (statement) => {
    const replay: ReplayStatement = {
      ordinal: 0, kind: statement.kind, sourceText: statement.display, sql: statement.sql,
      roles: statement.roles, grantees: statement.grantees, schemas: statement.schemas,
      ...(statement.granted !== undefined && { granted: statement.granted }),
      ...(statement.attribute !== undefined && { attribute: statement.attribute }),
    };
    const verdict = admit(replay, rules, roles);
    if (verdict.admitted) return { admitted: true };
    const internal = [...statement.grantees, ...(statement.granted !== undefined ? [statement.granted] : [])].some((r) => roles.internal(r));
    return { admitted: false, internal, reason: verdict.reason };
  };
}
