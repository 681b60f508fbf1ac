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

export type FailureKind = 'transient' | 'permanent';

export interface ClassifiedError {
  kind: FailureKind;
  /** SQLSTATE when PostgreSQL sent one, else a Node error code such as ECONNREFUSED. */
  code: string | undefined;
  message: string;
  detail: string | undefined;
  hint: string | undefined;
}

/** SQLSTATE classes and codes after which the same statement may succeed later. */
const TRANSIENT_CLASSES = ['08', '53', '57', '58'];
const TRANSIENT_CODES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout)
  '55006', // object_in_use
  'XX000', // internal_error, as raised by "tuple concurrently updated"
]);
/** Node/pg errors that mean the connection, not the statement, failed. */
const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
const TRANSIENT_MESSAGES = [
  /timeout/i, /Connection terminated/i, /tuple concurrently updated/i, /connection.*(lost|closed|ended)/i,
  // pg, on a pooled session whose server went away before the pool noticed.
  /is not queryable/i,
];

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
  } else if (code && /^[0-9A-Z]{5}$/.test(code)) {
    if (TRANSIENT_CLASSES.includes(code.slice(0, 2)) || TRANSIENT_CODES.has(code)) kind = 'transient';
    if (code === 'XX000' && !/tuple concurrently/i.test(message)) kind = 'permanent';
  } else if ((code && TRANSIENT_NODE_CODES.has(code)) || TRANSIENT_MESSAGES.some((re) => re.test(message))) {
    kind = 'transient';
  }
  return { kind, code, message, detail, hint };
}
