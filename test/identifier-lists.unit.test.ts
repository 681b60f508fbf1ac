import { describe, expect, it } from 'vitest';
import { identifiers, searchPathAsUser, searchPathSchemas, settingValueSql, typeListSchemas } from '../src/sql/quote.js';
import { identityParts } from '../src/capture/touched.js';

describe('a list of identifiers, read as PostgreSQL reads one', () => {
  it('splits at commas outside double quotes, unquotes, and folds bare names to lower case (ASCII only)', () => {
    expect(identifiers('a, "B c" ,D')).toEqual(['a', 'B c', 'd']);
    expect(identifiers('"My, Schema","a""b"')).toEqual(['My, Schema', 'a"b']);
    expect(identifiers('\tÉcole ,\nx')).toEqual(['École', 'x']);
  });

  it('is no list when the text is not one', () => {
    for (const text of ['', ' ', 'a,,b', ',a', 'x,', '"a"b', '"a" "b"', 'not "a list', 'a b']) expect(identifiers(text)).toBeUndefined();
  });

  it('splits a qualified name at its dots', () => {
    expect(identifiers('public."My.T"', '.')).toEqual(['public', 'My.T']);
    expect(identifiers('"a""b".c.d', '.')).toEqual(['a"b', 'c', 'd']);
  });

  it('reads an object identity, a routine without its argument list', () => {
    expect(identityParts('"My Schema"."T"')).toEqual(['My Schema', 'T']);
    expect(identityParts('pg_temp_3.f(integer, text)')).toEqual(['pg_temp_3', 'f']);
    expect(identityParts('"f(x)".g()')).toEqual(['f(x)', 'g']);
  });
});

describe('a list of type names as format_type writes them', () => {
  it('names the schemas of the qualified ones, quoted or not, dots and commas in quotes kept', () => {
    expect(typeListSchemas('integer, app.mood, "My.Types".t[], "a, b"."x.y", character varying, "char"')).toEqual(['app', 'My.Types', 'a, b']);
    expect(typeListSchemas('"a""b".t')).toEqual(['a"b']);
    expect(typeListSchemas('')).toEqual([]);
  });
});

describe('search_path', () => {
  it('names its schemas, "$user" quoted or not being the user it runs as', () => {
    expect(searchPathSchemas('"My, Schema", "$user",public', 'Dba Lead')).toEqual(['My, Schema', 'Dba Lead', 'public']);
    expect(searchPathSchemas('$user, Public', 'dba')).toEqual(['dba', 'public']);
    expect(searchPathSchemas('a,,b', 'dba')).toEqual([]);
  });

  it('is written with "$user" as the user it meant, other elements as they were', () => {
    expect(searchPathAsUser('"$user", Public, "x"', 'Dba "Lead"')).toBe('"Dba ""Lead""", Public, "x"');
    expect(searchPathAsUser('a,,b', 'dba')).toBe('a,,b');
  });
});

describe('a role setting as SQL', () => {
  it('is one literal per element of a list setting, identifiers folded where the setting holds identifiers', () => {
    expect(settingValueSql('search_path', ' App , "b c"')).toBe("'app', 'b c'");
    expect(settingValueSql('Search_Path', '"$user", public')).toBe("'$user', 'public'");
    expect(settingValueSql('session_preload_libraries', 'Auto_Explain, x')).toBe("'Auto_Explain', 'x'");
  });

  it('is one literal for any other setting, and for text that is no list', () => {
    expect(settingValueSql('work_mem', "64MB'; DROP")).toBe("'64MB''; DROP'");
    expect(settingValueSql('search_path', 'a,,b')).toBe("'a,,b'");
    expect(settingValueSql('search_path', 'a\\b')).toBe("E'a\\\\b'");
  });

  it('is DEFAULT past the length carried, counted in bytes', () => {
    expect(settingValueSql('work_mem', 'é'.repeat(4096))).toBe(`'${'é'.repeat(4096)}'`);
    expect(settingValueSql('work_mem', 'é'.repeat(4097))).toBe('DEFAULT /* permsync: value withheld: 8194 bytes, over the limit of 8192 */');
  });
});
