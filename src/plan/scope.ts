import { compileRules, type RoleScope } from '../config/rules.js';
import { admit } from './admit.js';
import type { EnvironmentConfig } from '../config/schema.js';
import type { Statement } from '../sql/statement.js';

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
export function admitter(environment: EnvironmentConfig, roles: RoleScope): (statement: Statement) => DriftAdmission {
  const rules = compileRules(environment.rules);
  return (statement) => {
    const verdict = admit(statement, rules, roles);
    if (verdict.admitted) return { admitted: true };
    const internal = [...statement.grantees, ...(statement.granted !== undefined ? [statement.granted] : [])].some((r) => roles.internal(r));
    return { admitted: false, internal, reason: verdict.reason };
  };
}
