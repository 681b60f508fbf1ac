import { scanSync } from 'libpg-query';
import { analyzeQuery, TEMPORARY_SCHEMA, UnparsableQueryError, type SkippedStatement, type TransactionGroup } from './statements.js';
import { searchPathSchemas } from '../sql/quote.js';
import { shown, type AclChange, type BatchStatement, type Statement, type StatementKind } from '../sql/statement.js';
import { identityParts, touchesOfText, touchOfIdentity, type Touch, type TouchContext } from './touched.js';
import { grantOrder } from './grant-order.js';

/**
 * A statement as a generated batch stores it (permsync.batches.statements, in the shape
 * permsync.role_statement() writes): the role watcher's, and a reconcile's record. SQL
 * reads it too (the audit rows name `role`).
 */
export interface StatementRecord {
  kind: StatementKind;
  /** The role it defines or changes (for a membership, the member); absent for PUBLIC's database privileges. */
  role?: string;
  granted?: string;
  sql: string;
  display: string;
  privileged?: boolean;
  attribute?: string;
  renamed_from?: string;
  /** Each role name it holds, as the source role's oid when it was written (Statement's sourceOids). */
  oids?: Record<string, number>;
  ignore_codes?: string[];
  on_target_database?: boolean;
  /** A source database other than its own, for a privilege on it (permsync.shared_privilege_statement). */
  database?: string;
  /** The role named in GRANTED BY. */
  grantor?: string;
  /** The role a privilege on a shared object is granted as (SET LOCAL ROLE in the statement). */
  run_as?: string;
  /** For a privilege on a shared object, its object and privilege: grant-order.ts orders each chain by `run_as`. */
  chain?: string;
  /** It gives (a grant) or takes (a revoke) its grantee's grant option on `chain`. */
  option?: boolean;
  /** For a privilege on a shared object, the ACL entry it changes (Statement's acl, without `cycle`). */
  acl?: Omit<AclChange, 'cycle'>;
  other_grantors?: boolean;
  /** A DROP ROLE a role without SUPERUSER could have run (Statement's byLogin). */
  by_login?: boolean;
}

/** What the daemon knows of a batch from the source. */
export interface Batch {
  id: string;
  commitSeq: string;
  origin: 'event_trigger' | 'role_watcher' | 'owner_watcher' | 'manual' | 'reconcile' | 'bootstrap';
  sessionUser: string;
  /** A captured batch's login was a superuser (a DBA, whatever role it ran as). */
  sessionUserIsSuperuser: boolean;
  currentUser: string;
  currentUserIsSuperuser: boolean;
  /** The author's oid on the source (a captured or manual batch's). */
  currentUserOid?: number;
  searchPath: string;
  backendPid: number;
  statementStartedAt: Date;
  committedAt: Date | null;
  /** The client string, as capture stored it; null when the daemon does not read it (see textBytes). */
  queryText: string | null;
  /** The stored text's size in bytes: over MAX_TEXT_BYTES, or MAX_GENERATED_BYTES for a generated batch, it is not read. */
  textBytes?: number;
  queryMasked: boolean;
  targetEnvironment: string | null;
  /** Tags the event trigger recorded, one per permission command, in order. */
  commandTags: string[];
  /** The object each of those commands named first (pg_event_trigger_ddl_commands' object_identity). */
  commandObjects: (string | null)[];
  /** How many (current user, search_path) pairs those commands ran with. */
  identities: number;
  /** Some of those commands ran inside a DO block or a function, not as statements of the text. */
  nestedCommands?: boolean;
  /** Statements of a generated batch (role watcher); null for captured query strings. */
  statements: StatementRecord[] | null;
  /** Why capture already knew the batch cannot be replayed (permsync.batches.not_replayable). */
  notReplayable?: string | null;
  /** Why capture knew its statements, though they can be read, must be converged rather than replayed (permsync.batches.converge_reason). */
  convergeReason?: string | null;
  /** Names of the temporary relations and types the source session had. */
  temporaryObjects?: string[] | null;
  /** The outcome an earlier attempt logged for this batch in the environment reading it, if any. */
  previousStatus?: string | null;
}

export interface BatchPlan {
  batch: Batch;
  replay: BatchStatement[];
  skipped: SkippedStatement[];
  /** Set when the batch cannot be carried by statement replay; says why. */
  unreplayable?: string;
  /** For such a batch, what its commands touched: each target converges it to the source's state instead. */
  converge?: ConvergeScope;
  /** The batch brings an environment just added to the configuration to the source's state: drift's plan there. */
  bootstrap?: true;
}

/** What a batch that statement replay cannot carry touched, as far as the source recorded it. */
export interface ConvergeScope {
  touches: Touch[];
  /** The commands whose objects cannot be told, and why, one clause each. */
  unknown: string[];
  /** Each actor's oid on the source, where capture could tell it: an actor without one may change nothing. */
  actorOids: ReadonlyMap<string, number>;
  /**
   * Owner changes taken ahead of a batch a target refused (EnvironmentApplier.ownersFirst):
   * not one whose former owner's privileges a batch in between (`between`, in order) runs
   * with: they are in `holds` (on the source now), or its `author` has them on the target
   * as it is before the refused batch (unless a role of the target's own, or a superuser,
   * has that name there). Touch.found.behind says how many of those batches come before the
   * move's own batch.
   */
  ahead?: { between: { author: string; holds: ReadonlySet<string> }[] };
}

/** One permission command as capture recorded it (permsync.audit_log), in order. */
export interface RecordedCommand {
  tag: string;
  objectType: string | null;
  identity: string | null;
  currentUser: string;
  /** The role that ran it, by oid; absent where capture could not tell (a role renamed since the session set it). */
  currentUserOid?: number;
  searchPath: string | null;
  /** Run by a function, a DO block or dynamic SQL (permsync.audit_log.nested); null where capture did not write the row. */
  nested: boolean | null;
  /** The statement it ran, as PL/pgSQL names it, literals masked (permsync.audit_log.nested_text). */
  nestedText: string | null;
  /**
   * An owner change the role watcher found (permsync.capture_owner_changes): its object, as
   * `classid/objid` on the source, its identity then as permsync.object_facts gives it, and
   * the owner permsync saw before (currentUser is then the owner now).
   */
  address?: string;
  notedIdentity?: string;
  reassignedFrom?: string;
}

/** What capture stores instead of a string it cannot mask with certainty (permsync_capture.record_command). */
export const WITHHELD_TEXT =
  '/* permsync: text withheld: it mentions a password, and its string literals read differently with and without standard_conforming_strings */';

/**
 * The most the daemon reads of one batch: a client string capture stores
 * (permsync_capture.record_command withholds a longer one), and a generated batch's text. Each is parsed and held in memory
 * under the service's heap limit (deploy/permsync.service), a page of batches at a time.
 */
export const MAX_TEXT_BYTES = 65_536;
export const MAX_GENERATED_BYTES = 1_048_576;
/** The most permission commands capture records for one batch (permsync_capture.record_command). */
export const MAX_RECORDED_COMMANDS = 1000;

/**
 * Decides what of a batch's query string to replay. The event trigger recorded one tag
 * per permission command that committed; the parser must account for exactly those, or
 * the batch is declared unreplayable: better flagged than replayed wrongly. Such a batch
 * converges instead what its commands touched, as far as `recorded` tells (convergeScope),
 * unless its permission commands ran with capture off. Whatever goes wrong while planning
 * makes the batch unreplayable, with the reason; only reading the source (siblingIds,
 * recorded) may throw, as a source that does not answer does.
 *
 * @param siblingIds ids of batches written by the same client string, in transaction
 *   order, when the string committed more than one transaction.
 * @param recorded the batch's recorded commands (permsync.audit_log), read only for a
 *   batch that statement replay cannot carry.
 */
export async function planBatch(batch: Batch, siblingIds: () => Promise<string[]>, recorded?: () => Promise<RecordedCommand[]>): Promise<BatchPlan> {
  if (batch.origin === 'bootstrap') return { batch, replay: [], skipped: [], bootstrap: true };
  const { plan, ordinals } = await planReplay(batch, siblingIds);
  const converges = batch.origin === 'event_trigger' || batch.origin === 'owner_watcher';
  if (plan.unreplayable === undefined || !recorded || !converges || !convergeable(batch)) return plan;
  const scope = convergeScope(batch, ordinals, await recorded());
  // Nothing it touched can be told: it stays skipped, with the reason.
  return scope.touches.length > 0 ? { ...plan, converge: scope } : plan;
}

/**
 * The replay plan, and the ordinals of the statements of the batch's transaction in its
 * text when the text can be read as the source read it (for convergeScope).
 */
async function planReplay(batch: Batch, siblingIds: () => Promise<string[]>): Promise<{ plan: BatchPlan; ordinals?: number[] }> {
  const plan = (fields: Partial<BatchPlan>): BatchPlan => ({ batch, replay: [], skipped: [], ...fields });
  let groups: TransactionGroup[];
  try {
    const early = planWithoutPairing(batch);
    if (!Array.isArray(early)) return { plan: plan(early) };
    groups = early;
  } catch (error) {
    return { plan: plan({ unreplayable: notPlanned(error) }) };
  }
  // A string that committed several transactions wrote a batch for each, one after the
  // other in one session: the n-th batch is the n-th transaction. (Earlier ones are always
  // visible; later ones may still be committing.) A transaction whose commands ran with
  // permsync.capture off wrote one too, which is not replayed (permsync_capture.record_command).
  const index = groups.length > 1 ? (await siblingIds()).indexOf(batch.id) : 0;
  const group = groups[index];
  // Which transaction is the batch's cannot always be told: then its statements cannot either.
  const ordinals = group ? group.firingOrdinals : groups.length === 0 ? [] : undefined;
  const capped = cappedReason(batch);
  if (capped) return { plan: plan({ unreplayable: capped }), ordinals };
  // A command run inside a DO block or function is no statement of the text: matched with
  // one by its tag, it could stand for a statement that never ran (a rolled-back GRANT, an
  // ALTER ... IF EXISTS of nothing) and that one would be replayed.
  if (batch.nestedCommands) {
    return {
      plan: plan({ unreplayable: 'permission commands ran inside a DO block or a function, which the statements of the string cannot account for' }),
      ordinals,
    };
  }
  // A string that changed role or search_path between its permission commands would
  // replay them all with the first command's: not the same meaning, so not replayed.
  if (batch.identities > 1) {
    return {
      plan: plan({ unreplayable: 'the string changes role or search_path between its permission commands; the next drift check shows what differs' }),
      ordinals,
    };
  }
  // A role renamed or dropped between its commands reaches the targets before them.
  if (batch.convergeReason) return { plan: plan({ unreplayable: batch.convergeReason }), ordinals };
  try {
    const paired = pairWithTransaction(batch, group);
    const converging = paired.skipped?.find((s) => s.converge);
    if (converging && paired.unreplayable === undefined) {
      return { plan: plan({ unreplayable: `statement ${converging.ordinal} (${converging.tag}) ${converging.reason}` }), ordinals };
    }
    return { plan: plan(paired), ordinals };
  } catch (error) {
    return { plan: plan({ unreplayable: notPlanned(error) }) };
  }
}

/** The batch's transaction groups, or what to make of a batch that needs no pairing. */
function planWithoutPairing(batch: Batch): Partial<BatchPlan> | TransactionGroup[] {
  if (batch.statements) {
    const records = batch.statements;
    const { order, cut } = grantOrder(records);
    // Numbered as stored: notes name a statement by its place in the batch.
    return { replay: order.map((index) => fromRecord(records[index] as StatementRecord, index, cut.has(index))) };
  }
  const withheld = withheldReason(batch);
  if (withheld !== undefined) return { unreplayable: withheld };
  const text = batch.queryText as string;
  if (readsDifferentlyWithoutStandardStrings(text)) {
    return {
      unreplayable:
        'a standard string literal in it holds a backslash, which reads differently with standard_conforming_strings on and off, and which the source used cannot be told; the next drift check shows what differs',
    };
  }
  const groups = analyzeQuery(text, {
    currentUser: batch.currentUser,
    sessionUser: batch.sessionUser,
    searchPath: batch.searchPath,
    ...(batch.temporaryObjects && { temporaryObjects: new Set(batch.temporaryObjects) }),
  });
  if (batch.origin !== 'event_trigger') {
    // Manual and generated batches carry every statement they hold, in one transaction.
    return { replay: groups.flatMap((g) => g.replay), skipped: groups.flatMap((g) => g.skipped) };
  }
  return groups;
}

/** What capture says of a transaction past MAX_RECORDED_COMMANDS (permsync_capture.record_command). */
const CAPPED = `the string ran more than ${MAX_RECORDED_COMMANDS} permission commands in one transaction; capture recorded the first ${MAX_RECORDED_COMMANDS}`;

/**
 * Why a transaction past MAX_RECORDED_COMMANDS is not replayed. Its text is read all the
 * same: the statements of the transaction in it tell what its own commands touched, past
 * the audit rows too (convergeScope).
 */
function cappedReason(batch: Batch): string | undefined {
  if (batch.notReplayable === CAPPED) return CAPPED;
  if (!batch.notReplayable && batch.commandTags.length > MAX_RECORDED_COMMANDS) return CAPPED;
  return undefined;
}

/** Why the batch's text cannot be replayed before it is even parsed, if it cannot. */
function withheldReason(batch: Batch): string | undefined {
  if (batch.notReplayable && batch.notReplayable !== CAPPED) return batch.notReplayable;
  if (batch.queryText === WITHHELD_TEXT) {
    return 'the string mentions a password, and its string literals read differently with and without standard_conforming_strings: its text was withheld, so that no password is stored; the next drift check shows what differs';
  }
  if (batch.queryText === null) {
    const generated = batch.origin === 'role_watcher';
    return `its ${generated ? 'statements take' : 'text takes'} ${batch.textBytes ?? 'an unknown number of'} bytes, over the ${generated ? MAX_GENERATED_BYTES : MAX_TEXT_BYTES} the daemon reads of one batch; the next drift check shows what differs`;
  }
  return undefined;
}

/**
 * Whether a standard string literal (not E'', U&'', B'', X'' nor dollar-quoted) holds a
 * backslash, as PostgreSQL reads the text with standard_conforming_strings on, as the
 * parser here does. Only then can the same text lex otherwise with it off, as the source
 * session may have had it: a literal ends elsewhere, and other statements appear.
 */
function readsDifferentlyWithoutStandardStrings(text: string): boolean {
  if (!text.includes('\\')) return false;
  const bytes = Buffer.from(text, 'utf8');
  return scanSync(text).tokens.some(
    (t) => t.tokenName === 'SCONST' && bytes[t.start] === QUOTE && bytes.subarray(t.start, t.end).includes(BACKSLASH),
  );
}
const QUOTE = 0x27;
const BACKSLASH = 0x5c;

/** The reason a batch could not be planned, from whatever went wrong (a parser error, the parser's memory, ...). */
function notPlanned(error: unknown): string {
  if (error instanceof UnparsableQueryError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  return `the batch could not be planned: ${message.slice(0, 500)}; the next drift check shows what differs`;
}

/** What of the transaction `group` (undefined: none could be told) the batch's recorded commands let replay. */
function pairWithTransaction(batch: Batch, group: TransactionGroup | undefined): Partial<BatchPlan> {
  const expected = group?.firingTags ?? [];
  const fired = group
    ? matchTags(group, batch.commandTags, batch.commandObjects)
    : batch.commandTags.length === 0
      ? new Map<number, number>()
      : undefined;
  if (fired === 'ambiguous') {
    return {
      unreplayable: `the trigger saw ${describe(batch.commandTags)}, and which of the string's ALTER ... IF EXISTS statements ran cannot be told; the next drift check shows what differs`,
    };
  }
  if (!fired) {
    return {
      unreplayable:
        `the trigger saw ${describe(batch.commandTags)} but the statements of the query string account for ${describe(expected)}` +
        ' (permission commands run inside a DO block, a function or dynamic SQL cannot be replayed as statements);' +
        ' the next drift check shows what differs',
    };
  }
  // An ALTER ... IF EXISTS that changed nothing on the source changes nothing on a target either.
  const replay = (group?.replay ?? []).filter((s) => fired.has(s.ordinal));
  const skipped = (group?.skipped ?? []).filter((s) => fired.has(s.ordinal));
  // An owner change of a temporary object: its audit row names the object, in pg_temp.
  const temporary = (s: BatchStatement) => {
    const at = fired.get(s.ordinal);
    const identity = at === undefined ? undefined : batch.commandObjects[at];
    return s.kind === 'ALTER OWNER' && identity != null && TEMPORARY_SCHEMA.test(identityParts(identity)[0] ?? '');
  };
  return {
    replay: replay.filter((s) => !temporary(s)),
    skipped: [
      ...skipped,
      ...replay.filter(temporary).map((s) => ({
        ordinal: s.ordinal,
        tag: batch.commandTags[fired.get(s.ordinal) as number] as string,
        sourceText: s.sourceText,
        reason: `it changes the owner of ${batch.commandObjects[fired.get(s.ordinal) as number]}, a temporary object of the source session; a target has none`,
      })),
    ].sort((a, b) => a.ordinal - b.ordinal),
  };
}

/**
 * For each statement that fired, by ordinal, the recorded command that stands for it, when
 * the recorded tags are the group's in order but for some that may not fire (ALTER ... IF
 * EXISTS of a missing relation). undefined when they cannot be matched that way;
 * 'ambiguous' when they can in more than one way (two such ALTERs, one fired: which one
 * cannot be told from its tag).
 */
function matchTags(group: TransactionGroup, recorded: string[], objects: (string | null)[]): Map<number, number> | 'ambiguous' | undefined {
  const optional = new Map(group.optional.map((o) => [o.ordinal, o.relation]));
  // A recorded command stands for a statement if the tags agree and, for one that may not
  // have fired, the object too: a command run inside a DO block could take its place.
  const stands = (i: number, j: number): boolean => {
    if (j >= recorded.length || recorded[j] !== group.firingTags[i]) return false;
    const relation = optional.get(group.firingOrdinals[i] as number);
    return relation === undefined || namesRelation(objects[j] ?? null, relation);
  };
  const n = group.firingTags.length;
  // ways[i][j]: in how many ways (counted up to 2) statements i.. match recorded tags j..
  const ways = Array.from({ length: n + 1 }, () => new Array<number>(recorded.length + 1).fill(0));
  (ways[n] as number[])[recorded.length] = 1;
  for (let i = n - 1; i >= 0; i--) {
    for (let j = recorded.length; j >= 0; j--) {
      const fired = stands(i, j) ? (ways[i + 1]?.[j + 1] ?? 0) : 0;
      const skipped = optional.has(group.firingOrdinals[i] as number) ? (ways[i + 1]?.[j] ?? 0) : 0;
      (ways[i] as number[])[j] = Math.min(2, fired + skipped);
    }
  }
  const total = ways[0]?.[0] ?? 0;
  if (total === 0) return undefined;
  if (total > 1) return 'ambiguous';
  const fired = new Map<number, number>();
  for (let i = 0, j = 0; i < n; i++) {
    if (stands(i, j) && (ways[i + 1]?.[j + 1] ?? 0) > 0) fired.set(group.firingOrdinals[i] as number, j++);
  }
  return fired;
}

/**
 * Whether an object identity as PostgreSQL prints it (schema.name, each part quoted where
 * needed) is the relation a statement names: by name, and by schema where it names one.
 */
function namesRelation(identity: string | null, relation: { schema: string | null; name: string }): boolean {
  if (identity === null) return false;
  const parts = identityParts(identity);
  const [schema, name] = parts.length === 2 ? parts : [undefined, parts[0]];
  return name === relation.name && (relation.schema === null || schema === relation.schema);
}

/**
 * Whether what the batch touched may be converged: not when its permission commands ran
 * with permsync.capture off (they were meant to stay on the source), nor when which of
 * its names were the session's temporary objects cannot be told (permsync_capture.record_command).
 */
function convergeable(batch: Batch): boolean {
  return !/permsync\.capture off|temporary objects/.test(batch.notReplayable ?? '');
}

/**
 * The oid of each role that ran the batch's commands, by the name capture recorded: one
 * recorded without an oid (capture could not tell who ran it) or with two has none.
 */
function actorOids(batch: Batch, recorded: RecordedCommand[]): Map<string, number> {
  const oids = new Map<string, number>();
  const unknown = new Set<string>();
  // The batch's own author stands for commands no row names (convergeScope's context).
  for (const { currentUser, currentUserOid } of [...recorded, { currentUser: batch.currentUser, currentUserOid: batch.currentUserOid }]) {
    if (currentUserOid === undefined || (oids.has(currentUser) && oids.get(currentUser) !== currentUserOid)) unknown.add(currentUser);
    else oids.set(currentUser, currentUserOid);
  }
  for (const name of unknown) oids.delete(name);
  return oids;
}

/**
 * What the batch's commands touched: a command run by a function, a DO block or dynamic
 * SQL by the statement PL/pgSQL named (or, for an owner change, the object its audit row
 * names); the others by the statements of the batch's transaction in its text (`ordinals`),
 * where the text can be read as the source read it. What cannot be told is said in
 * `unknown`, and converged by nobody: the drift check shows it.
 */
function convergeScope(batch: Batch, ordinals: number[] | undefined, recorded: RecordedCommand[]): ConvergeScope {
  const unknown: string[] = [];
  const context = (rows: RecordedCommand[]): TouchContext => {
    const users = [...new Set(rows.map((r) => r.currentUser))];
    const paths = new Set(rows.map((r) => r.searchPath ?? batch.searchPath));
    return {
      actors: users.length > 0 ? users : [batch.currentUser],
      currentUser: users[0] ?? batch.currentUser,
      searchPaths: [...(paths.size > 0 ? paths : [batch.searchPath])].map((searchPath) =>
        searchPathSchemas(searchPath, users[0] ?? batch.currentUser),
      ),
    };
  };
  const parsed = (text: string, rows: RecordedCommand[], what: string, only?: number[]): Touch[] => {
    try {
      return touchesOfText(text, context(rows), only);
    } catch {
      unknown.push(`${what} does not parse`);
      return [];
    }
  };
  const touches: Touch[] = [];
  const topLevel: RecordedCommand[] = [];
  for (const row of recorded.slice(0, MAX_RECORDED_COMMANDS)) {
    if (batch.origin === 'owner_watcher') {
      if (row.address !== undefined && row.identity !== null && row.notedIdentity !== undefined && row.reassignedFrom !== undefined) {
        const found = { address: row.address, identity: row.notedIdentity, from: row.reassignedFrom };
        touches.push({ ...touchOfIdentity(row.objectType ?? '', row.identity, context([row])), found });
      }
    } else if (row.nested !== true) topLevel.push(row);
    else if (row.nestedText !== null) touches.push(...parsed(row.nestedText, [row], `the statement a function ran (${row.tag})`));
    else if (row.identity !== null && row.tag.startsWith('ALTER ')) touches.push(touchOfIdentity(row.objectType ?? '', row.identity, context([row])));
    else unknown.push(`a ${row.tag} run by a function that names no statement (an SQL-language function, say)`);
  }
  const readable = ordinals !== undefined && batch.queryText !== null;
  if (recorded.length > MAX_RECORDED_COMMANDS || cappedReason(batch) !== undefined) {
    // The string's own statements are in its text; what a function or DO block ran past the first rows is not.
    unknown.push(
      readable
        ? `any command past the first ${MAX_RECORDED_COMMANDS} run by a function or a DO block, which capture did not record`
        : `the commands past the first ${MAX_RECORDED_COMMANDS}, which capture did not record`,
    );
  }
  if (readable && batch.queryText !== null) {
    touches.push(...parsed(batch.queryText, topLevel, 'the query string', ordinals));
    // Commands recorded before capture told nested ones apart, which its statements do not account for.
    const unaccounted = topLevel.length - ordinals.length;
    if (unaccounted > 0) unknown.push(`${unaccounted} command(s) run inside a DO block or a function, recorded without their statement`);
  } else {
    for (const row of topLevel) {
      if (row.identity !== null && row.tag.startsWith('ALTER ')) touches.push(touchOfIdentity(row.objectType ?? '', row.identity, context([row])));
      else unknown.push(`a ${row.tag} whose statement cannot be told from the string`);
    }
  }
  return { touches: touches.map((t) => withoutTemporary(t, batch)), unknown, actorOids: actorOids(batch, recorded) };
}

/** The touch without the source session's temporary objects, which no target has. */
function withoutTemporary(touch: Touch, batch: Batch): Touch {
  const touched = touch.touched;
  if (touched.on !== 'objects') return touch;
  const temporary = new Set(batch.temporaryObjects ?? []);
  const names = touched.names.filter(
    (n) =>
      !(n.schema !== null && TEMPORARY_SCHEMA.test(n.schema)) && !(n.schema === null && temporary.has(n.name) && !touched.kinds.includes('schema')),
  );
  return { ...touch, touched: { ...touched, names } };
}

/** A stored statement of a generated batch, numbered by its place there; `cut`, a revoke grant-order.ts cut a circle at. */
function fromRecord(s: StatementRecord, index: number, cut = false): BatchStatement {
  return {
    ordinal: index + 1,
    kind: s.kind,
    sourceText: s.display,
    sql: s.sql,
    display: s.display,
    roles: [s.role, s.granted, s.renamed_from, s.grantor, s.run_as].filter((r): r is string => r !== undefined),
    grantees: s.role !== undefined ? [s.role] : [],
    schemas: [],
    ...(s.granted !== undefined && { granted: s.granted }),
    ...(s.ignore_codes && { ignoreCodes: s.ignore_codes }),
    ...(s.privileged && { privileged: true }),
    ...(s.attribute !== undefined && { attribute: s.attribute }),
    ...(s.renamed_from !== undefined && { renamedFrom: s.renamed_from }),
    ...(s.oids !== undefined && { sourceOids: s.oids }),
    ...(s.on_target_database && { onTargetDatabase: true }),
    ...(s.database !== undefined && { database: s.database }),
    ...(s.run_as !== undefined && { runAs: s.run_as }),
    ...(s.grantor !== undefined && { grantor: s.grantor }),
    ...(s.other_grantors && { otherGrantors: true }),
    ...(s.by_login && { byLogin: true }),
    ...(s.acl !== undefined && { acl: cut ? { ...s.acl, cycle: true as const } : s.acl }),
  };
}

/** A statement of a plan as a reconcile's batch stores it (fromRecord reads it back). */
export function toRecord(s: Statement): StatementRecord {
  return {
    kind: s.kind,
    role: s.grantees[0] ?? s.roles[0] ?? 'PUBLIC',
    granted: s.granted,
    sql: s.sql,
    display: shown(s),
    privileged: s.privileged,
    ignore_codes: s.ignoreCodes,
    on_target_database: s.onTargetDatabase,
    database: s.database,
    run_as: s.runAs,
    oids: s.sourceOids,
  };
}

function describe(tags: string[]): string {
  return tags.length === 0 ? 'no permission command' : `[${tags.join(', ')}]`;
}
