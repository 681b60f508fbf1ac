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

/** Whitespace as PostgreSQL's list splitting sees it (scanner_isspace). */
const LIST_SPACE = '[ \\t\\n\\r\\f]*';
/** One element of a list, "quoted" ("" inside is one ") or bare, and the separator after it, if any. */
const LIST_ELEMENTS = {
  ',': new RegExp(`${LIST_SPACE}(?:"((?:[^"]|"")*)"|([^", \\t\\n\\r\\f][^, \\t\\n\\r\\f]*))${LIST_SPACE}(,|$)`, 'y'),
  '.': new RegExp(`${LIST_SPACE}(?:"((?:[^"]|"")*)"|([^". \\t\\n\\r\\f][^. \\t\\n\\r\\f]*))${LIST_SPACE}(\\.|$)`, 'y'),
};

/** An element of a list: its text as stored, and what it stands for. */
interface ListElement {
  raw: string;
  /** Without its double quotes ("" made "). */
  value: string;
  quoted: boolean;
}

/**
 * A list split as PostgreSQL splits a list setting or a qualified name
 * (SplitIdentifierString): at each `separator`, an element in double quotes kept whole
 * with "" for ". undefined when the text is not a well-formed list (any text can be
 * stored: set_config, then SET ... FROM CURRENT). One pass over the text.
 */
function splitList(text: string, separator: keyof typeof LIST_ELEMENTS = ','): ListElement[] | undefined {
  const elements: ListElement[] = [];
  const element = LIST_ELEMENTS[separator];
  element.lastIndex = 0;
  let match: RegExpExecArray | null;
  while (element.lastIndex < text.length && (match = element.exec(text))) {
    const [, quoted, bare, after] = match;
    if (quoted !== undefined) elements.push({ raw: `"${quoted}"`, value: quoted.replaceAll('""', '"'), quoted: true });
    else elements.push({ raw: bare as string, value: bare as string, quoted: false });
    if (after === '') return elements;
  }
  return undefined;
}

/** The identifier an element names: unquoted, folded to lower case (ASCII), as PostgreSQL reads it. */
function identifierOf(e: ListElement): string {
  return e.quoted ? e.value : e.value.replace(/[A-Z]+/g, (c) => c.toLowerCase());
}

/** The identifiers of a list (search_path's schemas, a qualified name's parts); undefined when it is no list. */
export function identifiers(text: string, separator: keyof typeof LIST_ELEMENTS = ','): string[] | undefined {
  return splitList(text, separator)?.map(identifierOf);
}

/**
 * The schemas of the qualified names in a list of type names as format_type writes them
 * (a routine's argument types with search_path pg_catalog: `integer, "My S".t[], s.u`):
 * what stands before the first dot outside double quotes of each.
 */
export function typeListSchemas(types: string): string[] {
  const schemas: string[] = [];
  let head = '';
  let qualified = false;
  for (const [token] of types.matchAll(/"(?:[^"]|"")*"|[^",.]+|[,.]/g)) {
    if (token === ',') {
      head = '';
      qualified = false;
    } else if (token === '.' && !qualified) {
      qualified = true;
      const name = head.trim();
      const quoted = /^"((?:[^"]|"")*)"$/.exec(name);
      schemas.push(quoted ? (quoted[1] as string).replaceAll('""', '"') : name.replace(/[A-Z]+/g, (c) => c.toLowerCase()));
    } else if (!qualified) {
      head += token;
    }
  }
  return schemas;
}

/** The longest role setting value carried (permsync.setting_value_sql): no setting needs more, and each role check pays for it. */
const MAX_SETTING_BYTES = 8192;

/**
 * The longest verifier carried (permsync.role_state): a real one takes some 130 bytes, and
 * PostgreSQL 18 refuses one over 512; before 18 a login may set its own to megabytes.
 */
export const MAX_VERIFIER_BYTES = 512;

/**
 * A stored role setting as SQL for `ALTER ROLE ... SET key TO`, as
 * permsync.setting_value_sql() writes it: a literal, or for a list setting one literal
 * per element, as pg_dump writes them (an unquoted element of an identifier list folded
 * to lower case, as PostgreSQL reads it). Text that is not a well-formed list is one
 * literal: never more than a value. A value over MAX_SETTING_BYTES is not carried: it is
 * DEFAULT, with the reason in a comment.
 */
export function settingValueSql(key: string, value: string): string {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_SETTING_BYTES) return `DEFAULT /* permsync: value withheld: ${bytes} bytes, over the limit of ${MAX_SETTING_BYTES} */`;
  const lowered = key.toLowerCase();
  const elements = LIST_SETTINGS.has(lowered) ? splitList(value) : undefined;
  if (!elements) return quoteLiteral(value);
  return elements.map((e) => quoteLiteral(IDENTIFIER_LISTS.has(lowered) ? identifierOf(e) : e.value)).join(', ');
}

/**
 * search_path with "$user" written as `user`: the schema it meant on the source, where
 * `user` ran the statement, wherever the statement runs as another user. Other elements
 * are kept as they are; text that is not a list is returned as it is.
 */
export function searchPathAsUser(path: string, user: string): string {
  const elements = splitList(path);
  if (!elements) return path;
  return elements.map((e) => (identifierOf(e) === '$user' ? quoteIdent(user) : e.raw)).join(', ');
}

/** The schemas of a search_path setting where `user` runs: "$user" is that user's; none when it is no list. */
export function searchPathSchemas(path: string, user: string): string[] {
  return (identifiers(path) ?? []).map((name) => (name === '$user' ? user : name));
}
