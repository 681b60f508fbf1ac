/**
 * PostgreSQL's quoting rules, the one place TypeScript builds SQL text from names.
 * quoteIdent always quotes: simpler to reason about than deciding when it may be left bare.
 */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains a NUL character');
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteQualified(...parts: string[]): string {
  return parts.map(quoteIdent).join('.');
}

/** A standard-conforming string literal; E'' form when it holds a backslash, as quote_literal() does. */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('literal contains a NUL character');
  const doubled = value.replaceAll("'", "''");
  return value.includes('\\') ? `E'${doubled.replaceAll('\\', '\\\\')}'` : `'${doubled}'`;
}
