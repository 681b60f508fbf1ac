import { TARGET_DATABASE } from './target-statements.js';
import { MAX_VERIFIER_BYTES, quoteIdent, quoteLiteral, quoteQualified, settingValueSql, typeListSchemas } from '../sql/quote.js';
import { shown, type Statement, type StatementKind } from '../sql/statement.js';
import { MASKED_PASSWORD } from '../redact.js';
import { SETTING_NOT_TAKEN, SQLSTATE } from '../errors.js';
import { PUBLIC, type GrantState, type RoleState } from '../catalog/catalog.js';
import { SYSTEM_SCHEMAS } from '../catalog/catalog-queries.js';
import { schemasOf, type Change, type ObjectRef, type PrivilegesChange, type PrivilegeTarget } from '../catalog/compare.js';

/**
 * Where a statement goes in the plan. Roles exist before anything is granted to them or
 * owned by them; owners change before privileges (a new owner takes over the old one's);
 * revokes come before grants (revoking a table privilege also revokes it on every column),
 * but for the late ones (compare.ts): a grant option taken from a grantee that keeps it
 * through another grantor's grant goes after that grant, and a column's grant that such a
 * revoke on its table would take back after the revoke; a revoke PostgreSQL would refuse
 * where those go (an option left in a cycle, compare.ts) after all of them, with CASCADE
 * where it must, and then what the cascade took that the source has, granted again;
 * roles are dropped last, once they hold nothing here.
 */
enum Phase {
  CreateRole,
  AlterRole,
  RevokeMembership,
  GrantMembership,
  RoleSetting,
  RevokeOnDatabase,
  GrantOnDatabase,
  LateRevokeOnDatabase,
  Owner,
  Revoke,
  Grant,
  LateRevoke,
  LateGrant,
  LastRevoke,
  Regrant,
  RevokeDefault,
  GrantDefault,
  DropRole,
}

/** A statement of the plan, and where it goes in it: by phase, then by rank (lowest first). */
export interface Planned {
  phase: Phase;
  rank?: number;
  statement: Statement;
  /** One of the statements of an object's chain (compare.ts), which run all together or not at all. */
  chain?: { group: string; statements: number };
}

export interface PlanContext {
  /** server_version_num of the target: membership options are PostgreSQL 16 syntax. */
  targetVersionNum: number;
  /** The source's roles' oids by name: a role created on the target stands for the source's (Statement.sourceOid). */
  sourceOids?: ReadonlyMap<string, number>;
}

/** The statements that make one difference go away on the target (none for objects: never created). */
export function planChange(change: Change, context: PlanContext): Planned[] {
  switch (change.type) {
    case 'role missing': {
      const name = change.role.name;
      return [
        // Created meanwhile by someone else is as good: the attributes follow.
        role(Phase.CreateRole, 'CREATE ROLE', name, `CREATE ROLE ${quoteIdent(name)}`, {
          ignoreCodes: [SQLSTATE.duplicateObject],
          ...(context.sourceOids?.has(name) && { sourceOids: { [name]: context.sourceOids.get(name) as number } }),
        }),
        ...attributeStatements(Phase.CreateRole, newRole(name), change.role),
      ];
    }
    case 'role attributes':
      return attributeStatements(Phase.AlterRole, change.from, change.to);
    case 'role extra':
      // A role of the target's own is never dropped.
      return change.managed ? [role(Phase.DropRole, 'DROP ROLE', change.name, `DROP ROLE ${quoteIdent(change.name)}`)] : [];
    case 'role collision':
      return [];
    case 'membership':
      return membershipStatements(change, context);
    case 'setting':
      return [settingStatement(change)];
    case 'owner':
      return [
        {
          phase: Phase.Owner,
          statement: {
            kind: 'ALTER OWNER',
            ...same(`ALTER ${alterKeyword(change.object)} ${objectName(change.object)} OWNER TO ${quoteIdent(change.to)}`),
            roles: [change.to],
            grantees: [],
            schemas: schemasOf(change.object),
            // Only a superuser may change an event trigger's owner: a sync user that is none
            // (a managed service's) leaves it as it is rather than fail the plan.
            ...(change.object.kind === 'event trigger' && { ignoreCodes: [SQLSTATE.insufficientPrivilege] }),
          },
        },
      ];
    case 'privileges':
      return [...privilegeStatements(change), ...(change.regrants ?? []).flatMap((regrant) => privilegeStatements(regrant, Phase.Regrant))].map(
        (p) => (change.chain && (p.phase === Phase.LastRevoke || p.phase === Phase.Regrant) ? { ...p, chain: change.chain } : p),
      );
    case 'object missing':
    case 'object extra':
    case 'shared object missing':
      return [];
  }
}

function same(sql: string): { sql: string; display: string } {
  return { sql, display: sql };
}

function role(phase: Phase, kind: StatementKind, name: string, sql: string, extra: Partial<Statement> = {}): Planned {
  return { phase, statement: { kind, ...same(sql), roles: [name], grantees: [name], schemas: [], ...extra } };
}

/** What CREATE ROLE gives a role: what a new role's attributes are compared with. */
function newRole(name: string): RoleState {
  return {
    name,
    superuser: false,
    inherit: true,
    createrole: false,
    createdb: false,
    login: false,
    replication: false,
    bypassrls: false,
    connlimit: -1,
    validUntil: null,
    comment: null,
    password: null,
  };
}

/**
 * ALTER ROLE for what differs, as permsync.role_attribute_statements() writes it (a test
 * in test/roles.test.ts holds the two to the same DDL):
 * SUPERUSER, REPLICATION and BYPASSRLS apart (only a superuser may set them), the rest in
 * one statement, then the password verifier (masked in `display`), then the comment.
 */
function attributeStatements(phase: Phase, from: RoleState, to: RoleState): Planned[] {
  const name = quoteIdent(to.name);
  const out: Planned[] = [];
  const flag = (on: boolean, word: string) => `${on ? '' : 'NO'}${word}`;
  for (const [attr, word] of [
    ['superuser', 'SUPERUSER'],
    ['replication', 'REPLICATION'],
    ['bypassrls', 'BYPASSRLS'],
  ] as const) {
    if (from[attr] !== to[attr]) {
      const attribute = flag(to[attr], word);
      out.push(role(phase, 'ALTER ROLE', to.name, `ALTER ROLE ${name} WITH ${attribute}`, { privileged: true, attribute }));
    }
  }
  const clauses: string[] = [];
  for (const [attr, word] of [
    ['login', 'LOGIN'],
    ['inherit', 'INHERIT'],
    ['createrole', 'CREATEROLE'],
    ['createdb', 'CREATEDB'],
  ] as const) {
    if (from[attr] !== to[attr]) clauses.push(flag(to[attr], word));
  }
  if (from.connlimit !== to.connlimit) clauses.push(`CONNECTION LIMIT ${to.connlimit}`);
  // No expiry cannot be set back to NULL; 'infinity' means the same.
  if ((from.validUntil ?? 'infinity') !== (to.validUntil ?? 'infinity')) clauses.push(`VALID UNTIL ${quoteLiteral(to.validUntil ?? 'infinity')}`);
  if (clauses.length > 0) out.push(role(phase, 'ALTER ROLE', to.name, `ALTER ROLE ${name} WITH ${clauses.join(' ')}`));
  if (to.passwordWithheld !== undefined && from.password !== undefined && from.password !== null) {
    // Not carried: the target's goes, rather than let a password the source no longer has go on working there.
    out.push(
      role(
        phase,
        'ALTER ROLE',
        to.name,
        `ALTER ROLE ${name} WITH PASSWORD NULL /* permsync: verifier withheld: ${to.passwordWithheld} bytes, over the limit of ${MAX_VERIFIER_BYTES} */`,
      ),
    );
  } else if (to.password !== undefined && from.password !== undefined && from.password !== to.password) {
    const masked = to.password === null ? 'NULL' : MASKED_PASSWORD;
    out.push(
      role(phase, 'ALTER ROLE', to.name, `ALTER ROLE ${name} WITH PASSWORD ${to.password === null ? 'NULL' : quoteLiteral(to.password)}`, {
        display: `ALTER ROLE ${name} WITH PASSWORD ${masked}`,
      }),
    );
  }
  if (from.comment !== to.comment) {
    out.push(role(phase, 'COMMENT ON ROLE', to.name, `COMMENT ON ROLE ${name} IS ${to.comment === null ? 'NULL' : quoteLiteral(to.comment)}`));
  }
  return out;
}

function membershipStatements(change: Extract<Change, { type: 'membership' }>, context: PlanContext): Planned[] {
  const granted = quoteIdent(change.role);
  const member = quoteIdent(change.member);
  // The grantor's grant, where it is not the bootstrap superuser's (any superuser's on 16+).
  const by = change.grantor === null ? '' : ` GRANTED BY ${quoteIdent(change.grantor)}`;
  const statement = (phase: Phase, kind: StatementKind, sql: string): Planned => ({
    phase,
    statement: {
      kind,
      ...same(`${sql}${by}`),
      roles: [change.member, change.role, ...(change.grantor === null ? [] : [change.grantor])],
      grantees: [change.member],
      schemas: [],
      granted: change.role,
      ...(change.grantor !== null && { grantor: change.grantor }),
    },
  });
  const { from, to } = change;
  if (!to) return [statement(Phase.RevokeMembership, 'REVOKE ROLE', `REVOKE ${granted} FROM ${member}`)];
  if (context.targetVersionNum >= 160000) {
    // GRANT sets the options of an existing membership too (PostgreSQL 16 and later).
    const options = [`ADMIN ${upper(to.admin)}`];
    if (to.inherit !== null) options.push(`INHERIT ${upper(to.inherit)}`);
    if (to.set !== null) options.push(`SET ${upper(to.set)}`);
    return [statement(Phase.GrantMembership, 'GRANT ROLE', `GRANT ${granted} TO ${member} WITH ${options.join(', ')}`)];
  }
  if (from?.admin && !to.admin) {
    return [statement(Phase.RevokeMembership, 'REVOKE ROLE', `REVOKE ADMIN OPTION FOR ${granted} FROM ${member}`)];
  }
  return [statement(Phase.GrantMembership, 'GRANT ROLE', `GRANT ${granted} TO ${member}${to.admin ? ' WITH ADMIN OPTION' : ''}`)];
}

function upper(value: boolean): string {
  return value ? 'TRUE' : 'FALSE';
}

function settingStatement(change: Extract<Change, { type: 'setting' }>): Planned {
  const scope = change.here ? ` IN DATABASE ${TARGET_DATABASE}` : change.database === null ? '' : ` IN DATABASE ${quoteIdent(change.database)}`;
  const head = `ALTER ROLE ${quoteIdent(change.role)}${scope}`;
  const value = change.to === null ? null : settingValueSql(change.key, change.to);
  return role(
    Phase.RoleSetting,
    'ALTER ROLE SET',
    change.role,
    value === null ? `${head} RESET ${quoteIdent(change.key)}` : `${head} SET ${quoteIdent(change.key)} TO ${value}`,
    { onTargetDatabase: change.here, ignoreCodes: [...SETTING_NOT_TAKEN] },
  );
}

const ALTER_KEYWORDS: Record<ObjectRef['kind'], string> = {
  schema: 'SCHEMA',
  table: 'TABLE',
  view: 'VIEW',
  'materialized view': 'MATERIALIZED VIEW',
  sequence: 'SEQUENCE',
  'foreign table': 'FOREIGN TABLE',
  function: 'FUNCTION',
  procedure: 'PROCEDURE',
  aggregate: 'AGGREGATE',
  type: 'TYPE',
  domain: 'DOMAIN',
  column: 'TABLE',
  language: 'LANGUAGE',
  'foreign-data wrapper': 'FOREIGN DATA WRAPPER',
  'foreign server': 'SERVER',
  collation: 'COLLATION',
  conversion: 'CONVERSION',
  operator: 'OPERATOR',
  'operator class': 'OPERATOR CLASS',
  'operator family': 'OPERATOR FAMILY',
  'statistics object': 'STATISTICS',
  'text search configuration': 'TEXT SEARCH CONFIGURATION',
  'text search dictionary': 'TEXT SEARCH DICTIONARY',
  publication: 'PUBLICATION',
  subscription: 'SUBSCRIPTION',
  'event trigger': 'EVENT TRIGGER',
};

function alterKeyword(object: ObjectRef): string {
  return ALTER_KEYWORDS[object.kind];
}

/**
 * The object's name as SQL: routines and operators with their argument types (PostgreSQL's
 * own rendering), an operator class or family with its access method.
 */
export function objectName(object: ObjectRef): string {
  if (object.schema === null) return quoteIdent(object.name as string);
  if (object.kind === 'schema') return quoteIdent(object.schema);
  // An operator's name is its symbol, which is no identifier and is never quoted.
  if (object.kind === 'operator') return `${quoteIdent(object.schema)}.${object.name as string} (${object.args ?? ''})`;
  const name = quoteQualified(object.schema, object.name as string);
  switch (object.kind) {
    case 'operator class':
    case 'operator family':
      return `${name} USING ${quoteIdent(object.args as string)}`;
    case 'function':
    case 'procedure':
      return `${name}(${object.args ?? ''})`;
    case 'aggregate':
      return `${name}(${object.args || '*'})`;
    default:
      return name;
  }
}

/** The ON clause of GRANT and REVOKE. Aggregates are granted on as functions. */
function onClause(object: ObjectRef): string {
  switch (object.kind) {
    case 'schema':
      return `SCHEMA ${objectName(object)}`;
    case 'sequence':
      return `SEQUENCE ${objectName(object)}`;
    case 'function':
      return `FUNCTION ${objectName(object)}`;
    case 'aggregate':
      return `FUNCTION ${quoteQualified(object.schema as string, object.name as string)}(${object.args ?? ''})`;
    case 'procedure':
      return `PROCEDURE ${objectName(object)}`;
    case 'type':
      return `TYPE ${objectName(object)}`;
    case 'domain':
      return `DOMAIN ${objectName(object)}`;
    case 'language':
      return `LANGUAGE ${objectName(object)}`;
    case 'foreign-data wrapper':
      return `FOREIGN DATA WRAPPER ${objectName(object)}`;
    case 'foreign server':
      return `FOREIGN SERVER ${objectName(object)}`;
    default:
      return `TABLE ${objectName(object)}`;
  }
}

const DEFAULT_OBJECTS: Record<string, string> = { r: 'TABLES', S: 'SEQUENCES', f: 'FUNCTIONS', T: 'TYPES', n: 'SCHEMAS', L: 'LARGE OBJECTS' };

export function defaultObjects(objectType: string): string {
  return DEFAULT_OBJECTS[objectType] ?? objectType;
}

/**
 * GRANT and REVOKE for one grantee and grantor on one target, one statement per kind of
 * change: revoked, grant option taken away, granted, granted with grant option (each
 * early or late, see Phase). A grant through a grant option is made, and taken back, by
 * its grantor (SET LOCAL ROLE, undone after it), so that the target records the grantor
 * the source does: grants go in the order of the source's chain, grantors' first, and
 * revokes in the reverse order of the target's, the grants that depend on others first.
 * A revoke made last goes alone, at its place among those (compare.ts); `phase` puts a
 * chain's grants made again in theirs.
 */
function privilegeStatements({ target, grantee, grantor, depth, changes }: PrivilegesChange, phase?: Phase): Planned[] {
  const who = grantee === PUBLIC ? 'PUBLIC' : quoteIdent(grantee);
  const column = target.on === 'object' && target.object.kind === 'column' ? ` (${quoteIdent(target.object.args as string)})` : '';
  const list = (privileges: string[]) => privileges.map((p) => `${p}${column}`).join(', ');
  const grantees = grantee === PUBLIC ? [] : [grantee];
  const planned = (verb: 'GRANT' | 'REVOKE', action: (on: string) => string, at: { phase: Phase; rank: number }): Planned => {
    const statement = privilegeStatement(target, verb, action, grantees);
    return { ...at, statement: grantor === null ? statement : asGrantor(statement, grantor, target) };
  };
  const last = changes.flatMap(({ privilege, from, to, last: at }) => {
    if (!at) return [];
    const option = from === 'grantable' && to === 'granted' ? 'GRANT OPTION FOR ' : '';
    const action = (on: string) => `REVOKE ${option}${list([privilege])} ON ${on} FROM ${who}${at.cascade ? ' CASCADE' : ''}`;
    return [planned('REVOKE', action, { phase: Phase.LastRevoke, rank: at.order })];
  });
  const steps: ['GRANT' | 'REVOKE', boolean, string[], string][] = [false, true].flatMap((late) => {
    const pick = (test: (from: GrantState, to: GrantState) => boolean) =>
      changes.filter((c) => !c.last && !c.taken && (c.late === true) === late && test(c.from, c.to)).map((c) => c.privilege);
    return [
      ['REVOKE', late, pick((from, to) => to === 'absent' && from !== 'absent'), ''],
      ['REVOKE', late, pick((from, to) => from === 'grantable' && to === 'granted'), 'GRANT OPTION FOR '],
      ['GRANT', late, pick((from, to) => from === 'absent' && to === 'granted'), ''],
      ['GRANT', late, pick((from, to) => from !== 'grantable' && to === 'grantable'), ' WITH GRANT OPTION'],
    ] as const;
  });
  return [
    ...steps
      .filter(([, , privileges]) => privileges.length > 0)
      .map(([verb, late, privileges, option]) => {
        const action = (on: string) =>
          verb === 'GRANT' ? `GRANT ${list(privileges)} ON ${on} TO ${who}${option}` : `REVOKE ${option}${list(privileges)} ON ${on} FROM ${who}`;
        return planned(verb, action, { phase: phase ?? privilegePhase(target, verb, late), rank: verb === 'GRANT' ? depth.source : -depth.target });
      }),
    ...last,
  ];
}

function privilegePhase(target: PrivilegeTarget, verb: 'GRANT' | 'REVOKE', late: boolean): Phase {
  if (target.on === 'default') return verb === 'GRANT' ? Phase.GrantDefault : Phase.RevokeDefault;
  if (target.on === 'database' || target.on === 'shared') {
    return verb === 'GRANT' ? Phase.GrantOnDatabase : late ? Phase.LateRevokeOnDatabase : Phase.RevokeOnDatabase;
  }
  if (verb === 'GRANT') return late ? Phase.LateGrant : Phase.Grant;
  return late ? Phase.LateRevoke : Phase.Revoke;
}

const GRANTOR_END = '; RESET ROLE';

function asGrantor(s: Statement, grantor: string, target: PrivilegeTarget): Statement {
  const as = (sql: string) => `SET LOCAL ROLE ${quoteIdent(grantor)}; ${sql}${GRANTOR_END}`;
  const lookups = lookedUp(target);
  return { ...s, sql: as(s.sql), display: as(shown(s)), roles: [...s.roles, grantor], runAs: grantor, ...(lookups.length > 0 && { lookups }) };
}

/**
 * The schemas a statement on `target` looks names up in (which takes USAGE on them): an
 * object's schema but a schema's own, and a routine's argument types' schemas (named as
 * format_type names them with search_path pg_catalog, qualified but for pg_catalog's).
 */
function lookedUp(target: PrivilegeTarget): string[] {
  if (target.on !== 'object' || target.object.kind === 'schema' || target.object.schema === null) return [];
  const { kind, schema, args } = target.object;
  const routine = kind === 'function' || kind === 'procedure' || kind === 'aggregate';
  return [...new Set([schema, ...(routine && args ? typeListSchemas(args) : [])])];
}

/** A REVOKE that takes the grants depending on it too (what DROP OWNED does). */
export function withCascade<T extends Statement>(s: T): T {
  const cascade = (sql: string) => (sql.endsWith(GRANTOR_END) ? `${sql.slice(0, -GRANTOR_END.length)} CASCADE${GRANTOR_END}` : `${sql} CASCADE`);
  return s.kind === 'REVOKE' || s.kind === 'REVOKE ON DATABASE' ? { ...s, sql: cascade(s.sql), display: cascade(shown(s)) } : s;
}

function privilegeStatement(target: PrivilegeTarget, verb: 'GRANT' | 'REVOKE', action: (on: string) => string, grantees: string[]): Statement {
  switch (target.on) {
    case 'database':
      return {
        kind: verb === 'GRANT' ? 'GRANT ON DATABASE' : 'REVOKE ON DATABASE',
        ...same(action(`DATABASE ${TARGET_DATABASE}`)),
        roles: grantees,
        grantees,
        schemas: [],
        onTargetDatabase: true,
      };
    case 'shared':
      return {
        kind: target.kind === 'database' ? (verb === 'GRANT' ? 'GRANT ON DATABASE' : 'REVOKE ON DATABASE') : verb,
        ...same(action(`${target.kind.toUpperCase()} ${quoteIdent(target.name)}`)),
        roles: grantees,
        grantees,
        schemas: [],
      };
    case 'object':
      return {
        kind: verb,
        ...same(action(onClause(target.object))),
        roles: grantees,
        grantees,
        schemas: schemasOf(target.object),
        // A system object is the bootstrap superuser's: a sync user that is no superuser (a
        // managed service's) may not change it, and a server of another major may lack it
        // (a side that does not list one is taken to have it as it was made): either leaves
        // it as it is rather than fail the plan.
        ...(SYSTEM_SCHEMAS.has(target.object.schema ?? '') && {
          ignoreCodes: [SQLSTATE.insufficientPrivilege, SQLSTATE.undefinedFunction, SQLSTATE.undefinedTable],
        }),
      };
    case 'default': {
      const scope = target.schema === null ? '' : ` IN SCHEMA ${quoteIdent(target.schema)}`;
      const sql = `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(target.role)}${scope} ${action(defaultObjects(target.objectType))}`;
      return {
        kind: 'ALTER DEFAULT PRIVILEGES',
        ...same(sql),
        roles: [target.role, ...grantees],
        grantees,
        schemas: target.schema === null ? [] : [target.schema],
      };
    }
  }
}

/**
 * The plan: every statement in phase and rank order, each difference's own order kept
 * within them; an object's chain only where all its statements are there (a revoke with
 * CASCADE never goes without the grants it takes, made again).
 */
export function orderPlan(planned: Planned[]): Statement[] {
  const counts = new Map<string, number>();
  for (const p of planned) if (p.chain) counts.set(p.chain.group, (counts.get(p.chain.group) ?? 0) + 1);
  return planned
    .filter((p) => !p.chain || counts.get(p.chain.group) === p.chain.statements)
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.phase - b.p.phase || (a.p.rank ?? 0) - (b.p.rank ?? 0) || a.i - b.i)
    .map(({ p }) => p.statement);
}
