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

/** Settings whose value is a list; in the first two, an unquoted element is an identifier. */
const LIST_SETTINGS = new Set(['search_path', 'temp_tablespaces', 'session_preload_libraries', 'local_preload_libraries',
  'shared_preload_libraries', 'unix_socket_directories']);
const IDENTIFIER_LISTS = new Set(['search_path', 'temp_tablespaces']);

/**
 * A stored role setting as SQL for `ALTER ROLE ... SET key TO`, as
 * permsync.setting_value_sql() writes it: a literal, or for a list setting one literal
 * per element (split as PostgreSQL splits one: at commas, "" inside double quotes is one
 * "), as pg_dump writes them. An unquoted element of an identifier list is folded to lower
 * case, as PostgreSQL reads it. Text that is not a well-formed list is one literal: any
 * text can be stored (set_config, then SET ... FROM CURRENT), and it is never more than a value.
 */
export function settingValueSql(key: string, value: string): string {
  const lowered = key.toLowerCase();
  if (!LIST_SETTINGS.has(lowered)) return quoteLiteral(value);
  const literals: string[] = [];
  let rest = value;
  for (;;) {
    rest = rest.trimStart();
    const quoted = /^"((?:[^"]|"")*)"/.exec(rest);
    const bare = quoted ? undefined : /^[^,\s"]+/.exec(rest);
    if (quoted?.[1] !== undefined) literals.push(quoteLiteral(quoted[1].replaceAll('""', '"')));
    else if (bare) literals.push(quoteLiteral(IDENTIFIER_LISTS.has(lowered) ? bare[0].replace(/[A-Z]+/g, (c) => c.toLowerCase()) : bare[0]));
    else return quoteLiteral(value);
    rest = rest.slice((quoted ?? bare)?.[0].length ?? 0).trimStart();
    if (rest === '') return literals.join(', ');
    if (!rest.startsWith(',')) return quoteLiteral(value);
    rest = rest.slice(1);
  }
}
