import { admit, compileRules, type RoleScope } from '../apply/rules.js';
import type { ReplayStatement } from '../capture/statements.js';
import type { EnvironmentConfig } from '../config/schema.js';
import type { PlannedStatement } from './plan.js';

export type Admission = 'admitted' | 'excluded role' | 'rules';

/**
 * Whether the daemon would carry a planned statement to this environment, and if not,
 * why: it names a role permsync leaves alone, or the environment's rules leave it out.
 * Drift sees what the daemon would carry there, nothing else.
 */
export function admitter(environment: EnvironmentConfig, roles: RoleScope): (statement: PlannedStatement) => Admission {
  const rules = compileRules(environment.rules);
  return (statement) => {
    const replay: ReplayStatement = {
      ordinal: 0, kind: statement.kind, sourceText: statement.display, sql: statement.sql,
      roles: statement.roles, grantees: statement.grantees, schemas: statement.schemas,
      ...(statement.granted !== undefined && { granted: statement.granted }),
      ...(statement.attribute !== undefined && { attribute: statement.attribute }),
    };
    if (!admit(replay, [], roles).admitted) return 'excluded role';
    return admit(replay, rules, roles).admitted ? 'admitted' : 'rules';
  };
}
