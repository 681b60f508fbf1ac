import { quoteIdent } from '../sql/quote.js';
import type { Statement } from '../sql/statement.js';

/**
 * Stands for the target's own database in generated statements. A quoted identifier
 * cannot hold it (its " would be doubled), and it comes before any string literal in
 * the statements that use it, so its first occurrence is the placeholder.
 */
export const TARGET_DATABASE = '{"database"}';

export function withTargetDatabase(sql: string, database: string): string {
  const at = sql.indexOf(TARGET_DATABASE);
  return at < 0 ? sql : sql.slice(0, at) + quoteIdent(database) + sql.slice(at + TARGET_DATABASE.length);
}

/**
 * A membership statement without its GRANTED BY clause: the grant is then recorded as
 * the sync user's (the bootstrap superuser's, for a superuser on 16+). The role watcher
 * writes the clause last, the grantor always quoted.
 */
export function withoutGrantor<T extends Statement>(statement: T): T {
  if (statement.grantor === undefined) return statement;
  const clause = ` GRANTED BY ${quoteIdent(statement.grantor)}`;
  const cut = (sql: string) => (sql.endsWith(clause) ? sql.slice(0, -clause.length) : sql);
  const { grantor: _, ...rest } = statement;
  return { ...rest, sql: cut(statement.sql), ...(statement.display !== undefined && { display: cut(statement.display) }) } as T;
}

/** A membership statement that names `grantor` in a GRANTED BY clause, written last as the role watcher writes it. */
export function withGrantor<T extends Statement>(statement: T, grantor: string): T {
  const clause = ` GRANTED BY ${quoteIdent(grantor)}`;
  return { ...statement, grantor, sql: statement.sql + clause, ...(statement.display !== undefined && { display: statement.display + clause }) };
}
