import { parseSync, scanSync } from 'libpg-query';
import { keepGrantees } from '../capture/statements.js';
import { identifiers, quoteIdent } from '../sql/quote.js';
import {
  DEFAULT_PRIVILEGE_TYPES_SINCE,
  hasPredefinedRole,
  HOLDS_EVERYTHING_SINCE,
  knowsDefaultPrivilegeType,
  knowsPrivilege,
  MEMBERSHIP_OPTIONS_SINCE,
  PARAMETER_PRIVILEGES_SINCE,
  postgres,
  PREDEFINED_ROLES_SINCE,
  PRIVILEGES_SINCE,
} from '../pg-versions.js';
import { TARGET_DATABASE } from './target-statements.js';
import { shown, type Statement } from '../sql/statement.js';

/** A statement as a server of some version takes it, and what the execution log says of the change. */
export interface ForServer {
  statements: Statement[];
  notes: string[];
}

/** TARGET_DATABASE as a name the parser takes. */
const DATABASE_STAND_IN = '"permsync: the target\'s database"';

/** Words without which no statement needs a change for an older server: most are not parsed at all. */
const MAY_NEED_CHANGE = /maintain|large|inherit|\bset\b|pg_|parameter/i;

/**
 * The statement in a form a server of `versionNum` takes. The source may run a newer
 * major than a target: the role watcher writes membership options (16) and memberships
 * in predefined roles the target may lack (pg_maintain, 17); a DBA grants MAINTAIN (17)
 * or sets default privileges on large objects (18). What such a target cannot hold is
 * left out with a note saying so, never run to fail (which would hold every later change
 * behind it). Nothing is widened: a membership without SET is not granted where every
 * membership allows SET ROLE. Statements that need no change come back as the same object.
 */
export function forServer(statement: Statement, versionNum: number): ForServer {
  const unchanged: ForServer = { statements: [statement], notes: [] };
  const display = shown(statement);
  if (statement.otherGrantors && versionNum < MEMBERSHIP_OPTIONS_SINCE) {
    return skipped(
      display,
      `other grantors still grant this membership on the source, and on ${postgres(versionNum)} a membership has one grantor: it stays`,
    );
  }
  if (versionNum >= HOLDS_EVERYTHING_SINCE || !MAY_NEED_CHANGE.test(statement.sql)) return unchanged;
  // The target's database, a placeholder until the statement runs, is a name to the parser.
  const parsable = statement.onTargetDatabase ? statement.sql.replace(TARGET_DATABASE, DATABASE_STAND_IN) : statement.sql;
  let node: Record<string, unknown> | undefined;
  try {
    const stmts = parseSync(parsable).stmts ?? [];
    // A privilege on a parameter, granted as its grantor (SET LOCAL ROLE ...; GRANT ...; RESET ROLE).
    const onParameter = stmts.some((s) => (s.stmt as { GrantStmt?: GrantStmt }).GrantStmt?.objtype === 'OBJECT_PARAMETER_ACL');
    if (onParameter && versionNum < PARAMETER_PRIVILEGES_SINCE) {
      return skipped(display, `privileges on parameters are ${postgres(PARAMETER_PRIVILEGES_SINCE)}'s, and this server runs ${postgres(versionNum)}`);
    }
    if (stmts.length === 1) node = stmts[0]?.stmt;
  } catch {
    // What does not parse here needs no change.
  }
  if (!node) return unchanged;
  if ('GrantRoleStmt' in node) return membership(statement, node.GrantRoleStmt as GrantRoleStmt, display, versionNum) ?? unchanged;
  const defaults = node.AlterDefaultPrivilegesStmt as { action?: GrantStmt } | undefined;
  const grant = (node.GrantStmt as GrantStmt | undefined) ?? defaults?.action;
  // A role the server lacks named anywhere but in a grantee list (a new owner, FOR ROLE): the statement cannot run there.
  const besideGrantees = !grant ? node : defaults ? { ...defaults, action: { ...grant, grantees: [] } } : { ...grant, grantees: [] };
  const younger = youngerRoles(besideGrantees, versionNum);
  if (younger.length > 0) return skipped(display, lacking(younger, versionNum));
  if (!grant) return unchanged;
  if (defaults && grant.objtype === 'OBJECT_LARGEOBJECT' && !knowsDefaultPrivilegeType(versionNum, 'L')) {
    const since = DEFAULT_PRIVILEGE_TYPES_SINCE.get('L') as number;
    return skipped(display, `default privileges on large objects are ${postgres(since)}'s, and this server runs ${postgres(versionNum)}`);
  }
  return grantees(statement, grant, display, versionNum) ?? privileges(statement, grant, display, versionNum) ?? unchanged;
}

interface GrantStmt {
  objtype?: string;
  privileges?: { AccessPriv?: { priv_name?: string } }[];
  grantees?: { RoleSpec?: { rolename?: string } }[];
}

/** The predefined roles younger than the server that a parse tree names (in RoleSpecs), once each. */
function youngerRoles(tree: unknown, versionNum: number): string[] {
  const found = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (typeof value === 'object' && value !== null) {
      const name = (value as { roletype?: unknown; rolename?: unknown }).rolename;
      if (typeof name === 'string' && 'roletype' in value && !hasPredefinedRole(versionNum, name)) found.add(name);
      Object.values(value).forEach(walk);
    }
  };
  walk(tree);
  return [...found];
}

function lacking(roles: string[], versionNum: number): string {
  return `${roles.map((r) => `${r} is ${postgres(PREDEFINED_ROLES_SINCE.get(r) as number)}'s`).join(', ')}, and this server runs ${postgres(versionNum)}`;
}

/**
 * GRANT, REVOKE or ALTER DEFAULT PRIVILEGES to predefined roles younger than the server:
 * those grantees are cut from the list (the statement is skipped when none is left), and
 * what is left goes on to privileges(). Undefined when it names none.
 */
function grantees(statement: Statement, grant: GrantStmt, display: string, versionNum: number): ForServer | undefined {
  const younger = youngerRoles(grant.grantees, versionNum);
  if (younger.length === 0) return undefined;
  const reason = lacking(younger, versionNum);
  const parsable = statement.onTargetDatabase ? statement.sql.replace(TARGET_DATABASE, DATABASE_STAND_IN) : statement.sql;
  const sql = keepGrantees(parsable, (grantee) => grantee === null || !younger.includes(grantee))?.replace(DATABASE_STAND_IN, TARGET_DATABASE);
  if (sql === undefined) return skipped(display, reason);
  const cut = { ...statement, sql, display: sql };
  const note = `${younger.join(', ')} ${younger.length === 1 ? 'is' : 'are'} left out of the grantees of "${display}": ${reason}`;
  const rest = privileges(cut, grant, sql, versionNum) ?? { statements: [cut], notes: [] };
  return { statements: rest.statements, notes: [note, ...rest.notes] };
}

interface GrantRoleStmt {
  is_grant?: boolean;
  granted_roles?: { AccessPriv?: { priv_name?: string } }[];
  grantee_roles?: { RoleSpec?: { roletype?: string; rolename?: string } }[];
  opt?: { DefElem?: { defname?: string; arg?: { Boolean?: { boolval?: boolean } } } }[];
  grantor?: { RoleSpec?: { roletype?: string; rolename?: string } };
}

function skipped(display: string, reason: string): ForServer {
  return { statements: [], notes: [`skipped "${display}": ${reason}`] };
}

/**
 * GRANT role TO member WITH ... INHERIT / SET (PostgreSQL 16) for an older server, where
 * every membership allows SET ROLE and the member's INHERIT attribute decides inheritance.
 * SET FALSE: the membership is not granted there, and revoked if it was. Otherwise the
 * membership is granted with its ADMIN option, and an INHERIT option is noted as left out.
 */
function membership(statement: Statement, grant: GrantRoleStmt, display: string, versionNum: number): ForServer | undefined {
  const younger = (grant.granted_roles ?? []).map((r) => r.AccessPriv?.priv_name ?? '').find((name) => !hasPredefinedRole(versionNum, name));
  if (younger !== undefined) {
    return skipped(
      display,
      `${younger} is ${postgres(PREDEFINED_ROLES_SINCE.get(younger) as number)}'s, and this server runs ${postgres(versionNum)}`,
    );
  }
  if (versionNum >= MEMBERSHIP_OPTIONS_SINCE || !grant.is_grant) return undefined;
  const options = new Map((grant.opt ?? []).map((o) => [o.DefElem?.defname, o.DefElem?.arg?.Boolean?.boolval === true]));
  if (!options.has('inherit') && !options.has('set')) return undefined;
  const roles = (grant.granted_roles ?? []).map((r) => r.AccessPriv?.priv_name);
  const members = (grant.grantee_roles ?? []).map((r) => (r.RoleSpec?.roletype === 'ROLESPEC_CSTRING' ? r.RoleSpec.rolename : undefined));
  if (roles.length !== 1 || members.length !== 1 || roles[0] === undefined || members[0] === undefined) return undefined;
  const grantor = grant.grantor?.RoleSpec;
  if (grantor && (grantor.roletype !== 'ROLESPEC_CSTRING' || grantor.rolename === undefined)) return undefined;
  const role = quoteIdent(roles[0]);
  const member = quoteIdent(members[0]);
  // Before 16 the grantor is the membership's record of who granted it, kept as it is.
  const by = grantor?.rolename !== undefined ? ` GRANTED BY ${quoteIdent(grantor.rolename)}` : '';
  const version = postgres(versionNum);
  const as = (kind: Statement['kind'], sql: string): Statement => ({ ...statement, kind, sql, display: sql });
  if (options.get('set') === false) {
    return {
      statements: [as('REVOKE ROLE', `REVOKE ${role} FROM ${member}${by}`)],
      notes: [
        `"${display}": ${version} has no SET option for a membership, and granting it there would let ${member} SET ROLE ${role}: not granted there (revoked if it was)`,
      ],
    };
  }
  const admin = options.get('admin');
  return {
    statements: [
      as('GRANT ROLE', `GRANT ${role} TO ${member}${admin ? ' WITH ADMIN OPTION' : ''}${by}`),
      ...(admin === false ? [as('REVOKE ROLE', `REVOKE ADMIN OPTION FOR ${role} FROM ${member}${by}`)] : []),
    ],
    notes: options.has('inherit')
      ? [
          `"${display}": INHERIT ${options.get('inherit') ? 'TRUE' : 'FALSE'} is left out: ${version} has no INHERIT option for a membership; there ${member} inherits ${role}'s privileges as the INHERIT attribute of ${member} says`,
        ]
      : [],
  };
}

/** GRANT, REVOKE or ALTER DEFAULT PRIVILEGES naming privileges younger than the server: those are left out. */
function privileges(statement: Statement, grant: GrantStmt, display: string, versionNum: number): ForServer | undefined {
  const named = (grant.privileges ?? []).map((p) => p.AccessPriv?.priv_name ?? '');
  const unknown = [...new Set(named.map((n) => n.toUpperCase()).filter((n) => !knowsPrivilege(versionNum, n)))];
  if (unknown.length === 0) return undefined;
  const whose = unknown.map((n) => `${n} is ${postgres(PRIVILEGES_SINCE.get(n) as number)}'s`).join(', ');
  const reason = `${whose}, and this server runs ${postgres(versionNum)}`;
  if (named.every((n) => unknown.includes(n.toUpperCase()))) return skipped(display, reason);
  const sql = withoutPrivileges(statement.sql, new Set(unknown.map((n) => n.toLowerCase())), named.length);
  // A list it cannot cut: the statement runs as it is, and the target says what it refuses.
  if (sql === undefined) return undefined;
  return {
    statements: [{ ...statement, sql, display: sql }],
    notes: [`${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} left out of "${display}": ${reason}`],
  };
}

type Token = { start: number; end: number; text: string; keywordKind: number };

/**
 * The statement without the named privileges in its privilege list: the items between
 * GRANT (REVOKE, or GRANT OPTION FOR) and the first ON outside parentheses. ON and FOR
 * are reserved words, so no name there can be mistaken for them. Undefined unless
 * exactly the expected items were found, and what is left parses.
 */
function withoutPrivileges(sql: string, drop: Set<string>, listed: number): string | undefined {
  const bytes = Buffer.from(sql, 'utf8');
  const tokens = scanSync(sql).tokens as Token[];
  const keyword = (t: Token | undefined, word: string) => t !== undefined && t.keywordKind !== 0 && t.text.toUpperCase() === word;
  let depth = 0;
  let on = -1;
  for (const [i, t] of tokens.entries()) {
    if (t.text === '(') depth++;
    else if (t.text === ')') depth--;
    else if (depth === 0 && keyword(t, 'ON')) {
      on = i;
      break;
    }
  }
  let first = on;
  while (first > 0 && !['GRANT', 'REVOKE', 'FOR'].some((w) => keyword(tokens[first - 1], w))) first--;
  if (on < 0 || first <= 0) return undefined;
  const items: Token[][] = [[]];
  depth = 0;
  for (const t of tokens.slice(first, on)) {
    if (t.text === '(') depth++;
    else if (t.text === ')') depth--;
    if (depth === 0 && t.text === ',') items.push([]);
    else (items[items.length - 1] as Token[]).push(t);
  }
  const name = (t: Token) => identifiers(t.text)?.[0];
  const kept = items.filter((item) => !(item.length === 1 && drop.has(name(item[0] as Token) ?? '')));
  if (items.length !== listed || kept.length === items.length || kept.length === 0) return undefined;
  const text = (from: number, to: number) => bytes.subarray(from, to).toString('utf8');
  const start = (tokens[first] as Token).start;
  const result =
    text(0, start) +
    kept.map((item) => text((item[0] as Token).start, (item[item.length - 1] as Token).end)).join(', ') +
    ' ' +
    text((tokens[on] as Token).start, bytes.length);
  try {
    return parseSync(result).stmts?.length === 1 ? result : undefined;
  } catch {
    return undefined;
  }
}
