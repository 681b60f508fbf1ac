import { MAX_VERIFIER_BYTES, quoteIdent } from '../sql/quote.js';
import { shown } from '../sql/statement.js';
import { PUBLIC, type GrantState, type RoleState } from '../catalog/catalog.js';
import type { Change, ObjectRef, PrivilegeTarget } from '../catalog/compare.js';
import { defaultObjects, objectName } from '../plan/changes.js';
import type { DriftReport } from '../plan/report.js';

/** A difference as a person reads it: what, and how it differs (never a password verifier). */
export interface DescribedDifference {
  category: string;
  subject: string;
  detail: string;
  /** The statements that converge it, as printed: verifiers masked. */
  sql: string[];
  /** Why the configuration keeps it (or part of it) from the environment, when it does. */
  excluded?: string;
}

/** What the drift command prints for one environment. */
export interface EnvironmentResult {
  environment: string;
  report?: DriftReport;
  /** Hints from the source's history (batches that could not be replayed). */
  hints: string[];
  /** Why the environment could not be compared. */
  error?: string;
}

export function describeReport(report: DriftReport): DescribedDifference[] {
  return report.differences.map((d) => {
    const described = describe(d.change, report.environment);
    const excluded =
      d.excluded === undefined
        ? ''
        : `; ${d.statements.length > 0 ? 'partly ' : ''}excluded by configuration (permsync does not carry it there): ${d.excluded}`;
    return {
      ...described,
      detail: `${described.detail}${d.held ? `; ${d.held}` : ''}${excluded}`,
      sql: d.held ? [] : d.statements.map(({ statement }) => `${shown(statement)};`),
      ...(d.excluded !== undefined && { excluded: d.excluded }),
    };
  });
}

function describe(change: Change, env: string): Omit<DescribedDifference, 'sql'> {
  switch (change.type) {
    case 'role missing':
      return { category: 'role', subject: `role ${quoteIdent(change.role.name)}`, detail: `missing on ${env}` };
    case 'role attributes':
      return { category: 'role', subject: `role ${quoteIdent(change.to.name)}`, detail: attributeDifferences(change.from, change.to, env) };
    case 'role extra':
      return {
        category: 'role',
        subject: `role ${quoteIdent(change.name)}`,
        detail: change.managed ? `exists only on ${env}` : `exists only on ${env}, a role of its own (permsync did not create it there)`,
      };
    case 'role collision':
      return {
        category: 'role conflict',
        subject: `role ${quoteIdent(change.name)}`,
        detail: `${env} has a role of its own with this name (permsync did not create it there): a target-only role, never changed by permsync`,
      };
    case 'membership': {
      const subject =
        `membership of ${quoteIdent(change.member)} in ${quoteIdent(change.role)}` +
        (change.grantor === null ? '' : ` granted by ${quoteIdent(change.grantor)}`);
      if (!change.from) return { category: 'membership', subject, detail: `missing on ${env}` };
      if (!change.to) return { category: 'membership', subject, detail: `exists only on ${env}` };
      const options = (['admin', 'inherit', 'set'] as const)
        .filter((o) => change.from?.[o] !== null && change.to?.[o] !== null && change.from?.[o] !== change.to?.[o])
        .map((o) => `${o} option ${change.to?.[o]} on the source, ${change.from?.[o]} on ${env}`);
      return { category: 'membership', subject, detail: options.join('; ') };
    }
    case 'setting': {
      const scope = change.here ? ' in this database' : change.database === null ? '' : ` in database ${quoteIdent(change.database)}`;
      const subject = `setting ${change.key} of role ${quoteIdent(change.role)}${scope}`;
      const detail =
        change.from === null
          ? `missing on ${env} (source: ${change.to})`
          : change.to === null
            ? `exists only on ${env} (${change.from})`
            : `${change.to} on the source, ${change.from} on ${env}`;
      return { category: 'setting', subject, detail };
    }
    case 'owner':
      return {
        category: 'owner',
        subject: describeObject(change.object),
        detail: `owned by ${quoteIdent(change.to)} on the source, by ${quoteIdent(change.from)} on ${env}`,
      };
    case 'privileges':
      return {
        category: change.target.on === 'default' ? 'default privileges' : 'privileges',
        subject:
          `${describeTarget(change.target)}, ${change.grantee === PUBLIC ? 'PUBLIC' : quoteIdent(change.grantee)}` +
          (change.grantor === null ? '' : ` granted by ${quoteIdent(change.grantor)}`),
        detail: privilegeDifferences(change.changes, env),
      };
    case 'object missing':
      return { category: 'object', subject: describeObject(change.object), detail: `missing on ${env} (permsync never creates objects)` };
    case 'object extra':
      return { category: 'object', subject: describeObject(change.object), detail: `exists only on ${env}` };
    case 'shared object missing':
      return {
        category: 'object',
        subject: `${change.kind} ${quoteIdent(change.name)}`,
        detail:
          `missing on ${env}, so its privileges are not held there` +
          (change.kind === 'database' ? ' (environments[].databases maps a database to one of another name)' : ''),
      };
  }
}

function describeObject(object: ObjectRef): string {
  if (object.kind === 'column') return `column ${quoteIdent(object.args as string)} of ${objectName({ ...object, kind: 'table' })}`;
  return `${object.kind} ${objectName(object)}`;
}

function describeTarget(target: PrivilegeTarget): string {
  switch (target.on) {
    case 'database':
      return 'database';
    case 'shared':
      return `${target.kind} ${quoteIdent(target.name)}`;
    case 'object':
      return describeObject(target.object);
    case 'default':
      return (
        `default privileges of ${quoteIdent(target.role)}${target.schema === null ? '' : ` in schema ${quoteIdent(target.schema)}`}` +
        ` on ${defaultObjects(target.objectType).toLowerCase()}`
      );
  }
}

function attributeDifferences(target: RoleState, source: RoleState, env: string): string {
  const out: string[] = [];
  for (const attr of ['superuser', 'inherit', 'createrole', 'createdb', 'login', 'replication', 'bypassrls', 'connlimit'] as const) {
    if (target[attr] !== source[attr]) out.push(`${attr} ${source[attr]} on the source, ${target[attr]} on ${env}`);
  }
  if ((target.validUntil ?? 'infinity') !== (source.validUntil ?? 'infinity')) {
    out.push(`valid until ${source.validUntil ?? 'infinity'} on the source, ${target.validUntil ?? 'infinity'} on ${env}`);
  }
  if (target.comment !== source.comment) out.push('comment differs');
  if (target.password !== undefined && source.password !== undefined && target.password !== source.password) {
    out.push('password differs');
  }
  if (source.passwordWithheld !== undefined && target.password !== undefined) {
    out.push(`password verifier of ${source.passwordWithheld} bytes on the source, over the ${MAX_VERIFIER_BYTES} bytes permsync carries`);
  }
  return out.join('; ');
}

const STATE_WORDS: Record<GrantState, string> = { absent: 'not held', granted: 'held', grantable: 'held with grant option' };

function privilegeDifferences(changes: { privilege: string; from: GrantState; to: GrantState }[], env: string): string {
  return changes.map((c) => `${c.privilege} ${STATE_WORDS[c.to]} on the source, ${STATE_WORDS[c.from]} on ${env}`).join('; ');
}

/** The text output for one environment. */
export function formatText(result: EnvironmentResult): string {
  const { environment, report } = result;
  if (result.error !== undefined) return `${environment}: ERROR ${result.error}\n`;
  if (!report) return '';
  const lines: string[] = [];
  const count = report.differences.length;
  // Verifiers settings.sync_passwords asks for and that could not be compared are no match.
  const aside = report.verifiersCompared === false ? ', password verifiers aside (not compared: see the note)' : '';
  // A difference the configuration keeps from the environment is one all the same.
  const excluded =
    report.excludedByConfiguration === 0
      ? ''
      : report.excludedByConfiguration === count
        ? ', all of them excluded by configuration'
        : `, ${report.excludedByConfiguration} of them excluded by configuration`;
  lines.push(
    count === 0 ? `${environment}: matches the source${aside}` : `${environment}: ${count} difference(s) from the source${excluded}${aside}`,
  );
  for (const d of describeReport(report)) lines.push(`  ${d.subject}: ${d.detail}`);
  for (const note of report.notes) lines.push(`  note: ${note}`);
  for (const hint of result.hints) lines.push(`  hint: ${hint}`);
  if (report.plan.length > 0) {
    lines.push(`  -- SQL that converges ${environment} (${report.plan.length} statement(s)); {"database"} is its current database:`);
    for (const s of report.plan) lines.push(`  ${shown(s)};`);
  }
  return `${lines.join('\n')}\n`;
}

/** The JSON output for one environment. */
export function formatJson(result: EnvironmentResult) {
  const { report } = result;
  return {
    environment: result.environment,
    ...(result.error !== undefined && { error: result.error }),
    ...(report && {
      matches: report.differences.length === 0,
      differences: report.differences.length,
      excluded_by_configuration: report.excludedByConfiguration,
      items: describeReport(report),
      plan: report.plan.map((s) => `${shown(s)};`),
      notes: report.notes,
      ...(report.verifiersCompared !== undefined && { verifiers_compared: report.verifiersCompared }),
    }),
    hints: result.hints,
  };
}
