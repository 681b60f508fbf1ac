/** The base of every error permsync raises on purpose; `exitCode` is what the CLI returns. */
export class PermsyncError extends Error {
  readonly exitCode: number;
  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** Bad usage or configuration: the CLI exits 2. */
export class UsageError extends PermsyncError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
  }
}

/** A failure of permsync's own that the same work may not meet again: retried, as a lost connection is. */
export class TransientError extends PermsyncError {}

type FailureKind = 'transient' | 'permanent';

export interface ClassifiedError {
  kind: FailureKind;
  /** SQLSTATE when PostgreSQL sent one, else a Node error code such as ECONNREFUSED. */
  code: string | undefined;
  message: string;
  detail: string | undefined;
  hint: string | undefined;
}

/** The SQLSTATEs permsync acts on, by PostgreSQL's condition names (Appendix A of its manual). */
export const SQLSTATE = {
  insufficientPrivilege: '42501',
  dependentObjectsStillExist: '2BP01',
  duplicateObject: '42710',
  undefinedObject: '42704',
  undefinedTable: '42P01',
  undefinedFunction: '42883',
  undefinedSchema: '3F000',
  invalidParameterValue: '22023',
  cantChangeRuntimeParam: '55P02',
  invalidCatalogName: '3D000',
  objectNotInPrerequisiteState: '55000',
  uniqueViolation: '23505',
  duplicateSchema: '42P06',
  duplicateTable: '42P07',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
  objectInUse: '55006',
  internalError: 'XX000',
} as const;

/** A statement names an object that is not there (a later batch removed it, say). */
export const OBJECT_GONE: ReadonlySet<string> = new Set([
  SQLSTATE.undefinedObject,
  SQLSTATE.undefinedTable,
  SQLSTATE.undefinedFunction,
  SQLSTATE.undefinedSchema,
]);
/**
 * A role setting a target cannot take (a parameter or value its version does not know, one
 * that cannot be set for a role, a database it does not have): left out there, as the role
 * watcher's statements are (permsync.role_changes), rather than holding the environment.
 */
export const SETTING_NOT_TAKEN: readonly string[] = [
  SQLSTATE.undefinedObject,
  SQLSTATE.invalidParameterValue,
  SQLSTATE.cantChangeRuntimeParam,
  SQLSTATE.invalidCatalogName,
];
/** What a database without permsync's schema, or with an older one, answers a query of it. */
export const NOT_INSTALLED: ReadonlySet<string> = new Set([SQLSTATE.undefinedSchema, SQLSTATE.undefinedTable, SQLSTATE.undefinedFunction]);
/** Two sessions created the same object at once: the one that lost finds it there. */
export const RACED_CREATE: ReadonlySet<string> = new Set([SQLSTATE.uniqueViolation, SQLSTATE.duplicateSchema, SQLSTATE.duplicateTable]);
/** Node/pg errors that mean the connection, not the statement, failed. */
const CONNECTION_FAILED: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
]);
/** The server is down, starting or out of reach (not refusing us: that is authentication's or TLS's codes). */
const SERVER_DOWN: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  SQLSTATE.adminShutdown,
  SQLSTATE.crashShutdown,
  SQLSTATE.cannotConnectNow,
]);
/** SQLSTATE classes after which the session is gone: connection exceptions, and the server shutting down or cutting it off. */
const CONNECTION_LOST_CLASSES = ['08', '57P'];
/** SQLSTATE classes and codes after which the same statement may succeed later. */
const TRANSIENT_CLASSES = ['08', '53', '57', '58'];
const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  SQLSTATE.serializationFailure,
  SQLSTATE.deadlockDetected,
  SQLSTATE.lockNotAvailable,
  SQLSTATE.objectInUse,
  // As raised by "tuple concurrently updated".
  SQLSTATE.internalError,
]);
const TRANSIENT_MESSAGES = [
  /timeout/i,
  /Connection terminated/i,
  /tuple concurrently updated/i,
  /connection.*(lost|closed|ended)/i,
  // pg, on a pooled session whose server went away before the pool noticed.
  /is not queryable/i,
];

/** Whether `code` is a SQLSTATE (five digits or capitals), not a Node error code such as ECONNREFUSED. */
export function isSqlstate(code: string | undefined): code is string {
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code);
}

interface PgLikeError {
  code?: unknown;
  message?: unknown;
  detail?: unknown;
  hint?: unknown;
}

/**
 * The one place that decides whether a failure is worth retrying. Statement timeout
 * (57014) is transient: a hung target is cut off, not declared wrong.
 */
export function classifyError(error: unknown): ClassifiedError {
  const e = (typeof error === 'object' && error !== null ? error : {}) as PgLikeError;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : String(error);
  const detail = typeof e.detail === 'string' ? e.detail : undefined;
  const hint = typeof e.hint === 'string' ? e.hint : undefined;
  let kind: FailureKind = 'permanent';
  if (error instanceof TransientError) {
    kind = 'transient';
  } else if (isSqlstate(code)) {
    if (TRANSIENT_CLASSES.includes(code.slice(0, 2)) || TRANSIENT_CODES.has(code)) kind = 'transient';
    if (code === SQLSTATE.internalError && !/tuple concurrently/i.test(message)) kind = 'permanent';
  } else if ((code && CONNECTION_FAILED.has(code)) || TRANSIENT_MESSAGES.some((re) => re.test(message))) {
    kind = 'transient';
  }
  return { kind, code, message, detail, hint };
}

/** The error's message and its code: a SQLSTATE said so, a Node error code as it is. */
export function describeError(error: unknown): string {
  const e = error as { message?: string; code?: string };
  const code = e.code ? ` (${isSqlstate(e.code) ? 'SQLSTATE ' : ''}${e.code})` : '';
  return `${e.message ?? String(error)}${code}`;
}

/**
 * Whether a failed connection says the server is down, starting or out of reach, rather
 * than that it refuses us (credentials, a certificate). Without a code, only a timeout says so.
 */
export function serverDown(error: ClassifiedError): boolean {
  return error.code === undefined ? /timeout/i.test(error.message) : SERVER_DOWN.has(error.code);
}

/**
 * Whether the server answered with an error (a SQLSTATE) that left the session standing:
 * the transaction then did not commit. After a lost connection or a shutdown that is unknown.
 */
export function refusedByServer(error: ClassifiedError): boolean {
  return isSqlstate(error.code) && !CONNECTION_LOST_CLASSES.some((prefix) => error.code?.startsWith(prefix));
}
