import { setFlagsFromString } from 'node:v8';
import { loadModule, parseSync, scanSync } from 'libpg-query';
import type { AlterTableStmt, Node, RangeVar, RoleSpec, TransactionStmt } from 'libpg-query';
import { quoteIdent, quoteQualified, searchPathSchemas } from '../sql/quote.js';
import type { BatchStatement, Statement } from '../sql/statement.js';

/**
 * Command tags the source's event trigger listens for (the event trigger permsync_capture).
 * ALTER tags are recorded only when the query string contains the word OWNER, CREATE
 * SCHEMA only when its elements GRANT or REVOKE.
 */
export const CAPTURED_TAGS: readonly string[] = [
  'GRANT',
  'REVOKE',
  'ALTER DEFAULT PRIVILEGES',
  'ALTER TABLE',
  'ALTER VIEW',
  'ALTER MATERIALIZED VIEW',
  'ALTER SEQUENCE',
  'ALTER FOREIGN TABLE',
  'ALTER SCHEMA',
  'ALTER FUNCTION',
  'ALTER PROCEDURE',
  'ALTER ROUTINE',
  'ALTER AGGREGATE',
  'ALTER TYPE',
  'ALTER DOMAIN',
  'ALTER LANGUAGE',
  'ALTER LARGE OBJECT',
  'ALTER FOREIGN DATA WRAPPER',
  'ALTER SERVER',
  'ALTER COLLATION',
  'ALTER CONVERSION',
  'ALTER OPERATOR',
  'ALTER OPERATOR CLASS',
  'ALTER OPERATOR FAMILY',
  'ALTER STATISTICS',
  'ALTER TEXT SEARCH CONFIGURATION',
  'ALTER TEXT SEARCH DICTIONARY',
  'ALTER PUBLICATION',
  'ALTER SUBSCRIPTION',
  'DROP OWNED',
  'CREATE SCHEMA',
];
const CAPTURED = new Set(CAPTURED_TAGS);

/** What a statement does, for rules: the tag a DBA would name (config's command_tag). */
type PermissionKind = 'GRANT' | 'REVOKE' | 'ALTER DEFAULT PRIVILEGES' | 'ALTER OWNER';

export interface SessionContext {
  /** current_user on the source when the statement ran. */
  currentUser: string;
  sessionUser: string;
  /** The source's search_path, used where an unqualified name leaves the schema open. */
  searchPath: string;
  /** Names of the temporary relations and types the source session had (capture records them). */
  temporaryObjects?: ReadonlySet<string>;
}

export interface SkippedStatement {
  ordinal: number;
  tag: string;
  sourceText: string;
  reason: string;
  /** It changed permissions statement replay cannot carry: the batch converges what it touched instead. */
  converge?: boolean;
}

/** The statements of one source transaction inside a client string. */
export interface TransactionGroup {
  /** Tags the event trigger records for this group, in order: matched against the audit log. */
  firingTags: string[];
  /**
   * The statements behind firingTags that may not fire, by ordinal, with the relation they
   * name: `ALTER ... IF EXISTS` of a relation the source does not have records nothing.
   */
  optional: { ordinal: number; relation: { schema: string | null; name: string } }[];
  /** The ordinal of the statement behind each of firingTags. */
  firingOrdinals: number[];
  replay: BatchStatement[];
  skipped: SkippedStatement[];
}

export class UnparsableQueryError extends Error {}

let loaded: Promise<void> | undefined;
/**
 * The parser is WASM: load it once before the first analyzeQuery call. Its code is
 * compiled by the baseline compiler only: V8's tier-up would keep a second, optimised copy
 * of the hot parser functions, about 25 MB of the daemon's memory, for a parse that is
 * 20 µs instead of 16.
 */
export function loadParser(): Promise<void> {
  if (!loaded) {
    setFlagsFromString('--liftoff-only');
    loaded = loadModule();
  }
  return loaded;
}

/**
 * Cuts a client query string into statements with the real parser, follows its
 * transaction control (BEGIN, COMMIT, ROLLBACK, savepoints) to learn which statements
 * committed together, and prepares each permission statement for replay.
 */
export function analyzeQuery(query: string, context: SessionContext): TransactionGroup[] {
  let parsed;
  try {
    parsed = parseSync(query);
  } catch (error) {
    throw new UnparsableQueryError(`the query text does not parse: ${(error as Error).message}`);
  }
  const bytes = Buffer.from(query, 'utf8');
  const mentionsOwner = /owner/i.test(query);
  const groups: TransactionGroup[] = [];
  let pending: PendingStatement[] = [];
  const savepoints: { name: string; mark: number }[] = [];

  const commit = () => {
    const firing = pending.filter((p) => p.firingTag !== undefined);
    if (firing.length > 0) {
      groups.push({
        firingTags: firing.map((p) => p.firingTag as string),
        firingOrdinals: firing.map((p) => p.ordinal as number),
        optional: firing.flatMap((p) => (p.optional ? [{ ordinal: p.ordinal as number, relation: p.optional }] : [])),
        replay: firing.flatMap((p) => (p.replay ? [p.replay] : [])),
        skipped: firing.flatMap((p) => (p.skipped ? [p.skipped] : [])),
      });
    }
    pending = [];
    savepoints.length = 0;
  };

  const statements = parsed.stmts ?? [];
  statements.forEach((raw, index) => {
    const node = raw.stmt as Node;
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
    const rawText = bytes.subarray(start, end).toString('utf8');
    const text = rawText.trim();
    const textStart = start + Buffer.byteLength(rawText.slice(0, rawText.length - rawText.trimStart().length));
    const textEnd = textStart + Buffer.byteLength(text);
    const [type, body] = Object.entries(node)[0] as [string, unknown];
    if (type === 'TransactionStmt') {
      const tx = body as TransactionStmt;
      switch (tx.kind) {
        case 'TRANS_STMT_COMMIT':
          commit();
          break;
        case 'TRANS_STMT_ROLLBACK':
          pending = [];
          savepoints.length = 0;
          break;
        case 'TRANS_STMT_SAVEPOINT':
          savepoints.push({ name: tx.savepoint_name ?? '', mark: pending.length });
          break;
        case 'TRANS_STMT_RELEASE': {
          const at = findSavepoint(savepoints, tx.savepoint_name);
          if (at >= 0) savepoints.length = at;
          break;
        }
        case 'TRANS_STMT_ROLLBACK_TO': {
          const at = findSavepoint(savepoints, tx.savepoint_name);
          if (at >= 0) {
            pending.length = (savepoints[at] as { mark: number }).mark;
            savepoints.length = at + 1;
          }
          break;
        }
        case 'TRANS_STMT_PREPARE':
        case 'TRANS_STMT_COMMIT_PREPARED':
        case 'TRANS_STMT_ROLLBACK_PREPARED':
          throw new UnparsableQueryError('two-phase commit in the query string: its transactions cannot be followed');
        default:
          // BEGIN / START TRANSACTION: statements since the last COMMIT join the block.
          break;
      }
      return;
    }
    pending.push({
      ...prepare(type, body, { ordinal: index + 1, text, textStart, textEnd, start, end, bytes, mentionsOwner, context }),
      ordinal: index + 1,
    });
  });
  // Whatever is still open committed with the batch (the batch row exists, so it did).
  commit();
  return groups;
}

/** Schemas that are some session's temporary schema. */
export const TEMPORARY_SCHEMA = /^pg_temp(_\d+)?$/;

/**
 * The first object a GRANT, REVOKE or ALTER DEFAULT PRIVILEGES names that is, or may be,
 * temporary: in a pg_temp schema, or unqualified and named as one of the session's
 * temporary relations or types (which PostgreSQL would have found first). Functions are
 * never looked for in pg_temp unqualified.
 */
function temporaryObjectNamed(body: Fields, context: SessionContext): string | undefined {
  const inTemporarySchema = (names: string[]) => names.length > 1 && TEMPORARY_SCHEMA.test(names[names.length - 2] as string);
  const temporary = (names: string[], unqualifiedMayBe: boolean): string | undefined =>
    inTemporarySchema(names) || (unqualifiedMayBe && names.length === 1 && context.temporaryObjects?.has(names[0] as string))
      ? names.join('.')
      : undefined;
  const schemas = [
    ...((body.options ?? []) as { DefElem?: { defname?: string; arg?: unknown } }[])
      .filter((o) => o.DefElem?.defname === 'schemas')
      .flatMap((o) => stringValues(o.DefElem?.arg)),
    ...(body.objtype === 'OBJECT_SCHEMA' || body.targtype === 'ACL_TARGET_ALL_IN_SCHEMA'
      ? ((body.objects ?? []) as unknown[]).flatMap(stringValues)
      : []),
  ];
  const schema = schemas.find((s) => TEMPORARY_SCHEMA.test(s));
  if (schema !== undefined) return `schema ${schema}`;
  if (body.objtype === 'OBJECT_SCHEMA' || body.targtype !== 'ACL_TARGET_OBJECT') return undefined;
  const typeLike = body.objtype === 'OBJECT_TYPE' || body.objtype === 'OBJECT_DOMAIN';
  for (const o of (body.objects ?? []) as Fields[]) {
    const rv = o.RangeVar as RangeVar | undefined;
    const found = rv
      ? temporary([...(rv.schemaname ? [rv.schemaname] : []), rv.relname ?? ''], true)
      : o.ObjectWithArgs
        ? temporary(stringValues((o.ObjectWithArgs as Fields).objname), false)
        : temporary(stringValues(o), typeLike);
    if (found !== undefined) return found;
  }
  return undefined;
}

function findSavepoint(savepoints: { name: string }[], name: string | undefined): number {
  for (let i = savepoints.length - 1; i >= 0; i--) if (savepoints[i]?.name === name) return i;
  return -1;
}

interface PendingStatement {
  firingTag: string | undefined;
  ordinal?: number;
  /** May not fire (IF EXISTS, and the relation is missing on the source): the relation it names. */
  optional?: { schema: string | null; name: string };
  replay?: BatchStatement;
  skipped?: SkippedStatement;
}

interface StatementSite {
  ordinal: number;
  /** The statement, trimmed, and its byte range in the query. */
  text: string;
  textStart: number;
  textEnd: number;
  /** Byte offset where the parser's statement begins (its tokens' origin). */
  start: number;
  end: number;
  bytes: Buffer;
  mentionsOwner: boolean;
  context: SessionContext;
}

/** Object types PostgreSQL treats as shared: no event trigger fires for them. */
const SHARED_OBJECT_TYPES = new Set(['OBJECT_DATABASE', 'OBJECT_TABLESPACE', 'OBJECT_PARAMETER_ACL', 'OBJECT_ROLE']);

const OBJECT_TAG: Record<string, string> = {
  OBJECT_TABLE: 'ALTER TABLE',
  OBJECT_VIEW: 'ALTER VIEW',
  OBJECT_MATVIEW: 'ALTER MATERIALIZED VIEW',
  OBJECT_SEQUENCE: 'ALTER SEQUENCE',
  OBJECT_FOREIGN_TABLE: 'ALTER FOREIGN TABLE',
  OBJECT_INDEX: 'ALTER INDEX',
  OBJECT_SCHEMA: 'ALTER SCHEMA',
  OBJECT_FUNCTION: 'ALTER FUNCTION',
  OBJECT_PROCEDURE: 'ALTER PROCEDURE',
  OBJECT_ROUTINE: 'ALTER ROUTINE',
  OBJECT_AGGREGATE: 'ALTER AGGREGATE',
  OBJECT_TYPE: 'ALTER TYPE',
  OBJECT_DOMAIN: 'ALTER DOMAIN',
  OBJECT_DOMCONSTRAINT: 'ALTER DOMAIN',
  OBJECT_LANGUAGE: 'ALTER LANGUAGE',
  OBJECT_LARGEOBJECT: 'ALTER LARGE OBJECT',
  OBJECT_FDW: 'ALTER FOREIGN DATA WRAPPER',
  OBJECT_FOREIGN_SERVER: 'ALTER SERVER',
  OBJECT_COLLATION: 'ALTER COLLATION',
  OBJECT_CONVERSION: 'ALTER CONVERSION',
  OBJECT_OPERATOR: 'ALTER OPERATOR',
  OBJECT_OPCLASS: 'ALTER OPERATOR CLASS',
  OBJECT_OPFAMILY: 'ALTER OPERATOR FAMILY',
  OBJECT_STATISTIC_EXT: 'ALTER STATISTICS',
  OBJECT_TSCONFIGURATION: 'ALTER TEXT SEARCH CONFIGURATION',
  OBJECT_TSDICTIONARY: 'ALTER TEXT SEARCH DICTIONARY',
  OBJECT_PUBLICATION: 'ALTER PUBLICATION',
  OBJECT_SUBSCRIPTION: 'ALTER SUBSCRIPTION',
  OBJECT_ATTRIBUTE: 'ALTER TYPE',
};

/** Statement node types whose tag follows from a fixed field, for the ALTER commands the trigger sees. */
const FIXED_TAG: Record<string, string> = {
  AlterSeqStmt: 'ALTER SEQUENCE',
  AlterDomainStmt: 'ALTER DOMAIN',
  AlterEnumStmt: 'ALTER TYPE',
  AlterTypeStmt: 'ALTER TYPE',
  AlterStatsStmt: 'ALTER STATISTICS',
  AlterOperatorStmt: 'ALTER OPERATOR',
  AlterOpFamilyStmt: 'ALTER OPERATOR FAMILY',
  AlterFdwStmt: 'ALTER FOREIGN DATA WRAPPER',
  AlterForeignServerStmt: 'ALTER SERVER',
  AlterCollationStmt: 'ALTER COLLATION',
  AlterTSDictionaryStmt: 'ALTER TEXT SEARCH DICTIONARY',
  AlterTSConfigurationStmt: 'ALTER TEXT SEARCH CONFIGURATION',
  AlterPublicationStmt: 'ALTER PUBLICATION',
  AlterSubscriptionStmt: 'ALTER SUBSCRIPTION',
  AlterDefaultPrivilegesStmt: 'ALTER DEFAULT PRIVILEGES',
  DropOwnedStmt: 'DROP OWNED',
};

type Fields = Record<string, unknown>;

/** The command tag PostgreSQL gives a statement, for the ones the trigger may record. */
function commandTag(type: string, body: Fields): string | undefined {
  switch (type) {
    case 'GrantStmt':
      return SHARED_OBJECT_TYPES.has(String(body.objtype)) ? undefined : body.is_grant ? 'GRANT' : 'REVOKE';
    case 'AlterTableStmt':
    case 'AlterTableMoveAllStmt':
      return OBJECT_TAG[String(body.objtype)];
    case 'AlterOwnerStmt':
    case 'AlterObjectSchemaStmt':
      return OBJECT_TAG[String(body.objectType)];
    case 'RenameStmt': {
      const renamed = String(body.renameType);
      const onRelation = renamed === 'OBJECT_COLUMN' || renamed === 'OBJECT_TABCONSTRAINT';
      return OBJECT_TAG[onRelation ? String(body.relationType) : renamed];
    }
    case 'AlterFunctionStmt':
      return OBJECT_TAG[String(body.objtype)];
    case 'CreateSchemaStmt':
      return ((body.schemaElts ?? []) as { GrantStmt?: Fields }[]).some((e) => e.GrantStmt && !SHARED_OBJECT_TYPES.has(String(e.GrantStmt.objtype)))
        ? 'CREATE SCHEMA'
        : undefined;
    default:
      return FIXED_TAG[type];
  }
}

function prepare(type: string, rawBody: unknown, site: StatementSite): PendingStatement {
  const body = (rawBody ?? {}) as Fields;
  const tag = commandTag(type, body);
  const fires = tag !== undefined && CAPTURED.has(tag) && (!tag.startsWith('ALTER ') || tag === 'ALTER DEFAULT PRIVILEGES' || site.mentionsOwner);
  if (!fires) return { firingTag: undefined };
  const skip = (reason: string): PendingStatement => ({
    firingTag: tag,
    skipped: { ordinal: site.ordinal, tag, sourceText: site.text, reason },
  });
  // A GRANT on a temporary table fails on every target, which has no such table. (An
  // owner change's audit row names its object: the planner looks there.)
  if (type === 'GrantStmt' || type === 'AlterDefaultPrivilegesStmt') {
    const temporary = temporaryObjectNamed(body, site.context);
    if (temporary) return skip(`it names ${temporary}, a temporary object of the source session; a target has none`);
  }

  switch (type) {
    case 'GrantStmt':
      return replayAs(tag, body.is_grant ? 'GRANT' : 'REVOKE', body, site);
    case 'AlterDefaultPrivilegesStmt':
      return replayAs(tag, 'ALTER DEFAULT PRIVILEGES', body, site);
    case 'AlterOwnerStmt':
      return replayAs(tag, 'ALTER OWNER', body, site);
    case 'AlterTableStmt': {
      const stmt = body as AlterTableStmt;
      const cmds = (stmt.cmds ?? []).map((c) => (c as { AlterTableCmd?: Fields }).AlterTableCmd ?? {});
      const ownerCmds = cmds.filter((c) => c.subtype === 'AT_ChangeOwner');
      const optional =
        stmt.missing_ok === true && stmt.relation ? { schema: stmt.relation.schemaname ?? null, name: stmt.relation.relname ?? '' } : undefined;
      if (ownerCmds.length === 0) return { ...skip('not a permission change (schema changes are not replayed)'), optional };
      if (ownerCmds.length === cmds.length) return { ...replayAs(tag, 'ALTER OWNER', body, site), optional };
      // Mixed with schema changes: carry only the owner change.
      const newOwner = ownerCmds[ownerCmds.length - 1]?.newowner as RoleSpec;
      const sql = `ALTER ${tag.slice('ALTER '.length)} ${stmt.missing_ok ? 'IF EXISTS ' : ''}${relationName(stmt.relation)} OWNER TO ${roleSpecSql(newOwner, site.context)}`;
      return {
        firingTag: tag,
        optional,
        replay: {
          ordinal: site.ordinal,
          kind: 'ALTER OWNER',
          sourceText: site.text,
          sql,
          roles: collectRoles(body, 'ALTER OWNER', site.context),
          grantees: [],
          schemas: collectSchemas(body, site.context),
        },
      };
    }
    case 'DropOwnedStmt':
      return skip(
        'DROP OWNED drops objects as well as privileges; it is not replayed. Run it on each environment deliberately, or use drift and reconcile',
      );
    case 'CreateSchemaStmt':
      return {
        firingTag: tag,
        skipped: { ordinal: site.ordinal, tag, sourceText: site.text, reason: 'it creates a schema, which its GRANT elements need', converge: true },
      };
    default:
      return skip('not a permission change (schema changes are not replayed)');
  }
}

function replayAs(tag: string, kind: PermissionKind, body: Fields, site: StatementSite): PendingStatement {
  const edits: Edit[] = [];
  // Scanned only when a statement needs an edit: most need none, and the scan costs as much as the parse.
  let scanned: Token[] | undefined;
  const tokens = () => (scanned ??= scanSync(site.bytes.subarray(site.start, site.end).toString('utf8')).tokens);
  // Session-dependent role names (CURRENT_USER, SESSION_USER, CURRENT_ROLE) become explicit.
  walk(body, (value) => {
    if (!isRoleSpec(value)) return;
    const name = sessionRoleName(value, site.context);
    if (name === undefined || value.location === undefined) return;
    const token = tokens().find((t) => t.start === (value.location as number) - site.start);
    if (token) edits.push({ start: value.location, end: value.location + (token.end - token.start), text: quoteIdent(name) });
  });
  // Without FOR ROLE, ALTER DEFAULT PRIVILEGES applies to the current user, which on
  // the target would be the sync user: name the source's current user instead.
  if (kind === 'ALTER DEFAULT PRIVILEGES' && !hasOption(body, 'roles')) {
    const third = firstNonCommentTokens(tokens(), 3)[2];
    if (!third) throw new UnparsableQueryError('ALTER DEFAULT PRIVILEGES without its keywords');
    edits.push({ start: site.start + third.end, end: site.start + third.end, text: ` FOR ROLE ${quoteIdent(site.context.currentUser)}` });
  }
  const roles = collectRoles(body, kind, site.context);
  return {
    firingTag: tag,
    replay: {
      ordinal: site.ordinal,
      kind,
      sourceText: site.text,
      sql: applyEdits(site, edits),
      roles,
      grantees: collectGrantees(body, site.context),
      schemas: collectSchemas(body, site.context),
      ...(kind !== 'ALTER OWNER' && { grantList: grantList(body, kind, site.context) }),
    },
  };
}

/** The roles a GRANT, REVOKE or ALTER DEFAULT PRIVILEGES names outside its grantee list, and whether that list names PUBLIC. */
function grantList(body: Fields, kind: PermissionKind, context: SessionContext): { otherRoles: string[]; public: boolean } {
  const grant = (body.action ?? body) as Fields;
  const grantees = (grant.grantees ?? []) as { RoleSpec?: RoleSpec }[];
  const withoutList = body.action ? { ...body, action: { ...grant, grantees: [] } } : { ...body, grantees: [] };
  return {
    otherRoles: collectRoles(withoutList, kind, context),
    public: grantees.some((g) => g.RoleSpec?.roletype === 'ROLESPEC_PUBLIC'),
  };
}

/**
 * The statement without the grantees `drop` names (null: PUBLIC): its grantee list cut by
 * keepGrantees, and the roles it names with it. Undefined when none would be left, or the
 * list cannot be cut.
 */
export function withoutGrantees<T extends Statement>(statement: T, drop: ReadonlySet<string | null>): T | undefined {
  const list = statement.grantList;
  if (!list) return undefined;
  const sql = keepGrantees(statement.sql, (grantee) => !drop.has(grantee));
  if (sql === undefined) return undefined;
  const grantees = statement.grantees.filter((g) => !drop.has(g));
  return {
    ...statement,
    sql,
    grantees,
    roles: statement.roles.filter((r) => list.otherRoles.includes(r) || grantees.includes(r)),
    grantList: { otherRoles: list.otherRoles, public: list.public && !drop.has(null) },
  };
}

/**
 * A GRANT, REVOKE or ALTER DEFAULT PRIVILEGES statement (`sql`, one statement, every role
 * named) with only the grantees `keep` accepts (null: PUBLIC): the grantee list rebuilt from
 * the parser's offsets, every other byte as it was. Undefined when it is no such statement,
 * a grantee is not a name (CURRENT_USER), none would be left, or what is left does not parse
 * to the grantees kept.
 */
export function keepGrantees(sql: string, keep: (grantee: string | null) => boolean): string | undefined {
  const grantees = granteeSpecs(sql);
  if (!grantees) return undefined;
  const named = grantees.map((spec) =>
    spec.roletype === 'ROLESPEC_PUBLIC' ? null : spec.roletype === 'ROLESPEC_CSTRING' ? spec.rolename : undefined,
  );
  if (named.some((n) => n === undefined)) return undefined;
  const kept = named.map((n) => keep(n as string | null));
  if (!kept.includes(false)) return sql;
  if (!kept.includes(true)) return undefined;
  const bytes = Buffer.from(sql, 'utf8');
  const tokens = scanSync(sql).tokens as Token[];
  const spans: { start: number; end: number }[] = [];
  for (const spec of grantees) {
    const at = tokens.findIndex((t) => t.start === spec.location);
    const token = tokens[at];
    if (!token) return undefined;
    // GROUP is a reserved word: unquoted, it is always the keyword of `TO GROUP name`.
    const before = tokens[at - 1];
    spans.push({ start: before?.text.toUpperCase() === 'GROUP' ? before.start : token.start, end: token.end });
  }
  const text = (from: number, to?: number) => bytes.subarray(from, to).toString('utf8');
  const result =
    text(0, (spans[0] as { start: number }).start) +
    spans
      .filter((_, i) => kept[i])
      .map((s) => text(s.start, s.end))
      .join(', ') +
    text((spans[spans.length - 1] as { end: number }).end);
  return granteeSpecs(result)?.length === kept.filter(Boolean).length ? result : undefined;
}

/** The grantee list of a single GRANT, REVOKE or ALTER DEFAULT PRIVILEGES statement. */
function granteeSpecs(sql: string): RoleSpec[] | undefined {
  let stmts;
  try {
    stmts = parseSync(sql).stmts ?? [];
  } catch {
    return undefined;
  }
  const node = stmts.length === 1 ? (stmts[0]?.stmt as Fields | undefined) : undefined;
  const grant = (node?.GrantStmt ?? (node?.AlterDefaultPrivilegesStmt as Fields | undefined)?.action) as Fields | undefined;
  if (!grant) return undefined;
  const specs = ((grant.grantees ?? []) as { RoleSpec?: RoleSpec }[]).map((g) => g.RoleSpec);
  return specs.every((s) => s?.location !== undefined) ? (specs as RoleSpec[]) : undefined;
}

interface Edit {
  start: number;
  end: number;
  text: string;
}

/** Applies byte-offset edits (the parser's locations are UTF-8 byte offsets) to the statement. */
function applyEdits(site: StatementSite, edits: Edit[]): string {
  let result = '';
  let cursor = site.textStart;
  for (const edit of [...edits].sort((a, b) => a.start - b.start)) {
    result += site.bytes.subarray(cursor, edit.start).toString('utf8') + edit.text;
    cursor = edit.end;
  }
  return result + site.bytes.subarray(cursor, site.textEnd).toString('utf8');
}

type Token = { start: number; end: number; tokenName: string; text: string };

function firstNonCommentTokens(tokens: Token[], n: number) {
  return tokens.filter((t) => t.tokenName !== 'SQL_COMMENT' && t.tokenName !== 'C_COMMENT').slice(0, n);
}

function isRoleSpec(value: unknown): value is RoleSpec {
  return typeof value === 'object' && value !== null && typeof (value as RoleSpec).roletype === 'string';
}

function sessionRoleName(spec: RoleSpec, context: SessionContext): string | undefined {
  switch (spec.roletype) {
    case 'ROLESPEC_CURRENT_USER':
    case 'ROLESPEC_CURRENT_ROLE':
      return context.currentUser;
    case 'ROLESPEC_SESSION_USER':
      return context.sessionUser;
    default:
      return undefined;
  }
}

function roleSpecSql(spec: RoleSpec, context: SessionContext): string {
  if (spec.roletype === 'ROLESPEC_PUBLIC') return 'PUBLIC';
  return quoteIdent(sessionRoleName(spec, context) ?? spec.rolename ?? '');
}

function relationName(relation: RangeVar | undefined): string {
  if (!relation?.relname) throw new UnparsableQueryError('ALTER without a relation name');
  return relation.schemaname ? quoteQualified(relation.schemaname, relation.relname) : quoteIdent(relation.relname);
}

function hasOption(body: Fields, name: string): boolean {
  const options = (body.options ?? []) as { DefElem?: { defname?: string } }[];
  return options.some((o) => o.DefElem?.defname === name);
}

function walk(value: unknown, visit: (value: unknown) => void): void {
  visit(value);
  if (Array.isArray(value)) value.forEach((v) => walk(v, visit));
  else if (typeof value === 'object' && value !== null) Object.values(value).forEach((v) => walk(v, visit));
}

function collectRoles(body: Fields, kind: PermissionKind, context: SessionContext): string[] {
  const roles = new Set<string>();
  walk(body, (value) => {
    if (!isRoleSpec(value) || value.roletype === 'ROLESPEC_PUBLIC') return;
    const name = sessionRoleName(value, context) ?? value.rolename;
    if (name) roles.add(name);
  });
  if (kind === 'ALTER DEFAULT PRIVILEGES' && !hasOption(body, 'roles')) roles.add(context.currentUser);
  return [...roles];
}

function collectGrantees(body: Fields, context: SessionContext): string[] {
  const grant = (body.action ?? body) as Fields;
  return ((grant.grantees ?? []) as { RoleSpec?: RoleSpec }[]).flatMap((g) => {
    const spec = g.RoleSpec;
    if (!spec || spec.roletype === 'ROLESPEC_PUBLIC') return [];
    const name = sessionRoleName(spec, context) ?? spec.rolename;
    return name ? [name] : [];
  });
}

/** Schemas named by the statement's objects; an unqualified object counts in each search_path schema. */
function collectSchemas(body: Fields, context: SessionContext): string[] {
  const schemas = new Set<string>();
  let unqualified = false;
  const addQualified = (names: string[]) => {
    if (names.length > 1) schemas.add(names[names.length - 2] as string);
    else unqualified = true;
  };
  const objtype = body.objtype ?? body.objectType;
  const inSchemaTarget = body.targtype === 'ACL_TARGET_ALL_IN_SCHEMA';
  if (objtype === 'OBJECT_SCHEMA' || inSchemaTarget) {
    for (const o of (body.objects ?? [body.object]) as unknown[]) for (const s of stringValues(o)) schemas.add(s);
  }
  const optionSchemas = ((body.options ?? []) as { DefElem?: { defname?: string; arg?: unknown } }[]).filter((o) => o.DefElem?.defname === 'schemas');
  for (const o of optionSchemas) for (const s of stringValues(o.DefElem?.arg)) schemas.add(s);

  if (objtype !== 'OBJECT_SCHEMA' && !inSchemaTarget) {
    const relation = body.relation as RangeVar | undefined;
    if (relation) addQualified([...(relation.schemaname ? [relation.schemaname] : []), relation.relname ?? '']);
    for (const o of (body.objects ?? (body.object ? [body.object] : [])) as Fields[]) {
      if (o.RangeVar) {
        const rv = o.RangeVar as RangeVar;
        addQualified([...(rv.schemaname ? [rv.schemaname] : []), rv.relname ?? '']);
      } else if (o.ObjectWithArgs) {
        addQualified(stringValues((o.ObjectWithArgs as Fields).objname));
      } else if (o.List) {
        addQualified(stringValues(o.List));
      } else if (o.TypeName) {
        addQualified(stringValues((o.TypeName as Fields).names));
      }
    }
  }
  if (unqualified) for (const s of searchPathSchemas(context.searchPath, context.currentUser)) schemas.add(s);
  return [...schemas];
}

function stringValues(value: unknown): string[] {
  const out: string[] = [];
  walk(value, (v) => {
    if (typeof v === 'object' && v !== null && 'String' in v) out.push(String((v as { String: { sval?: string } }).String.sval ?? ''));
  });
  return out;
}
