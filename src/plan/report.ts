import type { RoleScope } from '../config/rules.js';
import type { EnvironmentConfig, Settings } from '../config/schema.js';
import { FIRST_USER_OID, type Catalog } from '../catalog/catalog.js';
import { compare, schemasOf, type Change } from '../catalog/compare.js';
import { orderPlan, planChange, type Planned } from './changes.js';
import type { Statement } from '../sql/statement.js';
import { admitter } from './scope.js';
import { isOurs, type ManagedRoles } from './role-ownership.js';
import { comparable } from './versions.js';

interface Difference {
  change: Change;
  /** What converges it (admitted by the environment's rules); empty for objects, which are never created. */
  statements: Planned[];
  /** Set when its statements are left out of the plan on purpose. */
  held?: string;
  /**
   * Why the daemon does not carry it (or part of it, where `statements` converge the rest):
   * the configuration keeps it from this environment.
   */
  excluded?: string;
}

export interface DriftReport {
  environment: string;
  differences: Difference[];
  /** Every statement that converges the environment, in an order that works. */
  plan: Statement[];
  /**
   * How many of the differences the configuration keeps from this environment altogether
   * (excluded_roles, its rules, carry_predefined_roles, carry_role_attributes): reported,
   * and never in the plan. The sync users and permsync's own roles are not compared.
   */
  excludedByConfiguration: number;
  notes: string[];
  /** With settings.sync_passwords on, whether verifiers were compared (the notes say why not); else undefined. */
  verifiersCompared?: boolean;
}

export interface ReportOptions {
  dropExtraRoles: boolean;
  /** The roles permsync manages on the environment (permsync.v_managed_roles). */
  managed: ManagedRoles;
  /** The plan's privilege statements run without its role changes (CompareOptions.rolesAsTheyAre). */
  rolesAsTheyAre?: boolean;
}

/** Compares a target with the source and plans what converges it, within what the daemon carries there. */
export function buildReport(
  environment: EnvironmentConfig,
  settings: Settings,
  roles: RoleScope,
  source: Catalog,
  target: Catalog,
  options: ReportOptions,
): DriftReport {
  const admission = admitter(environment, roles);
  const differences: Difference[] = [];
  // The target's roles permsync does not manage there are its own (predefined ones are not listed).
  const sourceSuperuser = [...source.roleOids].find(([, oid]) => oid < FIRST_USER_OID)?.[0] ?? '';
  const owners = { managed: options.managed, sourceSuperuser, sourceOids: source.roleOids };
  const foreign = new Set([...target.roleOids].filter(([name, oid]) => !isOurs(name, oid, owners)).map(([name]) => name));
  const both = comparable(source, target, environment.name);
  const compared = {
    includeExtraRoles: options.dropExtraRoles,
    foreign,
    ...(environment.databases && { databases: environment.databases }),
    ...(options.rolesAsTheyAre && { rolesAsTheyAre: true }),
  };
  for (const change of compare(both.source, both.target, compared)) {
    const planned = planChange(change, { targetVersionNum: target.serverVersionNum, sourceOids: source.roleOids });
    // An object on one side only has no statement: its schema decides whether it is in scope.
    const verdicts = (planned.length > 0 ? planned.map((p) => p.statement) : [objectProbe(change)]).map(admission);
    if (verdicts.every((v) => !v.admitted && v.internal)) continue;
    const statements = planned.filter((_, i) => verdicts[i]?.admitted);
    const reasons = [...new Set(verdicts.flatMap((v) => (v.admitted ? [] : [v.reason])))];
    const held = heldBack(change, environment, options);
    differences.push({
      change,
      statements,
      ...(held !== undefined && { held }),
      ...(reasons.length > 0 && { excluded: reasons.join('; ') }),
    });
  }
  const plan = orderPlan(differences.filter((d) => !d.held).flatMap((d) => d.statements));
  const excludedByConfiguration = differences.filter((d) => d.excluded !== undefined && d.statements.length === 0).length;
  return {
    environment: environment.name,
    differences,
    plan,
    excludedByConfiguration,
    notes: [...both.notes, ...notes(environment, settings, source, target, plan)],
    ...(settings.syncPasswords && { verifiersCompared: source.verifiersRead && target.verifiersRead }),
  };
}

/** Why a difference's statements stay out of the plan, if they do. */
function heldBack(change: Change, environment: EnvironmentConfig, options: ReportOptions): string | undefined {
  if (change.type === 'role collision') {
    return `left alone: \`permsync adopt --env ${environment.name} ${change.name}\` hands it over to permsync, which then converges it`;
  }
  if (change.type !== 'role extra') return undefined;
  if (!change.managed) return 'left alone: permsync never drops a role it did not create';
  return options.dropExtraRoles ? undefined : 'left alone: `reconcile --drop-extra-roles` drops it';
}

/**
 * What the rules see of a difference that has no statement: for an object on one side
 * only, a statement on its schema; for a role of the target's own, one naming it.
 */
function objectProbe(change: Change): Statement {
  const schemas = change.type === 'object missing' || change.type === 'object extra' ? schemasOf(change.object) : [];
  const roles = change.type === 'role collision' || change.type === 'role extra' ? [change.name] : [];
  return { kind: 'GRANT', sql: '', display: '', roles, grantees: roles, schemas };
}

function notes(environment: EnvironmentConfig, settings: Settings, source: Catalog, target: Catalog, plan: Statement[]): string[] {
  const out: string[] = [];
  if (settings.syncPasswords && !(source.verifiersRead && target.verifiersRead)) {
    const why = [
      !source.verifiersRead && `on the source, ${source.verifiersUnread}`,
      !target.verifiersRead && `on ${environment.name}, ${target.verifiersUnread}`,
    ]
      .filter(Boolean)
      .join('; ');
    out.push(`password verifiers are not compared: ${why}`);
  }
  const privileged = plan.filter((s) => s.privileged).length;
  if (privileged > 0 && !target.superuser) {
    out.push(
      `${privileged} statement(s) set SUPERUSER, REPLICATION or BYPASSRLS, which only a superuser may do; ` +
        `${target.user} is not one on ${environment.name}, so they are skipped there`,
    );
  }
  return out;
}
