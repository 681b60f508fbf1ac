import { analyzeQuery, UnparsableQueryError, type ReplayStatement, type SkippedStatement, type StatementKind } from './statements.js';

/** A statement the role watcher generated (sql/0001_core.sql, permsync.role_statement). */
export interface GeneratedStatement {
  kind: StatementKind;
  role: string;
  granted?: string;
  sql: string;
  display: string;
  privileged?: boolean;
  ignore_codes?: string[];
  on_target_database?: boolean;
}

/** What the daemon knows of a batch from the source. */
export interface Batch {
  id: string;
  commitSeq: string;
  origin: 'event_trigger' | 'role_watcher' | 'manual' | 'reconcile';
  sessionUser: string;
  currentUser: string;
  currentUserIsSuperuser: boolean;
  searchPath: string;
  backendPid: number;
  statementStartedAt: Date;
  committedAt: Date | null;
  queryText: string;
  queryMasked: boolean;
  targetEnvironment: string | null;
  /** Tags the event trigger recorded, one per permission command, in order. */
  commandTags: string[];
  /** How many (current user, search_path) pairs those commands ran with. */
  identities: number;
  /** Statements of a generated batch (role watcher); null for captured query strings. */
  statements: GeneratedStatement[] | null;
  /** The outcome an earlier attempt logged for this batch in the environment reading it, if any. */
  previousStatus?: string | null;
}

export interface BatchPlan {
  batch: Batch;
  replay: ReplayStatement[];
  skipped: SkippedStatement[];
  /** Set when the batch cannot be carried by statement replay; says why. */
  unreplayable?: string;
}

/** What capture stores instead of a string it cannot mask with certainty (sql/0009_withheld_text.sql). */
export const WITHHELD_TEXT = '/* permsync: text withheld: it changes standard_conforming_strings and mentions a password */';

/**
 * Decides what of a batch's query string to replay. The event trigger recorded one tag
 * per permission command that committed; the parser must account for exactly those, or
 * the batch is declared unreplayable: better flagged for drift than replayed wrongly.
 *
 * @param siblingIds ids of batches written by the same client string, in transaction
 *   order, when the string committed more than one transaction.
 */
export async function planBatch(batch: Batch, siblingIds: () => Promise<string[]>): Promise<BatchPlan> {
  const plan = (fields: Partial<BatchPlan>): BatchPlan => ({ batch, replay: [], skipped: [], ...fields });
  if (batch.statements) return plan({ replay: batch.statements.map(fromGenerated) });
  if (batch.queryText === WITHHELD_TEXT) {
    return plan({
      unreplayable: 'the string changes standard_conforming_strings and mentions a password: its text was withheld, so that no password is stored; the next drift check shows what differs',
    });
  }
  let groups;
  try {
    groups = analyzeQuery(batch.queryText, {
      currentUser: batch.currentUser,
      sessionUser: batch.sessionUser,
      searchPath: batch.searchPath,
    });
  } catch (error) {
    if (error instanceof UnparsableQueryError) return plan({ unreplayable: error.message });
    throw error;
  }
  if (batch.origin !== 'event_trigger') {
    // Manual and generated batches carry every statement they hold, in one transaction.
    return plan({ replay: groups.flatMap((g) => g.replay), skipped: groups.flatMap((g) => g.skipped) });
  }
  // A string that changed role or search_path between its permission commands would
  // replay them all with the first command's: not the same meaning, so not replayed.
  if (batch.identities > 1) {
    return plan({
      unreplayable: 'the string changes role or search_path between its permission commands; the next drift check shows what differs',
    });
  }
  // A string that committed several transactions wrote a batch for each, one after the
  // other in one session: the n-th batch is the n-th transaction. (Earlier ones are always
  // visible; later ones may still be committing.) Not when the string turns capture off
  // for some of them: then batches and transactions no longer pair up.
  let index = 0;
  if (groups.length > 1) {
    if (mentionsCaptureSwitch(batch.queryText)) {
      return plan({ unreplayable: 'the string commits several transactions and sets permsync.capture; which batch is which cannot be told' });
    }
    index = (await siblingIds()).indexOf(batch.id);
  }
  const group = index >= 0 ? groups[index] : undefined;
  const expected = group?.firingTags ?? [];
  if (!sameTags(expected, batch.commandTags)) {
    return plan({
      unreplayable:
        `the trigger saw ${describe(batch.commandTags)} but the statements of the query string account for ${describe(expected)}` +
        ' (permission commands run inside a DO block, a function or dynamic SQL cannot be replayed as statements);' +
        ' the next drift check shows what differs',
    });
  }
  return plan({ replay: group?.replay ?? [], skipped: group?.skipped ?? [] });
}

function fromGenerated(s: GeneratedStatement, index: number): ReplayStatement {
  return {
    ordinal: index + 1,
    kind: s.kind,
    sourceText: s.display,
    sql: s.sql,
    display: s.display,
    roles: s.granted ? [s.role, s.granted] : [s.role],
    grantees: [s.role],
    schemas: [],
    ...(s.granted !== undefined && { granted: s.granted }),
    ...(s.ignore_codes && { ignoreCodes: s.ignore_codes }),
    ...(s.privileged && { privileged: true }),
    ...(s.on_target_database && { onTargetDatabase: true }),
  };
}

function mentionsCaptureSwitch(query: string): boolean {
  return /permsync\.capture/i.test(query);
}

function sameTags(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((tag, i) => tag === b[i]);
}

function describe(tags: string[]): string {
  return tags.length === 0 ? 'no permission command' : `[${tags.join(', ')}]`;
}
